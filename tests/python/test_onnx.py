"""`recurrent export onnx` in onnxruntime: for every cell and head variant,
onnx's checker accepts both files, and the sequence and step graphs give the
logits and states of the model in the checkpoint to 1e-4 on random tokens
and random starting states. The reference is the checkpoint's own weights
through PyTorch's equations in numpy (recurrent matches PyTorch to 1e-5:
the Rust conformance tests), and, where the `recurrent` Python package is
installed, the package's own forward pass.

Skips when onnx, onnxruntime or safetensors is missing, unless
RECURRENT_REQUIRE_ONNX is set.
"""

import json
import os
import subprocess

import pytest

from conftest import BINARY

if os.environ.get("RECURRENT_REQUIRE_ONNX"):
    import numpy as np
    import onnx
    import onnxruntime as ort
    from safetensors.numpy import load_file
else:
    np = pytest.importorskip("numpy")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    load_file = pytest.importorskip("safetensors.numpy").load_file

TEXT = "the cat sat on the mat. (a dog) ran \"home\".\n" * 40

VARIANTS = {
    "lstm": ["--cell", "lstm"],
    "gru": ["--cell", "gru"],
    "rnn-tanh": ["--cell", "rnn-tanh"],
    "rnn-relu": ["--cell", "rnn-relu"],
    "one-hot": ["--cell", "lstm", "--embed", "0"],
    "dense-gru": ["--cell", "gru", "--dense", "16"],
    "tied": ["--cell", "lstm", "--embed", "24", "--tie"],
    "awd": ["--cell", "lstm", "--layers", "3", "--embed", "16", "--last-hidden", "16", "--tie"],
}


def run(*args):
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if not BINARY.exists():
        pytest.skip(f"{BINARY} is not built")
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_text(TEXT)
    return path


