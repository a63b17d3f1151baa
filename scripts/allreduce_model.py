#!/usr/bin/env python3
"""Predicted efficiency of data-parallel training (docs/DISTRIBUTED.md).

Each step every rank sends and receives 2 (N-1)/N of the gradient's bytes
(a ring or Rabenseifner all-reduce, MPI's choice for large messages) and
waits 2 (N-1) message latencies. Without overlap, the efficiency of N
machines is step / (step + all-reduce). Weak scaling: every machine keeps
its own batch (the global batch grows with N), as data-parallel users run.

    scripts/allreduce_model.py            prints the Markdown table
"""

LATENCY_S = 20e-6  # one message over TCP on a datacenter network


def lstm_params(vocab, embed, hidden, layers, tied=False):
    n = vocab * embed
    inp = embed
    for _ in range(layers):
        n += 4 * hidden * (inp + hidden + 2)
        inp = hidden
    n += vocab if tied else vocab * hidden + vocab
    return n


MODELS = [
    # name, parameters, seconds per step on one 2-core machine (tokens per
    # step over the tokens per second measured in docs/PERFORMANCE.md and
    # docs/BENCHMARKS.md)
    ("(b) LSTM 2x512, chars, batch 64 x 100", lstm_params(65, 64, 512, 2), 6400 / 9373),
    ("PTB LSTM 2x400 tied, words, batch 20 x 35", lstm_params(10000, 400, 400, 2, tied=True),
     700 / 3500),
]


def allreduce_seconds(nbytes, ranks, gbit):
    bandwidth = gbit * 1e9 / 8
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * LATENCY_S


def main():
    print("| model | gradient per step | machines | 10 Gbit/s: all-reduce, efficiency | 100 Gbit/s: all-reduce, efficiency |")
    print("| --- | --- | --- | --- | --- |")
    for name, params, step in MODELS:
        nbytes = 4 * params
        for ranks in (8, 64):
            cells = []
            for gbit in (10, 100):
                t = allreduce_seconds(nbytes, ranks, gbit)
                cells.append(f"{t * 1e3:.1f} ms, {step / (step + t):.1%}")
            print(f"| {name} | {nbytes / 1e6:.1f} MB ({params:,} parameters), step {step * 1e3:.0f} ms "
                  f"| {ranks} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
