"""Search graphs built in the background, int8 quantization, and switching a collection to it.

The embedded engine builds its graph in a child process on a copy of the shard; these tests
hold that child at a gate (`gated_build`) to search and write while a build is under way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_edge import Memory, PayloadSchemaType, UpdateOperation

from indexer.catalog import edge, edge_build, edge_graph, edge_search, tuning
from indexer.catalog.collection import quantization_to_apply
from indexer.catalog.edge import EdgeStore
from indexer.catalog.open import open_store
from indexer.catalog.schema import PAYLOAD_INDEXES
from indexer.catalog.store import CollectionInfo, Match, Point, Store
from tests.indexer.catalog.gated_build import GATE_ENV
from tests.qdrant_server import QDRANT_URL_ENV

DIM = 32
POINTS = 600
INFO = CollectionInfo("tiny-ume", DIM, 3, ("disc", "gen"))
INT8 = CollectionInfo("tiny-ume", DIM, 3, ("disc", "gen"), quantization="int8")
WAIT_S = 120


def unit_rows(rng: np.random.Generator, rows: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, DIM)).astype(np.float32)  # (rows, DIM)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_points(count: int, seed: int = 0, first: int = 0) -> list[Point]:
    rng = np.random.default_rng(seed)
    disc, gen = unit_rows(rng, count), unit_rows(rng, count)
    return [
        Point(str(uuid.UUID(int=first + i + 1)), {"i": first + i}, {"disc": disc[i], "gen": gen[i]})
        for i in range(count)
    ]


def queries(count: int = 8) -> np.ndarray:
    return unit_rows(np.random.default_rng(99), count)


def exact_top(points: list[Point], query: np.ndarray, limit: int = 10) -> list[str]:
    """The true nearest ids by cosine (the vectors are unit length)."""
    matrix = np.stack([np.asarray(p.vectors["disc"]) for p in points])  # (points, DIM)
    order = np.argsort(-(matrix @ query), kind="stable")[:limit]
    return [points[i].id for i in order]


def top_ids(store: Store, query: np.ndarray, limit: int = 10) -> list[str]:
    return [hit.id for hit in store.search("media", "disc", query, limit)]


def open_engine(engine: str, path: Path) -> Store:
    if engine == "edge":
        return EdgeStore(path, indexing_threshold_kb=1)  # so a few thousand points get a graph
    if engine == "qdrant":
        return open_store(qdrant_url=os.environ[QDRANT_URL_ENV])
    return open_store(qdrant_url=f"local:{path}")


@pytest.fixture(params=["edge", "server", "qdrant"])
def engine(request: pytest.FixtureRequest) -> str:
    """The embedded engine, qdrant-client's local mode, and a real server when one is given."""
    if request.param == "qdrant":
        request.getfixturevalue("qdrant_url")
    return str(request.param)


def quantized_files(store: EdgeStore) -> list[Path]:
    return list((store.data_dir / "collections" / "media").glob("shard*/segments/*/*/quantized.data"))


