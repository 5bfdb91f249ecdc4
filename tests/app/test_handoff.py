"""`ume index`, `ume status` and `ume search` handed to a running `ume serve` over HTTP.

A real `ume serve` runs as a subprocess on a free loopback port with the tiny model, a login,
`--index-under` and `--watch`; the commands run as a user types them, and their output and exit status are
compared with standalone runs on a second data dir indexed from the same folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from app.cli import main
from app.server_file import RunningServer, announce, running_server, server_file
from tests.conftest import REPO

LOGIN = "reader:s3cret"
START_S = 240.0  # importing torch and gradio on a busy 2-core machine
INDEXING = ["--mode", "both", "--max-new-tokens", "4", "--batch-size", "2"]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    data_dir: Path
    library: Path
    allowed: Path
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_library(root: Path) -> Path:
    for name, colour in (("red.png", (220, 30, 30)), ("sea/blue.png", (20, 40, 220))):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), colour).save(root / name)
    (root / "broken.jpg").write_bytes(b"not a picture")
    return root


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("handoff")
    allowed = base / "allowed"
    library = make_library(allowed / "library")
    data_dir, log = base / "data", base / "serve.log"
    command = [
        sys.executable, "-m", "app", "serve", "--data-dir", str(data_dir), "--model", str(tiny_model_dir),
        "--host", "127.0.0.1", "--port", str(free_port()), "--auth", LOGIN, "--index-under", str(allowed),
        "--watch",
    ]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "UME_AUTH": ""}
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_note(process, data_dir, log)
        yield Server(process, data_dir, library, allowed, log)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


def wait_for_note(process: subprocess.Popen[bytes], data_dir: Path, log: Path) -> RunningServer:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        found = running_server(data_dir)
        if found is not None:
            return found
        if process.poll() is not None:
            raise AssertionError(f"ume serve ended: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"ume serve did not start in {START_S} s: {log.read_text()[-3000:]}")


def ume(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def logged_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UME_AUTH", LOGIN)


@dataclass
class Standalone:
    data_dir: Path
    index_args: list[str]  # `ume index ...` of the library into `data_dir`
    first: tuple[int, dict]  # exit status and --json summary of its first run


@pytest.fixture(scope="module")
def standalone(server: Server, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Standalone:
    """The same folder indexed alone into another data dir, for comparison."""
    data_dir = tmp_path_factory.mktemp("standalone") / "data"
    args = ["index", str(server.library), "--data-dir", str(data_dir), "--model", str(tiny_model_dir)]
    args += [*INDEXING, "--json", "--no-progress"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(args)
    return Standalone(data_dir, args, (code, json.loads(printed.getvalue())))


def without_seconds(summary: dict) -> dict:
    return {key: value for key, value in summary.items() if key != "seconds"}


@pytest.mark.usefixtures("logged_in")
def test_ume_index_handed_to_the_server_reports_as_a_standalone_run(
    server: Server, standalone: Standalone, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["index", str(server.library), "--data-dir", str(server.data_dir), "--model", str(tiny_model_dir)]
    code, out, err = ume(capsys, *args, *INDEXING, "--json")
    assert "holds this index: indexing there" in err and "ume: adding reasoning to 2 items" in err
    summary = json.loads(out)
    alone_code, alone = standalone.first
    assert code == alone_code == 1  # the broken file failed
    assert without_seconds(summary) == without_seconds(alone)
    assert summary["seconds"].keys() == alone["seconds"].keys() - {"model"}  # the server's is loaded
    assert (summary["indexed"], summary["failed"], summary["points"]) == (2, 1, 2)
    assert [Path(f["path"]).name for f in summary["failures"]] == ["broken.jpg"]

    code, out, err = ume(capsys, *args, *INDEXING, "--json", "--no-progress")
    assert err == ""  # no progress asked for
    code_alone, out_alone, _ = ume(capsys, *standalone.index_args)
    assert code == code_alone == 1 and without_seconds(json.loads(out)) == without_seconds(
        json.loads(out_alone)
    )
    assert json.loads(out)["unchanged"] == 2


@pytest.mark.usefixtures("logged_in")
def test_status_and_search_handed_over_answer_as_standalone_runs(
    server: Server, standalone: Standalone, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    there, alone = ["--data-dir", str(server.data_dir)], ["--data-dir", str(standalone.data_dir)]
    status = [ume(capsys, "status", *where, "--json") for where in (there, alone)]
    assert status[0][0] == status[1][0] == 0
    assert json.loads(status[0][1]) == json.loads(status[1][1])
    code, out, _ = ume(capsys, "status", *there)
    assert code == 0 and "collection media: 2 items" in out and "broken.jpg" in out

    query = ["search", "--image", str(server.library / "sea" / "blue.png"), "--top-k", "2", "--json"]
    query += ["--after", "2000", "--sort", "newest"]  # the dates go along
    found = [ume(capsys, *query, *where, "--model", str(tiny_model_dir)) for where in (there, alone)]
    assert found[0][0] == found[1][0] == 0
    hits, hits_alone = (json.loads(out)["hits"] for _, out, _ in found)
    assert [hit["path"] for hit in hits] == [hit["path"] for hit in hits_alone]
    assert hits[0]["path"] == str(server.library / "sea" / "blue.png")
    assert json.loads(found[0][1]).keys() == json.loads(found[1][1]).keys()
    assert [round(h["score"], 4) for h in hits] == [round(h["score"], 4) for h in hits_alone]
    code, out, _ = ume(capsys, "search", "red", *there, "--top-k", "1")
    assert code == 0 and out.startswith("  1. ")


@pytest.mark.parametrize(
    ("login", "message"),
    [(None, "requires a login"), ("reader:wrong", "refused the login")],
)
def test_without_the_login_the_server_refuses_in_one_line(
    server: Server, login: str | None, message: str, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.delenv("UME_AUTH", raising=False)
    given = ["--auth", login] if login else []
    for command in (["status"], ["search", "red"], ["index", str(server.library), "--no-progress"]):
        code, out, err = ume(capsys, *command, "--data-dir", str(server.data_dir), *given)
        assert code == 2 and out == ""
        assert err.startswith("ume: error:") and message in err and err.count("\n") == 1, err


@pytest.mark.usefixtures("logged_in")
def test_a_folder_outside_what_the_server_may_index_is_refused(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = make_library(tmp_path / "elsewhere")
    code, _, err = ume(capsys, "index", str(outside), "--data-dir", str(server.data_dir), "--no-progress")
    assert code == 2 and "only folders under" in err and str(server.allowed) in err and err.count("\n") == 1


def test_the_note_of_a_dead_server_is_ignored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    announce(tmp_path, RunningServer("http://127.0.0.1:9/", dead.pid, "media", False))
    assert running_server(tmp_path) is None
    code, _, err = ume(capsys, "status", "--data-dir", str(tmp_path))
    assert code == 2 and "no collection 'media'" in err  # opened the index itself


@pytest.mark.usefixtures("logged_in")
def test_a_stopped_server_removes_its_note_and_frees_the_index(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(60) == 0, server.log.read_text()[-3000:]
    assert not server_file(server.data_dir).exists()
    assert "Traceback" not in server.log.read_text()
    code, out, _ = ume(capsys, "status", "--data-dir", str(server.data_dir), "--json")
    assert code == 0 and json.loads(out)["points"] == 2


def test_status_and_search_reach_a_running_demo(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ume demo` holds its index as `ume serve` does, and registers itself the same way."""
    library, data_dir, log, port = (
        make_library(tmp_path / "library"),
        tmp_path / "demo",
        tmp_path / "demo.log",
        free_port(),
    )
    command = [
        sys.executable, "-m", "app", "demo", "--model", str(tiny_model_dir), "--media", str(library),
        "--data-dir", str(data_dir), "--port", str(port),
    ]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "UME_AUTH": ""}
    with log.open("wb") as output:
        demo = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_S
        while running_server(data_dir) is None:  # its note: the page is up and holds the index
            assert demo.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        code, out, err = ume(capsys, "status", "--data-dir", str(data_dir), "--json")
        assert code == 0 and json.loads(out)["points"] == 2, err
        code, out, err = ume(capsys, "search", "red", "--data-dir", str(data_dir), "--top-k", "1")
        assert code == 0 and out.startswith("  1. "), err
    finally:
        demo.terminate()
        demo.wait(30)
    assert not server_file(data_dir).exists()
