#!/usr/bin/env bash
# Miri (the Rust interpreter that detects undefined behaviour) on the unsafe
# core of recurrent-kernels: the thread pool (tasks, helpers, panics), the
# shared row views that parallel tasks write through, the typed matrix views,
# and the GEMM packing and panel kernels on the portable path (Miri reports
# no CPU features, so the runtime dispatch takes the baseline code).
#
#   scripts/miri.sh [TEST_FILTER...]
#
# Installs the nightly toolchain with Miri when missing. Slow (an
# interpreter): the tests it runs use small shapes.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal --component miri,rust-src
fi
filters=("$@")
if [ ${#filters[@]} -eq 0 ]; then
    filters=(threads:: shared:: view:: packed:: blocked:: panel::tests::matches_naive
             panel::tests::the_baseline panel::tests::bf16_panels_on_the_baseline)
fi
# Separate target dir: Miri's builds do not mix with the ordinary ones.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/miri"
# The pool's helper threads live as long as the process (as rayon's do):
# -Zmiri-ignore-leaks lets them outlive the test harness's main thread.
MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-disable-isolation -Zmiri-ignore-leaks" \
    cargo +nightly miri test -p recurrent-kernels --lib -- "${filters[@]}"
