#!/usr/bin/env python3
"""Generate the PyTorch reference fixtures for recurrent-model's conformance tests.

Usage (from the repository root):

    python3 scripts/make_lm_fixtures.py

Needs PyTorch (CPU is enough) and safetensors. CI does not run this script: the
fixtures under crates/model/tests/fixtures/ are committed, and this script only
exists to regenerate them. The output is deterministic (fixed seeds, float64 on
CPU, canonical safetensors headers), so running it twice gives byte-identical
files.

The model mirrors the RNNModel of pytorch/examples' word_language_model
(encoder = nn.Embedding, rnn = nn.LSTM / nn.GRU / nn.RNN, decoder = nn.Linear,
optional weight tying), without dropout, and with raw logits as its output
(the loss is F.cross_entropy, i.e. log_softmax + NLL, averaged over T*B).

Every parameter and initial state is first drawn in float32; the reference
forward/backward pass then runs in float64 on exactly those float32 values, and
the results are rounded to float32 for storage. So the stored weights are
precisely the weights the reference used, and the stored outputs are the
float64 truth rounded once.

See crates/model/tests/fixtures/README.md for the file format.
"""

import copy
import hashlib
import json
import os
import struct
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "crates" / "model" / "tests" / "fixtures"

# name, cell, ntoken, ninp, nhid, nlayers, seq_len, batch, tied, base seed
CASES = [
    ("lstm", "lstm", 11, 5, 7, 2, 6, 3, False, 1000),
    ("gru", "gru", 11, 5, 7, 2, 6, 3, False, 2000),
    ("rnn_tanh", "rnn_tanh", 11, 5, 7, 2, 6, 3, False, 3000),
    ("rnn_relu", "rnn_relu", 11, 5, 7, 2, 6, 3, False, 4000),
    ("lstm_tied", "lstm", 11, 6, 6, 2, 6, 3, True, 5000),
    ("gru_1layer", "gru", 9, 4, 5, 1, 4, 2, False, 6000),
]

VOCAB = list("abcdefghij\n")  # 11 distinct single characters, for the `lstm` model

RELU_MARGIN = 1e-3  # no ReLU pre-activation may lie closer than this to zero
MAX_RESEEDS = 1000


# --------------------------------------------------------------------------
# The model (equivalent to word_language_model's RNNModel, dropout = 0).
# --------------------------------------------------------------------------


class RNNModel(nn.Module):
    def __init__(self, cell, ntoken, ninp, nhid, nlayers, tied=False):
        super().__init__()
        self.cell = cell
        self.ntoken = ntoken
        self.nhid = nhid
        self.nlayers = nlayers
        self.encoder = nn.Embedding(ntoken, ninp)
        if cell == "lstm":
            self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=0.0)
        elif cell == "gru":
            self.rnn = nn.GRU(ninp, nhid, nlayers, dropout=0.0)
        elif cell in ("rnn_tanh", "rnn_relu"):
            self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=cell[4:], dropout=0.0)
        else:
            raise ValueError(f"unknown cell {cell!r}")
        self.decoder = nn.Linear(nhid, ntoken)
        if tied:
            if ninp != nhid:
                raise ValueError("tied weights need ninp == nhid")
            self.decoder.weight = self.encoder.weight
        self.init_weights()

    def init_weights(self):
        # Same as word_language_model; the rnn keeps PyTorch's default init
        # (uniform +-1/sqrt(nhid)) from its constructor.
        r = 0.1
        nn.init.uniform_(self.encoder.weight, -r, r)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -r, r)

    def forward(self, input, hidden):
        emb = self.encoder(input)  # [T, B, ninp]
        output, hidden = self.rnn(emb, hidden)  # [T, B, nhid]
        logits = self.decoder(output)  # [T, B, ntoken]
        return logits.reshape(-1, self.ntoken), hidden


def perturb_biases(model):
    """Make every bias visibly non-trivial, so that bias bugs show up."""
    with torch.no_grad():
        model.decoder.bias.add_(torch.empty_like(model.decoder.bias).uniform_(-0.2, 0.2))
        for name, p in model.rnn.named_parameters():
            if name.startswith("bias_"):
                p.add_(torch.empty_like(p).uniform_(-0.1, 0.1))


