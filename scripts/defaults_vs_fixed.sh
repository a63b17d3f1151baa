#!/usr/bin/env bash
# Issue 14's proof for the corpus-fitted defaults (docs/DEFAULTS.md): on each
# corpus, `recurrent train` with the sizes left unset (fitted to the corpus)
# against the fixed defaults of before (2x128 LSTM, embed 64, batch 50, Adam
# 2e-3), for the same time on one thread each, the two side by side, both
# validated on the same held-out tail (the last 40,000 characters).
#
# Usage: scripts/defaults_vs_fixed.sh [NAME=TEXT ...]
#   default corpora: tiny-shakespeare, PTB and WikiText-2 (as characters) from
#   ../shared/data, the Tang poems (scripts/corpus_tang_poems.sh) when
#   TANG=path is given. TIME (environment) per run, default 5m; OUT default
#   runs/defaults-vs-fixed; BIN a release build of recurrent.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/defaults-vs-fixed}
data=../shared/data
corpora=("$@")
if [ ${#corpora[@]} -eq 0 ]; then
    corpora=(tiny-shakespeare=$data/tinyshakespeare/input.txt ptb-chars=$data/ptb/ptb.train.txt
        wikitext-2-chars=$data/wikitext-2/train.txt)
    [ -n "${TANG:-}" ] && corpora+=(tang-poems=$TANG)
fi
if [ -z "${BIN:-}" ]; then
    cargo build --release --locked --bin recurrent
    BIN=${CARGO_TARGET_DIR:-target}/release/recurrent
fi
mkdir -p "$out"
best() { grep -o '"kind":"val","loss":[0-9.]*' "$1/metrics.jsonl" | cut -d: -f3 | sort -g | head -1; }
report=$out/report.md
[ -f "$report" ] || printf '| corpus | budget | fitted (printed choice) | fitted loss | fixed 2x128 loss | fitted better by |\n|---|---|---|---|---|---|\n' > "$report"
for pair in "${corpora[@]}"; do
    name=${pair%%=*}; text=${pair#*=}
    dir=$out/$name
    mkdir -p "$dir"
    python3 - "$text" "$dir" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
open(f"{sys.argv[2]}/train.txt", "w", encoding="utf-8").write(text[:-40000])
open(f"{sys.argv[2]}/val.txt", "w", encoding="utf-8").write(text[-40000:])
PY
    rm -rf "$dir/fitted" "$dir/fixed"
    common=(--input "$dir/train.txt" --val "$dir/val.txt" --time "${TIME:-5m}" --threads 1
        --eval-every 200 --sample-length 0)
    "$BIN" train "${common[@]}" --out "$dir/fitted" > "$dir/fitted.log" 2>&1 &
    "$BIN" train "${common[@]}" --layers 2 --hidden 128 --embed 64 --batch 50 --lr 2e-3 \
        --out "$dir/fixed" > "$dir/fixed.log" 2>&1 &
    wait
    fitted=$(best "$dir/fitted"); fixed=$(best "$dir/fixed")
    choice=$(grep -o 'sized for the corpus[^;]*' "$dir/fitted.log" | sed 's/.*: //; s/ should.*//')
    gain=$(python3 -c "print(f'{$fixed - $fitted:+.4f}')")
    echo "$name: fitted $fitted, fixed $fixed ($gain)"
    echo "| $name | ${TIME:-5m} | $choice | $fitted | $fixed | $gain |" >> "$report"
done
cat "$report"