def running_child(store: EdgeStore, name: str = "media") -> subprocess.Popen[bytes]:
    """The build child of the build under way, once its thread has started it."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        build = store._graph.build_of(name)
        if build is not None and build.process is not None:
            return build.process
        time.sleep(0.01)
    raise AssertionError("no build child started")


def start_build(store: EdgeStore, name: str = "media") -> None:
    """What the engine does once writes pause, now: start the build that is due."""
    with store.lock:
        store._graph.hurry(name)


@pytest.fixture(autouse=True)
def builds_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The planner waits for writes to pause before it builds: these tests say when."""
    monkeypatch.setattr(tuning, "QUIET_S", 3600.0)


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Builds wait until the returned path exists."""
    path = tmp_path / "gate"
    monkeypatch.setenv(GATE_ENV, str(path))
    monkeypatch.setattr(edge_build, "CHILD_MODULE", "tests.indexer.catalog.gated_build")
    yield path
    path.touch()


def test_searches_answer_correctly_while_the_graph_builds(tmp_path: Path, gate: Path) -> None:
    points = make_points(POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        start_build(store)
        assert store.graph_status("media").state == "building"
        for query in queries():
            assert top_ids(store, query) == exact_top(points, query)
        # writes during the build reach the live shard now and the new graph after the swap
        added = make_points(50, seed=1, first=POINTS)
        store.upsert("media", added)
        store.delete("media", [points[0].id])
        store.set_payload_where("media", Match({"i": 1}), {"tag": "kept"})
        assert store.graph_status("media").state == "building"
        gate.touch()
        status = store.wait_until_ready("media", poll_s=0.1)
        now = points[1:] + added
        assert (status.state, status.indexed, status.vectors) == ("ready", 2 * len(now), 2 * len(now))
        assert store.count("media") == len(now)
        for query in queries():
            assert top_ids(store, query) == exact_top(now, query)
        assert store.retrieve("media", [points[1].id])[0][1] == {"i": 1, "tag": "kept"}
    with EdgeStore(tmp_path / "index") as reopened:
        assert reopened.graph_status("media").state == "ready"
        assert reopened.count("media") == len(now)


def test_the_status_counts_every_write_it_follows(tmp_path: Path, gate: Path) -> None:
    """The vector count a status display shows is kept between writes: each write renews it."""
    points = make_points(POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        assert store.graph_status("media").vectors == 2 * POINTS
        store.upsert("media", make_points(5, seed=3, first=POINTS))
        assert store.graph_status("media").vectors == 2 * (POINTS + 5)
        store.delete("media", [points[0].id])
        assert store.graph_status("media").vectors == 2 * (POINTS + 4)
        store.delete_where("media", Match({"i": 1}))
        assert store.graph_status("media").vectors == 2 * (POINTS + 3)
        store.upsert("media", [Point(str(uuid.UUID(int=10**6)), {"i": -1}, {})])  # a record, no vectors
        assert store.graph_status("media").vectors == 2 * (POINTS + 3)
        start_build(store)
        store.upsert("media", make_points(2, seed=4, first=2 * POINTS))  # during the build
        assert store.graph_status("media").vectors == 2 * (POINTS + 5)
        gate.touch()
        status = store.wait_until_ready("media", poll_s=0.1)
        assert (status.state, status.vectors) == ("ready", 2 * (POINTS + 5))
        store.drop_collection("media")
        store.create_collection("media", INFO)
        assert store.graph_status("media").vectors == 0


class Held:
    """Wraps a function so that its first call matching `when` waits until `release` is set."""

    def __init__(self, function: Callable[..., Any], when: Callable[..., bool]) -> None:
        self.function, self.when = function, when
        self.reached, self.release = threading.Event(), threading.Event()

    def __call__(self, *args: Any) -> Any:
        if not self.reached.is_set() and self.when(*args):
            self.reached.set()
            self.release.wait(WAIT_S)
        return self.function(*args)


def done_while_held(action: Callable[[], Any], what: str) -> Any:
    """Run `action` in another thread, as the UI or a run would; fails if it has to wait."""
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(action()), daemon=True)
    worker.start()
    worker.join(30)
    assert done, f"{what} waited for the build's copy to be brought up to date"
    return done[0]


def test_searches_and_writes_go_on_while_a_finished_build_is_brought_up_to_date(
    tmp_path: Path, gate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build's copy is opened and caught up with the writes made during the build (seconds on
    a large collection) without holding searches or writes; only the last few writes are copied
    while searches wait, then the copy is swapped in."""
    opening = Held(edge_graph.load_shard, lambda path: path.name.startswith("shard-"))
    copying = Held(edge_graph.copy_points, lambda *args: True)
    monkeypatch.setattr(edge_graph, "load_shard", opening)
    monkeypatch.setattr(edge_graph, "copy_points", copying)
    monkeypatch.setattr(edge_graph, "SWAP_IDS", 5)  # so that the writes below need a round of their own
    points = make_points(POINTS)
    try:
        with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
            store.create_collection("media", INFO)
            store.upsert("media", points)
            start_build(store)
            during_build = make_points(40, seed=1, first=POINTS)
            store.upsert("media", during_build)
            gate.touch()
            assert opening.reached.wait(WAIT_S), "the finished build's copy was never opened"
            while_opening = make_points(40, seed=2, first=2 * POINTS)
            store.upsert("media", while_opening)
            store.delete("media", [points[0].id])
            now = points[1:] + during_build + while_opening
            found = done_while_held(lambda: top_ids(store, queries()[0]), "a search")
            assert found == exact_top(now, queries()[0])
            opening.release.set()
            assert copying.reached.wait(WAIT_S), "nothing written during the build was copied"
            assert store.graph_status("media").state == "building"
            while_copying = make_points(40, seed=3, first=3 * POINTS)

            def write() -> None:
                store.upsert("media", while_copying)
                store.set_payload_where("media", Match({"i": 1}), {"tag": "kept"})

            done_while_held(write, "a write")
            query = np.asarray(points[5].vectors["disc"])
            assert done_while_held(lambda: top_ids(store, query, 1), "a search") == [points[5].id]
            now += while_copying
            copying.release.set()
            query = np.asarray(while_copying[7].vectors["disc"])
            assert top_ids(store, query, 1) == [while_copying[7].id]
            status = store.wait_until_ready("media", poll_s=0.1)
            assert (status.state, status.indexed, status.vectors) == ("ready", 2 * len(now), 2 * len(now))
            assert store.count("media") == len(now)
            for query in queries():
                assert top_ids(store, query) == exact_top(now, query)
            assert store.retrieve("media", [points[1].id])[0][1] == {"i": 1, "tag": "kept"}
    finally:
        opening.release.set()
        copying.release.set()


