"""`recurrent train --tensorboard DIR` read back by TensorBoard's own reader
(EventAccumulator): every step's training loss, learning rate and gradient
norm equal the run's metrics.jsonl, every validation is there, and the
closing sample is a text event. Skips without the `tensorboard` package
unless RECURRENT_REQUIRE_TENSORBOARD is set.
"""

import json
import os
import subprocess

import pytest

from conftest import BINARY

if os.environ.get("RECURRENT_REQUIRE_TENSORBOARD"):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util
else:
    EventAccumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator").EventAccumulator
    tensor_util = pytest.importorskip("tensorboard.util.tensor_util")


def test_a_run_reads_back_in_tensorboard(tmp_path):
    if not BINARY.exists():
        pytest.skip(f"{BINARY} is not built")
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. a dog ran home.\n" * 60)
    logs = tmp_path / "logs"
    done = subprocess.run(
        [str(BINARY), "train", "--input", str(text), "--out", str(tmp_path / "run"),
         "--tensorboard", str(logs), "--steps", "30", "--eval-every", "10",
         "--hidden", "16", "--embed", "8", "--layers", "1", "--seq-len", "16",
         "--batch", "4", "--threads", "1", "--sample-length", "0"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    valid = [r for r in records if r["kind"] != "train"]
    assert len(train) == 30 and valid

    events = EventAccumulator(str(logs), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    for tag in ("train/loss", "train/bits_per_token", "train/learning_rate", "train/grad_norm",
                "train/tokens_per_second", "valid/loss", "valid/perplexity", "valid/accuracy"):
        assert tag in tags["scalars"], tag
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [r["step"] for r in train]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in train], rel=1e-6)
    assert [e.value for e in events.Scalars("train/learning_rate")] == \
        pytest.approx([r["lr"] for r in train], rel=1e-6)
    assert [e.value for e in events.Scalars("train/grad_norm")] == \
        pytest.approx([r["grad_norm"] for r in train], rel=1e-6)
    assert [e.value for e in events.Scalars("valid/loss")] == \
        pytest.approx([r["loss"] for r in valid], rel=1e-6)
    sample = events.Tensors("sample")
    assert len(sample) == 1 and sample[0].step == 30
    assert tensor_util.make_ndarray(sample[0].tensor_proto).item().decode().startswith("```\n")
