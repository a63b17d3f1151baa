"""The `recurrent` Python package (crates/python): training, generation (equal
to the CLI's for a seed), streaming, scores and states as numpy arrays, the
PyTorch state dict, threads, Ctrl-C and errors.

scripts/test_package.sh builds and installs the package into a virtual
environment and runs this file. Without the package these tests skip, unless
RECURRENT_REQUIRE_PACKAGE is set. The tests that compare with the CLI use
target/debug/recurrent (or $RECURRENT_BINARY) and skip when it is not built.
"""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

try:
    import numpy as np

    import recurrent
except ImportError:
    if os.environ.get("RECURRENT_REQUIRE_PACKAGE"):
        raise
    pytest.skip("the recurrent package is not installed (scripts/test_package.sh)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("RECURRENT_BINARY", ROOT / "target" / "debug" / "recurrent"))
TEXT = "the cat sat on the mat. a dog ran to the cat.\n" * 60
TINY = dict(layers=2, hidden=16, embed=8, seq_len=16, batch=4, threads=1, lr=1e-2)


def needs_binary():
    if not BINARY.exists():
        pytest.skip(f"{BINARY} is not built")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run, progress events) of a tiny character LSTM trained from a string."""
    events = []
    out = tmp_path_factory.mktemp("lstm") / "run"
    run = recurrent.train(text=TEXT, out=out, steps=30, eval_every=10, progress=events.append, **TINY)
    return run, events


@pytest.fixture(scope="module")
def model(trained):
    return recurrent.Model.load(trained[0].path, threads=1)


def test_train_returns_the_run_and_reports_progress(trained):
    run, events = trained
    assert run.steps == 30
    assert Path(run.path).is_dir() and Path(run.best).is_dir() and Path(run.last).is_dir()
    assert (Path(run.path) / "metrics.jsonl").is_file()
    assert run.val_loss is not None and run.best_val_loss is not None
    assert run.best_val_loss <= run.val_loss
    assert run.stop_reason == "step limit reached"
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == list(range(1, 31))
    assert all(math.isfinite(e.loss) and e.lr > 0 for e in steps)
    evals = [e for e in events if e.kind == "eval"]
    assert len(evals) >= 3 and evals[-1].val_loss == pytest.approx(run.val_loss)


def test_resume_continues_a_run_and_init_from_fine_tunes(tmp_path):
    first = recurrent.train(text=TEXT, out=tmp_path / "run", steps=10, **TINY)
    resumed = recurrent.train(resume=first.path, steps=25, threads=1)
    assert (first.steps, resumed.steps) == (10, 25) and resumed.path == first.path
    # Resuming is exact: the same as training 25 steps in one go.
    whole = recurrent.train(text=TEXT, out=tmp_path / "whole", steps=25, **TINY)
    a, b = recurrent.Model.load(resumed.last), recurrent.Model.load(whole.last)
    for name, weights in a.state_dict().items():
        np.testing.assert_array_equal(weights, b.state_dict()[name])
    with pytest.raises(recurrent.RecurrentError, match="nowhere"):
        recurrent.train(resume=tmp_path / "nowhere", steps=1)

    tuned = recurrent.train(text="cat dog mat\n" * 100, out=tmp_path / "tuned", init_from=first.last, steps=3,
                            seq_len=16, batch=4, threads=1)
    assert recurrent.Model.load(tuned.path).config["hidden"] == 16
    with pytest.raises(recurrent.InvalidArgumentError, match="does not know"):
        recurrent.train(text="XYZ\n" * 100, out=tmp_path / "tuned2", init_from=first.last, steps=1,
                        seq_len=16, batch=4, threads=1)
    extended = recurrent.train(text=TEXT + "XYZ\n" * 20, out=tmp_path / "tuned3", init_from=first.last,
                               extend_vocab=True, steps=1, seq_len=16, batch=4, threads=1)
    assert extended.notes and "XYZ" not in "".join(recurrent.Model.load(first.path).vocab)


def test_sizes_left_unset_are_fitted_to_the_corpus_as_on_the_command_line(tmp_path):
    fitted = recurrent.train(text=TEXT, out=tmp_path / "fitted", steps=1, threads=1, time=30, seq_len=16)
    assert any(n.startswith("sized for the corpus") for n in fitted.notes), fitted.notes
    # A width of the user's own is kept; the depth and embedding left unset are still fitted.
    wide = recurrent.train(text=TEXT, out=tmp_path / "wide", steps=1, threads=1, time=30, seq_len=16,
                           hidden=24)
    assert any(n.startswith("sized for the corpus") for n in wide.notes), wide.notes
    assert recurrent.Model.load(wide.path, threads=1).config["hidden"] == 24
    # Every size given: nothing is fitted.
    given = recurrent.train(text=TEXT, out=tmp_path / "given", steps=1, **TINY)
    assert not any(n.startswith("sized for the corpus") for n in given.notes), given.notes
    assert recurrent.Model.load(given.path, threads=1).config["hidden"] == TINY["hidden"]


def test_awd_regularizers_and_options_are_accepted(tmp_path):
    run = recurrent.train(text=TEXT, out=tmp_path / "awd", steps=3, dropout_input=0.1, dropout_hidden=0.1,
                          dropout_output=0.2, dropout_embed=0.05, weight_drop=0.3, alpha=2.0, beta=1.0,
                          variable_bptt=True, optimizer="sgd", momentum=0.9, weight_decay=1e-6,
                          forget_bias=1.0, on_divergence="rollback", schedule="cosine", **TINY)
    assert run.steps == 3
    with pytest.raises(ValueError, match="on_divergence|divergence|rollback"):
        recurrent.train(text=TEXT, out=tmp_path / "bad", steps=1, on_divergence="panic", **TINY)


def test_precision_is_kept_with_the_run(tmp_path):
    run = recurrent.train(text=TEXT, out=tmp_path / "bf16", steps=3, precision="bf16", **TINY)
    state = json.loads((Path(run.last) / "trainer_state.json").read_text())
    assert state["trainer"]["precision"] == "bf16"
    # On a CPU without bf16 instructions the run trains in float32 and says so.
    fell_back = any("instead of bf16" in note for note in run.notes)
    f32 = recurrent.train(text=TEXT, out=tmp_path / "f32", steps=3, **TINY)
    same = recurrent.Model.load(run.path).state_dict()
    other = recurrent.Model.load(f32.path).state_dict()
    identical = all(np.array_equal(same[k], other[k]) for k in same)
    assert identical == fell_back
    # A resume keeps the run's precision unless given one.
    resumed = recurrent.train(resume=run.path, steps=5, threads=1)
    state = json.loads((Path(resumed.last) / "trainer_state.json").read_text())
    assert state["trainer"]["precision"] == "bf16" and resumed.steps == 5
    switched = recurrent.train(resume=run.path, steps=6, threads=1, precision="f32")
    state = json.loads((Path(switched.last) / "trainer_state.json").read_text())
    assert state["trainer"]["precision"] == "f32"
    with pytest.raises(ValueError, match="f32 or bf16"):
        recurrent.train(text=TEXT, out=tmp_path / "bad", steps=1, precision="fp8", **TINY)


def test_config_vocab_encode_decode(model):
    config = model.config
    assert config["cell"] == "lstm" and config["layers"] == 2 and config["hidden"] == 16
    assert config["tokenizer"] == "char" and config["vocab_size"] == model.vocab_size
    assert sorted(model.vocab) == sorted(set(TEXT))
    ids = model.encode("the cat")
    assert len(ids) == 7 and all(isinstance(i, int) for i in ids)
    assert model.decode(ids) == "the cat"
    assert model.decode(np.array(ids)) == "the cat"
    assert "lstm" in repr(model)


def test_generation_is_repeatable_and_batched(model):
    a = model.generate("the ", max_tokens=40, seed=7)
    assert isinstance(a, str) and len(a) == 40
    assert model.generate("the ", max_tokens=40, seed=7) == a
    many = model.generate("the ", max_tokens=20, seed=7, n=3)
    assert isinstance(many, list) and len(many) == 3 and all(len(t) == 20 for t in many)
    assert model.generate("the", max_tokens=30, temperature=0) == model.generate("the", max_tokens=30, temperature=0, seed=99)
    stopped = model.generate("the ", max_tokens=200, seed=7, stop=" ")
    assert " " not in stopped and len(stopped) < 200


def test_generation_equals_the_cli_for_a_seed(trained, model):
    needs_binary()
    args = ["--prime", "the ", "--length", "50", "--seed", "11", "--threads", "1", "--temperature", "0.8", "--top-k", "5"]
    cli = subprocess.run([str(BINARY), "sample", trained[0].path, *args],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    ours = model.generate("the ", max_tokens=50, seed=11, temperature=0.8, top_k=5)
    assert cli == "the " + ours + "\n"


def test_stream_pieces_join_to_the_generated_text(model):
    pieces = list(model.stream("a dog", max_tokens=60, seed=3, top_p=0.9))
    assert len(pieces) > 1 and all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == model.generate("a dog", max_tokens=60, seed=3, top_p=0.9)
    # A stream read halfway and dropped does not disturb the next call.
    stream = iter(model.stream(max_tokens=500, seed=1))
    next(stream)
    del stream
    assert "".join(model.stream(max_tokens=5, seed=2)) == model.generate(max_tokens=5, seed=2)


def test_score_gives_per_token_logprobs_and_perplexity(model):
    score = model.score("the cat sat")
    assert score.tokens == model.encode("the cat sat")
    assert isinstance(score.logprobs, np.ndarray) and score.logprobs.dtype == np.float64
    assert score.logprobs.shape == (len(score.tokens) - 1,)
    assert (score.logprobs <= 0).all()
    assert score.perplexity == pytest.approx(math.exp(-score.logprobs.mean()))
    assert 1 < score.perplexity < model.vocab_size
    assert score.bits_per_token == pytest.approx(-score.logprobs.mean() / math.log(2))
    both = model.score(["the cat", "the dog ran"])
    assert [len(s.logprobs) for s in both] == [6, 10]
    # A text the model knows well scores better than a scramble of it.
    assert model.score("the cat sat on the mat").perplexity < model.score("tmh tac tsa no eht tam").perplexity


def test_states_are_time_by_layer_by_unit(model):
    states = model.states("the cat")
    assert set(states) == {"h", "c"}
    for name in ("h", "c"):
        assert states[name].shape == (7, 2, 16) and states[name].dtype == np.float32
    assert np.abs(states["h"]).max() <= 1.0
    # Reading more text changes nothing that came before.
    longer = model.states("the cat sat")
    np.testing.assert_array_equal(longer["h"][:7], states["h"])


def test_gru_states_have_no_cell(tmp_path):
    run = recurrent.train(text=TEXT, out=tmp_path / "gru", cell="gru", steps=2, **TINY)
    states = recurrent.Model.load(run.path).states("a dog")
    assert set(states) == {"h"} and states["h"].shape == (5, 2, 16)


def test_state_dict_has_pytorch_names(model):
    sd = model.state_dict()
    names = {"encoder.weight", "decoder.weight", "decoder.bias"}
    for k in range(2):
        names |= {f"rnn.weight_ih_l{k}", f"rnn.weight_hh_l{k}", f"rnn.bias_ih_l{k}", f"rnn.bias_hh_l{k}"}
    assert set(sd) == names
    v = model.vocab_size
    assert sd["encoder.weight"].shape == (v, 8)
    assert sd["rnn.weight_ih_l0"].shape == (64, 8) and sd["rnn.weight_hh_l1"].shape == (64, 16)
    assert sd["decoder.weight"].shape == (v, 16) and sd["decoder.bias"].shape == (v,)
    assert all(a.dtype == np.float32 for a in sd.values())


TORCH_CHECK = textwrap.dedent('''
    import json, sys, torch
    from torch import nn

    class RNNModel(nn.Module):
        """pytorch/examples' word_language_model RNNModel (no dropout)."""
        def __init__(self, ntoken, ninp, nhid, nlayers):
            super().__init__()
            self.drop = nn.Dropout(0.0)
            self.encoder = nn.Embedding(ntoken, ninp)
            self.rnn = nn.LSTM(ninp, nhid, nlayers)
            self.decoder = nn.Linear(nhid, ntoken)

        def forward(self, input, hidden):
            output, hidden = self.rnn(self.drop(self.encoder(input)), hidden)
            return self.decoder(self.drop(output)), hidden

    spec = json.load(open(sys.argv[1]))
    blob = open(sys.argv[2], "rb").read()
    state = {}
    for name, (offset, shape) in spec["tensors"].items():
        n = 1
        for d in shape:
            n *= d
        state[name] = torch.frombuffer(bytearray(blob[offset:offset + 4 * n]), dtype=torch.float32).reshape(shape)
    m = RNNModel(spec["vocab"], spec["embed"], spec["hidden"], spec["layers"])
    m.load_state_dict(state, strict=True)
    ids = torch.tensor(spec["tokens"]).reshape(-1, 1)
    zeros = torch.zeros(spec["layers"], 1, spec["hidden"])
    with torch.no_grad():
        logits, _ = m(ids, (zeros, zeros.clone()))
        logp = torch.log_softmax(logits.reshape(len(spec["tokens"]), -1).double(), dim=-1)
    print(json.dumps([logp[t, spec["tokens"][t + 1]].item() for t in range(len(spec["tokens"]) - 1)]))
