#!/usr/bin/env bash
# Data-parallel training on this machine (docs/DISTRIBUTED.md), on model (b)
# of `recurrent bench` (LSTM 2x512, characters, batch 64 x 100):
#
# 1. tokens per second of one process with 2 kernel threads against 2 MPI
#    ranks of one thread each, the ranks summing the gradient in buckets
#    during the backward pass (the default) and in one all-reduce after it
#    (--bucket-mb 0); and the time of one whole-gradient all-reduce;
# 2. the same two rank runs and all-reduce on two "machines" joined by a
#    link of LINK_MBIT megabits per second each way (default 1000):
#    scripts/two_hosts.sh (network namespaces, TCP over veth, tc tbf).
#
#   scripts/mpi_scaling.sh [STEPS] [TEXT]     (default 30 steps, tiny-shakespeare)
#
# Needs mpich, libmpich-dev and libclang-dev (and root and iproute2 for part 2);
# builds the release binary with the mpi feature. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-30}
text=${2:-../shared/data/tinyshakespeare/input.txt}
link=${LINK_MBIT:-1000}
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
secs = last["elapsed"] - first["elapsed"]
print(f"{tokens / secs:.0f} tokens/s ({secs / (last['step'] - first['step']) * 1e3:.0f} ms a step)")
PY
}

# Runs the two rank configurations (buckets, one all-reduce) through the
# launcher given, then the all-reduce alone; prints one line each.
ranks() {
    local tag=$1; shift
    "$@" "$target/recurrent" train "${model[@]}" --threads 1 --out "$work/$tag-buckets" \
        >/dev/null 2>&1
    "$@" "$target/recurrent" train "${model[@]}" --threads 1 --bucket-mb 0 \
        --out "$work/$tag-after" >/dev/null 2>&1
    echo "  2 ranks x 1 thread, 4 MB buckets during the backward pass: $(rate "$work/$tag-buckets")"
    echo "  2 ranks x 1 thread, one all-reduce after the backward pass: $(rate "$work/$tag-after")"
    echo "  $("$@" "$target/examples/allreduce")"
}

echo "model (b), $steps steps"
echo "one machine (shared memory):"
"$target/recurrent" train "${model[@]}" --threads 2 --out "$work/one" >/dev/null 2>&1
echo "  1 process x 2 threads: $(rate "$work/one")"
ranks shm mpiexec -n 2

if ip netns add "recurrent-probe-$$" 2>/dev/null; then
    ip netns del "recurrent-probe-$$"
    echo "two hosts joined by a ${link} Mbit/s link (scripts/two_hosts.sh):"
    ranks link env LINK_MBIT="$link" scripts/two_hosts.sh
else
    echo "(network namespaces are not allowed here: the two-host part is skipped)"
fi
