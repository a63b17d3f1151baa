#!/usr/bin/env bash
# Issue 17's quality run: the 20-minute tiny-shakespeare recipe
# (scripts/quality_tinyshakespeare.sh) in float32 and in bf16, one after the
# other, then each run's validation losses side by side and where each first
# reaches 1.47 nats/char.
#
# Usage: scripts/quality_bf16.sh [DATA] [OUT_PREFIX]
#   STOP="--time 20m" (default) or e.g. STOP="--steps 800" for equal steps;
#   THREADS (default: all cores); PARALLEL=1 runs both at once (for equal
#   steps on a machine where bf16 is only emulated: set
#   RECURRENT_BF16_KERNEL=emulated, which this script passes on).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/tinyshakespeare/input.txt}
out=${2:-runs/shakespeare-2x512}
stop=${STOP:---time 20m}
threads=${THREADS:+--threads $THREADS}
cargo build --release --locked
bin=target/release/recurrent
run() { # PRECISION
    # shellcheck disable=SC2086 # $stop and $threads are flag lists
    "$bin" train --input "$data" --val-fraction 0.1 \
        --cell lstm --layers 2 --hidden 512 --embed 64 --dropout 0.2 \
        --batch 64 --seq-len 100 --optimizer adam --lr 2e-3 --clip 5 \
        $stop $threads --seed 42 --out "$out-$1" --sample-length 0 --precision "$1"
}
if [ -n "${PARALLEL:-}" ]; then
    run f32 & run bf16; wait
else
    run f32; run bf16
fi
python3 - "$out-f32" "$out-bf16" <<'PY'
import json, sys
runs = {}
for path in sys.argv[1:]:
    evals = [json.loads(l) for l in open(f"{path}/metrics.jsonl")]
    runs[path] = [e for e in evals if e.get("kind") == "val"]
a, b = runs.values()
print(f"{'step':>6} {'f32 min':>8} {'f32 val':>8} {'bf16 min':>8} {'bf16 val':>8} {'diff':>7}")
for x, y in zip(a, b):
    print(f"{x['step']:>6} {x['elapsed']/60:>8.1f} {x['loss']:>8.4f} "
          f"{y['elapsed']/60:>8.1f} {y['loss']:>8.4f} {y['loss']-x['loss']:>+7.4f}")
for name, evals in zip(("f32", "bf16"), (a, b)):
    first = next((e for e in evals if e['loss'] <= 1.47), None)
    where = f"step {first['step']}, {first['elapsed']/60:.1f} min" if first else "not reached"
    print(f"{name}: best {min(e['loss'] for e in evals):.4f}; first at or below 1.47: {where}")
PY
