"""What the segments a collection is split into cost a search and a run, and what the search beam
costs; each setting side by side with the others, in one run.

Builds during a run (`tuning.GROW_EVERY_POINTS`) each add a segment, and a search visits every
segment; past `tuning.SEGMENTS` the engine merges the smallest ones. This writes `--points`
clustered items (`benchmarks/synthetic.py`) into the embedded store in pieces of `--piece`,
building the graph after each piece as a run does, once per `--segments` value, and measures:

- seconds spent in builds during the run (each build's copy, graph and swap: what a run's
  background pays), and the segments a search then visits;
- milliseconds per search, one at a time (every query run once before, so pages are read), and
  recall@10 against exact search (numpy), at each `--ef` (the graph search's beam; 0 is Qdrant's
  default, ef_construct); the searches of every collection and beam are interleaved, query by
  query, since this machine's speed drifts more between two runs than these settings differ;
- p50/p95 with 8 concurrent searchers at the store's own beam (`tuning.SEARCH_EF`).

With `--merge`, the last collection is then merged as a run's end merges one with too many
segments (`tuning.MERGED_SEGMENTS`), and measured again, interleaved with the first.

    python benchmarks/segments.py --points 50000 --piece 5000 --segments 4 8 --merge
    python benchmarks/segments.py --points 50000 --piece 5000 --segments 8 --merge --ef 0 64 32
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
from store import COLLECTION, SEARCHERS, TOP_K, ExactTopK, batches, latencies_after, percentile
from synthetic import ClusteredCollection

from indexer.catalog import tuning
from indexer.catalog.edge import EdgeStore
from indexer.catalog.store import CollectionInfo, wait_for_graph

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--piece", type=int, default=5_000, help="items written between two builds")
    parser.add_argument("--segments", type=int, nargs="+", default=[tuning.SEGMENTS])
    parser.add_argument("--ef", type=int, nargs="+", default=[0, tuning.SEARCH_EF])
    parser.add_argument("--merge", action="store_true", help="merge the last collection and measure")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--searches", type=int, default=100, help="searches per concurrent searcher")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="what else the machine was doing, for the JSON")
    return parser.parse_args()


def grow(store: EdgeStore, data: ClusteredCollection, args: argparse.Namespace, exact: ExactTopK) -> float:
    """Write every item, building the graph each `--piece` items as a run does (not merging at the
    end); returns the seconds spent waiting for those builds."""
    written, building = 0, 0.0
    for start, disc, points in batches(data, args.points):
        store.upsert(COLLECTION, points)
        exact.add(start, disc)
        written += len(points)
        if written >= args.piece:
            began = time.perf_counter()
            store.finalize(COLLECTION, final=False)
            wait_for_graph(store, COLLECTION, poll_s=0.1)
            building += time.perf_counter() - began
            written = 0
    return building


def one_at_a_time(
    stores: dict[str, EdgeStore], queries: np.ndarray, truth: list[set[str]], efs: list[int]
) -> dict[str, dict[str, Any]]:
    """Milliseconds per search and recall@10 of every collection at every beam, the searches
    interleaved (each query on every collection and beam in turn), so the machine's drift falls
    on all of them alike; every query runs once first, so pages are read."""
    kept = tuning.SEARCH_EF
    elapsed = {(name, ef): 0.0 for name in stores for ef in efs}
    found = dict.fromkeys(elapsed, 0)
    for warm in (True, False):
        for query, exact in zip(queries, truth, strict=True):
            for name, ef in elapsed:
                tuning.SEARCH_EF = ef or None  # what the store's searches ask for
                began = time.perf_counter()
                hits = stores[name].search(COLLECTION, "disc", query, TOP_K)
                if not warm:
                    elapsed[name, ef] += time.perf_counter() - began
                    found[name, ef] += len(exact & {hit.id for hit in hits})
    tuning.SEARCH_EF = kept
    figures: dict[str, dict[str, Any]] = {name: {} for name in stores}
    for (name, ef), spent in elapsed.items():
        figures[name][f"ef_{ef or 'default'}"] = {
            "search_ms": round(1000 * spent / len(queries), 3),
            "recall_at_10": round(found[name, ef] / (TOP_K * len(queries)), 4),
        }
    return figures


def concurrent(store: EdgeStore, queries: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """Segments a search visits, and p50/p95 with 8 searchers at the store's own beam."""
    latencies = latencies_after(store, queries, args.searches, None)
    segments = store._shard(COLLECTION).info().segments_count
    return {"segments": segments, "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95)}


def grown(
    segments: int, data: ClusteredCollection, queries: np.ndarray, args: argparse.Namespace, scratch: Path
) -> tuple[EdgeStore, list[set[str]], float]:
    """A collection grown while builds keep `segments` segments: the open store, the exact top
    10 of each query, and the seconds its builds took."""
    tuning.SEGMENTS = segments  # what the builds of this store ask the engine to keep
    exact = ExactTopK(queries)
    store = EdgeStore(scratch / f"segments-{segments}")
    info = CollectionInfo("synthetic", 1536, 1, ("disc", "gen"), quantization="int8")
    store.create_collection(COLLECTION, info)
    building = grow(store, data, args, exact)
    return store, exact.ids(), building


def main() -> None:
    args = parse_args()
    data = ClusteredCollection(1536, args.seed, 256)
    queries = data.queries(args.queries, args.points)
    kept = tuning.SEGMENTS
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ume-segments-") as scratch:
        stores: dict[str, EdgeStore] = {}
        for segments in args.segments:
            store, truth, building = grown(segments, data, queries, args, Path(scratch))
            stores[f"grown_{segments}"] = store
            results[f"grown_{segments}"] = {"builds_s": round(building, 1)} | concurrent(store, queries, args)
        for name, figures in one_at_a_time(stores, queries, truth, args.ef).items():
            results[name] |= figures
        if args.merge:
            last = stores[f"grown_{args.segments[-1]}"]
            began = time.perf_counter()
            last.finalize(COLLECTION)  # the end of a run: merges when there are too many segments
            wait_for_graph(last, COLLECTION, poll_s=0.1)
            results["merged"] = {"merge_s": round(time.perf_counter() - began, 1)} | concurrent(
                last, queries, args
            )
            first = f"grown_{args.segments[0]}"
            beside = {first: stores[first]} if stores[first] is not last else {}
            again = one_at_a_time(beside | {"merged": last}, queries, truth, args.ef)
            results["merged"] |= again.pop("merged")
            results |= {f"{name}_beside_merged": figures for name, figures in again.items()}
        for store in stores.values():
            store.close()
    tuning.SEGMENTS = kept
    write(results, data, args)


def write(results: dict[str, Any], data: ClusteredCollection, args: argparse.Namespace) -> None:
    record = {
        "points": args.points,
        "piece": args.piece,
        **results,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores" + (f"; {args.note}" if args.note else ""),
        "command": "python " + " ".join(sys.argv),
        "distribution": data.describe(),
        "note": f"searches on disc, top {TOP_K}, int8 with rescoring; p50/p95 with {SEARCHERS} concurrent "
        f"searchers at the store's beam ({tuning.SEARCH_EF}); search_ms one at a time after every query "
        "ran once",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"segments-{args.points}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(side_by_side(results))


def side_by_side(results: dict[str, Any]) -> str:
    """One column per collection, one row per figure (nested figures flattened)."""
    flat = {name: dict(flatten(figures)) for name, figures in results.items()}
    rows = list(dict.fromkeys(key for figures in flat.values() for key in figures))
    lines = [f"{'':>24}" + "".join(f"{name:>14}" for name in flat)]
    lines += [
        f"{row:>24}" + "".join(f"{figures.get(row, '')!s:>14}" for figures in flat.values()) for row in rows
    ]
    return "\n".join(lines)


def flatten(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in figures.items():
        out += flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else [(prefix + key, value)]
    return out


if __name__ == "__main__":
    main()
