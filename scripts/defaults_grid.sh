#!/usr/bin/env bash
# The measurements behind `recurrent train`'s corpus-fitted defaults
# (docs/DEFAULTS.md): one corpus, a grid of model sizes, each trained for the
# same time on one thread with validation on a fixed held-out tail every
# EVAL steps, so each run gives a curve of (tokens, validation loss) points.
# scripts/fit_defaults.py fits the scaling law over these curves.
#
# Usage: scripts/defaults_grid.sh NAME TEXT [SIZES...]
#   SIZES  LAYERSxHIDDEN, default 1x128 1x256 1x512 2x128 2x256 2x384
#   TIME (environment) per run, default 6m; PARALLEL runs at once, default 2;
#   EMBED, BATCH, LR, SEQ default 64 (or 256 above 1,000 characters), 32,
#   3e-3, 100; EVAL (steps between validations) default 100; OUT default
#   runs/defaults-grid; BIN a release build of recurrent.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; text=$2; shift 2
sizes=${*:-1x128 1x256 1x512 2x128 2x256 2x384}
out=${OUT:-runs/defaults-grid}/$name
if [ -z "${BIN:-}" ]; then
    cargo build --release --locked --bin recurrent
    BIN=${CARGO_TARGET_DIR:-target}/release/recurrent
fi
mkdir -p "$out"
# The last 40,000 characters are the validation text of every run: the same
# text, and small enough that validating often costs little.
python3 - "$text" "$out" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
open(f"{sys.argv[2]}/train.txt", "w", encoding="utf-8").write(text[:-40000])
open(f"{sys.argv[2]}/val.txt", "w", encoding="utf-8").write(text[-40000:])
vocab = len(set(text))
open(f"{sys.argv[2]}/vocab", "w").write(str(vocab))
PY
vocab=$(cat "$out/vocab")
embed=${EMBED:-$([ "$vocab" -gt 1000 ] && echo 256 || echo 64)}
run() {
    local size=$1 layers=${1%x*} hidden=${1#*x}
    local e=$((embed < hidden ? embed : hidden))
    "$BIN" train --input "$out/train.txt" --val "$out/val.txt" --layers "$layers" \
        --hidden "$hidden" --embed "$e" --batch "${BATCH:-32}" --lr "${LR:-3e-3}" \
        --seq-len "${SEQ:-100}" --eval-every "${EVAL:-100}" --time "${TIME:-6m}" \
        --threads 1 --sample-length 0 --out "$out/$size" > "$out/$size.log" 2>&1
    echo "$name $size: $(grep -o '"kind":"val","loss":[0-9.]*' "$out/$size/metrics.jsonl" | tail -1)"
}
running=0
for size in $sizes; do
    rm -rf "${out:?}/$size"
    run "$size" &
    running=$((running + 1))
    if [ "$running" -ge "${PARALLEL:-2}" ]; then wait -n; running=$((running - 1)); fi
done
wait
