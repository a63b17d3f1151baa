#!/usr/bin/env python3
"""Fits the rule behind `recurrent train`'s corpus-fitted defaults.

Every rung of a `recurrent tune` study (study.jsonl) is a measured point: a
configuration, the tokens it had trained on, the seconds it took and its
validation loss. This script fits, over the points of several studies,

    loss = E_corpus + A / N^alpha + B / D^beta        (Chinchilla's form)

with N the recurrent parameters (the cells: what the width buys; the
embedding and the softmax are priced in time, not counted in N), D the
training tokens, alpha, beta, A and B shared by all corpora and one entropy
floor E per corpus (the floor does not move the best size, so a new corpus
needs none). It also fits the time a token costs on one thread,

    seconds / token = c0 + flops / R,   flops = 6 (N + H V) per token,

and prints the constants that crates/recurrent/src/fit.rs uses, with the fit's
residuals per corpus, as a table for docs/DEFAULTS.md.

Usage: scripts/fit_defaults.py NAME=DIR [NAME=DIR ...]
  DIR: a `recurrent tune` study folder, or a scripts/defaults_grid.sh corpus
  folder (every validation of every run is a point)
Needs numpy and scipy (pip install numpy scipy).
"""
import json
import sys

import os

import numpy as np
from scipy.optimize import least_squares


# One layer unless FIT_ALL_DEPTHS=1: at the budgets measured a second layer
# learns more slowly per token than its parameters say (docs/DEFAULTS.md).
ALL_DEPTHS = os.environ.get("FIT_ALL_DEPTHS") == "1"
MIN_STEP = int(os.environ.get("FIT_MIN_STEP", "200"))


def gates(cell):
    return {"lstm": 4, "gru": 3, "rnn": 1}[cell]


def recurrent_params(p):
    g = gates(p.get("cell", "lstm"))
    h, e, layers = p["hidden"], p.get("embed", 64), p.get("layers", 2)
    total = 0
    for layer in range(layers):
        inp = e if layer == 0 else h
        total += g * h * (inp + h) + 2 * g * h
    return total


def vocab_of(study_dir):
    """Distinct characters of the study's input (char tokenizer)."""
    opts = json.loads(open(f"{study_dir}/study.jsonl").readline())["options"]
    text = open(opts["input"], encoding="utf-8").read()
    return len(set(text)), len(text)


def effective_tokens(tokens, unique, horizon=15.0):
    """Tokens worth as much as `tokens` trained over `unique` (Muennighoff et
    al. 2023; sizing.rs uses the same)."""
    tokens = np.asarray(tokens, float)
    repeats = np.maximum(tokens / unique - 1.0, 0.0)
    return np.where(tokens <= unique, tokens, unique + unique * horizon * (1 - np.exp(-repeats / horizon)))


def grid_points(name, grid_dir):
    """The validation curves of scripts/defaults_grid.sh's runs: each
    validation is a point, with the best loss so far (what early stopping
    keeps)."""
    import glob
    import os
    import re
    text = open(f"{grid_dir}/train.txt", encoding="utf-8").read()
    vocab, chars = int(open(f"{grid_dir}/vocab").read()), len(text)
    rows = []
    for log in sorted(glob.glob(f"{grid_dir}/*x*.log")):
        run = log[:-4]
        cfg = json.load(open(f"{run}/best/config.json"))["model"]
        head = open(log).read()
        batch, seq = map(int, re.search(r"batch (\d+) x seq-len (\d+)", head).groups())
        p = {k: cfg[k] for k in ("cell", "hidden", "embed", "layers")}
        n = recurrent_params(p)
        flops = 6 * (n + p["hidden"] * vocab)
        if p["layers"] != 1 and not ALL_DEPTHS:
            continue
        best = float("inf")
        for line in open(f"{run}/metrics.jsonl"):
            ev = json.loads(line)
            if ev["kind"] != "val":
                continue
            best = min(best, ev["loss"])
            # The first validation is still in the transient of the start.
            if ev["step"] < MIN_STEP:
                continue
            rows.append((name, n, ev["step"] * batch * seq, ev["elapsed"], best, flops, p))
    return vocab, chars, rows