# --------------------------------------------------------------------------
# An independent, hand-written float64 reference of the same network, working
# from a plain {name: tensor} dict as loaded from a fixture file. Used both to
# verify the written files and to inspect ReLU pre-activations.
# --------------------------------------------------------------------------


def manual_forward(w, cell, nlayers, input, h0, c0=None, preacts=None):
    """Return (logits [T*B, V], h_n, c_n or None). Gate layouts follow PyTorch:
    LSTM rows (i, f, g, o), GRU rows (r, z, n)."""
    x = w["encoder.weight"][input.long()]  # [T, B, ninp]
    T = x.shape[0]
    hs, cs = [], []
    for l in range(nlayers):
        W_ih, W_hh = w[f"rnn.weight_ih_l{l}"], w[f"rnn.weight_hh_l{l}"]
        b_ih, b_hh = w[f"rnn.bias_ih_l{l}"], w[f"rnn.bias_hh_l{l}"]
        h = h0[l]
        c = c0[l] if c0 is not None else None
        outs = []
        for t in range(T):
            gi = x[t] @ W_ih.T + b_ih
            gh = h @ W_hh.T + b_hh
            if cell == "lstm":
                i, f, g, o = (gi + gh).chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            elif cell == "gru":
                ir, iz, inn = gi.chunk(3, dim=1)
                hr, hz, hn = gh.chunk(3, dim=1)
                r = torch.sigmoid(ir + hr)
                z = torch.sigmoid(iz + hz)
                n = torch.tanh(inn + r * hn)
                h = (1 - z) * n + z * h
            else:
                a = gi + gh
                if preacts is not None:
                    preacts.append(a.detach().clone())
                h = torch.tanh(a) if cell == "rnn_tanh" else torch.relu(a)
            outs.append(h)
        hs.append(h)
        cs.append(c)
        x = torch.stack(outs)
    logits = x.reshape(-1, x.shape[-1]) @ w["decoder.weight"].T + w["decoder.bias"]
    h_n = torch.stack(hs)
    c_n = torch.stack(cs) if c0 is not None else None
    return logits, h_n, c_n


# --------------------------------------------------------------------------
# Building one case
# --------------------------------------------------------------------------


def draw_case(cell, ntoken, ninp, nhid, nlayers, T, B, tied, seed):
    """Draw a float32 model and float32 data from a fixed seed."""
    torch.manual_seed(seed)
    model = RNNModel(cell, ntoken, ninp, nhid, nlayers, tied)
    perturb_biases(model)
    input = torch.randint(0, ntoken, (T, B))
    target = torch.randint(0, ntoken, (T, B))
    h0 = torch.randn(nlayers, B, nhid) * 0.5
    c0 = torch.randn(nlayers, B, nhid) * 0.5 if cell == "lstm" else None
    return model, input, target, h0, c0


