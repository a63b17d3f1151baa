#!/usr/bin/env python3
"""PyTorch reference for the word-level quality runs (docs/BENCHMARKS.md):
the recipe of PyTorch's examples/word_language_model, written out here so it
can run for a fixed wall-clock budget on the same machine as `recurrent`.

Recipe (the example's defaults with --tied): embedding -> 2-layer LSTM ->
tied decoder, dropout 0.2 on the embedding, between layers and on the output,
weights uniform in +-0.1 (decoder bias 0), plain SGD at lr 20 with the
gradient norm clipped to 0.25, bptt 35, batch 20, validation at batch 10
after every epoch with the lr divided by 4 whenever it does not improve.
Every line of the files ends with <eos>, as in the example.

When the budget runs out mid-epoch the partial epoch is validated like a full
one. The best model is then evaluated on the test file at batch 10 (the
example's protocol) and at batch 1 (one stream over the whole file, the
protocol `recurrent eval` uses). Prints one JSON object per validation and a
final one with the test numbers.

    python3 bench/torch_word_lm.py --data ../shared/data/wikitext-2 \
        --train train.txt --valid valid.txt --test test.txt --minutes 90
"""
import argparse
import copy
import json
import math
import time

import torch
import torch.nn as nn


def read_tokens(path, vocab, grow):
    ids = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            for w in line.split() + ["<eos>"]:
                if w not in vocab:
                    if not grow:
                        raise SystemExit(f"{path}: word {w!r} is not in the training vocabulary")
                    vocab[w] = len(vocab)
                ids.append(vocab[w])
    return torch.tensor(ids, dtype=torch.long)


def batchify(ids, batch):
    """[N] -> [N // batch, batch]: column j is the j-th contiguous stream."""
    n = ids.numel() // batch
    return ids[: n * batch].view(batch, n).t().contiguous()


class WordLM(nn.Module):
    def __init__(self, vocab, width, layers, dropout):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab, width)
        self.rnn = nn.LSTM(width, width, layers, dropout=dropout)
        self.decoder = nn.Linear(width, vocab)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        self.layers, self.width = layers, width

    def forward(self, x, state):
        out, state = self.rnn(self.drop(self.encoder(x)), state)
        return self.decoder(self.drop(out)), state

    def zero_state(self, batch):
        z = torch.zeros(self.layers, batch, self.width)
        return (z, z.clone())


def evaluate(model, data, bptt):
    """Mean cross-entropy (nats per token) over all of `data` ([T, B])."""
    model.eval()
    total, count = 0.0, 0
    state = model.zero_state(data.size(1))
    with torch.no_grad():
        for i in range(0, data.size(0) - 1, bptt):
            n = min(bptt, data.size(0) - 1 - i)
            out, state = model(data[i : i + n], state)
            loss = nn.functional.cross_entropy(
                out.view(-1, out.size(-1)), data[i + 1 : i + 1 + n].reshape(-1), reduction="sum"
            )
            total += loss.item()
            count += n * data.size(1)
    return total / count


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--train", default="train.txt")
    p.add_argument("--valid", default="valid.txt")
    p.add_argument("--test", default="test.txt")
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=20.0)
    p.add_argument("--clip", type=float, default=0.25)
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--minutes", type=float, default=90.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1111)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    vocab = {}
    train = batchify(read_tokens(f"{a.data}/{a.train}", vocab, True), a.batch)
    # The example builds its dictionary from all three files; the standard
    # files share one vocabulary, so the training words cover the others.
    valid_ids = read_tokens(f"{a.data}/{a.valid}", vocab, False)
    test_ids = read_tokens(f"{a.data}/{a.test}", vocab, False)
    valid = batchify(valid_ids, 10)

    model = WordLM(len(vocab), a.width, a.layers, a.dropout)
    lr, best, best_state = a.lr, math.inf, None
    start = time.monotonic()
    budget = a.minutes * 60
    epoch, out_of_time = 0, False
    while not out_of_time:
        epoch += 1
        model.train()
        state = model.zero_state(a.batch)
        tokens = 0
        for i in range(0, train.size(0) - 1, a.bptt):
            n = min(a.bptt, train.size(0) - 1 - i)
            state = tuple(s.detach() for s in state)
            model.zero_grad()
            out, state = model(train[i : i + n], state)
            loss = nn.functional.cross_entropy(
                out.view(-1, out.size(-1)), train[i + 1 : i + 1 + n].reshape(-1)
            )
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), a.clip)
            with torch.no_grad():
                for w in model.parameters():
                    w.add_(w.grad, alpha=-lr)
            tokens += n * a.batch
            if time.monotonic() - start >= budget:
                out_of_time = True
                break
        val = evaluate(model, valid, a.bptt)
        print(json.dumps({
            "epoch": epoch, "minutes": round((time.monotonic() - start) / 60, 2),
            "lr": lr, "valid_loss": val, "valid_ppl": math.exp(val), "train_tokens": tokens,
        }), flush=True)
        if val < best:
            best, best_state = val, copy.deepcopy(model.state_dict())
        else:
            lr /= 4.0

    model.load_state_dict(best_state)
    test10 = evaluate(model, batchify(test_ids, 10), a.bptt)
    test1 = evaluate(model, batchify(test_ids, 1), a.bptt)
    print(json.dumps({
        "best_valid_ppl": math.exp(best), "test_ppl_batch10": math.exp(test10),
        "test_ppl_batch1": math.exp(test1), "epochs": epoch,
        "minutes": round((time.monotonic() - start) / 60, 2), "vocab": len(vocab),
    }), flush=True)


if __name__ == "__main__":
    main()
