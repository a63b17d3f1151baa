#!/usr/bin/env bash
# Runs tests/python (the official OpenAI client against `recurrent serve`) in
# a virtual environment of its own: builds the debug binary, installs openai
# and pytest, runs pytest. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bin recurrent
venv="${VENV:-target/python-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade openai pytest
"$venv/bin/python" -m pytest -q tests/python "$@"
