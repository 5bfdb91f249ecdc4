"""Search graphs built in the background, int8 quantization, and switching a collection to it.

The embedded engine builds its graph in a child process on a copy of the shard; these tests
hold that child at a gate (`gated_build`) to search and write while a build is under way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
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

from indexer.catalog import edge, edge_build, tuning
from indexer.catalog.collection import quantization_to_apply
from indexer.catalog.edge import EdgeStore
from indexer.catalog.open import open_store
from indexer.catalog.schema import PAYLOAD_INDEXES
from indexer.catalog.store import CollectionInfo, Match, Point, Store, wait_for_graph
from indexer.catalog.tuning import QUANTIZE_ABOVE_POINTS
from tests.indexer.catalog.gated_build import GATE_ENV

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
    return open_store(qdrant_url=f"local:{path}")


def quantized_files(store: EdgeStore) -> list[Path]:
    return list((store.data_dir / "collections" / "media").glob("shard*/segments/*/*/quantized.data"))


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
        store.finalize("media")
        assert store.graph_status("media").state == "building"
        for query in queries():
            assert top_ids(store, query) == exact_top(points, query)
        # writes during the build reach the live shard now and the new graph after the swap
        added = make_points(50, seed=1, first=POINTS)
        store.upsert("media", added)
        store.delete("media", [points[0].id])
        store.set_payload_where("media", Match({"i": 1}), {"tag": "kept"})
        store.finalize("media")  # a second run ends during the build: its points get a graph next
        assert store.graph_status("media").state == "building"
        gate.touch()
        status = wait_for_graph(store, "media", poll_s=0.1)
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
        store.finalize("media")
        store.upsert("media", make_points(2, seed=4, first=2 * POINTS))  # during the build
        assert store.graph_status("media").vectors == 2 * (POINTS + 5)
        gate.touch()
        status = wait_for_graph(store, "media", poll_s=0.1)
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
    opening = Held(edge.load_shard, lambda path: path.name.startswith("shard-"))
    copying = Held(edge.copy_points, lambda *args: True)
    monkeypatch.setattr(edge, "load_shard", opening)
    monkeypatch.setattr(edge, "copy_points", copying)
    monkeypatch.setattr(edge, "SWAP_IDS", 5)  # so that the writes below need a round of their own
    points = make_points(POINTS)
    try:
        with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
            store.create_collection("media", INFO)
            store.upsert("media", points)
            store.finalize("media")
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
                store.finalize("media")  # a run ends meanwhile: its points get a graph next

            done_while_held(write, "a write")
            query = np.asarray(points[5].vectors["disc"])
            assert done_while_held(lambda: top_ids(store, query, 1), "a search") == [points[5].id]
            now += while_copying
            copying.release.set()
            query = np.asarray(while_copying[7].vectors["disc"])
            assert top_ids(store, query, 1) == [while_copying[7].id]
            status = wait_for_graph(store, "media", poll_s=0.1)
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
    real_copy, real_run = edge.copy_points, edge.run_queries

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

    monkeypatch.setattr(edge, "copy_points", copying)
    monkeypatch.setattr(edge, "run_queries", querying)
    monkeypatch.setattr(edge, "CATCH_UP_CHUNK", 8)
    monkeypatch.setattr(edge, "SWAP_IDS", 5)
    points, during_build = make_points(POINTS), make_points(200, seed=1, first=POINTS)
    stop = threading.Event()
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        store.finalize("media")
        store.upsert("media", during_build)

        def searcher(query: np.ndarray) -> None:
            while not stop.is_set():
                top_ids(store, query)

        searchers = [threading.Thread(target=searcher, args=(q,), daemon=True) for q in queries(4)]
        for thread in searchers:
            thread.start()
        try:
            gate.touch()
            status = wait_for_graph(store, "media", poll_s=0.1)
        finally:
            stop.set()
            for thread in searchers:
                thread.join(WAIT_S)
        assert status.state == "ready"
        assert pieces[0] >= len(during_build) // 8 and batches[0] > 0
        assert overlaps == [], f"{len(overlaps)} batches of searches ran while a piece was written"
        for query in queries():
            assert top_ids(store, query) == exact_top(points + during_build, query)


def test_a_copy_that_fails_to_open_is_removed_and_the_next_build_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    def fails_once(path: Path) -> object:
        if path.name.startswith("shard-") and not opened:
            opened.append(path.name)
            raise edge.StoreError(f"cannot open collection at {path}: unreadable segment")
        return load_shard(path)

    load_shard = edge.load_shard
    monkeypatch.setattr(edge, "load_shard", fails_once)
    points = make_points(POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        store.finalize("media")
        assert wait_for_graph(store, "media", poll_s=0.1).state == "exact"  # the build failed
        folder = tmp_path / "index" / "collections" / "media"
        assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["shard"]
        store.finalize("media")  # the next run's end builds again
        status = wait_for_graph(store, "media", poll_s=0.1)
        assert (status.state, status.indexed) == ("ready", 2 * POINTS)
        for query in queries():
            assert top_ids(store, query) == exact_top(points, query)


class CountingShard:
    """A shard that notes how often it is asked to count (each count scans every point)."""

    def __init__(self, shard: object) -> None:
        self.shard, self.counts = shard, 0

    def count(self, *args: object) -> int:
        self.counts += 1
        return self.shard.count(*args)  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self.shard, name)


def test_the_status_never_shows_the_graph_ready_between_a_build_and_the_one_asked_for_during_it(
    tmp_path: Path, gate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that ends during a build gets one more build right after it: `ume index` waits for
    the status to say ready, so it must not say so in between (it used to, for a moment after the
    swap, and a run then ended reporting a graph that left its last points out)."""
    seen: list[str] = []
    points = make_points(POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        describe = edge.describe_phases  # the store logs each swap with its phases

        def status_at_swap(phases: dict[str, float]) -> str:
            seen.append(store.graph_status("media").state)
            return describe(phases)

        monkeypatch.setattr(edge, "describe_phases", status_at_swap)
        store.create_collection("media", INFO)
        store.upsert("media", points)
        store.finalize("media", final=False)  # a build while the run goes on
        added = make_points(50, seed=1, first=POINTS)
        store.upsert("media", added)
        store.finalize("media")  # the run's end, during the build
        gate.touch()
        status = wait_for_graph(store, "media", poll_s=0.01)
        assert (status.state, status.indexed, status.vectors) == (
            "ready",
            2 * (POINTS + 50),
            2 * (POINTS + 50),
        )
        for query in queries():
            assert top_ids(store, query) == exact_top(points + added, query)
    assert seen[0] == "building"  # the swap of the first build: the next one already registered


def test_a_status_display_polling_between_writes_scans_the_collection_once(tmp_path: Path) -> None:
    """The Index tab asks every 2 s, and each count scans every point while searches wait."""
    with EdgeStore(tmp_path / "index") as store:
        store.create_collection("media", INFO)
        store.upsert("media", make_points(50))
        counting = CountingShard(store._shard("media"))
        store._shards["media"] = counting  # type: ignore[assignment]
        statuses = [store.graph_status("media") for _ in range(10)]
        assert {s.vectors for s in statuses} == {100}
        assert counting.counts == len(INFO.vectors)  # one count per vector name, then kept


def test_adding_a_few_items_to_a_graph_starts_no_rebuild(tmp_path: Path) -> None:
    points = make_points(POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=64) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        store.finalize("media")
        indexed = wait_for_graph(store, "media", poll_s=0.1).indexed
        few = make_points(20, seed=2, first=POINTS)
        store.upsert("media", few)
        store.finalize("media")
        status = store.graph_status("media")
        assert (status.state, status.indexed) == ("ready", indexed)
        assert top_ids(store, np.asarray(few[3].vectors["disc"]), 1) == [few[3].id]


def segments(store: EdgeStore) -> int:
    return store._shard("media").info().segments_count  # what every search visits


def grow_in_pieces(store: EdgeStore, pieces: int) -> list[Point]:
    """A run writing 100 points at a time and growing its graph as it goes."""
    store.create_collection("media", INFO)
    written: list[Point] = []
    for part in range(pieces):
        written += make_points(100, seed=10 + part, first=100 * part)
        store.upsert("media", written[-100:])
        store.finalize("media", final=False)
        wait_for_graph(store, "media", poll_s=0.1)
    return written


def test_a_run_grown_in_many_builds_keeps_few_segments_and_ends_without_a_merge(tmp_path: Path) -> None:
    """Builds during a run each add a segment, and a search visits every one (`benchmarks/segments.py`):
    the engine keeps at most `tuning.SEGMENTS` by merging the smallest as they come, so searches
    stay fast while the run goes on and its end has nothing left to merge."""
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        builds = tuning.MERGE_ABOVE_SEGMENTS + 2
        written = grow_in_pieces(store, builds)
        assert segments(store) <= tuning.MERGE_ABOVE_SEGMENTS  # the one taking writes counted
        assert store.graph_status("media").indexed == 2 * 100 * builds
        for query in queries():
            assert top_ids(store, query) == exact_top(written, query)
        store.finalize("media")  # the run's end: every point is in a graph, few segments
        assert store.graph_status("media").state == "ready"


def test_the_end_of_a_run_merges_a_collection_grown_in_more_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collection grown when runs kept 8 segments is merged by the end of its next run."""
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        with monkeypatch.context() as earlier:
            earlier.setattr(tuning, "SEGMENTS", 8)
            written = grow_in_pieces(store, 6)
        pieces = segments(store)
        assert pieces > tuning.MERGE_ABOVE_SEGMENTS
        store.finalize("media", final=False)  # nothing new: a build during a run merges nothing
        assert store.graph_status("media").state == "ready"
        store.finalize("media")  # the run's end
        status = wait_for_graph(store, "media", poll_s=0.1)
        assert (status.state, status.indexed, status.vectors) == ("ready", 2 * 600, 2 * 600)
        assert segments(store) <= tuning.MERGED_SEGMENTS + 1 < pieces  # + the one taking writes
        for query in queries():
            assert top_ids(store, query) == exact_top(written, query)
        store.finalize("media")  # merged already: the next run's end starts nothing
        assert store.graph_status("media").state == "ready"


def built(store: Store, info: CollectionInfo, points: list[Point]) -> None:
    """A collection holding `points`, its search graph built."""
    store.create_collection("media", info)
    store.upsert("media", points)
    store.finalize("media")
    wait_for_graph(store, "media", poll_s=0.1)


@pytest.mark.parametrize("engine", ["edge", "server"])
def test_an_int8_collection_finds_what_full_precision_finds(engine: str, tmp_path: Path) -> None:
    points = make_points(POINTS)
    with open_engine(engine, tmp_path / "int8") as store:
        built(store, INT8, points)
        if isinstance(store, EdgeStore):
            assert quantized_files(store), "the engine kept no int8 vectors"
        for query in queries():
            assert top_ids(store, query) == exact_top(points, query)
        assert store.collection_info("media") == INT8


@pytest.mark.parametrize("engine", ["edge", "server"])
def test_switching_to_int8_keeps_every_point_and_answer(engine: str, tmp_path: Path) -> None:
    points = make_points(POINTS)
    with open_engine(engine, tmp_path / "index") as store:
        built(store, INFO, points)
        before = [top_ids(store, query) for query in queries()]
        if isinstance(store, EdgeStore):
            assert not quantized_files(store)
        store.set_quantization("media", "int8")
        wait_for_graph(store, "media", poll_s=0.1)
        assert store.collection_info("media") == INT8
        if isinstance(store, EdgeStore):
            assert quantized_files(store), "the switch kept no int8 vectors"
        assert store.count("media") == POINTS
        assert [top_ids(store, query) for query in queries()] == before
    with open_engine(engine, tmp_path / "index") as reopened:
        assert reopened.collection_info("media") == INT8
        assert reopened.count("media") == POINTS
        assert [top_ids(reopened, query) for query in queries()] == before


START_AND_DIE = """
import os, sys, uuid
import numpy as np
from indexer.catalog import edge_build
from indexer.catalog.collection import quantization_to_apply
from indexer.catalog.edge import EdgeStore
from indexer.catalog.store import CollectionInfo, Point
edge_build.CHILD_MODULE = "tests.indexer.catalog.gated_build"
store = EdgeStore(sys.argv[1], indexing_threshold_kb=1)
store.create_collection("media", CollectionInfo("tiny-ume", 8, 3, ("disc",)))
rng = np.random.default_rng(0)
vectors = rng.standard_normal((300, 8))
store.upsert("media", [Point(str(uuid.UUID(int=i + 1)), {}, {"disc": v}) for i, v in enumerate(vectors)])
store.set_quantization("media", "int8")
os._exit(0)  # killed mid-build: no swap, no clean-up
"""


def test_a_killed_build_leaves_a_usable_collection(tmp_path: Path, gate: Path) -> None:
    index = tmp_path / "index"
    subprocess.run([sys.executable, "-c", START_AND_DIE, str(index)], check=True)
    folder = index / "collections" / "media"
    assert [p.name.startswith("build-") for p in folder.iterdir() if p.is_dir()].count(True) == 1
    shutil.copytree(folder / "shard", folder / "shard-7")  # as if killed between rename and swap
    with EdgeStore(index, indexing_threshold_kb=1) as store:
        assert store.count("media") == 300
        assert store.collection_info("media") == CollectionInfo("tiny-ume", 8, 3, ("disc",))
        assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["shard"]
        query = np.asarray(store.retrieve("media", [str(uuid.UUID(int=5))], True)[0][2]["disc"])
        assert top_ids(store, query, 1) == [str(uuid.UUID(int=5))]
        gate.touch()
        store.set_quantization("media", "int8")  # the switch can simply be asked for again
        assert wait_for_graph(store, "media", poll_s=0.1).state == "ready"
        assert store.collection_info("media").quantization == "int8"  # type: ignore[union-attr]


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


def test_runs_switch_to_int8_past_the_threshold_unless_full_precision_was_chosen() -> None:
    full, chosen = INFO, dataclasses.replace(INFO, quantization="none")
    big = QUANTIZE_ABOVE_POINTS + 1
    assert quantization_to_apply(full, None, QUANTIZE_ABOVE_POINTS) is None
    assert quantization_to_apply(full, None, big) == "int8"
    assert quantization_to_apply(chosen, None, big) is None
    assert quantization_to_apply(INT8, None, big) is None
    assert quantization_to_apply(INT8, "int8", 10) is None
    assert quantization_to_apply(INT8, "none", 10) == "none"
    assert quantization_to_apply(full, "int8", 10) == "int8"
    assert quantization_to_apply(None, "int8", 10) is None  # no collection: nothing to switch


def test_int8_asked_for_during_a_build_follows_it(tmp_path: Path, gate: Path) -> None:
    points = make_points(POINTS)
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", points)
        store.finalize("media")
        store.set_quantization("media", "int8")
        assert store.collection_info("media") == INFO  # not yet: searches still use the old one
        gate.touch()
        assert wait_for_graph(store, "media", poll_s=0.1).state == "ready"
        assert store.collection_info("media") == INT8
        assert quantized_files(store)
        for query in queries():
            assert top_ids(store, query) == exact_top(points, query)


def field_memory(store: EdgeStore) -> dict[str, object]:
    schema = store._shard("media").info().payload_schema
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
        shard = store._shard("media")
        for name in ("kind", "folders"):  # as collections made before indexes lived on disk hold them
            shard.update(UpdateOperation.delete_field_index(name))
            shard.update(UpdateOperation.create_field_index(name, PayloadSchemaType.Keyword))
        store.upsert("media", points)
        assert field_memory(store)["kind"] is None
        videos_under = Match({"kind": "video", "folders": "/a/1"})
        before = store.count("media", videos_under)
        store.finalize("media")
        wait_for_graph(store, "media", poll_s=0.1)
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


def search_threads() -> int:
    """The engine's search pool threads running in this process (named edge-search-N)."""
    tasks = Path("/proc/self/task").iterdir()
    return sum((task / "comm").read_text().startswith("edge-search") for task in tasks)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads are listed in Linux's /proc")
def test_a_collection_searches_on_one_thread_so_that_a_build_gets_the_other_cores(tmp_path: Path) -> None:
    """By default the engine gives each shard one search thread per core, and a query's segments
    were read on all of them, leaving a build's child (which runs on idle cores only) none; a
    collection, new or rebuilt, keeps to `tuning.SEARCH_THREADS`."""
    before = search_threads()
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", INFO)
        store.upsert("media", make_points(POINTS))
        top_ids(store, queries()[0])
        assert search_threads() - before == tuning.SEARCH_THREADS
        store.finalize("media")
        wait_for_graph(store, "media", poll_s=0.1)
        top_ids(store, queries()[0])
        assert search_threads() - before == tuning.SEARCH_THREADS
    with EdgeStore(tmp_path / "index") as reopened:
        top_ids(reopened, queries()[0])
        assert search_threads() - before == tuning.SEARCH_THREADS
