"""Full precision vs int8 in the embedded engine: memory, search speed and agreement at one size.

Each variant is built through the `Store` interface (create, upsert, finalize, wait for the
graph) and closed; a fresh process then opens it and answers queries, so its resident memory
holds only what searching needs. Reported per variant: the build's seconds, the bytes on disk
per component (original vectors, int8 vectors, HNSW graph, payload), resident memory after the
queries above a bare process that imported the same modules, query p50, and how many of the
full-precision top 10 the variant returns (rescoring included).

    python benchmarks/store_memory.py --points 10000            # 2 x 1536-d, ~4 min on 2 cores
    python benchmarks/store_memory.py --points 2000 --dim 256   # quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from indexer.catalog.edge import EdgeStore
from indexer.catalog.store import CollectionInfo, Point, wait_for_graph

COLLECTION = "bench"
COMPONENTS = {  # file name patterns under a segment, by what they hold
    "originals": ("vector_storage-*/matrix.dat", "vector_storage-*/vectors/chunk_*.mmap"),
    "int8": ("vector_storage-*/quantized.data",),
    "graph": ("vector_index-*/*",),
    "payload": ("payload_storage/*", "payload_index/**/*"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--measure", nargs=2, metavar=("DIR", "QUANTIZATION"), help=argparse.SUPPRESS)
    return parser.parse_args()


def unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)  # (rows, dim)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build(folder: Path, quantization: str, points: int, dim: int) -> float:
    info = CollectionInfo("random", dim, 3, ("disc", "gen"), quantization=quantization)
    rng = np.random.default_rng(0)
    with EdgeStore(folder) as store:
        store.create_collection(COLLECTION, info)
        for start in range(0, points, 256):
            rows = min(256, points - start)
            disc, gen = unit_rows(rng, rows, dim), unit_rows(rng, rows, dim)
            batch = [
                Point(str(uuid.UUID(int=start + i + 1)), {"i": start + i}, {"disc": disc[i], "gen": gen[i]})
                for i in range(rows)
            ]
            store.upsert(COLLECTION, batch)
        started = time.perf_counter()
        store.finalize(COLLECTION)
        wait_for_graph(store, COLLECTION)
        return time.perf_counter() - started


def disk_bytes(folder: Path) -> dict[str, int]:
    """Bytes per component in the indexed segments (an empty appendable one is preallocated)."""
    segments = [
        segment
        for segment in folder.glob(f"collections/{COLLECTION}/shard*/segments/*")
        if any(segment.glob("vector_index-*"))
    ]
    return {
        name: sum(f.stat().st_size for s in segments for p in patterns for f in s.glob(p) if f.is_file())
        for name, patterns in COMPONENTS.items()
    }


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(folder: Path, queries: int, dim: int) -> dict[str, object]:
    """Runs in a fresh process: open, search, report."""
    bare = rss_bytes()
    asked = unit_rows(np.random.default_rng(1), queries, dim)
    with EdgeStore(folder) as store:
        store.search(COLLECTION, "disc", asked[0], 10)  # open the shard
        latencies, tops = [], []
        for query in asked:
            started = time.perf_counter()
            tops.append([hit.id for hit in store.search(COLLECTION, "disc", query, 10)])
            latencies.append(1000 * (time.perf_counter() - started))
        used = rss_bytes() - bare
    return {"rss": used, "p50_ms": statistics.median(latencies), "tops": tops}


def run_variant(scratch: Path, quantization: str, args: argparse.Namespace) -> dict[str, object]:
    folder = scratch / (quantization or "full")
    build_s = build(folder, quantization, args.points, args.dim)
    command = [sys.executable, __file__, "--measure", str(folder), quantization]
    command += ["--dim", str(args.dim), "--queries", str(args.queries)]
    measured = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return {"build_s": build_s, "disk": disk_bytes(folder), **measured}


def per_million(value: float, points: int) -> str:
    return f"{value / points * 1e6 / 2**30:.2f} GiB"


def report(results: dict[str, dict], points: int) -> None:
    full_tops = results["none"]["tops"]
    for name, result in results.items():
        agree = [len(set(a) & set(b)) for a, b in zip(result["tops"], full_tops, strict=True)]
        disk = ", ".join(f"{k} {per_million(v, points)}" for k, v in result["disk"].items())
        print(f"{name}: build {result['build_s']:.1f} s, query p50 {result['p50_ms']:.2f} ms")
        print(f"  on disk per million points: {disk}")
        print(f"  resident after queries, per million points: {per_million(result['rss'], points)}")
        print(f"  top-10 shared with full precision: mean {np.mean(agree):.2f}, min {min(agree)}")


def main() -> None:
    args = parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.queries, args.dim)))
        return
    with tempfile.TemporaryDirectory(prefix="ume-memory-bench-") as scratch:
        results = {q: run_variant(Path(scratch), q, args) for q in ("none", "int8")}
    print(f"{args.points:,} points x 2 x {args.dim}-d")
    report(results, args.points)


if __name__ == "__main__":
    main()
