#!/usr/bin/env python3
"""Generate the PyTorch reference fixtures for the sequence-regression model.

Usage (from the repository root):

    python3 scripts/make_series_fixtures.py

Needs PyTorch (CPU is enough); nothing else (the safetensors files are written
by hand, with sorted keys, so the output is byte-for-byte reproducible). CI
does not run it: the fixtures under crates/model/tests/fixtures/series/ are
committed.

The model (recurrent-model's `series`):

    output, h_n = rnn(x)                    # nn.LSTM / nn.GRU / nn.RNN, time-major, zero h0
    pred        = head(output[-1])          # sequence to vector, [B, O]
    pred        = head(output)              # sequence to sequence, [T, B, O]
    loss        = sum(w * l(pred - target)) / sum(w)   # l: MSE, L1 or Huber, w = 1 without weights

Parameters and data are drawn in float32; the forward and backward passes run
in float64 on exactly those values, and the results are rounded to float32 once
when stored. See crates/model/tests/fixtures/series/README.md.
"""

import json
import struct
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "crates" / "model" / "tests" / "fixtures" / "series"

# name, cell, output, loss, weighted, seed
CASES = [
    ("lstm_last", "lstm", "last", "mse", False, 11),
    ("lstm_every", "lstm", "every", "mse", True, 12),
    ("gru_last", "gru", "last", "huber", False, 13),
    ("gru_every", "gru", "every", "mse", False, 14),
    ("rnn_tanh_last", "rnn_tanh", "last", "mae", False, 15),
    ("rnn_tanh_every", "rnn_tanh", "every", "mse", True, 16),
]
INPUTS, HIDDEN, LAYERS, OUTPUTS, STEPS, BATCH = 3, 5, 2, 2, 6, 3
HUBER_DELTA = 0.5


def make_rnn(cell):
    if cell == "lstm":
        return nn.LSTM(INPUTS, HIDDEN, LAYERS)
    if cell == "gru":
        return nn.GRU(INPUTS, HIDDEN, LAYERS)
    return nn.RNN(INPUTS, HIDDEN, LAYERS, nonlinearity="tanh")


def elementwise_loss(kind, pred, target):
    if kind == "mse":
        return F.mse_loss(pred, target, reduction="none")
    if kind == "mae":
        return F.l1_loss(pred, target, reduction="none")
    return F.huber_loss(pred, target, reduction="none", delta=HUBER_DELTA)


def make_case(cell, output, loss_kind, weighted, seed):
    torch.manual_seed(seed)
    rnn = make_rnn(cell)
    head = nn.Linear(HIDDEN, OUTPUTS)
    with torch.no_grad():
        # Biases perturbed so that bias bugs show.
        for name, p in rnn.named_parameters():
            if "bias" in name:
                p.add_(torch.empty_like(p).uniform_(-0.1, 0.1))
    state = {f"rnn.{k}": v.detach().float().clone() for k, v in rnn.state_dict().items()}
    state.update({f"head.{k}": v.detach().float().clone() for k, v in head.state_dict().items()})
    rows = BATCH if output == "last" else STEPS * BATCH
    x = torch.randn(STEPS, BATCH, INPUTS, dtype=torch.float32)
    target_shape = (BATCH, OUTPUTS) if output == "last" else (STEPS, BATCH, OUTPUTS)
    target = torch.randn(*target_shape, dtype=torch.float32)
    weights = None
    if weighted:
        weights = torch.rand(*target_shape, dtype=torch.float32)
        weights[weights < 0.25] = 0.0  # some elements masked out

    rnn64, head64 = rnn.double(), head.double()
    with torch.no_grad():
        for k, v in rnn64.state_dict().items():
            v.copy_(state[f"rnn.{k}"].double())
        for k, v in head64.state_dict().items():
            v.copy_(state[f"head.{k}"].double())
    out, _ = rnn64(x.double())
    pred = head64(out[-1] if output == "last" else out)
    elem = elementwise_loss(loss_kind, pred, target.double())
    w = torch.ones_like(elem) if weights is None else weights.double()
    loss = (w * elem).sum() / w.sum()
    if loss_kind != "mse":
        # Keep the kinks of MAE and Huber away from every error.
        err = (pred - target.double()).abs()
        kink = 0.0 if loss_kind == "mae" else HUBER_DELTA
        assert (err - kink).abs().min().item() > 1e-3, "an error sits on the loss's kink"
    loss.backward()

    tensors = dict(state)
    tensors["x"] = x
    tensors["target"] = target
    if weights is not None:
        tensors["weights"] = weights
    tensors["pred"] = pred.detach().float().reshape(rows, OUTPUTS)
    tensors["loss"] = loss.detach().float().reshape(1)
    for k, p in rnn64.named_parameters():
        tensors[f"grad.rnn.{k}"] = p.grad.float()
    for k, p in head64.named_parameters():
        tensors[f"grad.head.{k}"] = p.grad.float()
    meta = {
        "cell": cell,
        "output": output,
        "loss": loss_kind,
        "huber_delta": str(HUBER_DELTA),
        "inputs": str(INPUTS),
        "hidden": str(HIDDEN),
        "layers": str(LAYERS),
        "outputs": str(OUTPUTS),
        "steps": str(STEPS),
        "batch": str(BATCH),
    }
    return tensors, meta


def write_safetensors(path, tensors, meta):
    """A safetensors file with sorted names and metadata: F32, little endian."""
    header = {"__metadata__": dict(sorted(meta.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous().float()
        values = t.flatten().tolist()
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {
            "dtype": "F32",
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    torch.use_deterministic_algorithms(True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, cell, output, loss_kind, weighted, seed in CASES:
        tensors, meta = make_case(cell, output, loss_kind, weighted, seed)
        path = OUT_DIR / f"{name}.safetensors"
        write_safetensors(path, tensors, meta)
        print(f"{path.relative_to(ROOT)}: loss {tensors['loss'].item():.6f}")


if __name__ == "__main__":
    main()
