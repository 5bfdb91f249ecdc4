"""Concurrent searches of the embedded engine: no lock, ordinary locks, and turns in arrival order.

    python benchmarks/search_turns.py [--points 20000] [--out benchmarks/results/search_turns.json]

Writes `--points` clustered 1536-d vectors (500 Gaussian clusters, sigma 0.3 per dimension before
normalising) with a small payload into a qdrant-edge shard kept as the store keeps large
collections (int8 in RAM, originals on disk, 8 segments, HNSW built), then runs 8 searcher
threads, 60 searches each (top 10 with payload, rescored), under each guard: throughput and
p50/p95 latency side by side. qdrant-edge holds the GIL for most of a query, so searches are
serialised whatever the guard; the guard decides who waits how long.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_edge import (
    EdgeShard,
    Point,
    QuantizationSearchParams,
    Query,
    QueryRequest,
    SearchParams,
    UpdateOperation,
)

from indexer.catalog import tuning
from indexer.catalog.edge_build import ShardSettings, edge_config
from indexer.catalog.turns import Turns

DIM = 1536
SEARCHERS = 8
SEARCHES_EACH = 60


def build_shard(points: int, rng: np.random.Generator) -> tuple[EdgeShard, np.ndarray]:
    centres = rng.standard_normal((500, DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, 500, points)] + 0.3 * rng.standard_normal((points, DIM)).astype(
        np.float32
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    config = edge_config(ShardSettings(DIM, ("disc",), quantization="int8"))  # as the store keeps it
    shard = EdgeShard.create(tempfile.mkdtemp() + "/shard", config)
    payload = {"kind": "image", "path": "/photos/holiday/beach.jpg", "summary": "a beach at dusk" * 10}
    for start in range(0, points, 500):
        batch = [Point(str(uuid.uuid4()), {"disc": v}, payload) for v in vectors[start : start + 500]]
        shard.update(UpdateOperation.upsert_points(batch))  # type: ignore[arg-type]
    shard.optimize()
    return shard, vectors[rng.integers(0, points, 400)]


def measure(shard: EdgeShard, queries: np.ndarray, guard: Any) -> dict[str, float]:
    params = SearchParams(
        quantization=QuantizationSearchParams(rescore=True, oversampling=tuning.OVERSAMPLING)
    )
    latencies: list[float] = []

    def searcher(offset: int) -> None:
        for i in range(SEARCHES_EACH):
            query = queries[(offset * SEARCHES_EACH + i) % len(queries)]
            began = time.perf_counter()
            with guard:
                shard.query(
                    QueryRequest(
                        limit=10, query=Query.Nearest(query, using="disc"), with_payload=True, params=params
                    )  # type: ignore[arg-type]
                )
            latencies.append(1000 * (time.perf_counter() - began))

    began = time.perf_counter()
    with ThreadPoolExecutor(SEARCHERS) as pool:
        list(pool.map(searcher, range(SEARCHERS)))
    wall = time.perf_counter() - began
    values = np.asarray(latencies)
    return {
        "searches_per_s": round(len(values) / wall, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    shard, queries = build_shard(args.points, np.random.default_rng(0))
    guards = {
        "no lock": contextlib.nullcontext(),
        "threading.Lock": threading.Lock(),
        "threading.RLock": threading.RLock(),
        "turns (first come, first served)": Turns(),
    }
    results = {name: measure(shard, queries, guard) for name, guard in guards.items()}
    for name, figures in results.items():
        rate, p50, p95 = figures["searches_per_s"], figures["p50_ms"], figures["p95_ms"]
        print(f"{name:34} {rate:8.0f}/s  p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")
    report = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "points": args.points,
        "searchers": SEARCHERS,
        "results": results,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