def train(corpus, out, extra):
    args = ["train", "--input", str(corpus), "--out", str(out), "--steps", "5",
            "--hidden", "24", "--seq-len", "16", "--batch", "4", "--threads", "1",
            "--sample-length", "0"]
    if "--layers" not in extra:
        args += ["--layers", "2"]
    if "--embed" not in extra:
        args += ["--embed", "8"]
    done = run(*args, *extra)
    assert done.returncode == 0, done.stderr
    return out / "best"


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference(config, w, tokens, states):
    """Logits [T, B, V] and each layer's final (h, c): PyTorch's equations."""
    cell, vocab = config["cell"], config["vocab_size"]
    x = w["encoder.weight"][tokens] if config["embed"] else np.eye(vocab, dtype=np.float32)[tokens]
    finals = []
    for k, (h, c) in enumerate(states):
        w_ih, w_hh, b_ih, b_hh = (w[f"rnn.{n}_l{k}"] for n in
                                  ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        ys = []
        for t in range(tokens.shape[0]):
            gi, gh = x[t] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
            if cell == "lstm":
                i, f, g, o = np.split(gi + gh, 4, axis=-1)
                c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
                h = sigmoid(o) * np.tanh(c)
            elif cell == "gru":
                (ir, iz, i_n), (hr, hz, h_n) = np.split(gi, 3, -1), np.split(gh, 3, -1)
                r, z = sigmoid(ir + hr), sigmoid(iz + hz)
                h = (1 - z) * np.tanh(i_n + r * h_n) + z * h
            elif cell == "rnn-tanh":
                h = np.tanh(gi + gh)
            else:
                h = np.maximum(gi + gh, 0)
            ys.append(h)
        x = np.stack(ys)
        finals.append((h, c))
    if config.get("dense"):
        x = np.maximum(x @ w["dense.weight"].T + w["dense.bias"], 0)
    decoder = w["encoder.weight"] if config.get("tie") else w["decoder.weight"]
    return x @ decoder.T + w["decoder.bias"], finals


def widths(config):
    out = [config["hidden"]] * config["layers"]
    if config.get("last_hidden"):
        out[-1] = config["last_hidden"]
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_onnx_graphs_match_the_model(corpus, tmp_path, variant):
    checkpoint = train(corpus, tmp_path / variant, VARIANTS[variant])
    out = tmp_path / "model.onnx"
    done = run("export", "onnx", str(checkpoint), "--out", str(out))
    assert done.returncode == 0, done.stderr
    step = tmp_path / "model.step.onnx"
    for path in (out, step):
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        meta = {p.key: p.value for p in model.metadata_props}
        assert len(json.loads(meta["recurrent.vocab"])) == json.loads(meta["recurrent.config"])["vocab_size"]

    config = json.loads((checkpoint / "config.json").read_text())["model"]
    weights = load_file(str(checkpoint / "model.safetensors"))
    lstm = config["cell"] == "lstm"
    rng = np.random.default_rng(1)
    time, batch = 9, 3
    tokens = rng.integers(0, config["vocab_size"], (time, batch))
    states = [tuple((0.5 * rng.standard_normal((batch, h))).astype(np.float32) for _ in "hc")
              for h in widths(config)]
    want_logits, want_states = reference(config, weights, tokens, states)

    feeds = {}
    for k, (h, c) in enumerate(states):
        feeds[f"h.{k}"] = h[None]
        if lstm:
            feeds[f"c.{k}"] = c[None]
    sequence = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = [o.name for o in sequence.get_outputs()]
    got = dict(zip(names, sequence.run(None, {"tokens": tokens.astype(np.int64), **feeds})))
    assert got["logits"].shape == (time, batch, config["vocab_size"])
    np.testing.assert_allclose(got["logits"], want_logits, atol=1e-4, rtol=1e-4)
    for k, (h, c) in enumerate(want_states):
        np.testing.assert_allclose(got[f"h_next.{k}"][0], h, atol=1e-4, rtol=1e-4)
        if lstm:
            np.testing.assert_allclose(got[f"c_next.{k}"][0], c, atol=1e-4, rtol=1e-4)

    # The step graph, token by token from the same states, ends in the same place.
    stepper = ort.InferenceSession(str(step), providers=["CPUExecutionProvider"])
    step_names = [o.name for o in stepper.get_outputs()]
    current = feeds
    for t in range(time):
        got_step = dict(zip(step_names, stepper.run(None, {"token": tokens[t].astype(np.int64), **current})))
        np.testing.assert_allclose(got_step["logits"], want_logits[t], atol=1e-4, rtol=1e-4)
        current = {k.replace("_next", ""): v for k, v in got_step.items() if k != "logits"}
    for k, (h, _) in enumerate(want_states):
        np.testing.assert_allclose(current[f"h.{k}"][0], h, atol=1e-4, rtol=1e-4)


def test_layer_norm_models_are_refused(corpus, tmp_path):
    checkpoint = train(corpus, tmp_path / "ln", ["--layer-norm"])
    out = tmp_path / "ln.onnx"
    done = run("export", "onnx", str(checkpoint), "--out", str(out))
    assert done.returncode != 0
    assert "layer-normalized" in done.stderr and "panicked" not in done.stderr
    assert not out.exists()


def package():
    try:
        import recurrent
    except ImportError:
        if os.environ.get("RECURRENT_REQUIRE_PACKAGE"):
            raise
        pytest.skip("the recurrent Python package is not installed (scripts/test_python.sh installs it)")
    return recurrent


@pytest.mark.parametrize("variant", ["lstm", "gru", "rnn-tanh", "dense-gru", "tied"])
def test_onnx_step_graph_matches_the_package(corpus, tmp_path, variant):
    """recurrent's own forward (the Python package: per-token log-probabilities
    and every step's hidden states) against the step graph in onnxruntime."""
    recurrent = package()
    checkpoint = train(corpus, tmp_path / variant, VARIANTS[variant])
    out = tmp_path / "model.onnx"
    assert run("export", "onnx", str(checkpoint), "--out", str(out)).returncode == 0
    model = recurrent.Model.load(str(checkpoint))
    text = "the cat (sat) on \"the\" mat.\na dog"
    ids = model.encode(text)
    score = model.score(text)
    states = model.states(text)

    stepper = ort.InferenceSession(str(tmp_path / "model.step.onnx"), providers=["CPUExecutionProvider"])
    current = {i.name: np.zeros([1, 1, i.shape[2]], np.float32)
               for i in stepper.get_inputs() if i.name != "token"}
    names = [o.name for o in stepper.get_outputs()]
    logprobs, hidden = [], []
    for t, token in enumerate(ids):
        got = dict(zip(names, stepper.run(None, {"token": np.array([token], np.int64), **current})))
        current = {k.replace("_next", ""): v for k, v in got.items() if k != "logits"}
        hidden.append([current[f"h.{k}"][0, 0] for k in range(states["h"].shape[1])])
        if t + 1 < len(ids):
            row = got["logits"][0].astype(np.float64)
            row = row - row.max()
            logprobs.append(row[ids[t + 1]] - np.log(np.exp(row).sum()))
    np.testing.assert_allclose(logprobs, score.logprobs, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.array(hidden), states["h"], atol=1e-4, rtol=1e-4)
