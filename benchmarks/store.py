"""The embedded store at scale: writes, graph builds, concurrent searches, recall, memory, disk.

Points carry `disc` and `gen` vectors (1536-d, the UME-R1-2B width) drawn from a clustered
distribution that resembles an embedding collection (`benchmarks/synthetic.py` states it), and
the payload `ume index` writes. They go through the `Store` interface into the embedded engine
(qdrant-edge), int8 quantized with the originals on disk. Per size and build schedule (the engine
grows its graph every `--grow-every` points while writes go on; 0: one build once they pause),
in a process of its own, it measures on `disc`:

- while writing (`--write-rate` points per second, as a run hands them over): 8 searchers
  without pause (`--write-searchers 8`), or one search every 0.1 s, as a person browsing;
- graph ready: seconds from the last write until `wait_until_ready` returns, as `ume index`
  waits, with 8 searchers meanwhile;
- 8 searchers right after, filtered, and settled (10 s later, every query run once first);
- recall@10 against exact search (numpy) of HNSW and of int8 HNSW with rescoring;
- resident memory and the collection's allocated disk space.

Results go to `benchmarks/results/store-<points>.json` (the last schedule given: the engine's
own, one build, by default) and `store-<points>-grow-<N>.json` (the others, compared with it),
with the commit.

    python benchmarks/store.py --points 5000 --queries 50            # a quick look (~1 min)
    python benchmarks/store.py --points 25000 100000 --write-rate 100 --write-searchers 8 --grow-every 25000 0
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from qdrant_edge import (
    QuantizationSearchParams,
    Query,
    QueryRequest,
    SearchParams,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import commit
from synthetic import ClusteredCollection

from indexer.catalog import edge_build, tuning
from indexer.catalog.edge import EdgeStore
from indexer.catalog.store import CollectionInfo, Match, Point, Store

COLLECTION = "bench"
SEARCHERS = 8
TOP_K = 10
KINDS = ("image", "pdf_page", "video_segment")
FOLDERS = tuple(f"/data/folder{i}" for i in range(10))
FILTER = Match({"kind": "image", "folders": [FOLDERS[0], FOLDERS[1]]})
INT8_QUANTILE = tuning.QUANTILE  # the store's own setting, reported
OVERSAMPLING = 2.0  # int8 candidates fetched per result, then rescored with the originals
RESULTS = Path(__file__).resolve().parent / "results"
GIB = 1024**3
WINDOW_S = 10  # seconds per window of the searches during the build
SETTLE_S = 10.0  # after the build, before the "settled" searches
STATUS_POLL_S = 0.5  # how often a status display asks (`indexer.catalog.store.wait_for_graph`)
BROWSE_PAUSE_S = 0.1  # between two searches made while writing


def at_least_zero(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} searchers: give 0 or more")
    return value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="*", default=[25_000, 50_000, 100_000])
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--queries", type=int, default=200, help="query vectors (recall is over all)")
    parser.add_argument("--searches", type=int, default=50, help="searches per searcher after the build")
    parser.add_argument("--batch", type=int, default=256, help="points per upsert call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scratch", type=Path, default=None, help="index folder's parent (default: temp)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the index folders (in --scratch)")
    parser.add_argument("--note", default="", help="what else the machine was doing, for the JSON")
    parser.add_argument(
        "--grow-every",
        type=int,
        nargs="+",
        default=[tuning.GROW_EVERY_POINTS],
        help="the engine grows its graph every N points while writes go on (0: one build once "
        "they pause); several values are measured one after the other and printed side by side, "
        "the last one written as store-<points>.json, the others as store-<points>-grow-<N>.json",
    )
    parser.add_argument(
        "--write-rate",
        type=float,
        default=0.0,
        help="points per second at most, as a run embeds them (0: no limit)",
    )
    parser.add_argument(
        "--write-searchers",
        type=at_least_zero,
        default=0,
        help="searchers searching without pause while writing (0: one search every 0.1 s)",
    )
    return parser.parse_args()


def wait_for_graph(store: EdgeStore) -> Callable[[], float | None]:
    """Wait for the search graph in a thread, as `ume index` does at a run's end; the function
    returned gives the `time.perf_counter()` at which it was ready, or None until then."""
    ready_at: list[float] = []

    def wait() -> None:
        store.wait_until_ready(COLLECTION, poll_s=STATUS_POLL_S)
        ready_at.append(time.perf_counter())

    threading.Thread(target=wait, name="graph-wait", daemon=True).start()
    return lambda: ready_at[0] if ready_at else None


def point_id(index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, str(index)))


def payload(index: int, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "path": f"/data/file{index}.jpg",
        "kind": KINDS[int(rng.integers(len(KINDS)))],
        "folders": ["/data", FOLDERS[int(rng.integers(len(FOLDERS)))]],
        "mtime": float(index),
        "summary": "a short summary of the item, as the model writes it",
    }


def batches(data: ClusteredCollection, total: int) -> Iterator[tuple[int, np.ndarray, list[Point]]]:
    """(first index, disc vectors, points) per upsert batch, generated as they are needed."""
    for number, start in enumerate(range(0, total, data.batch_size)):
        disc, gen = data.batch(number, min(data.batch_size, total - start))
        rng = np.random.default_rng([data.seed, 3, number])
        points = [
            Point(point_id(start + i), payload(start + i, rng), {"disc": disc[i], "gen": gen[i]})
            for i in range(len(disc))
        ]
        yield start, disc, points


class ExactTopK:
    """Exact nearest neighbours of the queries, kept up to date batch by batch (numpy)."""

    def __init__(self, queries: np.ndarray) -> None:
        self.queries = queries
        self.scores = np.full((len(queries), TOP_K), -np.inf, dtype=np.float32)
        self.indices = np.zeros((len(queries), TOP_K), dtype=np.int64)

    def add(self, start: int, vectors: np.ndarray) -> None:
        scores = np.concatenate([self.scores, self.queries @ vectors.T], axis=1)
        added = np.broadcast_to(np.arange(start, start + len(vectors)), (len(scores), len(vectors)))
        indices = np.concatenate([self.indices, added], axis=1)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
        self.scores = np.take_along_axis(scores, best, axis=1)
        self.indices = np.take_along_axis(indices, best, axis=1)

    def ids(self) -> list[set[str]]:
        return [{point_id(int(i)) for i in row} for row in self.indices]


def fill(store: Store, data: ClusteredCollection, total: int, exact: ExactTopK, rate: float) -> float:
    """Upsert every point, at most `rate` points per second (0: as fast as the engine takes
    them), as an indexing run hands them over; returns points per second of the upserts alone.
    The engine builds its graph by itself meanwhile (`tuning.GROW_EVERY_POINTS`)."""
    seconds, began_all = 0.0, time.perf_counter()
    for start, disc, points in batches(data, total):
        if rate:  # as a run that embeds `rate` items per second hands them over
            time.sleep(max(0.0, began_all + start / rate - time.perf_counter()))
        began = time.perf_counter()
        store.upsert(COLLECTION, points)
        seconds += time.perf_counter() - began
        exact.add(start, disc)
    return total / seconds


def searching(
    store: Store, queries: np.ndarray, searchers: int, pause_s: float = 0.0
) -> tuple[Callable[[], None], list[tuple[float, float]]]:
    """`searchers` threads searching, each waiting `pause_s` before every search (0: without
    pause), until the function returned is called (it waits for them); the list fills with
    (seconds since the start, milliseconds) per search."""
    done, found, since = threading.Event(), [], time.perf_counter()

    def search(offset: int) -> None:
        for i in itertools.count(offset, searchers):
            if done.wait(pause_s):
                return
            ms = timed_search(store, queries[i % len(queries)], None)
            found.append((time.perf_counter() - since, ms))

    threads = [threading.Thread(target=search, args=(i,), name=f"searching-{i}") for i in range(searchers)]
    for thread in threads:
        thread.start()

    def stop() -> None:
        done.set()
        for thread in threads:
            thread.join()

    return stop, found


def timed_search(store: Store, query: np.ndarray, match: Match | None) -> float:
    began = time.perf_counter()
    store.search(COLLECTION, "disc", query, TOP_K, match)
    return 1000 * (time.perf_counter() - began)


def latencies_after(store: Store, queries: np.ndarray, per_searcher: int, match: Match | None) -> list[float]:
    """Milliseconds per search, SEARCHERS threads each running `per_searcher` searches."""

    def searcher(offset: int) -> list[float]:
        picks = [queries[(offset * per_searcher + i) % len(queries)] for i in range(per_searcher)]
        return [timed_search(store, q, match) for q in picks]

    with ThreadPoolExecutor(SEARCHERS) as pool:
        return [ms for part in pool.map(searcher, range(SEARCHERS)) for ms in part]


def latencies_during(
    store: Store, queries: np.ndarray, ready_at: Callable[[], float | None], since: float
) -> list[tuple[float, float]]:
    """(seconds after `since` it ended, milliseconds) per search sent before the graph was
    ready, SEARCHERS threads searching.

    Every searcher wants to send its first search at `since` (the build's start) and each next
    one as soon as the previous one returns, and a search's time counts from then: an engine that
    stalls the whole process while it builds (qdrant-edge 0.9.0 holds the GIL) shows that stall
    in full instead of hiding it between two searches or before a searcher's first.
    """

    def searcher(offset: int) -> list[tuple[float, float]]:
        found, i, due = [], offset, since
        while (ready := ready_at()) is None or due < ready:
            store.search(COLLECTION, "disc", queries[i % len(queries)], TOP_K)
            done = time.perf_counter()
            found.append((done - since, 1000 * (done - due)))
            due, i = done, i + SEARCHERS
        return found

    with ThreadPoolExecutor(SEARCHERS) as pool:
        return [timed for part in pool.map(searcher, range(SEARCHERS)) for timed in part]


def by_window(timed: list[tuple[float, float]]) -> list[dict[str, float | int | None]]:
    """(seconds, milliseconds) per search, as `latencies_during` and `searching` give them, per
    WINDOW_S seconds: where in the build, or in the run, the slow ones are."""
    windows: dict[int, list[float]] = {}
    for at, ms in timed:
        windows.setdefault(int(at // WINDOW_S), []).append(ms)
    return [
        {"from_s": k * WINDOW_S, "searches": len(v), "p50_ms": percentile(v, 50), "p95_ms": percentile(v, 95)}
        | {"max_ms": percentile(v, 100)}
        for k, v in sorted(windows.items())
    ]


def timed_open(folder: Path) -> tuple[float, float]:
    """Seconds opening the collection takes (as `ume serve` does at its first search, and a
    swap does with a build's copy), and the longest that another thread of the process waited
    meanwhile (qdrant-edge holds the GIL while it loads a shard)."""
    ticks, opened = [time.perf_counter()], threading.Event()

    def tick() -> None:
        while not opened.is_set():
            time.sleep(0.005)
            ticks.append(time.perf_counter())

    ticker = threading.Thread(target=tick, name="ticker", daemon=True)
    ticker.start()
    time.sleep(0.1)
    began = time.perf_counter()
    with EdgeStore(folder) as store:
        store.count(COLLECTION)  # shards open on first use
        took = time.perf_counter() - began
    opened.set()
    ticker.join()
    pauses = np.diff([t for t in ticks if t >= began - 0.01] + [time.perf_counter()])
    return round(took, 2), round(float(pauses.max()), 2)


def recall(
    store: EdgeStore, queries: np.ndarray, truth: list[set[str]], quantization: QuantizationSearchParams
) -> float:
    """Mean share of the exact top 10 that the engine's top 10 finds."""
    shard = store.live_shard(COLLECTION)  # the store's search takes no search parameters
    found = 0
    for query, exact in zip(queries, truth, strict=True):
        request = QueryRequest(
            limit=TOP_K,
            query=Query.Nearest(query, using="disc"),  # type: ignore[arg-type]
            params=SearchParams(hnsw_ef=tuning.SEARCH_EF, quantization=quantization),  # the store's beam
        )
        found += len(exact & {str(p.id) for p in shard.query(request)})
    return found / (TOP_K * len(truth))


def resident_split() -> tuple[float | None, float | None]:
    """Resident memory that only this process holds (RssAnon: heap, int8 vectors pinned in RAM)
    and resident pages of mapped files (RssFile: on-disk vectors and segments read or written
    lately, which the kernel drops under memory pressure), in GiB; None off Linux."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None, None
    kib = {
        k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines) if k in ("RssAnon", "RssFile")
    }
    return round(kib["RssAnon"] / 2**20, 3), round(kib["RssFile"] / 2**20, 3)


def disk_gib(folder: Path) -> float:
    """Allocated size of every file under `folder` (sparse files count what they use)."""
    blocks = sum(f.stat().st_blocks for f in folder.rglob("*") if f.is_file())
    return blocks * 512 / GIB


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values), q)), 2) if values else None


def measure(points: int, grow_every: int, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    data = ClusteredCollection(args.dim, args.seed, args.batch)
    queries = data.queries(args.queries, points)
    exact = ExactTopK(queries)
    settings = "idle" if edge_build.IDLE_PRIORITY else "niced"  # baseline runs get folders of their own
    tuned = f"{settings}-ef-{tuning.SEARCH_EF}-{tuning.SEARCH_BATCH}-seg-{tuning.SEGMENTS}"
    folder = scratch / f"store-{points}-grow-{grow_every}-{tuned}"
    shutil.rmtree(folder, ignore_errors=True)  # a kept folder of an earlier run would be written over
    with EdgeStore(folder) as store:
        info = CollectionInfo("synthetic", args.dim, 1, ("disc", "gen"), quantization="int8")
        store.create_collection(COLLECTION, info)
        # one person browsing (a search every BROWSE_PAUSE_S), or --write-searchers without pause
        searchers, pause_s = (args.write_searchers, 0.0) if args.write_searchers else (1, BROWSE_PAUSE_S)
        stop_searching, timed_writing = searching(store, queries, searchers, pause_s)
        writing_began = time.perf_counter()
        try:  # a failed write must not leave searchers running: this process would never end
            upserts_per_s = fill(store, data, points, exact, args.write_rate)
        finally:
            stop_searching()
        written_per_s = points / (time.perf_counter() - writing_began)
        while_writing = [ms for _, ms in timed_writing]
        began = time.perf_counter()
        ready_at = wait_for_graph(store)
        timed = latencies_during(store, queries, ready_at, began)
        during = [ms for _, ms in timed]
        while (ready := ready_at()) is None:
            time.sleep(0.05)
        graph_ready_s = ready - began
        after = latencies_after(store, queries, args.searches, None)
        filtered = latencies_after(store, queries, args.searches, FILTER)
        time.sleep(SETTLE_S)  # the old shard deleted, the copy's pages written back
        for query in queries:
            timed_search(store, query, None)  # every query once: the pages it needs are read
        settled = latencies_after(store, queries, args.searches, None)
        truth = exact.ids()
        hnsw = recall(store, queries, truth, QuantizationSearchParams(ignore=True))
        rescored = QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING)
        int8 = recall(store, queries, truth, rescored)
        rss = psutil.Process().memory_info().rss / GIB
        anonymous, file_backed = resident_split()
        indexed = store.indexed_vector_count(COLLECTION)
        segments = store.live_shard(COLLECTION).info().segments_count  # what a search visits
    open_s, open_pause_s = timed_open(folder)
    return {
        "points": points,
        "upserts_per_s": round(upserts_per_s, 1),
        "graph_ready_s": round(graph_ready_s, 2),
        "query_p50_ms": percentile(settled, 50),
        "query_p95_ms": percentile(settled, 95),
        "query_p50_right_after_ms": percentile(after, 50),
        "query_p95_right_after_ms": percentile(after, 95),
        "query_p95_during_build_ms": percentile(during, 95),
        "recall_at_10_hnsw": round(hnsw, 4),
        "recall_at_10_int8": round(int8, 4),
        "rss_gib": round(rss, 3),
        "rss_anon_gib": anonymous,
        "rss_file_gib": file_backed,
        "disk_gib": round(disk_gib(folder), 3),
        "measured": True,
        "grow_every": grow_every,
        "write_rate": args.write_rate,
        "query_p50_during_build_ms": percentile(during, 50),
        "query_p99_during_build_ms": percentile(during, 99),
        "query_max_during_build_ms": percentile(during, 100),
        "searches_during_build": len(during),
        "query_p50_while_writing_ms": percentile(while_writing, 50),
        "query_p95_while_writing_ms": percentile(while_writing, 95),
        "query_p99_while_writing_ms": percentile(while_writing, 99),
        "query_max_while_writing_ms": percentile(while_writing, 100),
        "searches_while_writing": len(while_writing),
        "searchers_while_writing": searchers_while_writing(args),
        "written_per_s": round(written_per_s, 1),
        "while_writing_windows": by_window(timed_writing) if args.write_searchers else None,
        "filtered_query_p95_ms": percentile(filtered, 95),
        "rss_peak_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 3),
        "indexed_vectors": indexed,
        "segments": segments,
        "during_build_windows": by_window(timed),
        "open_s": open_s,
        "open_longest_pause_s": open_pause_s,
        **context(args, data),
    }


def searchers_while_writing(args: argparse.Namespace) -> str:
    if args.write_searchers:
        return f"{args.write_searchers} searchers without pause"
    return f"one searcher, one search every {BROWSE_PAUSE_S} s"


def context(args: argparse.Namespace, data: ClusteredCollection) -> dict[str, Any]:
    memory = psutil.virtual_memory().total / GIB
    return {
        "commit": commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB"
        + (f"; {args.note}" if args.note else ""),
        "command": "python " + " ".join(sys.argv),
        "distribution": data.describe(),
        "store": f"qdrant-edge, vectors disc+gen {args.dim}-d cosine on disk, int8 scalar quantization "
        f"(quantile {INT8_QUANTILE}) in RAM, HNSW m={tuning.HNSW_M} ef_construct={tuning.HNSW_EF_CONSTRUCT}, "
        f"search beam {tuning.SEARCH_EF}, {tuning.SEGMENTS} segments kept while growing; rescoring "
        f"oversampling {OVERSAMPLING}; build child {'idle' if edge_build.IDLE_PRIORITY else 'niced'}; "
        f"searches queued together run in batches of up to {tuning.SEARCH_BATCH}",
        "note": f"{SEARCHERS} concurrent searchers (threads) on disc, top {TOP_K}; searches 'during "
        "build' are those issued before the graph was ready; 'while writing': "
        f"{searchers_while_writing(args)}; rss counts resident pages of mapped files; recall is over "
        "all queries against exact numpy search",
    }


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    prefix = "ume-store-bench-"
    folder = (
        contextlib.nullcontext(tempfile.mkdtemp(prefix=prefix, dir=args.scratch))
        if args.keep
        else tempfile.TemporaryDirectory(prefix=prefix, dir=args.scratch)
    )
    with folder as scratch:
        for points in args.points:
            results = [measure_apart(points, grow, args, Path(scratch)) for grow in args.grow_every]
            for grow, result in zip(args.grow_every, results, strict=True):
                name = f"store-{points}-grow-{grow}" if grow != args.grow_every[-1] else f"store-{points}"
                (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
            print(side_by_side(results), flush=True)


def measure_apart(points: int, grow_every: int, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """One size and build schedule in a process of its own, so its memory figures are its own
    (the peak RSS above all) and its schedule stays in it."""
    schedule = f"grown every {grow_every:,} points" if grow_every else "one build at the end"
    print(f"measuring {points:,} points ({args.dim}-d, disc + gen), {schedule}", flush=True)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        return pool.submit(measure_with, points, grow_every, args, scratch).result()


def measure_with(points: int, grow_every: int, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """`measure` with the engine growing its graph every `grow_every` points written (0: once
    the writes pause)."""
    tuning.GROW_EVERY_POINTS = grow_every
    return measure(points, grow_every, args, scratch)


def side_by_side(results: list[dict[str, Any]]) -> str:
    """The figures of each schedule in a column of its own."""
    shown = [k for k, v in results[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    rows = [["", *(f"grown every {r['grow_every']}" if r["grow_every"] else "one build" for r in results)]]
    rows += [[key, *(str(r.get(key)) for r in results)] for key in shown]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


if __name__ == "__main__":
    main()