''')


def torch_python():
    """A Python with torch: this one, or $RECURRENT_TORCH_PYTHON."""
    try:
        import torch  # noqa: F401

        return sys.executable
    except ImportError:
        return os.environ.get("RECURRENT_TORCH_PYTHON")


def test_state_dict_loads_into_pytorch_rnnmodel(model, tmp_path):
    python = torch_python()
    if not python:
        pytest.skip("torch is not installed")
    sd = model.state_dict()
    text = "the dog sat on the cat."
    score = model.score(text)
    spec = {"tensors": {}, "vocab": model.vocab_size, "embed": 8, "hidden": 16, "layers": 2,
            "tokens": score.tokens}
    blob = bytearray()
    for name, array in sd.items():
        spec["tensors"][name] = (len(blob), list(array.shape))
        blob += np.ascontiguousarray(array, dtype="<f4").tobytes()
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "weights.bin").write_bytes(bytes(blob))
    (tmp_path / "check.py").write_text(TORCH_CHECK)
    out = subprocess.run([python, str(tmp_path / "check.py"), str(tmp_path / "spec.json"), str(tmp_path / "weights.bin")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    torch_logprobs = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(score.logprobs, torch_logprobs, atol=1e-4)


def test_four_threads_generate_at_once(model):
    expected = {seed: model.generate("the ", max_tokens=200, seed=seed) for seed in range(4)}
    results = {}
    barrier = threading.Barrier(4)

    def work(seed):
        barrier.wait()
        for _ in range(3):
            results.setdefault(seed, []).append(model.generate("the ", max_tokens=200, seed=seed))
        results[seed].append("".join(model.stream("the ", max_tokens=200, seed=seed)))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert results == {seed: [text] * 4 for seed, text in expected.items()}


def test_the_gil_is_released_while_generating(model):
    """A Python thread keeps running while another generates."""
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(1)
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    started = time.monotonic()
    while time.monotonic() - started < 0.3:
        model.generate(max_tokens=2000, seed=0)
    done.set()
    ticker.join()
    assert len(ticks) > 20


def test_errors_are_python_exceptions_with_the_library_message(model, tmp_path):
    with pytest.raises(recurrent.RecurrentError) as missing:
        recurrent.Model.load(tmp_path / "nowhere")
    assert "nowhere" in str(missing.value) and isinstance(missing.value, RuntimeError)

    with pytest.raises(recurrent.InvalidArgumentError, match="temperature") as bad:
        model.generate(temperature=-1.0)
    assert isinstance(bad.value, ValueError) and isinstance(bad.value, recurrent.RecurrentError)
    with pytest.raises(ValueError, match="temperature"):
        model.stream(temperature=float("nan"))
    with pytest.raises(ValueError, match="top_p"):
        model.generate(top_p=1.5)
    with pytest.raises(ValueError, match="max_tokens"):
        model.generate(max_tokens=-1)
    with pytest.raises(ValueError, match="n must be"):
        model.generate(n=0)

    # Text outside a character vocabulary: the characters are named.
    for call in (model.encode, model.score, model.states, lambda t: model.generate(t), lambda t: model.stream(t)):
        with pytest.raises(recurrent.InvalidArgumentError, match="Z"):
            call("the Zebra")
    with pytest.raises(ValueError, match="token id"):
        model.decode([model.vocab_size])
    with pytest.raises(ValueError, match="empty"):
        model.states("")

    with pytest.raises(ValueError, match="cell"):
        recurrent.train(text=TEXT, out=tmp_path / "bad", cell="transformer", steps=1)
    with pytest.raises(ValueError, match="lr"):
        recurrent.train(text=TEXT, out=tmp_path / "bad", lr=-1.0, steps=1, **{k: v for k, v in TINY.items() if k != "lr"})
    with pytest.raises(ValueError, match="time"):
        recurrent.train(text=TEXT, out=tmp_path / "bad", time="soon")
    with pytest.raises(recurrent.InvalidArgumentError, match="layers"):
        recurrent.train(text=TEXT, out=tmp_path / "bad", steps=1, **dict(TINY, layers=0))
    with pytest.raises(recurrent.InvalidArgumentError, match="too few"):
        recurrent.train(text="abc\n", out=tmp_path / "bad", steps=1, **TINY)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(recurrent.RecurrentError, match="already holds a run"):
        recurrent.train(text=TEXT, out=Path(model.path).parent, steps=1, **TINY)

    # An exception in the progress callback stops the run; it is saved and raised.
    def fail(event):
        if event.kind == "step" and event.step == 3:
            raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        recurrent.train(text=TEXT, out=tmp_path / "failed", steps=1000, progress=fail, **TINY)
    assert recurrent.Model.load(tmp_path / "failed" / "last").vocab_size == model.vocab_size


CTRL_C = textwrap.dedent('''
    import sys, recurrent
    def progress(event):
        if event.kind == "step" and event.step == 1:
            print("training", flush=True)
    try:
        recurrent.train(text="abcabc\\n" * 300, out=sys.argv[1], time=120, seq_len=16, batch=4,
                        hidden=16, embed=8, layers=1, threads=1, progress=progress)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
