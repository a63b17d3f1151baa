#!/usr/bin/env bash
# Runs tests/python in a virtual environment of its own (target/python-venv):
# the `recurrent` Python package (built from crates/python with maturin, as
# the README's `pip install ./crates/python` does), the official OpenAI client
# against `recurrent serve`, the web playground in headless Chromium, ONNX
# exports in onnxruntime, and TensorBoard logs in TensorBoard's reader.
# Installs openai, selenium, onnx, onnxruntime, numpy, safetensors,
# tensorboard and pytest from PyPI; loopback only.
#
#   scripts/test_python.sh [PYTEST_ARGS...]     (default: every file in tests/python)
#
# Tests skip when what they need is missing (chromium and chromium-driver for
# the browser), unless RECURRENT_REQUIRE_{BROWSER,ONNX,TENSORBOARD,PACKAGE}
# is set, as .ci/run does. The PyTorch check of the package's state dict runs
# where torch is importable, in the venv or in the system python3.
set -euo pipefail
cd "$(dirname "$0")/.."
# scripts/test has just built target/debug/recurrent with `cargo test`
# (building it again here would rebuild with other feature sets).
[ -n "${RECURRENT_BINARY_BUILT:-}" ] || cargo build --bin recurrent --locked
if ! python3 -m venv --help >/dev/null 2>&1; then
    echo "python3 with venv is needed for the Python tests (Debian: apt-get install python3-venv)" >&2
    exit 1
fi
venv="${VENV:-target/python-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade openai selenium pytest numpy safetensors onnx onnxruntime tensorboard
# The dev profile (optimized, as the tests' builds): it shares the workspace's
# compiled dependencies, which keeps CI short; users' installs build release.
MATURIN_PEP517_ARGS="${MATURIN_PEP517_ARGS:---profile dev}" \
    "$venv/bin/pip" install --quiet --force-reinstall --no-deps ./crates/python
if [ -z "${RECURRENT_TORCH_PYTHON:-}" ] && python3 -c "import torch" >/dev/null 2>&1; then
    RECURRENT_TORCH_PYTHON="$(command -v python3)"
    export RECURRENT_TORCH_PYTHON
fi
export RECURRENT_BINARY="${RECURRENT_BINARY:-${CARGO_TARGET_DIR:-target}/debug/recurrent}"
if [ $# -eq 0 ]; then
    set -- tests/python
fi
"$venv/bin/python" -m pytest -q "$@"
