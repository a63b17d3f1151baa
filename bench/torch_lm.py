#!/usr/bin/env python3
"""PyTorch reference for `recurrent bench`: the same character-level language
model (embedding -> stacked RNN/LSTM/GRU -> linear -> cross-entropy), trained
with Adam on random tokens, timed per step; and sampling one token at a time.

Prints one JSON object. Used by `recurrent bench` when PyTorch is installed;
CI does not install PyTorch (it is several GB), so nothing depends on it.

    python3 bench/torch_lm.py --cell lstm --layers 2 --hidden 512 --batch 64 \
        --seq-len 100 --threads 2 --steps 5 [--autocast bf16]

`--autocast bf16` is PyTorch's mixed-precision path: forward and loss under
`torch.autocast("cpu", dtype=torch.bfloat16)` (oneDNN runs the products on
AMX or AVX512-BF16 where the CPU has them), Adam on float32 parameters.
"""
import contextlib
import argparse
import json
import resource
import time

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, cell, vocab, embed, hidden, layers):
        super().__init__()
        self.encoder = nn.Embedding(vocab, embed)
        if cell == "lstm":
            self.rnn = nn.LSTM(embed, hidden, layers)
        elif cell == "gru":
            self.rnn = nn.GRU(embed, hidden, layers)
        else:
            self.rnn = nn.RNN(embed, hidden, layers, nonlinearity=cell.split("-")[1])
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x, h):
        out, h = self.rnn(self.encoder(x), h)
        return self.decoder(out), h


def detach(h):
    return tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach()


def zeros(cell, layers, batch, hidden):
    z = torch.zeros(layers, batch, hidden)
    return (z, z.clone()) if cell == "lstm" else z


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cell", default="lstm")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--sample", type=int, default=0, help="tokens to sample (0: train)")
    p.add_argument("--no-mkldnn", action="store_true", help="PyTorch's faster one-step path")
    p.add_argument("--dtype", choices=["f32", "bf16"], default="f32", help="sampling weights")
    p.add_argument("--autocast", choices=["none", "bf16"], default="none", help="training")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    model = Model(a.cell, a.vocab, a.embed, a.hidden, a.layers)
    result = {"torch": torch.__version__, "threads": a.threads, "autocast": a.autocast}
    if a.sample:
        dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
        model = model.to(dtype).eval()
        with torch.no_grad():
            h = zeros(a.cell, a.layers, a.batch, a.hidden)
            h = tuple(t.to(dtype) for t in h) if isinstance(h, tuple) else h.to(dtype)
            x = torch.zeros(1, a.batch, dtype=torch.long)
            for _ in range(20):  # warm-up
                logits, h = model(x, h)
            start = time.perf_counter()
            for _ in range(a.sample):
                logits, h = model(x, h)
                probs = torch.softmax(logits[0].float(), dim=-1)
                x = torch.multinomial(probs, 1).view(1, a.batch)
            dt = time.perf_counter() - start
        result["tokens_per_sec"] = a.sample * a.batch / dt
    else:
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        data = torch.randint(0, a.vocab, (a.steps + 2, a.seq_len + 1, a.batch))
        h = zeros(a.cell, a.layers, a.batch, a.hidden)
        times = []
        warmup = 3  # oneDNN and the allocator settle over the first steps
        data = torch.randint(0, a.vocab, (a.steps + warmup + 1, a.seq_len + 1, a.batch))
        def autocast():
            if a.autocast == "bf16":
                return torch.autocast("cpu", dtype=torch.bfloat16)
            return contextlib.nullcontext()

        for i in range(a.steps + warmup):
            x, y = data[i, :-1], data[i, 1:]
            start = time.perf_counter()
            h = detach(h)
            opt.zero_grad()
            with autocast():
                logits, h = model(x, h)
                # The loss in float32, as autocast's own policy has it.
                loss = nn.functional.cross_entropy(
                    logits.float().view(-1, a.vocab), y.reshape(-1)
                )
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            if i >= warmup:
                times.append(time.perf_counter() - start)
        times.sort()
        result["tokens_per_sec"] = a.seq_len * a.batch / times[len(times) // 2]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
