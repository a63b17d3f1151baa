#!/usr/bin/env bash
# Local SGD against synchronous data-parallel training on the same time
# budget (issue 13, docs/DISTRIBUTED.md): two runs of 2 MPI ranks x 1 thread
# on tiny-shakespeare, the same model, data, seed and budget; one sums the
# gradient every step, the other (--average-every H after --average-warmup W
# synchronous steps) averages the weights every H steps. Prints each run's
# steps, tokens per second and best validation loss.
#
#   scripts/local_sgd_vs_sync.sh [BUDGET [H [W]]]    (default 8m, 8, 100)
#
# LINK_MBIT (environment): when set, the ranks run on two "machines" joined
# by a link of that many megabits per second each way (scripts/two_hosts.sh,
# needs root), where fewer all-reduces pay; otherwise on one, through
# shared memory. MODEL (environment) overrides the model flags
# (default: LSTM 2x256, embed 64, batch 64 x 100, dropout 0.1).
# Needs mpich and libmpich-dev, libclang-dev; run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-8m}
every=${2:-8}
warmup=${3:-100}
text=${TEXT:-../shared/data/tinyshakespeare/input.txt}
read -r -a model <<<"${MODEL:---layers 2 --hidden 256 --embed 64 --batch 64 --seq-len 100 --dropout 0.1}"
cargo build --release --locked --features mpi --bin recurrent
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release/recurrent")
out=${OUT:-runs/local-sgd-vs-sync}
rm -rf "$out/sync" "$out/local"
mkdir -p "$out"
common=(--input "$text" --val-fraction 0.1 --time "$budget" --eval-every 200 --sample-length 0
        --threads 1 --seed 7 "${model[@]}")

run() { # tag, extra flags...
    local tag=$1; shift
    local launch=(mpiexec -n 2)
    # Two "machines" joined by a slow link (scripts/two_hosts.sh).
    [ -z "${LINK_MBIT:-}" ] || launch=(scripts/two_hosts.sh)
    "${launch[@]}" "$bin" train "${common[@]}" --out "$out/$tag" "$@" >"$out/$tag.log" 2>&1
}

echo "== synchronous, $budget"
run sync
echo "== local SGD every $every steps after $warmup, $budget"
run local --average-every "$every" --average-warmup "$warmup"

python3 - "$out" "$budget" "$every" "$warmup" "${LINK_MBIT:-}" "${model[@]}" <<'PY'
import json, sys
out, budget, every, warmup, link = sys.argv[1:6]
flags = sys.argv[6:]
per_step = int(flags[flags.index("--batch") + 1]) * int(flags[flags.index("--seq-len") + 1])
def summary(tag):
    rows = [json.loads(l) for l in open(f"{out}/{tag}/metrics.jsonl")]
    train = [r for r in rows if r.get("kind") == "train"]
    val = [r for r in rows if r.get("kind") == "val"]
    best = min(val, key=lambda r: r["loss"])
    last = train[-1]
    rate = f"{per_step * last['step'] / last['elapsed']:.0f}"
    return last["step"], rate, best["loss"], best["step"]
where = f"two hosts joined by a {link} Mbit/s link" if link else "one machine, shared memory"
print(f"\n2 ranks x 1 thread, {budget} each, {where}:\n")
print("| run | steps | tokens/s | best val loss (nats/char) | at step |")
print("| --- | --- | --- | --- | --- |")
for name, tag in [("synchronous (all-reduce every step)", "sync"),
                  (f"local SGD (average every {every} after {warmup})", "local")]:
    steps, rate, loss, at = summary(tag)
    print(f"| {name} | {steps} | {rate} | {loss:.4f} | {at} |")
PY
