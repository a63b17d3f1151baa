#!/usr/bin/env bash
# Quality run from issue 2: a 2-layer 512-unit LSTM with dropout on
# tiny-shakespeare, the last 10% held out for validation, 20 minutes of
# training on the machine at hand. Prints the best validation loss and a sample.
#
# Usage: scripts/quality_tinyshakespeare.sh [DATA] [OUT]
#   DATA defaults to ../shared/data/tinyshakespeare/input.txt
#   OUT  defaults to runs/shakespeare-2x512
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/tinyshakespeare/input.txt}
out=${2:-runs/shakespeare-2x512}
cargo build --release --locked
bin=target/release/recurrent
"$bin" train --input "$data" --val-fraction 0.1 \
    --cell lstm --layers 2 --hidden 512 --embed 64 --dropout 0.2 \
    --batch 64 --seq-len 100 --optimizer adam --lr 2e-3 --clip 5 \
    --time 20m --seed 42 --out "$out" --sample-length 0
"$bin" info "$out"
"$bin" sample "$out" --length 600 --temperature 0.8 --seed 1
