#!/usr/bin/env bash
# Runs the AVX512-BF16 micro-kernel's machine code in an emulated Sapphire
# Rapids CPU (BochsCPU, from PyPI's bochscpu-python) and checks it bit for
# bit against vdpbf16ps's order: the kernel is tested on every machine, also
# those without AVX512-BF16 (where the Rust tests cannot run it). First the
# emulator harness checks itself on small kernels compiled with gcc.
#
#   scripts/test_emulated_kernels.sh
#
# Uses the Python tests' virtual environment (target/python-venv, or $VENV).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-target/python-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet bochscpu-python
"$venv/bin/python" scripts/emulate_kernel.py --self-test
"$venv/bin/python" scripts/check_pair_kernel.py
