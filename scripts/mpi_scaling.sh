#!/usr/bin/env bash
# Data-parallel training on this machine (docs/DISTRIBUTED.md): tokens per
# second of one process with 2 kernel threads against 2 MPI ranks of one
# thread each, on model (b) of `recurrent bench` (LSTM 2x512, characters,
# batch 64 x 100), and the time of one gradient all-reduce.
#
#   scripts/mpi_scaling.sh [STEPS] [TEXT]     (default 30 steps, tiny-shakespeare)
#
# Needs mpich, libmpich-dev and libclang-dev; builds the release binary with
# the mpi feature. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-30}
text=${2:-../shared/data/tinyshakespeare/input.txt}
cargo build --release --locked --features mpi --bin recurrent
cargo build --release --locked --features mpi -p recurrent-train --example allreduce
target=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
model=(--input "$text" --layers 2 --hidden 512 --embed 64 --batch 64 --seq-len 100
       --steps "$steps" --eval-every 1000000 --sample-length 0 --val-fraction 0.01)

rate() { # tokens per second over the run's steps after the first (warm-up)
    python3 - "$1/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"train"' in l]
first, last = rows[0], rows[-1]
tokens = 64 * 100 * (last["step"] - first["step"])
print(f"{tokens / (last['elapsed'] - first['elapsed']):.0f}")
PY
}

"$target/recurrent" train "${model[@]}" --threads 2 --out "$work/one" >/dev/null 2>&1
mpiexec -n 2 "$target/recurrent" train "${model[@]}" --threads 1 --out "$work/two" >/dev/null 2>&1
echo "model (b), $steps steps: 1 process x 2 threads $(rate "$work/one") tokens/s;" \
     "2 ranks x 1 thread $(rate "$work/two") tokens/s"
mpiexec -n 2 "$target/examples/allreduce"
