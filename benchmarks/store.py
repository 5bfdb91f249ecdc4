"""Storage engine speed: upsert throughput and query latency, embedded engine vs local mode.

Random L2-normalised points with both `disc` and `gen` vectors (1536-d, the UME-R1-2B width) and
a realistic payload are written through the `Store` interface, then queried plainly and with a
filter (kind AND any-of folders, about 7% of the points). The embedded engine (qdrant-edge) is
measured after `finalize`, i.e. with HNSW built; qdrant-client's local mode is a pure-Python
brute-force scan and serves as the baseline.

    python benchmarks/store.py                              # edge at 10k and 100k, local at 10k
    python benchmarks/store.py --edge-points 2000 --local-points 2000 --queries 10   # quick look
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from indexer.catalog.open import open_store
from indexer.catalog.store import CollectionInfo, Match, Point, Store, wait_for_graph

KINDS = ("image", "pdf_page", "video_segment")
FOLDERS = tuple(f"/data/folder{i}" for i in range(10))
FILTER = Match({"kind": "image", "folders": [FOLDERS[0], FOLDERS[1]]})
COLLECTION = "bench"


@dataclass
class Measurement:
    label: str
    upsert_points_per_s: float
    finalize_s: float
    query_ms: list[float]
    filtered_query_ms: list[float]
    reopen_s: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edge-points", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--local-points", type=int, nargs="*", default=[10_000])
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--queries", type=int, default=30, help="queries per kind of search")
    parser.add_argument("--batch", type=int, default=256, help="points per upsert call")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)  # (rows, dim)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def point_batches(total: int, dim: int, batch: int, seed: int) -> Iterator[list[Point]]:
    """Generated lazily: 100k x 2 x 1536 floats would hold 1.2 GB at once."""
    rng = np.random.default_rng(seed)
    for start in range(0, total, batch):
        rows = min(batch, total - start)
        disc, gen = unit_rows(rng, rows, dim), unit_rows(rng, rows, dim)
        yield [
            Point(
                str(uuid.uuid5(uuid.NAMESPACE_OID, str(start + i))),
                {
                    "path": f"/data/file{start + i}.jpg",
                    "kind": KINDS[int(rng.integers(len(KINDS)))],
                    "folders": ["/data", FOLDERS[int(rng.integers(len(FOLDERS)))]],
                    "mtime": float(start + i),
                    "summary": "a short summary of the item, as the model writes it",
                },
                {"disc": disc[i], "gen": gen[i]},
            )
            for i in range(rows)
        ]


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def query_latencies(store: Store, queries: np.ndarray, match: Match | None) -> list[float]:
    store.search(COLLECTION, "disc", queries[0], 10, match)  # warm caches once
    return [1000 * timed(partial(store.search, COLLECTION, "disc", q, 10, match)) for q in queries]


def measure(label: str, opener: Callable[[], Store], args: argparse.Namespace, n: int) -> Measurement:
    info = CollectionInfo("random", args.dim, 1, ("disc", "gen"))
    queries = unit_rows(np.random.default_rng(args.seed + 1), args.queries, args.dim)
    with opener() as store:
        store.create_collection(COLLECTION, info)
        upsert_s = 0.0
        for points in point_batches(n, args.dim, args.batch, args.seed):
            upsert_s += timed(partial(store.upsert, COLLECTION, points))
        finalize_s = timed(partial(finalize_and_wait, store))
        plain = query_latencies(store, queries, None)
        filtered = query_latencies(store, queries, FILTER)
    reopen_s = timed(partial(reopen, opener))
    return Measurement(label, n / upsert_s, finalize_s, plain, filtered, reopen_s)


def finalize_and_wait(store: Store) -> None:
    """The search graph builds in the background: measure until searches use it."""
    store.finalize(COLLECTION)
    wait_for_graph(store, COLLECTION)


def reopen(opener: Callable[[], Store]) -> None:
    """Open, answer one count (the embedded engine loads its shard lazily), close."""
    with opener() as store:
        store.count(COLLECTION)


def summary_rows(results: list[Measurement]) -> list[tuple[str, list[str]]]:
    return [
        ("upsert (points/s)", [f"{r.upsert_points_per_s:,.0f}" for r in results]),
        ("finalize (s)", [f"{r.finalize_s:.1f}" for r in results]),
        ("query p50 (ms)", [f"{statistics.median(r.query_ms):.2f}" for r in results]),
        ("query p95 (ms)", [f"{percentile(r.query_ms, 95):.2f}" for r in results]),
        ("filtered p50 (ms)", [f"{statistics.median(r.filtered_query_ms):.2f}" for r in results]),
        ("filtered p95 (ms)", [f"{percentile(r.filtered_query_ms, 95):.2f}" for r in results]),
        ("reopen + count (s)", [f"{r.reopen_s:.2f}" for r in results]),
    ]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def print_table(results: list[Measurement]) -> None:
    headers = ["", *(r.label for r in results)]
    rows = [[name, *cells] for name, cells in summary_rows(results)]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, ["-" * w for w in widths], *rows]:
        cells = zip(row, widths, strict=True)
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(cells)))


def size_label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def open_engine(engine: str, path: Path) -> Store:
    if engine == "edge":
        return open_store(data_dir=path)
    return open_store(qdrant_url=f"local:{path}")


def main() -> None:
    args = parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="ume-store-bench-") as scratch:
        runs = [("edge", n) for n in args.edge_points] + [("local", n) for n in args.local_points]
        for engine, n in runs:
            opener = partial(open_engine, engine, Path(scratch) / f"{engine}-{n}")
            label = f"{'qdrant-edge' if engine == 'edge' else 'local mode'} {size_label(n)}"
            print(f"measuring {label} ({args.dim}-d, disc + gen) ...", flush=True)
            results.append(measure(label, opener, args, n))
    print()
    print_table(results)


if __name__ == "__main__":
    main()
