"""Concurrent searches of the embedded store: one at a time in arrival order, or queued ones batched.

    python benchmarks/search_batches.py [--indexed 40000] [--tail 20000] [--limits 1 4 16]
        [--out benchmarks/results/search_batches.json]

Writes `--indexed` points (`disc` and `gen`, 1536-d, the clustered distribution of
`benchmarks/synthetic.py`) into an `EdgeStore` collection kept as large ones are (int8 in RAM,
originals on disk), builds their graph, then writes `--tail` more without building: the state
searches meet while a build runs (the points written since it began are scanned exactly). Then
8 searcher threads run 60 searches each (top 10 with payload; 8 searchers as in
`benchmarks/store.py`), once per batch limit (`tuning.SEARCH_BATCH`; 1 is the searches taking
turns, as before batching), first on the collection with its tail and then, after building that
too, settled: searches per second and p50/p95 latency side by side, and whether every limit found
the same top 10 as searches run one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from synthetic import ClusteredCollection

from indexer.catalog import tuning
from indexer.catalog.edge import EdgeStore
from indexer.catalog.store import CollectionInfo, Point

COLLECTION = "bench"
SEARCHERS = 8
SEARCHES_EACH = 60
BATCH_ROWS = 500


def write(store: EdgeStore, data: ClusteredCollection, first: int, last: int) -> None:
    """Points `first` to `last` (multiples of BATCH_ROWS), each with a payload like an item's."""
    for number in range(first // BATCH_ROWS, last // BATCH_ROWS):
        disc, gen = data.batch(number, BATCH_ROWS)
        points = [
            Point(
                str(uuid.uuid5(uuid.NAMESPACE_OID, str(number * BATCH_ROWS + row))),
                {"kind": "image", "path": f"/photos/{number}/{row}.jpg", "page": 0},
                {"disc": disc[row], "gen": gen[row]},
            )
            for row in range(BATCH_ROWS)
        ]
        store.upsert(COLLECTION, points)


def build_graph(store: EdgeStore) -> float:
    began = time.perf_counter()
    store.finalize(COLLECTION)
    while store.graph_status(COLLECTION).state == "building":
        time.sleep(0.2)
    return time.perf_counter() - began


def measure(folder: Path, queries: np.ndarray, limit: int) -> tuple[dict[str, float], list[list[str]]]:
    """8 searchers through a store whose batches hold at most `limit` searches; and the ids each
    query found."""
    tuning.SEARCH_BATCH = limit  # read when the store is opened
    latencies: list[float] = []
    with EdgeStore(folder) as store:
        found = [[h.id for h in store.search(COLLECTION, "disc", q, 10)] for q in queries]  # warm too

        def searcher(offset: int) -> None:
            for i in range(SEARCHES_EACH):
                query = queries[(offset * SEARCHES_EACH + i) % len(queries)]
                began = time.perf_counter()
                store.search(COLLECTION, "disc", query, 10)
                latencies.append(1000 * (time.perf_counter() - began))

        began = time.perf_counter()
        with ThreadPoolExecutor(SEARCHERS) as pool:
            list(pool.map(searcher, range(SEARCHERS)))
        wall = time.perf_counter() - began
    values = np.asarray(latencies)
    figures = {
        "searches_per_s": round(len(values) / wall, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
        "max_ms": round(float(values.max()), 2),
    }
    return figures, found


def compare(folder: Path, queries: np.ndarray, limits: list[int], state: str) -> dict[str, Any]:
    results, answers = {}, {}
    for limit in limits:
        results[f"batches of {limit}"], answers[limit] = measure(folder, queries, limit)
    for name, figures in results.items():
        shown = "  ".join(f"{key} {value:8.2f}" for key, value in figures.items())
        print(f"{state:28} {name:14} {shown}")
    alone = answers[limits[0]]
    same = {f"batches of {limit}": answers[limit] == alone for limit in limits[1:]}
    print(f"{state:28} same top 10 as batches of {limits[0]}: {same}")
    return {"results": results, "same_top_10_as_batches_of_" + str(limits[0]): same}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--indexed", type=int, default=40_000, help="points in the graph (x 500)")
    parser.add_argument("--tail", type=int, default=20_000, help="points written after it (x 500)")
    parser.add_argument("--limits", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data = ClusteredCollection(1536, 0, BATCH_ROWS)
    queries = data.queries(200, args.indexed + args.tail)
    with tempfile.TemporaryDirectory(prefix="ume-search-batches-", dir=args.scratch) as scratch:
        folder = Path(scratch)
        with EdgeStore(folder) as store:
            info = CollectionInfo("synthetic", 1536, 1, ("disc", "gen"), quantization="int8")
            store.create_collection(COLLECTION, info)
            write(store, data, 0, args.indexed)
            first_build_s = build_graph(store)
            write(store, data, args.indexed, args.indexed + args.tail)
        with_tail = compare(folder, queries, args.limits, f"{args.tail:,} points unindexed")
        with EdgeStore(folder) as store:
            last_build_s = build_graph(store)
        settled = compare(folder, queries, args.limits, "every point in the graph")
    report = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "indexed": args.indexed,
        "tail": args.tail,
        "searchers": SEARCHERS,
        "searches_each": SEARCHES_EACH,
        "build_s": [round(first_build_s, 1), round(last_build_s, 1)],
        "with_unindexed_tail": with_tail,
        "settled": settled,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
