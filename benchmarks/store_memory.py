"""Full precision vs int8 in the embedded engine: memory, search speed and agreement at one size.

Points are clustered like real embeddings (200 clusters; a point's cosine to its centre ~0.7)
and each query lies near one point. Each variant is built through the `Store` interface
(create, upsert, finalize, wait for the graph) and closed; a fresh process then opens it and
answers the queries, so its resident memory holds only what searching needs. Reported per
variant: the build's seconds, bytes per million points of each component that grows with the
points (original vectors, int8 vectors, HNSW graph), resident memory after the queries above a
bare process that imported the same modules, query p50, and recall@10 against an exact numpy
search (rescoring included).

    python benchmarks/store_memory.py --points 10000            # 2 x 1536-d, ~4 min on 2 cores
    python benchmarks/store_memory.py --points 2000 --dim 256   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
CLUSTERS = 200
SPREAD = 1.0  # norm of a point's offset from its centre, before normalising (cosine ~0.7)
QUERY_SPREAD = 0.5  # norm of a query's offset from the point it was made from
COMPONENTS = {  # file name patterns under a segment, by what they hold
    "originals": ("vector_storage-*/matrix.dat", "vector_storage-*/vectors/chunk_*.mmap"),
    "int8": ("vector_storage-*/quantized.data",),
    "graph": ("vector_index-*/*",),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--uniform", action="store_true", help="unclustered points: HNSW's worst case")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here (JSON)")
    parser.add_argument("--measure", nargs=2, metavar=("DIR", "QUANTIZATION"), help=argparse.SUPPRESS)
    return parser.parse_args()


def unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)  # (rows, dim)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def normalised(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def clustered(points: int, dim: int, seed: int, uniform: bool = False) -> np.ndarray:
    """(points, dim) unit vectors around random centres (or uniformly random)."""
    rng = np.random.default_rng(seed)
    if uniform:
        return unit_rows(rng, points, dim)
    centres = unit_rows(rng, CLUSTERS, dim)[rng.integers(CLUSTERS, size=points)]
    return normalised(centres + SPREAD * unit_rows(rng, points, dim))


def queries_for(disc: np.ndarray, count: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    near = disc[rng.integers(len(disc), size=count)]
    return normalised(near + QUERY_SPREAD * unit_rows(rng, count, disc.shape[1]))


def exact_tops(disc: np.ndarray, queries: np.ndarray) -> list[list[str]]:
    order = np.argsort(-(queries @ disc.T), axis=1)[:, :10]  # (queries, 10)
    return [[str(uuid.UUID(int=int(i) + 1)) for i in row] for row in order]


def build(folder: Path, quantization: str, points: int, dim: int, uniform: bool) -> float:
    info = CollectionInfo("random", dim, 3, ("disc", "gen"), quantization=quantization)
    all_disc, all_gen = clustered(points, dim, 0, uniform), clustered(points, dim, 2, uniform)
    with EdgeStore(folder) as store:
        store.create_collection(COLLECTION, info)
        for start in range(0, points, 256):
            rows = min(256, points - start)
            disc, gen = all_disc[start : start + rows], all_gen[start : start + rows]
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


def measure(folder: Path, asked: np.ndarray) -> dict[str, object]:
    """Runs in a fresh process: open, search, report."""
    bare = rss_bytes()
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
    build_s = build(folder, quantization, args.points, args.dim, args.uniform)
    command = [sys.executable, __file__, "--measure", str(folder), quantization]
    command += ["--dim", str(args.dim), "--queries", str(args.queries), "--points", str(args.points)]
    command += ["--uniform"] if args.uniform else []
    measured = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return {"build_s": build_s, "disk": disk_bytes(folder), **measured}


def per_million(value: float, points: int) -> str:
    return f"{value / points * 1e6 / 2**30:.2f} GiB"


def recalls(result: dict, truth: list[list[str]]) -> list[int]:
    """Per query, how many of the exact top 10 the variant found."""
    return [len(set(a) & set(b)) for a, b in zip(result["tops"], truth, strict=True)]


def write_json(
    path: Path, results: dict[str, dict], truth: list[list[str]], args: argparse.Namespace
) -> None:
    figures = {
        name: {
            "build_s": round(result["build_s"], 2),
            "query_p50_ms": round(result["p50_ms"], 3),
            "gib_per_million_points": {
                k: round(v / args.points * 1e6 / 2**30, 3) for k, v in result["disk"].items()
            },
            "resident_mib_after_queries": round(result["rss"] / 2**20, 1),
            "recall_at_10": round(float(np.mean(recalls(result, truth))) / 10, 4),
        }
        for name, result in results.items()
    }
    report = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "points": args.points,
        "dim": args.dim,
        "distribution": "uniform on the sphere"
        if args.uniform
        else "clustered (200 clusters, cosine ~0.7 to the centre)",
        "memory": "sizes of the engine's files per component, scaled to a million points; resident "
        "memory of a fresh process above a bare one that imported the same modules, after the queries",
        "variants": figures,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")


def report(results: dict[str, dict], truth: list[list[str]], points: int) -> None:
    for name, result in results.items():
        found = recalls(result, truth)
        disk = ", ".join(f"{k} {per_million(v, points)}" for k, v in result["disk"].items())
        print(f"{name}: build {result['build_s']:.1f} s, query p50 {result['p50_ms']:.2f} ms")
        print(f"  per million points: {disk}")
        print(f"  resident after opening and {len(truth)} queries: {result['rss'] / 2**20:.0f} MiB")
        print(f"  recall@10 against exact search: mean {np.mean(found) / 10:.3f}, min {min(found) / 10:.1f}")


def main() -> None:
    args = parse_args()
    asked = queries_for(clustered(args.points, args.dim, 0, args.uniform), args.queries)
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), asked)))
        return
    with tempfile.TemporaryDirectory(prefix="ume-memory-bench-") as scratch:
        results = {q: run_variant(Path(scratch), q, args) for q in ("none", "int8")}
    print(f"{args.points:,} {'uniform' if args.uniform else 'clustered'} points x 2 x {args.dim}-d")
    truth = exact_tops(clustered(args.points, args.dim, 0, args.uniform), asked)
    report(results, truth, args.points)
    if args.out is not None:
        write_json(args.out, results, truth, args)


if __name__ == "__main__":
    main()
