"""A process killed (SIGKILL) at each step of a background build, with the real build child:
nothing written is lost, the collection opens, nothing is left behind, and the graph is built.
And a swap that survives a power loss: the new shard is on disk before info.json names it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from indexer.catalog import edge_files, edge_graph, tuning
from indexer.catalog.edge import EdgeStore
from tests.indexer.catalog.test_graph import INFO, exact_top, make_points, queries, running_child, top_ids

WAIT_S = 300
POINTS = 600

# A worker that writes, starts a build with the real child, and stops at one of its steps,
# saying so by writing the child's pid (or 0) to `reached`; the test then kills it there.
WORKER = """
import os, shutil, sys, time
from pathlib import Path
from indexer.catalog import edge_build, edge_graph, tuning
from indexer.catalog.edge import EdgeStore
from tests.indexer.catalog.test_graph import INFO, make_points

index, step, reached, points = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
tuning.QUIET_S = 3600.0


def stop_here(pid=0):
    reached.write_text(str(pid))
    time.sleep(3600)


if step == "copy":
    real_copytree = shutil.copytree

    def copying(*args, **kwargs):
        shutil.copytree = real_copytree  # its own calls for sub-folders go on as usual
        real_copytree(*args, **kwargs)
        stop_here()

    shutil.copytree = copying
elif step == "child":
    def waiting(self, poll_s=0.5):
        stop_here(self.process.pid)

    edge_build.Build.wait_for_child = waiting
elif step == "catch_up":
    def catching_up(self, name, build, staging):
        stop_here()

    edge_graph.EdgeGraph._catch_up = catching_up
elif step == "swap":
    real_swapped = edge_graph.EdgeGraph._swapped

    def swapped(self, name, build):
        real_swapped(self, name, build)
        stop_here()

    edge_graph.EdgeGraph._swapped = swapped

store = EdgeStore(index, indexing_threshold_kb=1)
if store.collection_info("media") is None:
    store.create_collection("media", INFO)
store.upsert("media", make_points(points))
with store.lock:
    store._graph.hurry("media")
if step == "catch_up":
    store.upsert("media", make_points(50, seed=1, first=points))
time.sleep(3600)
"""


def run_until(index: Path, step: str, points: int = POINTS) -> tuple[subprocess.Popen[bytes], int]:
    """Start the worker and wait until it reached `step`; returns it and the child's pid (0)."""
    reached = index.parent / f"reached-{step}"
    reached.unlink(missing_ok=True)
    command = [sys.executable, "-c", WORKER, str(index), step, str(reached), str(points)]
    worker = subprocess.Popen(command, cwd=Path(__file__).parents[3])
    deadline = time.monotonic() + WAIT_S
    while not (reached.exists() and reached.read_text()) and worker.poll() is None:
        assert time.monotonic() < deadline, f"the worker never reached {step}"
        time.sleep(0.05)
    assert worker.poll() is None, f"the worker exited before {step}"
    return worker, int(reached.read_text())


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(WAIT_S)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not (state.exists() and state.read_text().split()[2] == "Z")


def folders(index: Path) -> list[str]:
    return sorted(p.name for p in (index / "collections" / "media").iterdir())


def check_intact(index: Path, points: list, live: str) -> None:
    """Every point found, exactly; nothing left beside the live shard; the graph builds, and
    leaves nothing behind either."""
    with EdgeStore(index, indexing_threshold_kb=1) as store:
        assert store.count("media") == len(points)
        for query in queries(3):
            assert top_ids(store, query) == exact_top(points, query)
        assert [f for f in folders(index) if f not in ("info.json", "build.log", "unbuilt")] == [live]
        status = store.wait_until_ready("media", poll_s=0.1)
        assert (status.state, status.indexed, status.vectors) == ("ready", 2 * len(points), 2 * len(points))
        assert not any(f.startswith("build-") for f in folders(index))


@pytest.fixture(autouse=True)
def no_quiet_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "QUIET_S", 3600.0)


def test_killed_during_the_copy(tmp_path: Path) -> None:
    index = tmp_path / "index"
    worker, _ = run_until(index, "copy")
    assert any(f.startswith("build-") for f in folders(index))
    kill(worker)
    check_intact(index, make_points(POINTS), live="shard")


def test_killed_while_the_catch_up_copies_what_was_written_during_the_build(tmp_path: Path) -> None:
    index = tmp_path / "index"
    worker, _ = run_until(index, "catch_up")
    assert "shard-1" in folders(index)  # the finished copy, not named live
    kill(worker)
    check_intact(index, make_points(POINTS) + make_points(50, seed=1, first=POINTS), live="shard")


def test_killed_right_after_the_swap(tmp_path: Path) -> None:
    index = tmp_path / "index"
    worker, _ = run_until(index, "swap")
    kill(worker)
    with EdgeStore(index, indexing_threshold_kb=1) as store:
        status = store.graph_status("media")
        assert (status.state, status.indexed) == ("ready", 2 * POINTS)  # the swap stands
    check_intact(index, make_points(POINTS), live="shard-1")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from Linux's /proc")
def test_the_next_open_ends_a_build_child_its_killed_parent_left_running(tmp_path: Path) -> None:
    index = tmp_path / "index"
    points = 20_000  # so that the real child is still optimising when its parent dies
    worker, child = run_until(index, "child", points)
    kill(worker)
    assert alive(child), "the child finished before its parent was killed: give it more points"
    build_dirs = [f for f in folders(index) if f.startswith("build-") and not f.endswith(".lock")]
    assert len(build_dirs) == 1
    with EdgeStore(index, indexing_threshold_kb=1) as store:
        assert store.count("media") == points  # opening the collection ends the orphan first
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
        assert not any(f.startswith("build-") for f in folders(index))


def test_a_killed_build_child_is_retried_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge_graph, "RETRY_AFTER_S", 0.1)
    points = make_points(2000)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        with store.lock:
            store._graph.hurry("media")
        os.kill(running_child(store).pid, signal.SIGKILL)
        status = store.wait_until_ready("media", poll_s=0.1)
        assert (status.state, status.indexed) == ("ready", 2 * 2000)
        assert not any(f.startswith("build-") for f in folders(tmp_path / "index"))
        query = np.asarray(points[7].vectors["disc"])
        assert top_ids(store, query, 1) == [points[7].id]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names descriptors from Linux's /proc")
def test_a_swap_puts_the_new_shard_on_disk_before_info_json_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a power loss info.json must name a shard whose files reached the disk: fsync the
    copy's files and folders, then info.json, then rename it, then fsync the folder holding it."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def replace(source: object, target: object) -> None:
        events.append(("rename", str(target)))
        real_replace(source, target)  # type: ignore[arg-type]

    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", make_points(POINTS))
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(edge_files.os, "replace", replace)
        store.wait_until_ready("media", poll_s=0.1)
        monkeypatch.undo()
    folder = str((tmp_path / "index" / "collections" / "media").resolve())
    info = f"{folder}/info.json"
    swap = events.index(("rename", info))
    synced = {path for kind, path in events[:swap] if kind == "fsync"}
    new_shard = Path(folder) / "shard-1"
    files = {str(p.resolve()) for p in new_shard.rglob("*") if p.is_file()}
    assert files and files <= synced, f"not synced before the swap: {sorted(files - synced)[:3]}"
    assert str(new_shard.resolve()) in synced
    assert f"{folder}/info.tmp" in synced
    assert ("fsync", folder) in events[swap:]
