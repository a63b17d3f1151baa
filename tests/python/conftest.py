"""Shared fixtures: `recurrent serve` (target/debug/recurrent; build it first
with `cargo build`) on a free loopback port, with an API key, over a tiny
model it trains or over $RECURRENT_CHECKPOINT, served under the name `tiny`.
One server for the whole session; it must exit 0 on SIGTERM.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("RECURRENT_BINARY", ROOT / "target" / "debug" / "recurrent"))
API_KEY = "test-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_checkpoint(tmp):
    """A small char model trained for a few steps on a short text."""
    text = Path(tmp) / "tiny.txt"
    text.write_text("the cat sat on the mat. a dog ran.\n" * 80)
    out = Path(tmp) / "tiny"
    subprocess.run(
        [str(BINARY), "train", "--input", str(text), "--out", str(out), "--steps", "20",
         "--hidden", "32", "--embed", "8", "--layers", "1", "--seq-len", "16",
         "--batch", "4", "--threads", "1"],
        check=True, timeout=300, stdout=subprocess.DEVNULL,
    )
    return out


@pytest.fixture(scope="session")
def server():
    """(base URL, process) of a running server."""
    if not BINARY.exists():
        pytest.skip(f"{BINARY} is not built")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = os.environ.get("RECURRENT_CHECKPOINT") or tiny_checkpoint(tmp)
        port = free_port()
        proc = subprocess.Popen(
            [str(BINARY), "serve", f"tiny={checkpoint}", "--port", str(port),
             "--threads", "1", "--api-key", API_KEY],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the server did not start: " + proc.stderr.read().decode())
            time.sleep(0.1)
        yield base, proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