def relu_preacts_ok(model, input, h0):
    w = {k: v.double() for k, v in model.state_dict().items()}
    pre = []
    manual_forward(w, "rnn_relu", model.nlayers, input, h0.double(), preacts=pre)
    a = torch.cat([p.reshape(-1) for p in pre])
    n_neg = int((a < 0).sum())
    ok = n_neg > 0 and n_neg < a.numel() and float(a.abs().min()) > RELU_MARGIN
    return ok, n_neg, a.numel(), float(a.abs().min())


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def build_case(name, cell, ntoken, ninp, nhid, nlayers, T, B, tied, base_seed):
    seed = base_seed
    for _ in range(MAX_RESEEDS):
        model, input, target, h0, c0 = draw_case(cell, ntoken, ninp, nhid, nlayers, T, B, tied, seed)
        if cell != "rnn_relu":
            break
        ok, n_neg, n_all, min_abs = relu_preacts_ok(model, input, h0)
        if ok:
            print(f"  {name}: seed {seed}: {n_neg}/{n_all} ReLU pre-activations negative, "
                  f"min |pre-activation| = {min_abs:.4g}")
            break
        seed += 1
    else:
        raise RuntimeError(f"{name}: no acceptable seed found")

    model32 = copy.deepcopy(model)  # the float32 model, for the *_state_dict files

    # Reference pass in float64 on the exact float32 values.
    model = model.double()
    if tied:
        assert model.decoder.weight is model.encoder.weight
    h0d = h0.double().requires_grad_(True)
    c0d = c0.double().requires_grad_(True) if c0 is not None else None
    hidden = (h0d, c0d) if cell == "lstm" else h0d
    model.zero_grad()
    logits, hidden_n = model(input, hidden)
    loss = F.cross_entropy(logits, target.reshape(-1))
    loss.backward()

    tensors = {}
    for k, v in model.state_dict().items():
        tensors[k] = f32(v)
    tensors["input"] = input.to(torch.float32)
    tensors["target"] = target.to(torch.float32)
    tensors["h0"] = f32(h0)
    if c0 is not None:
        tensors["c0"] = f32(c0)
    tensors["logits"] = f32(logits)
    if cell == "lstm":
        tensors["h_n"] = f32(hidden_n[0])
        tensors["c_n"] = f32(hidden_n[1])
    else:
        tensors["h_n"] = f32(hidden_n)
    tensors["loss"] = f32(loss.reshape(1))
    params = dict(model.named_parameters(remove_duplicate=False))
    for k in model.state_dict().keys():
        tensors[f"grad.{k}"] = f32(params[k].grad)
    tensors["grad.h0"] = f32(h0d.grad)
    if c0d is not None:
        tensors["grad.c0"] = f32(c0d.grad)

    metadata = {
        "cell": cell,
        "ntoken": str(ntoken),
        "ninp": str(ninp),
        "nhid": str(nhid),
        "nlayers": str(nlayers),
        "seq_len": str(T),
        "batch": str(B),
        "tied": "true" if tied else "false",
    }
    return tensors, metadata, model32


# --------------------------------------------------------------------------
# Writing: safetensors' Rust core serialises __metadata__ from a HashMap, so
# its key order changes from run to run. Rewrite the header in place with the
# metadata keys sorted (the JSON has the same length, so the layout is kept).
# --------------------------------------------------------------------------