def points(name, study_dir):
    import os
    if not os.path.exists(f"{study_dir}/study.jsonl"):
        return grid_points(name, study_dir)
    vocab, chars = vocab_of(study_dir)
    params, rows = {}, []
    for line in open(f"{study_dir}/study.jsonl"):
        ev = json.loads(line)
        if ev["event"] == "trial":
            params[ev["trial"]] = ev["params"]
        elif ev["event"] == "rung":
            p = params[ev["trial"]]
            n = recurrent_params(p)
            flops = 6 * (n + p["hidden"] * vocab)
            loss = float(np.mean(ev["losses"]))
            rows.append((name, n, ev["tokens"], ev["secs"], loss, flops, p))
    return vocab, chars, rows


def main(args):
    corpora, rows = [], []
    for arg in args:
        name, study = arg.split("=", 1)
        vocab, chars, pts = points(name, study)
        corpora.append((name, vocab, chars, len(pts)))
        rows += pts
    names = [c[0] for c in corpora]
    idx = np.array([names.index(r[0]) for r in rows])
    n = np.array([r[1] for r in rows], float)
    unique = np.array([corpora[i][2] for i in idx], float)
    d = effective_tokens(np.array([r[2] for r in rows], float), unique)
    loss = np.array([r[4] for r in rows], float)

    # Scaled units keep the optimizer well conditioned: N in millions, D in
    # millions of tokens. Each corpus has its own floor E and scale S (a
    # language's loss spans more nats than another's); the exponents and
    # the balance A of the two terms are shared. The best size does not
    # depend on E or S, so a corpus never measured needs neither.
    k = len(names)

    def model(x):
        a, b, log_a = x[:3]
        e = x[3:3 + k][idx]
        scale = np.exp(x[3 + k:][idx])
        return e + scale * (np.exp(log_a) / (n / 1e6) ** a + 1.0 / (d / 1e6) ** b)

    # Every corpus weighs the same, however many points it has.
    weight = np.array([1.0 / np.sqrt(np.sum(idx == i)) for i in idx])
    x0 = np.concatenate([[0.3, 0.5, np.log(1.0)], np.full(k, 1.0), np.zeros(k)])
    lower = np.concatenate([[0.01, 0.01, -10], np.zeros(k), np.full(k, -5.0)])
    upper = np.concatenate([[2.0, 2.0, 10], np.full(k, 12.0), np.full(k, 5.0)])
    # Huber loss, as Chinchilla: a few diverged trials must not steer the fit.
    fit = least_squares(lambda x: weight * (model(x) - loss), x0, bounds=(lower, upper),
                        loss="huber", f_scale=0.02)
    a, b, log_a = fit.x[:3]
    resid = model(fit.x) - loss
    print(f"alpha = {a:.4f}, beta = {b:.4f}, A = {np.exp(log_a):.4f}, B = 1"
          " (N and D in millions)")
    print("| corpus | vocabulary | characters | points | E (nats) | S | mean abs residual |")
    print("|---|---|---|---|---|---|---|")
    for i, (name, vocab, chars, count) in enumerate(corpora):
        r = np.abs(resid[idx == i])
        print(f"| {name} | {vocab:,} | {chars:,} | {count} | {fit.x[3 + i]:.3f} "
              f"| {np.exp(fit.x[3 + k + i]):.3f} | {r.mean():.3f} |")

    # The check that matters: the law's ranking of the sizes at the end of
    # each grid run against the measured one.
    print("| corpus | run | tokens | measured | predicted |")
    print("|---|---|---|---|---|")
    last = {}
    for j, r in enumerate(rows):
        key = (r[0], r[6]["layers"], r[6]["hidden"])
        last[key] = j
    for (name, layers, hidden), j in sorted(last.items()):
        print(f"| {name} | {layers}x{hidden} | {rows[j][2]:,} | {loss[j]:.3f} | {model(fit.x)[j]:.3f} |")

    # Throughput on one thread (every study ran its trials on one thread each).
    secs = np.array([r[3] for r in rows], float)
    flops = np.array([r[5] for r in rows], float)
    per_token = secs / np.array([r[2] for r in rows], float)
    design = np.stack([np.ones_like(flops), flops], axis=1)
    (c0, inv_r), *_ = np.linalg.lstsq(design, per_token, rcond=None)
    pred = design @ np.array([c0, inv_r])
    err = np.abs(pred / per_token - 1)
    print(f"seconds/token = {c0:.3e} + flops / {1 / inv_r:.3e}"
          f" (median error {np.median(err):.0%}, {len(err)} points)")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
