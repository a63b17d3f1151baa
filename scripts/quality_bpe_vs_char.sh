#!/usr/bin/env bash
# Quality run from issue 4: a byte-level BPE model on tiny-shakespeare next to
# the character model of scripts/quality_tinyshakespeare.sh, compared in bits
# per character of the same held-out text (the last 10% of the file, as the
# character run's --val-fraction 0.1 holds out).
#
# The BPE tokenizer is trained on the first 90% only. The BPE model has the
# character model's 2x512 LSTM and 20-minute budget; it sees the text in about
# a third as many tokens, so it makes more passes and gets more dropout.
#
# Usage: scripts/quality_bpe_vs_char.sh [DATA] [OUT] [CHAR_RUN]
#   DATA defaults to ../shared/data/tinyshakespeare/input.txt,
#   OUT to runs/shakespeare-bpe, CHAR_RUN to runs/shakespeare-2x512 (trained
#   by scripts/quality_tinyshakespeare.sh first if it is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/tinyshakespeare/input.txt}
out=${2:-runs/shakespeare-bpe}
char_run=${3:-runs/shakespeare-2x512}
cargo build --release --locked
bin=target/release/recurrent
if [ ! -d "$char_run" ]; then
    scripts/quality_tinyshakespeare.sh "$data" "$char_run"
fi
# The split in bytes equals the split in characters: the file is ASCII.
split=$(mktemp -d)
n=$(wc -c < "$data")
head -c $((n - n / 10)) "$data" > "$split/train.txt"
tail -c $((n / 10)) "$data" > "$split/valid.txt"
"$bin" train --input "$split/train.txt" --val "$split/valid.txt" \
    --tokenizer bpe --vocab-size 1024 \
    --cell lstm --layers 2 --hidden 512 --embed 128 --dropout 0.4 \
    --batch 64 --seq-len 64 --optimizer adam --lr 2e-3 --clip 5 \
    --time 20m --seed 42 --out "$out" --sample-length 0
echo "character model: $("$bin" eval "$char_run" --input "$split/valid.txt" --json)"
echo "BPE model:       $("$bin" eval "$out" --input "$split/valid.txt" --json)"
"$bin" sample "$out" --length 200 --temperature 0.8 --seed 1
rm -r "$split"