def test_searches_never_run_while_the_catch_up_writes_and_it_finishes_under_constant_searching(
    tmp_path: Path, gate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copying a piece of the catch-up and running a batch of searches both hold the GIL; the
    catch-up used to starve among searchers. Now a batch waits for the piece in progress (see
    `catalog.give_way`): searchers that never stop still let the build be swapped in."""
    writing, overlaps, pieces, batches = threading.Event(), [], [0], [0]
    real_copy, real_run = edge_graph.copy_points, edge_search.run_queries

    def copying(*args: Any) -> None:
        writing.set()
        pieces[0] += 1
        time.sleep(0.01)  # a piece takes a while to write, as it does at size
        try:
            real_copy(*args)
        finally:
            writing.clear()

    def querying(shard: Any, requests: Any) -> Any:
        batches[0] += 1
        if writing.is_set():
            overlaps.append(len(requests))
        return real_run(shard, requests)

    monkeypatch.setattr(edge_graph, "copy_points", copying)
    monkeypatch.setattr(edge_search, "run_queries", querying)
    monkeypatch.setattr(edge_graph, "CATCH_UP_CHUNK", 8)
    monkeypatch.setattr(edge_graph, "SWAP_IDS", 5)
    points, during_build = make_points(POINTS), make_points(200, seed=1, first=POINTS)
    stop = threading.Event()
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        start_build(store)
        store.upsert("media", during_build)

        def searcher(query: np.ndarray) -> None:
            while not stop.is_set():
                top_ids(store, query)

        searchers = [threading.Thread(target=searcher, args=(q,), daemon=True) for q in queries(4)]
        for thread in searchers:
            thread.start()
        try:
            gate.touch()
            status = store.wait_until_ready("media", poll_s=0.1)
        finally:
            stop.set()
            for thread in searchers:
                thread.join(WAIT_S)
        assert status.state == "ready"
        assert pieces[0] >= len(during_build) // 8 and batches[0] > 0
        assert overlaps == [], f"{len(overlaps)} batches of searches ran while a piece was written"
        for query in queries():
            assert top_ids(store, query) == exact_top(points + during_build, query)


def test_a_copy_that_fails_to_open_is_removed_and_the_build_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    def fails_once(path: Path) -> object:
        if path.name.startswith("shard-") and not opened:
            opened.append(path.name)
            raise edge.StoreError(f"cannot open collection at {path}: unreadable segment")
        return load_shard(path)

    load_shard = edge_graph.load_shard
    monkeypatch.setattr(edge_graph, "load_shard", fails_once)
    monkeypatch.setattr(edge_graph, "RETRY_AFTER_S", 0.2)
    points = make_points(POINTS)
    seen: list[str] = []
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        status = store.wait_until_ready("media", lambda s: seen.append(s.describe()), poll_s=0.05)
        assert (status.state, status.indexed) == ("ready", 2 * POINTS)
        assert any("a build failed (cannot open collection" in line for line in seen)
        folder = tmp_path / "index" / "collections" / "media"
        deadline = time.monotonic() + WAIT_S  # the old shard is removed in the background
        while (folder / "shard").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["shard-1"]
        for query in queries():
            assert top_ids(store, query) == exact_top(points, query)


def test_a_build_that_keeps_failing_is_given_up_with_a_clear_status_and_tried_again_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(path: Path) -> object:
        raise edge.StoreError(f"cannot open collection at {path}: disk full")

    monkeypatch.setattr(edge_graph, "load_shard", never)
    monkeypatch.setattr(edge_graph, "RETRY_AFTER_S", 0.05)
    points = make_points(POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        status = store.wait_until_ready("media", poll_s=0.05)
        assert status.state == "exact"
        assert f"the last {edge_graph.MAX_TRIES} builds failed" in status.describe()
        assert "disk full" in status.describe()
        assert top_ids(store, queries()[0]) == exact_top(points, queries()[0])  # still searchable
        monkeypatch.undo()
        monkeypatch.setattr(tuning, "QUIET_S", 3600.0)
        status = store.wait_until_ready("media", poll_s=0.05)  # the next run tries again
        assert (status.state, status.indexed, status.note) == ("ready", 2 * POINTS, "")


def test_a_build_killed_with_another_due_behind_it_is_retried(
    tmp_path: Path, gate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that ends during a build wants one more; killing the build's child used to drop
    both, leaving the collection on exact scans with nothing pending."""
    monkeypatch.setattr(edge_graph, "RETRY_AFTER_S", 0.2)
    points, more = make_points(POINTS), make_points(600, seed=1, first=POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        start_build(store)
        store.upsert("media", more)  # a run's end, during the build
        running_child(store).kill()
        gate.touch()
        status = store.wait_until_ready("media", poll_s=0.1)
        assert (status.state, status.indexed, status.vectors) == ("ready", 2 * 1200, 2 * 1200)
        for query in queries():
            assert top_ids(store, query) == exact_top(points + more, query)


def test_the_status_of_a_failed_build_says_it_will_be_retried(
    tmp_path: Path, gate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    points = make_points(POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        start_build(store)
        running_child(store).kill()
        build = store._graph.build_of("media")
        assert build is not None and build.worker is not None
        build.worker.join(WAIT_S)
        status = store.graph_status("media")
        assert status.state == "building"
        assert "a build failed (the build process was killed" in status.describe()
        assert f"(2 of {edge_graph.MAX_TRIES})" in status.describe()


def test_overwritten_points_get_a_graph_again(tmp_path: Path) -> None:
    """Re-indexing changed files writes the same ids again; the engine's count of indexed
    vectors still holds their old versions, so it took the collection for built, and every
    point was left to exact scans."""
    points = make_points(4000)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=64) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        assert store.wait_until_ready("media", poll_s=0.1).indexed == 2 * 4000
        again = make_points(4000, seed=5)  # the same ids, new vectors
        store.upsert("media", again)
        status = store.graph_status("media")
        assert (status.state, status.indexed) == ("ready", 0)
        assert "scanned exactly" in status.describe()
        status = store.wait_until_ready("media", poll_s=0.1)
        assert (status.state, status.indexed, status.vectors) == ("ready", 2 * 4000, 2 * 4000)
        assert 2 * 4000 <= store.indexed_vector_count("media") < 2 * 2 * 4000  # old versions gone
        for query in queries():
            assert top_ids(store, query) == exact_top(again, query)


def test_overwrites_a_killed_process_made_are_built_by_the_next_one(tmp_path: Path) -> None:
    points = make_points(4000)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=64) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        store.wait_until_ready("media", poll_s=0.1)
    code = (
        "import sys, time\n"
        "from indexer.catalog import tuning\n"
        "tuning.QUIET_S = 3600.0\n"
        "from indexer.catalog.edge import EdgeStore\n"
        "from tests.indexer.catalog.test_graph import make_points\n"
        "store = EdgeStore(sys.argv[1], indexing_threshold_kb=64)\n"
        "store.upsert('media', make_points(4000, seed=5))\n"
        "time.sleep(3 * 0.5)  # the planner notes what lacks a graph\n"
        "import os; os._exit(0)  # killed: nothing closed\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "index")], check=True, timeout=WAIT_S)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=64) as store:
        assert store.graph_status("media").indexed == 0
        status = store.wait_until_ready("media", poll_s=0.1)
        assert (status.state, status.indexed) == ("ready", 2 * 4000)


def test_the_engine_builds_by_itself_once_writes_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ume serve` indexing a folder never waits for the graph: the engine builds it once the
    writes stop."""
    monkeypatch.setattr(tuning, "QUIET_S", 0.3)
    points = make_points(POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        deadline = time.monotonic() + WAIT_S
        while store.graph_status("media").indexed < 2 * POINTS and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.graph_status("media").describe() == (
            f"search graph: ready ({2 * POINTS:,} of {2 * POINTS:,} vectors in it)"
        )


def test_a_run_that_keeps_writing_gets_one_build_at_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default the graph is not grown during a run: no build rewrites the collection while
    writes go on, and the graph covers everything once they pause."""
    monkeypatch.setattr(tuning, "QUIET_S", 1.5)
    written = 12_000  # more than any growth step would let pass
    points = make_points(written)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        for first in range(0, written, 1000):  # a write every 0.25 s: never a pause of QUIET_S
            store.upsert("media", points[first : first + 1000])
            time.sleep(0.25)
            assert store._graph.build_of("media") is None
        deadline = time.monotonic() + WAIT_S
        while store.graph_status("media").indexed < 2 * written and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.graph_status("media").indexed == 2 * written


def test_writes_that_go_on_grow_the_graph_every_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "GROW_EVERY_POINTS", 300)
    points = make_points(POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points[:299])
        time.sleep(3 * edge_graph.PLAN_POLL_S)
        assert store._graph.build_of("media") is None  # below a step, writes going on
        store.upsert("media", points[299:])
        deadline = time.monotonic() + WAIT_S
        while store.graph_status("media").indexed == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.graph_status("media").indexed >= 2 * 300


class CountingShard:
    """A shard that notes how often it is asked to count (each count scans every point)."""

    def __init__(self, shard: object) -> None:
        self.shard, self.counts = shard, 0

    def count(self, *args: object) -> int:
        self.counts += 1
        return self.shard.count(*args)  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self.shard, name)


def test_the_status_never_shows_the_graph_ready_while_writes_made_during_a_build_lack_one(
    tmp_path: Path, gate: Path
) -> None:
    """`ume index` waits until searching is at full speed: points written during a build are
    in the swapped-in copy but not in its graph, so waiting goes on to the next build."""
    points, added = make_points(POINTS), make_points(50, seed=1, first=POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        start_build(store)
        store.upsert("media", added)
        gate.touch()
        status = store.wait_until_ready("media", poll_s=0.01)
        assert (status.state, status.indexed, status.vectors) == (
            "ready",
            2 * (POINTS + 50),
            2 * (POINTS + 50),
        )
        for query in queries():
            assert top_ids(store, query) == exact_top(points + added, query)


def test_a_status_display_polling_between_writes_scans_the_collection_once(tmp_path: Path) -> None:
    """The Index tab asks every 2 s, and each count scans every point while searches wait."""
    with EdgeStore(tmp_path / "index") as store:
        store.create_collection("media", INFO)
        store.upsert("media", make_points(50))
        counting = CountingShard(store.live_shard("media"))
        store._shards["media"] = counting  # type: ignore[assignment]
        statuses = [store.graph_status("media") for _ in range(10)]
        assert {s.vectors for s in statuses} == {100}
        assert counting.counts == len(INFO.vectors)  # one count per vector name, then kept


def test_adding_a_few_items_to_a_graph_starts_no_rebuild(tmp_path: Path) -> None:
    points = make_points(POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=64) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        indexed = store.wait_until_ready("media", poll_s=0.1).indexed
        few = make_points(20, seed=2, first=POINTS)
        store.upsert("media", few)
        start_build(store)
        assert store._graph.build_of("media") is None
        status = store.graph_status("media")
        assert (status.state, status.indexed) == ("ready", indexed)
        assert top_ids(store, np.asarray(few[3].vectors["disc"]), 1) == [few[3].id]


def segments(store: EdgeStore) -> int:
    return store.live_shard("media").info().segments_count  # what every search visits


def grow_in_pieces(store: EdgeStore, pieces: int) -> list[Point]:
    """A run writing 100 points at a time and growing its graph as it goes."""
    store.create_collection("media", INFO)
    written: list[Point] = []
    for part in range(pieces):
        written += make_points(100, seed=10 + part, first=100 * part)
        store.upsert("media", written[-100:])
        store.wait_until_ready("media", poll_s=0.1)
    return written


def test_a_collection_grown_in_many_builds_keeps_few_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each build adds a segment, and a search visits every one: the engine keeps at most
    `tuning.SEGMENTS` by merging the smallest as they come."""
    monkeypatch.setattr(tuning, "SEGMENTS", 2)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        builds = tuning.SEGMENTS + 2
        written = grow_in_pieces(store, builds)
        assert segments(store) <= tuning.SEGMENTS + 1  # the one taking writes counted
        assert store.graph_status("media").indexed == 2 * 100 * builds
        for query in queries():
            assert top_ids(store, query) == exact_top(written, query)


def test_a_collection_grown_in_more_segments_is_merged_by_its_next_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collection grown when ume kept more segments is merged once it is next open."""
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        written = grow_in_pieces(store, 5)  # up to tuning.SEGMENTS of 4
        pieces = segments(store)
    monkeypatch.setattr(tuning, "SEGMENTS", 2)
    assert pieces > tuning.SEGMENTS + 1
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        status = store.wait_until_ready("media", poll_s=0.1)
        assert (status.state, status.indexed, status.vectors) == ("ready", 2 * 500, 2 * 500)
        assert segments(store) <= tuning.SEGMENTS + 1 < pieces  # + the one taking writes
        for query in queries():
            assert top_ids(store, query) == exact_top(written, query)
        start_build(store)  # merged already: nothing to do
        assert store._graph.build_of("media") is None


def built(store: Store, info: CollectionInfo, points: list[Point]) -> None:
    """A collection holding `points`, its search graph built."""
    store.create_collection("media", info)
    store.upsert("media", points)
    store.wait_until_ready("media", poll_s=0.1)


def test_an_int8_collection_finds_what_full_precision_finds(engine: str, tmp_path: Path) -> None:
    points = make_points(POINTS)
    with open_engine(engine, tmp_path / "int8") as store:
        built(store, INT8, points)
        if isinstance(store, EdgeStore):
            assert quantized_files(store), "the engine kept no int8 vectors"
        for query in queries():
            assert top_ids(store, query) == exact_top(points, query)
        assert store.collection_info("media") == INT8


def test_switching_to_int8_keeps_every_point_and_answer(engine: str, tmp_path: Path) -> None:
    points = make_points(POINTS)
    with open_engine(engine, tmp_path / "index") as store:
        built(store, INFO, points)
        before = [top_ids(store, query) for query in queries()]
        if isinstance(store, EdgeStore):
            assert not quantized_files(store)
        store.set_quantization("media", "int8")
        store.wait_until_ready("media", poll_s=0.1)
        assert store.collection_info("media") == INT8
        if isinstance(store, EdgeStore):
            assert quantized_files(store), "the switch kept no int8 vectors"
        assert store.count("media") == POINTS
        assert [top_ids(store, query) for query in queries()] == before
    with open_engine(engine, tmp_path / "index") as reopened:
        assert reopened.collection_info("media") == INT8
        assert reopened.count("media") == POINTS
        assert [top_ids(reopened, query) for query in queries()] == before


def test_a_large_collection_switches_to_int8_unless_full_precision_was_chosen(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tuning, "QUANTIZE_ABOVE_POINTS", 500)
    items = [dataclasses.replace(p, payload={"record": "item", "kind": "image"}) for p in make_points(POINTS)]
    with open_engine(engine, tmp_path / "index") as store:
        built(store, INFO, items)
        assert store.collection_info("media") == INT8
        store.create_collection("chosen", dataclasses.replace(INFO, quantization="none"))
        store.upsert("chosen", items)
        store.wait_until_ready("chosen", poll_s=0.1)
        assert store.collection_info("chosen").quantization == "none"  # type: ignore[union-attr]


def test_a_run_switches_only_to_a_quantization_it_asks_for() -> None:
    full = INFO
    assert quantization_to_apply(full, None) is None  # the engine decides by size
    assert quantization_to_apply(INT8, "int8") is None
    assert quantization_to_apply(INT8, "none") == "none"
    assert quantization_to_apply(full, "int8") == "int8"
    assert quantization_to_apply(None, "int8") is None  # no collection: nothing to switch


def test_int8_asked_for_during_a_build_follows_it(tmp_path: Path, gate: Path) -> None:
    points = make_points(POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        start_build(store)
        store.set_quantization("media", "int8")
        assert store.collection_info("media") == INFO  # not yet: searches still use the old one
        gate.touch()
        assert store.wait_until_ready("media", poll_s=0.1).state == "ready"
        assert store.collection_info("media") == INT8
        assert quantized_files(store)
        for query in queries():
            assert top_ids(store, query) == exact_top(points, query)


def test_collections_written_before_builds_were_swapped_open_unchanged(tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "index") as store:
        store.create_collection("media", INFO)
        store.upsert("media", make_points(10))
    info_file = tmp_path / "index" / "collections" / "media" / "info.json"
    legacy = {k: v for k, v in json.loads(info_file.read_text()).items() if k != "shard"}
    info_file.write_text(json.dumps(legacy))  # no "shard", no "quantization": an older ume's
    with EdgeStore(tmp_path / "index") as store:
        assert store.collection_info("media") == INFO
        assert store.count("media") == 10
        assert store.graph_status("media").state == "exact"


def field_memory(store: EdgeStore) -> dict[str, object]:
    schema = store.live_shard("media").info().payload_schema
    return {name: getattr(index.params, "memory", None) for name, index in schema.items()}


def kinds_and_folders(points: list[Point]) -> list[Point]:
    """The points with a kind and a folder, as filters see items."""
    return [
        dataclasses.replace(p, payload={"kind": ("image", "video")[i % 2], "folders": ["/a", f"/a/{i % 3}"]})
        for i, p in enumerate(points)
    ]


def test_a_new_collection_keeps_its_payload_indexes_on_disk(tmp_path: Path) -> None:
    """Held in RAM, the payload indexes of a real library took ~2.3 KB per item, so a million
    items wanted ~5.6 GiB instead of ~3.4 (`benchmarks/item_memory.py`)."""
    with EdgeStore(tmp_path / "index") as store:
        store.create_collection("media", INFO)
        memory = field_memory(store)
    assert set(memory) == set(PAYLOAD_INDEXES)
    assert all(placement == Memory.Cold for placement in memory.values())


def test_a_build_moves_payload_indexes_held_in_ram_to_disk_and_filters_still_answer(tmp_path: Path) -> None:
    points = kinds_and_folders(make_points(POINTS))
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        shard = store.live_shard("media")
        for name in ("kind", "folders"):  # as collections made before indexes lived on disk hold them
            shard.update(UpdateOperation.delete_field_index(name))
            shard.update(UpdateOperation.create_field_index(name, PayloadSchemaType.Keyword))
        store.upsert("media", points)
        assert field_memory(store)["kind"] is None
        videos_under = Match({"kind": "video", "folders": "/a/1"})
        before = store.count("media", videos_under)
        store.wait_until_ready("media", poll_s=0.1)
        assert all(placement == Memory.Cold for placement in field_memory(store).values())
        assert store.count("media", videos_under) == before == POINTS // 6
        query = queries(1)[0]
        wanted = [p for p in points if p.payload["kind"] == "video" and "/a/1" in p.payload["folders"]]
        found = [hit.id for hit in store.search("media", "disc", query, 10, videos_under)]
        assert found == exact_top(wanted, query)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_a_build_child_and_the_threads_it_starts_run_only_on_idle_cores() -> None:
    """A niced build still took its share of a core a search waited for (`edge_build.IDLE_PRIORITY`)."""
    code = (
        "import os, threading\n"
        "from indexer.catalog.edge_build import lower_priority\n"
        "lower_priority(idle=True)\n"
        "seen = []\n"
        "engine = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))\n"
        "engine.start(); engine.join()\n"
        "print(os.sched_getscheduler(0), seen[0], os.getpriority(os.PRIO_PROCESS, 0))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    policy, started_later, niceness = map(int, done.stdout.split())
    assert policy == started_later == os.SCHED_IDLE
    assert niceness == edge_build.NICENESS


def thread_name(task: Path) -> str:
    """A thread's name, or "" when it exited between listing /proc/self/task and reading it."""
    try:
        return (task / "comm").read_text()
    except FileNotFoundError:
        return ""


def search_threads() -> int:
    """The engine's search pool threads running in this process (named edge-search-N)."""
    return sum(thread_name(task).startswith("edge-search") for task in Path("/proc/self/task").iterdir())


def search_threads_once_settled(expected: int) -> int:
    """`search_threads()`, given up to 10 s to reach `expected`: a closed store's threads exit
    asynchronously, so they may still be listed just after it closes."""
    deadline = time.monotonic() + 10.0
    while (count := search_threads()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads are listed in Linux's /proc")
def test_a_collection_searches_on_one_thread_so_that_a_build_gets_the_other_cores(tmp_path: Path) -> None:
    """By default the engine gives each shard one search thread per core, and a query's segments
    were read on all of them, leaving a build's child (which runs on idle cores only) none; a
    collection, new or rebuilt, keeps to `tuning.SEARCH_THREADS`."""
    before = search_threads_once_settled(0)  # other tests' closed stores may still be exiting
    expected = before + tuning.SEARCH_THREADS
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", make_points(POINTS))
        top_ids(store, queries()[0])
        assert search_threads_once_settled(expected) == expected
        store.wait_until_ready("media", poll_s=0.1)
        top_ids(store, queries()[0])
        assert search_threads_once_settled(expected) == expected
    with EdgeStore(tmp_path / "index") as reopened:
        top_ids(reopened, queries()[0])
        assert search_threads_once_settled(expected) == expected
