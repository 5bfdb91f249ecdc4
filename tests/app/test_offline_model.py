"""Commands on a machine without the default model and without a network.

Each runs as a user types it, in a process of its own, with an empty Hugging Face cache and the
hub either switched off (`HF_HUB_OFFLINE=1`) or unreachable (its address a closed local port):
the command must stop at once with one line that names the choices, never wait through retries.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from app.server_file import running_server
from tests.app.test_handoff import free_port
from tests.conftest import REPO

MISSING = "the model zhibinlan/UME-R1-2B is not on this machine"
CHOICES = "run `ume download-model` while online, or pass --model DIR (try --model models/ume-r1-tiny-world"
START_S = 240.0  # importing torch and gradio on a busy machine


def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once, as offline."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def offline_env(tmp_path: Path, hub_off: bool) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.endswith("_OFFLINE")}
    env.pop("UME_MODEL", None)
    env |= {"HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    if hub_off:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port()}"
    return env


def ume(tmp_path: Path, hub_off: bool, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app", *args]
    env = offline_env(tmp_path, hub_off)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=START_S)


@pytest.mark.parametrize("hub_off", [True, False], ids=["HF_HUB_OFFLINE", "unreachable"])
def test_indexing_without_the_model_offline_says_so_in_one_line(tmp_path: Path, hub_off: bool) -> None:
    library = tmp_path / "mine"
    library.mkdir()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(library / "red.png")
    done = ume(tmp_path, hub_off, "index", str(library), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"ume: error: {MISSING} (")
    assert ("HF_HUB_OFFLINE is set" if hub_off else "cannot be reached") in done.stderr
    assert CHOICES in done.stderr


def test_download_model_offline_says_so_in_one_line(tmp_path: Path) -> None:
    done = ume(tmp_path, True, "download-model")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr == (
        "ume: error: cannot download zhibinlan/UME-R1-2B: HF_HUB_OFFLINE is set; "
        "connect to the network and run it again\n"
    )


def test_serve_without_the_model_says_why_and_that_watching_is_off(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "serve.log"
    command = [
        sys.executable, "-m", "app", "serve", "--collection", "mine", "--watch", "--data-dir", str(data_dir),
        "--port", str(free_port()),
    ]  # fmt: skip
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=REPO, env=offline_env(tmp_path, False), stderr=output)
    try:
        deadline = time.monotonic() + START_S
        while "--watch is off" not in log.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        assert running_server(data_dir) is not None, log.read_text()[-3000:]  # serving the page
        said = log.read_text()
    finally:
        process.terminate()
        process.wait(30)
    lines = said.splitlines()
    assert lines[0].startswith(f"ume: searching and indexing are off: {MISSING} (") and CHOICES in lines[0]
    assert "ume: warning: --watch is off:" in said and "Traceback" not in said
    assert "retry" not in said.lower()
