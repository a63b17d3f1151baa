#!/usr/bin/env bash
# Issue 14's measurement: does the configuration `recurrent tune` finds beat
# the default `recurrent train` settings, given the same time?
#
# 1. tune:    TPE with ASHA (time budgets) over size (up to 2x512: a bigger
#             model spends a short trial validating), cell, learning rate,
#             dropout, batch and sequence length, for BUDGET, THREADS threads
#             shared by 2 parallel trials, validated on the last 10%.
# 2. best:    `recurrent train` with the best configuration for BUDGET.
# 3. default: `recurrent train` with the default settings for BUDGET.
# Both runs hold out the same last 10% of the text; their best validation
# losses (nats and bits per character) go to OUT/report.md.
#
# Usage: scripts/tune_vs_default.sh [BUDGET [DATA [OUT]]]
#   BUDGET  defaults to 30m (each phase; 90 minutes in all)
#   DATA    defaults to ../shared/data/tinyshakespeare/input.txt
#   OUT     defaults to runs/tune-vs-default
#   THREADS (environment) defaults to 2; BIN to a release build of recurrent
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-30m}
data=${2:-../shared/data/tinyshakespeare/input.txt}
out=${3:-runs/tune-vs-default}
threads=${THREADS:-2}
if [ -z "${BIN:-}" ]; then
    cargo build --release --locked --bin recurrent
    BIN=${CARGO_TARGET_DIR:-target}/release/recurrent
fi
secs=$(python3 -c "
import re,sys
t=sys.argv[1]; s=0.0
for n,u in re.findall(r'([0-9.]+)([hms]?)', t): s+=float(n)*{'h':3600,'m':60,'s':1,'':1}[u]
print(int(s))" "$budget")
# A trial's full budget is a sixth of the search; ASHA's first rung a ninth of that.
trial=$((secs / 6)); [ "$trial" -ge 9 ] || trial=9
min=$((trial / 9))
mkdir -p "$out"
rm -rf "$out/study" "$out/best" "$out/default"

echo "== tune for $budget ($threads threads, 2 trials at a time; trials up to ${trial}s)"
"$BIN" tune --input "$data" --out "$out/study" --val-fraction 0.1 \
    --sampler tpe --tpe-startup 8 --asha --budget time --max-budget "${trial}s" \
    --min-budget "${min}s" --reduction 3 --time "$budget" --parallel 2 --threads "$threads" \
    --param cell=lstm,gru --param layers=1..2 --param hidden=128..512:log \
    --param embed=32..128:log --param dropout=0.0..0.3 --param lr=5e-4..1e-2:log \
    --param batch=16..128:log --param seq_len=50,100,200

flags=$(python3 -c "
import json,sys
r=json.load(open(sys.argv[1]))
best=r['rank_val_loss'].index(1)
p=r['params'][best]
print(' '.join(f'--{k.replace(\"_\",\"-\")} {v}' for k,v in sorted(p.items())))" "$out/study/results.json")

echo "== train the best configuration for $budget: $flags"
# shellcheck disable=SC2086
"$BIN" train --input "$data" --val-fraction 0.1 $flags --time "$budget" --threads "$threads" \
    --out "$out/best" --sample-length 0

echo "== train the default settings for $budget"
"$BIN" train --input "$data" --val-fraction 0.1 --time "$budget" --threads "$threads" \
    --out "$out/default" --sample-length 0

python3 - "$out" "$budget" "$flags" <<'PY'
import json, math, sys
out, budget, flags = sys.argv[1:]
def best(run):
    vals = [json.loads(l) for l in open(f"{out}/{run}/metrics.jsonl") if '"val"' in l]
    vals = [v for v in vals if v.get("kind") == "val"]
    return min(v["loss"] for v in vals), vals[-1]["step"]
r = json.load(open(f"{out}/study/results.json"))
trials = len(r["trial"])
done = sum(s == "complete" for s in r["status"])
rows = [("tuned: " + flags, *best("best")), ("default (2x128 LSTM, embed 64, adam 2e-3, batch 50 x 100)", *best("default"))]
lines = [f"# tune vs default, {budget} each", "",
         f"Search: {trials} trials ({done} trained to the full trial budget) in {budget}.", "",
         "| run | best val loss (nats/char) | bits/char | steps |", "|---|---|---|---|"]
for name, loss, steps in rows:
    lines.append(f"| {name} | {loss:.4f} | {loss / math.log(2):.4f} | {steps} |")
verdict = "beats" if rows[0][1] < rows[1][1] else "does NOT beat"
lines += ["", f"The tuned configuration {verdict} the default by {rows[1][1] - rows[0][1]:+.4f} nats/char."]
text = "\n".join(lines) + "\n"
open(f"{out}/report.md", "w").write(text)
print(text)
PY
