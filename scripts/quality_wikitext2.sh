#!/usr/bin/env bash
# Quality run from issue 4: a word-level 2-layer 300-unit LSTM with tied
# embeddings on WikiText-2 (2.09M training words, 33,278-word vocabulary),
# 90 minutes of training on the machine at hand, then test perplexity over the
# whole test file at batch 1.
#
# The recipe is the PTB run's (scripts/quality_ptb.sh) sized for a vocabulary
# three times larger, whose output layer dominates the time per word: 300
# units (about 6 epochs in 90 minutes on 2 cores), dropout 0.3, and patience 1
# for the learning-rate cuts at half-epoch validations.
#
# The budget may be spent in pieces: with TIME=45m, run it, then continue
# exactly with `recurrent train --resume OUT --time 45m`.
#
# Usage: scripts/quality_wikitext2.sh [DATA_DIR] [OUT] [TIME]
#   DATA_DIR defaults to ../shared/data/wikitext-2, OUT to runs/wt2-2x300, TIME to 90m
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/wikitext-2}
out=${2:-runs/wt2-2x300}
time=${3:-90m}
cargo build --release --locked
bin=target/release/recurrent
"$bin" train --input "$data/train.txt" --val "$data/valid.txt" \
    --tokenizer word --cell lstm --layers 2 --hidden 300 --embed 300 --tie \
    --dropout 0.3 --optimizer sgd --lr 20 --clip 0.25 --schedule plateau:0.25:1 \
    --seq-len 35 --batch 20 --eval-every 1490 \
    --time "$time" --seed 42 --out "$out" --sample-length 0
"$bin" eval "$out/best" --input "$data/test.txt" --batch 1