''')


def test_ctrl_c_stops_training_cleanly(tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "training"
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip() == "interrupted"
    assert time.monotonic() - started < 30
    # The run was saved where it stopped and can be resumed.
    state = json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())
    assert state
    assert recurrent.Model.load(tmp_path / "run" / "last").generate(max_tokens=5, seed=0)


def test_translator_equals_the_cli(tmp_path):
    needs_binary()
    pairs = "".join(f"{' '.join(d)}\t{' '.join(reversed(d))}\n" for d in
                    (str(n * 7919 % 100000) for n in range(1, 201)))
    (tmp_path / "pairs.tsv").write_text(pairs)
    subprocess.run([str(BINARY), "seq2seq", "train", "--pairs", str(tmp_path / "pairs.tsv"), "--format", "tsv",
                    "--out", str(tmp_path / "s2s"), "--tokenizer", "char", "--hidden", "16", "--embed", "8",
                    "--layers", "1", "--batch", "8", "--threads", "1", "--steps", "20"],
                   check=True, capture_output=True, timeout=300)
    sources = ["1 2 3", "4 5"]
    (tmp_path / "src.txt").write_text("\n".join(sources) + "\n")
    cli = subprocess.run([str(BINARY), "seq2seq", "translate", str(tmp_path / "s2s"), "--input", str(tmp_path / "src.txt"),
                          "--threads", "1"], capture_output=True, text=True, check=True, timeout=120).stdout
    translator = recurrent.Translator.load(tmp_path / "s2s", threads=1)
    assert translator.translate(sources, beam=5) == cli.splitlines()
    assert translator.translate("1 2 3") == cli.splitlines()[0]
    with pytest.raises(ValueError, match="beam"):
        translator.translate("1 2", beam=0)
    with pytest.raises(recurrent.RecurrentError):
        recurrent.Translator.load(tmp_path / "nowhere")
