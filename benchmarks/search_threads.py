"""How many search threads a shard gets, and what that leaves a background build.

    python benchmarks/search_threads.py [--points 60000] [--piece 5000] [--threads 8 1]
        [--repeat 2] [--out benchmarks/results/search_threads.json]

Writes `--points` items (`disc` and `gen`, 1536-d, `benchmarks/synthetic.py`'s clustered
distribution, int8 with the originals on disk) into an `EdgeStore` in pieces of `--piece`, each
followed by a build, as runs grew their graph before they kept 4 segments (8 segments, the
end-of-run build merges them). Then, for each thread count in turn
(repeated `--repeat` times, alternating, so that the machine's drift falls on all), a copy of
that collection gets its shard's search pool set to that many threads and the end-of-run build
(which merges the segments) starts while 8 searchers search without pause: how long until the
graph is ready, and the searches' rate and p50 / p95 meanwhile. qdrant-edge's own default on
the 2-core machine measured here was 8 threads per shard.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_edge import EdgeConfig, EdgeShard
from search_batches import COLLECTION, write
from store import searching
from synthetic import ClusteredCollection

from indexer.catalog import tuning
from indexer.catalog.edge import INFO_FILE, EdgeStore, read_info
from indexer.catalog.edge_build import ShardSettings, edge_config
from indexer.catalog.store import CollectionInfo, wait_for_graph

SEARCHERS = 8
INFO = CollectionInfo("synthetic", 1536, 1, ("disc", "gen"), quantization="int8")


def grow(folder: Path, data: ClusteredCollection, points: int, piece: int) -> None:
    """Grown as runs grew collections before they kept 4 segments (`tuning.SEGMENTS`): 8
    segments, which the end-of-run build merges (a collection grown that way still is)."""
    tuning.SEGMENTS = 8
    with EdgeStore(folder) as store:
        store.create_collection(COLLECTION, INFO)
        for first in range(0, points, piece):
            write(store, data, first, first + piece)
            store.finalize(COLLECTION, final=False)
            wait_for_graph(store, COLLECTION, poll_s=0.2)


def live_shard(folder: Path) -> Path:
    collection = folder / "collections" / COLLECTION
    found = read_info(collection / INFO_FILE)
    assert found is not None, f"no collection in {folder}"
    return collection / found[1]


def set_search_threads(shard_dir: Path, threads: int) -> None:
    """Stored in the shard's configuration: every later load of it uses that many."""
    vectors = edge_config(ShardSettings(INFO.dim, INFO.vectors, INFO.quantization)).vectors
    EdgeShard.load(str(shard_dir), EdgeConfig(vectors=vectors, max_search_threads=threads)).close()


def merge_while_searching(folder: Path, queries: np.ndarray) -> dict[str, float]:
    with EdgeStore(folder) as store:
        store.search(COLLECTION, "disc", queries[0], 10)
        stop_searching, timed = searching(store, queries, SEARCHERS)
        began = time.perf_counter()
        store.finalize(COLLECTION, final=True)
        wait_for_graph(store, COLLECTION, poll_s=0.2)
        ready_s = time.perf_counter() - began
        stop_searching()
    values = np.asarray([ms for _, ms in timed])
    return {
        "graph_ready_s": round(ready_s, 1),
        "searches_per_s": round(len(values) / ready_s, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=60_000, help="items (a multiple of 500)")
    parser.add_argument("--piece", type=int, default=5_000, help="items per build while growing")
    parser.add_argument("--threads", type=int, nargs="+", default=[8, 1])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data = ClusteredCollection(1536, 0, 500)
    queries = data.queries(200, args.points)
    runs: dict[int, list[dict[str, float]]] = {threads: [] for threads in args.threads}
    with tempfile.TemporaryDirectory(prefix="ume-search-threads-", dir=args.scratch) as scratch:
        grown, copy = Path(scratch) / "grown", Path(scratch) / "copy"
        grow(grown, data, args.points, args.piece)
        time.sleep(5)  # the shards each build replaced are deleted in the background
        for _ in range(args.repeat):
            for threads in args.threads:
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(grown, copy)
                set_search_threads(live_shard(copy), threads)
                figures = merge_while_searching(copy, queries)
                runs[threads].append(figures)
                shown = "  ".join(f"{key} {value:8.1f}" for key, value in figures.items())
                print(f"{threads} search threads   {shown}", flush=True)
    report: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "points": args.points,
        "piece": args.piece,
        "searchers": SEARCHERS,
        "runs": {f"{threads} search threads": figures for threads, figures in runs.items()},
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
