#!/usr/bin/env bash
# Quality run from issue 5: English -> French with attention on the ManyThings
# eng-fra pairs (at most 8 words a side), 5% held out for validation and 5%
# for test by a fixed seed, 60 minutes of training on the machine at hand.
# Prints corpus BLEU and chrF on the test split (beam 5 and greedy), checks
# the BLEU against the sacrebleu package when it is installed, and draws one
# attention map.
#
# Usage: scripts/quality_engfra.sh [PAIRS] [OUT]
#   PAIRS defaults to ../shared/data/seq2seq/eng-fra.txt
#   OUT   defaults to runs/eng-fra
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-../shared/data/seq2seq/eng-fra.txt}
out=${2:-runs/eng-fra}
cargo build --release --locked
bin=target/release/recurrent
"$bin" seq2seq train --pairs "$pairs" --time 60m \
    --tokenizer bpe --vocab-size 4000 \
    --cell lstm --layers 2 --hidden 256 --embed 256 --bidirectional --dropout 0.3 \
    --batch 64 --optimizer adam --lr 1e-3 --schedule plateau:0.5:1 \
    --eval-every 1500 --val-bleu 500 --seed 42 --out "$out"
"$bin" seq2seq eval "$out" --pairs "$out/test.tsv" --beam 5 --output "$out/test.beam5.txt"
"$bin" seq2seq eval "$out" --pairs "$out/test.tsv" --beam 1 --output "$out/test.greedy.txt"
echo "They made us work all night." |
    "$bin" seq2seq translate "$out" --attention-map "$out/attention.svg"
if python3 -c "import sacrebleu" 2>/dev/null; then
    python3 - "$out" <<'PY'
import sys, sacrebleu
out = sys.argv[1]
refs = [l.rstrip("\n").split("\t")[1] for l in open(f"{out}/test.tsv", encoding="utf-8")]
for name in ["beam5", "greedy"]:
    hyps = [l.rstrip("\n") for l in open(f"{out}/test.{name}.txt", encoding="utf-8")]
    print(name, "sacrebleu:", sacrebleu.corpus_bleu(hyps, [refs]),
          "chrF", round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2))
PY
fi
