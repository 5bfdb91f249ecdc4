"""What the segments a collection is split into cost a search, and what merging them buys.

Builds during a run (`tuning.GROW_EVERY_POINTS`) each leave a segment, and a search visits every
segment; the build at the end of a run merges them (`tuning.MERGED_SEGMENTS`). This writes
`--points` clustered items (`benchmarks/synthetic.py`) into the embedded store in pieces of
`--piece`, building the graph after each piece as a run does, then measures searches on the grown
collection, merges it as the run's end does, and measures again:

- segments a search visits;
- milliseconds per search, one at a time (every query run once before, so pages are read);
- p50/p95 with 8 concurrent searchers;
- recall@10 against exact search (numpy);
- seconds the merge took (the background build, copy and swap included).

    python benchmarks/segments.py --points 50000 --piece 5000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store import COLLECTION, SEARCHERS, TOP_K, ExactTopK, batches, latencies_after, percentile, timed_search
from synthetic import ClusteredCollection

from indexer.catalog.edge import EdgeStore
from indexer.catalog.store import CollectionInfo, wait_for_graph

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--piece", type=int, default=5_000, help="items written between two builds")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--searches", type=int, default=100, help="searches per concurrent searcher")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="what else the machine was doing, for the JSON")
    return parser.parse_args()


def grow(store: EdgeStore, data: ClusteredCollection, args: argparse.Namespace, exact: ExactTopK) -> None:
    """Write every item, building the graph each `--piece` items as a run does (not merging)."""
    written = 0
    for start, disc, points in batches(data, args.points):
        store.upsert(COLLECTION, points)
        exact.add(start, disc)
        written += len(points)
        if written >= args.piece:
            store.finalize(COLLECTION, final=False)
            wait_for_graph(store, COLLECTION, poll_s=0.1)
            written = 0


def searches(
    store: EdgeStore, queries: np.ndarray, truth: list[set[str]], per_searcher: int
) -> dict[str, Any]:
    """The figures of the collection as it is now (see the module docstring)."""
    found = 0
    for query, exact in zip(queries, truth, strict=True):
        found += len(exact & {hit.id for hit in store.search(COLLECTION, "disc", query, TOP_K)})
    one_ms = sum(timed_search(store, query, None) for query in queries) / len(queries)
    concurrent = latencies_after(store, queries, per_searcher, None)
    return {
        "segments": store._shard(COLLECTION).info().segments_count,  # what a search visits
        "search_ms": round(one_ms, 3),
        "p50_ms": percentile(concurrent, 50),
        "p95_ms": percentile(concurrent, 95),
        "recall_at_10": round(found / (TOP_K * len(queries)), 4),
    }


def main() -> None:
    args = parse_args()
    data = ClusteredCollection(1536, args.seed, 256)
    queries = data.queries(args.queries, args.points)
    exact = ExactTopK(queries)
    with tempfile.TemporaryDirectory(prefix="ume-segments-") as scratch, EdgeStore(Path(scratch)) as store:
        info = CollectionInfo("synthetic", 1536, 1, ("disc", "gen"), quantization="int8")
        store.create_collection(COLLECTION, info)
        grow(store, data, args, exact)
        truth = exact.ids()
        grown = searches(store, queries, truth, args.searches)
        began = time.perf_counter()
        store.finalize(COLLECTION)  # the end of the run: merges
        wait_for_graph(store, COLLECTION, poll_s=0.1)
        merge_s = time.perf_counter() - began
        merged = searches(store, queries, truth, args.searches)
    result = {
        "points": args.points,
        "piece": args.piece,
        "grown": grown,
        "merged": merged,
        "merge_s": round(merge_s, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores" + (f"; {args.note}" if args.note else ""),
        "command": "python " + " ".join(sys.argv),
        "distribution": data.describe(),
        "note": f"searches on disc, top {TOP_K}, int8 with rescoring; p50/p95 with {SEARCHERS} concurrent "
        "searchers; search_ms one at a time after every query ran once",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"segments-{args.points}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':>14} {'grown':>8} {'merged':>8}")
    for key in grown:
        print(f"{key:>14} {grown[key]:>8} {merged[key]:>8}")
    print(f"merged in {merge_s:.1f} s")


if __name__ == "__main__":
    main()
