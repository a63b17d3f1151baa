#!/usr/bin/env bash
# Quality run from issue 4: a word-level 2-layer 400-unit LSTM with tied
# embeddings on Penn Treebank (Mikolov's files), 90 minutes of training on the
# machine at hand, then test perplexity over the whole test file at batch 1
# with state carried (the protocol of published PTB numbers).
#
# The recipe is PyTorch's word_language_model scaled up to 400 units with more
# dropout: SGD at lr 20 divided by 4 whenever validation does not improve,
# gradient norm clipped to 0.25, bptt 35, batch 20. Validation runs every half
# epoch so the learning rate drops soon enough within the time budget.
#
# Usage: scripts/quality_ptb.sh [DATA_DIR] [OUT] [TIME]
#   DATA_DIR defaults to ../shared/data/ptb, OUT to runs/ptb-2x400, TIME to 90m
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/ptb}
out=${2:-runs/ptb-2x400}
time=${3:-90m}
cargo build --release --locked
bin=target/release/recurrent
"$bin" train --input "$data/ptb.train.txt" --val "$data/ptb.valid.txt" \
    --tokenizer word --cell lstm --layers 2 --hidden 400 --embed 400 --tie \
    --dropout 0.4 --optimizer sgd --lr 20 --clip 0.25 --schedule plateau:0.25:0 \
    --seq-len 35 --batch 20 --eval-every 664 \
    --time "$time" --seed 42 --out "$out" --sample-length 0
"$bin" eval "$out/best" --input "$data/ptb.test.txt" --batch 1
"$bin" sample "$out/best" --length 60 --seed 1
