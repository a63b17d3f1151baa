#!/usr/bin/env bash
# Quality run from issue 4: WikiText-2 (2.09M training words, 33,278-word
# vocabulary) with a 90-minute training budget, next to PyTorch's
# word_language_model recipe given the same budget on the same machine.
#
# Both sides train the same model with the same recipe (the example's defaults
# with --tied: a 2-layer 200-unit LSTM with a tied 200-wide embedding, dropout
# 0.2, plain SGD at lr 20 divided by 4 whenever a validation does not improve,
# clip 0.25, bptt 35, batch 20, validation once per epoch). They run at the
# same time, one thread each, so the two-core machine is split evenly between
# them and any other load on it hits both alike; the difference between the
# two results is what each tool makes of the same CPU time.
#
# Then test perplexity over the whole test file at batch 1 for both (PyTorch's
# script also reports its example's batch-10 protocol), and the loss curve.
#
# Usage: scripts/quality_wikitext2.sh [DATA_DIR] [OUT] [TIME_MINUTES]
#   DATA_DIR defaults to ../shared/data/wikitext-2, OUT to runs/wt2-2x200,
#   TIME_MINUTES to 90. Needs `pip install torch` for the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/wikitext-2}
out=${2:-runs/wt2-2x200}
minutes=${3:-90}
cargo build --release --locked
bin=target/release/recurrent
mkdir -p "$(dirname "$out")"
"$bin" train --input "$data/train.txt" --val "$data/valid.txt" \
    --tokenizer word --cell lstm --layers 2 --hidden 200 --embed 200 --tie \
    --dropout 0.2 --optimizer sgd --lr 20 --clip 0.25 --schedule plateau:0.25:0 \
    --seq-len 35 --batch 20 --eval-every 0 --threads 1 \
    --time "${minutes}m" --seed 42 --out "$out" --sample-length 0 > "$out.log" 2>&1 &
ours=$!
python3 bench/torch_word_lm.py --data "$data" --minutes "$minutes" --threads 1 \
    > "$out.torch.jsonl" &
torch=$!
wait "$ours" "$torch"
"$bin" eval "$out/best" --input "$data/test.txt" --batch 1 --threads 2
"$bin" plot "$out"
tail -n 1 "$out.torch.jsonl"