def canonicalize_header(path):
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    (n,) = struct.unpack("<Q", data[:8])
    raw = bytes(data[8 : 8 + n])
    text = raw.decode("utf-8").rstrip(" ")
    header = json.loads(text)
    new = {}
    if "__metadata__" in header:
        new["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    for k, v in header.items():
        if k != "__metadata__":
            new[k] = v
    out = json.dumps(new, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(out) != len(text.encode("utf-8")):
        raise RuntimeError(f"{path}: canonical header length differs")
    out = out + b" " * (n - len(out))
    data[8 : 8 + n] = out
    with open(path, "wb") as fh:
        fh.write(bytes(data))


def write_safetensors(tensors, path, metadata=None):
    save_file(tensors, str(path), metadata=metadata)
    canonicalize_header(path)


# --------------------------------------------------------------------------
# Verification of the written files
# --------------------------------------------------------------------------


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def verify_case(path, expect_meta):
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    assert meta == expect_meta, (meta, expect_meta)
    st = load_file(str(path))
    for k, v in st.items():
        assert v.dtype == torch.float32, k
    cell = meta["cell"]
    nlayers = int(meta["nlayers"])
    T, B = int(meta["seq_len"]), int(meta["batch"])
    tied = meta["tied"] == "true"
    d = {k: v.double() for k, v in st.items()}
    input = st["input"].long()
    target = st["target"].long()
    assert torch.equal(input.double(), d["input"]) and torch.equal(target.double(), d["target"])
    assert tuple(input.shape) == (T, B)
    if tied:
        assert torch.equal(st["encoder.weight"], st["decoder.weight"])
        assert torch.equal(st["grad.encoder.weight"], st["grad.decoder.weight"])

    # 1) Hand-written float64 equations, with autograd for the gradients.
    pnames = [k for k in st if not k.startswith("grad.") and k not in
              ("input", "target", "h0", "c0", "logits", "h_n", "c_n", "loss")]
    w = {k: d[k].clone().requires_grad_(True) for k in pnames}
    if tied:
        w["decoder.weight"] = w["encoder.weight"]  # share, so its grad is the total
    h0 = d["h0"].clone().requires_grad_(True)
    c0 = d["c0"].clone().requires_grad_(True) if cell == "lstm" else None
    logits, h_n, c_n = manual_forward(w, cell, nlayers, input, h0, c0)
    loss = F.cross_entropy(logits, target.reshape(-1))
    loss.backward()
    checks = [("logits", logits, d["logits"]), ("h_n", h_n, d["h_n"]), ("loss", loss.reshape(1), d["loss"])]
    if c_n is not None:
        checks.append(("c_n", c_n, d["c_n"]))
    for k in pnames:
        checks.append((f"grad.{k}", w[k].grad, d[f"grad.{k}"]))
    checks.append(("grad.h0", h0.grad, d["grad.h0"]))
    if c0 is not None:
        checks.append(("grad.c0", c0.grad, d["grad.c0"]))
    worst = 0.0
    for k, got, want in checks:
        e = rel_err(got.detach(), want)
        worst = max(worst, e)
        if e > 1e-6:
            raise RuntimeError(f"{path.name}: {k} mismatch, rel err {e:.3g}")

    # 2) The torch module again, loaded from the stored state dict.
    ntoken, ninp, nhid = int(meta["ntoken"]), int(meta["ninp"]), int(meta["nhid"])
    m = RNNModel(cell, ntoken, ninp, nhid, nlayers, tied).double()
    m.load_state_dict({k: d[k] for k in pnames}, strict=True)
    with torch.no_grad():
        hid = (d["h0"], d["c0"]) if cell == "lstm" else d["h0"]
        lg, _ = m(input, hid)
        l2 = F.cross_entropy(lg, target.reshape(-1))
    e = abs(float(l2) - float(d["loss"][0])) / abs(float(d["loss"][0]))
    if e > 1e-6:
        raise RuntimeError(f"{path.name}: module loss mismatch, rel err {e:.3g}")
    return float(l2), worst


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main():
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    print("building cases:")
    for case in CASES:
        name = case[0]
        tensors, meta, model32 = build_case(*case)
        path = OUT_DIR / f"{name}.safetensors"
        write_safetensors(tensors, path, meta)
        loss, worst = verify_case(path, meta)
        print(f"  {name}: loss {loss:.10f} (f64 recompute; worst rel err vs stored {worst:.2e})")
        written.append(path)

        if name == "lstm":
            p = OUT_DIR / "lstm_state_dict.safetensors"
            save_file(model32.state_dict(), str(p))
            written.append(p)
            p = OUT_DIR / "lstm_vocab.json"
            assert len(set(VOCAB)) == len(VOCAB) == int(meta["ntoken"])
            p.write_text(json.dumps(VOCAB) + "\n", encoding="utf-8")
            written.append(p)
        if name == "lstm_tied":
            # save_file refuses tensors that share storage; clone each one.
            p = OUT_DIR / "lstm_tied_state_dict.safetensors"
            save_file({k: v.clone().contiguous() for k, v in model32.state_dict().items()}, str(p))
            written.append(p)

    # The plain state-dict files must hold exactly the fixture's parameters.
    for sd_name, case_name in (("lstm_state_dict", "lstm"), ("lstm_tied_state_dict", "lstm_tied")):
        sd = load_file(str(OUT_DIR / f"{sd_name}.safetensors"))
        full = load_file(str(OUT_DIR / f"{case_name}.safetensors"))
        for k, v in sd.items():
            assert v.dtype == torch.float32 and torch.equal(v, full[k]), (sd_name, k)
        expect = {k for k in full if k.startswith(("encoder.", "rnn.", "decoder."))}
        assert set(sd) == expect, (sd_name, sorted(set(sd) ^ expect))

    total = 0
    print("files:")
    for p in written:
        size = p.stat().st_size
        total += size
        print(f"  {p.relative_to(ROOT)}  {size} bytes  sha256 {sha256(p)[:16]}")
    print(f"total {total} bytes")
    if total > 200 * 1024:
        print("warning: fixtures exceed 200 KB", file=sys.stderr)


if __name__ == "__main__":
    main()
