#!/usr/bin/env bash
# Builds and installs the `recurrent` Python package (crates/python, PyO3 +
# maturin) into a virtual environment (target/python-venv, shared with
# scripts/test_python.sh) with pip, as the README's `pip install
# ./crates/python` does, then runs its tests (tests/python/test_package.py).
# The wheel is built with the dev profile (optimized dependencies, as the
# tests' builds), which keeps CI's build short; users' installs build release.
# The tests that compare with the CLI use target/debug/recurrent when it is
# built; the PyTorch check runs where torch is importable, in the venv or in
# the system python3.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -m venv --help >/dev/null 2>&1; then
    echo "python3 with venv is needed for the package tests (Debian: apt-get install python3-venv)" >&2
    exit 1
fi
venv="${VENV:-target/python-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade pytest numpy
MATURIN_PEP517_ARGS="${MATURIN_PEP517_ARGS:---profile dev}" \
    "$venv/bin/pip" install --quiet --force-reinstall --no-deps ./crates/python
if [ -z "${RECURRENT_TORCH_PYTHON:-}" ] && python3 -c "import torch" >/dev/null 2>&1; then
    RECURRENT_TORCH_PYTHON="$(command -v python3)"
    export RECURRENT_TORCH_PYTHON
fi
export RECURRENT_BINARY="${RECURRENT_BINARY:-${CARGO_TARGET_DIR:-target}/debug/recurrent}"
RECURRENT_REQUIRE_PACKAGE=1 "$venv/bin/python" -m pytest -q tests/python/test_package.py "$@"
