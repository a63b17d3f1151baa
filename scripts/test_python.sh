#!/usr/bin/env bash
# Runs tests/python (the official OpenAI client against `recurrent serve`,
# the web playground in headless Chromium, ONNX export in onnxruntime,
# TensorBoard logs in TensorBoard's reader) in a virtual environment of its
# own: builds the debug binary, installs openai, selenium, onnx, onnxruntime,
# numpy, safetensors, tensorboard and pytest, runs pytest. Loopback only. The browser test skips without Debian's chromium and
# chromium-driver unless RECURRENT_REQUIRE_BROWSER is set.
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
"$venv/bin/python" -m pytest -q tests/python "$@"
