"""`recurrent tune --tensorboard DIR` read back by TensorBoard's own readers:
the hparams plugin finds the experiment (every parameter of the space and the
metrics) in the root run and one session per trial with its values, status
and validation loss equal to the study's results.json. Skips without the
`tensorboard` package unless RECURRENT_REQUIRE_TENSORBOARD is set.
"""

import json
import os
import subprocess

import pytest

from conftest import BINARY

if os.environ.get("RECURRENT_REQUIRE_TENSORBOARD"):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2, api_pb2
else:
    EventMultiplexer = pytest.importorskip(
        "tensorboard.backend.event_processing.event_multiplexer").EventMultiplexer
    plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")
    api_pb2 = pytest.importorskip("tensorboard.plugins.hparams.api_pb2")


def test_a_study_reads_back_in_the_hparams_plugin(tmp_path):
    if not BINARY.exists():
        pytest.skip(f"{BINARY} is not built")
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. a dog ran home.\n" * 60)
    logs = tmp_path / "logs"
    study = tmp_path / "study"
    done = subprocess.run(
        [str(BINARY), "tune", "--input", str(text), "--out", str(study),
         "--tensorboard", str(logs), "--param", "hidden=8,16", "--param", "cell=lstm,gru",
         "--param", "lr=1e-3..1e-2:log", "--param", "batch=4", "--param", "seq_len=16",
         "--param", "embed=8", "--param", "layers=1", "--sampler", "random", "--trials", "3",
         "--max-budget", "1k", "--threads", "1"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads((study / "results.json").read_text())

    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(logs))
    mux.Reload()
    content = mux.PluginRunToTagToContent("hparams")

    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["."]["_hparams_/experiment"]).experiment
    infos = {h.name: h for h in experiment.hparam_infos}
    assert set(infos) == {"batch", "cell", "embed", "hidden", "layers", "lr", "seq_len"}
    assert infos["cell"].type == api_pb2.DATA_TYPE_STRING
    assert [v.string_value for v in infos["cell"].domain_discrete.values] == ["lstm", "gru"]
    assert infos["lr"].type == api_pb2.DATA_TYPE_FLOAT64
    assert (infos["lr"].domain_interval.min_value, infos["lr"].domain_interval.max_value) == \
        pytest.approx((1e-3, 1e-2))
    assert [m.name.tag for m in experiment.metric_infos] == \
        ["hparams/val_loss", "hparams/bits_per_token"]

    for i, trial in enumerate(results["trial"]):
        run = f"hparams/trial-{trial:04d}"
        start = plugin_data_pb2.HParamsPluginData.FromString(
            content[run]["_hparams_/session_start_info"]).session_start_info
        params = results["params"][i]
        assert start.hparams["cell"].string_value == params["cell"]
        assert start.hparams["hidden"].number_value == params["hidden"]
        assert start.hparams["lr"].number_value == pytest.approx(params["lr"])
        end = plugin_data_pb2.HParamsPluginData.FromString(
            content[run]["_hparams_/session_end_info"]).session_end_info
        assert end.status == api_pb2.STATUS_SUCCESS
        loss = mux.Tensors(run, "hparams/val_loss") if "hparams/val_loss" in \
            mux.GetAccumulator(run).Tags().get("tensors", []) else None
        scalars = mux.Scalars(run, "hparams/val_loss") if loss is None else None
        value = scalars[-1].value if scalars else float(loss[-1].tensor_proto.float_val[0])
        assert value == pytest.approx(results["mean_val_loss"][i], rel=1e-6)

    # Each trial's training curves are there too.
    assert "valid/loss" in mux.GetAccumulator("trial-0000").Tags()["scalars"]
