"""Resident memory per library item in the embedded engine: payload indexes in RAM against on
disk, side by side in one run, and what a million items take with int8 vectors.

`ume index` writes two points per item (the item and its file's record) carrying twelve indexed
payload fields (`indexer.catalog.schema.PAYLOAD_INDEXES`: the path, every ancestor folder, the
fingerprint, ...) and the generated reasoning. This writes `--items` such items through the
store's own conversions and engine configuration (int8, originals on disk, payload on disk),
builds the graph in-process, and opens the shard in a fresh process that runs searches (plain and
filtered). What is reported per layout is that process's anonymous resident memory (RssAnon:
what cannot be dropped; mapped file pages, which the kernel reclaims under pressure, are shown
apart) above the same process before it opened the shard.

Vectors are `--dim` wide (small, so builds are quick): everything but the int8 vectors costs
the same whatever the width, so a million items at the model's width is estimated as the
measured memory per item without its int8 vectors, plus 2 x 1536 int8 bytes per item, plus the
bare process.

    python benchmarks/item_memory.py --items 100000          # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_edge import EdgeShard, PayloadSchemaType, Query, QueryRequest, UpdateOperation

from indexer.catalog.edge_build import ShardSettings, edge_config
from indexer.catalog.edge_convert import create_field_indexes, search_params, to_edge_filter, to_edge_point
from indexer.catalog.schema import (
    PAYLOAD_INDEXES,
    FileFacts,
    FileRecord,
    FileSettings,
    ItemPlace,
    ItemRecord,
    items,
)

RESULTS = Path(__file__).resolve().parent / "results"
VECTORS = ("disc", "gen")
MODEL_DIM = 1536  # UME-R1-2B
GIB = 1024**3
RAM_INDEXES = {
    "keyword": PayloadSchemaType.Keyword,
    "float": PayloadSchemaType.Float,
    "integer": PayloadSchemaType.Integer,
}
LAYOUTS = ("ram", "disk")  # where payload indexes live: as before, and as collections now keep them
REASONING = "The image shows " + "a scene with several objects, described step by step. " * 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="what else the machine was doing, for the JSON")
    parser.add_argument("--measure", nargs=2, metavar=("DIR", "DIM"), help=argparse.SUPPRESS)
    return parser.parse_args()


def library_points(start: int, stop: int, dim: int, rng: np.random.Generator) -> list[Any]:
    """Items of a photo library and their file records, as `ume index` writes them."""
    points = []
    for i in range(start, stop):
        path = f"/home/user/Pictures/{2010 + i % 15}/{i % 12 + 1:02d}/trip-{i % 97}/IMG_{i:07d}.jpg"
        digest = hashlib.blake2b(path.encode(), digest_size=16).hexdigest()
        facts = FileFacts(path, "/home/user/Pictures", "image", 2_000_000 + i, 1.6e9 + i, digest, "UME-R1-2B")
        item = ItemRecord(facts, ItemPlace(0), REASONING, "A short summary of the item.", VECTORS)
        vectors = rng.standard_normal((len(VECTORS), dim)).astype(np.float32)
        points.append(to_edge_point(item.to_point(dict(zip(VECTORS, vectors, strict=True)))))
        record = FileRecord(facts, "ok", 1, settings=FileSettings("image", "recipe", 3))
        points.append(to_edge_point(record.to_point()))
    return points


def build(folder: Path, layout: str, count: int, dim: int) -> float:
    """A collection of `count` items with its graph built; returns the seconds it took."""
    began = time.perf_counter()
    shard = EdgeShard.create(str(folder), edge_config(ShardSettings(dim, VECTORS, "int8")))
    if layout == "ram":  # as collections were made before their indexes lived on disk
        for name, kind in PAYLOAD_INDEXES.items():
            shard.update(UpdateOperation.create_field_index(name, RAM_INDEXES[kind]))
    else:
        create_field_indexes(shard, PAYLOAD_INDEXES)
    rng = np.random.default_rng(0)
    for start in range(0, count, 256):
        shard.update(UpdateOperation.upsert_points(library_points(start, min(count, start + 256), dim, rng)))
    shard.optimize()
    shard.flush()
    shard.close()
    return time.perf_counter() - began


def resident_gib() -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {key: int(fields[key].split()[0]) / 2**20 for key in ("RssAnon", "RssFile")}


def measure(folder: Path, dim: int, searches: int) -> dict[str, float]:
    """In a fresh process: open the shard, search, and report what that added."""
    before = resident_gib()
    shard = EdgeShard.load(str(folder), edge_config(ShardSettings(dim, VECTORS, "int8")))
    rng = np.random.default_rng(1)
    under = to_edge_filter(items(kind="image", folder="/home/user/Pictures/2012"))
    for i in range(searches):
        query = Query.Nearest(rng.standard_normal(dim).astype(np.float32), using=VECTORS[i % 2])  # type: ignore[arg-type]
        request = QueryRequest(
            limit=10,
            query=query,
            filter=under if i % 4 == 0 else None,
            with_payload=True,
            params=search_params("int8"),
        )
        shard.query(request)
    after = resident_gib()
    shard.close()
    return {
        "bare_anon_gib": before["RssAnon"],
        "anon_gib": after["RssAnon"] - before["RssAnon"],
        "file_gib": after["RssFile"] - before["RssFile"],
    }


def measured_in_fresh_process(folder: Path, args: argparse.Namespace) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--searches",
        str(args.searches),
        "--measure",
        str(folder),
        str(args.dim),
    ]
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout)


def figures(layout: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    folder = scratch / layout
    build_s = build(folder, layout, args.items, args.dim)
    resident = measured_in_fresh_process(folder, args)
    int8_per_item = len(VECTORS) * args.dim  # bytes: one per dimension
    other_kib = (resident["anon_gib"] * GIB / args.items - int8_per_item) / 1024
    million = 1_000_000 * (other_kib * 1024 + len(VECTORS) * MODEL_DIM) / GIB + resident["bare_anon_gib"]
    return {
        "build_s": round(build_s, 1),
        "anon_gib": round(resident["anon_gib"], 4),
        "file_gib": round(resident["file_gib"], 4),
        "anon_kib_per_item_without_int8": round(other_kib, 3),
        "bare_process_anon_gib": round(resident["bare_anon_gib"], 3),
        "estimated_anon_gib_at_1m_items_1536d": round(million, 2),
    }


def main() -> None:
    args = parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), int(args.measure[1]), args.searches)))
        return
    with tempfile.TemporaryDirectory(prefix="ume-item-memory-") as scratch:
        results = {layout: figures(layout, args, Path(scratch)) for layout in LAYOUTS}
    record = {
        "items": args.items,
        "points": 2 * args.items,
        "dim": args.dim,
        "payload_indexes": results,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores" + (f"; {args.note}" if args.note else ""),
        "command": "python " + " ".join(sys.argv),
        "what": "anonymous resident memory (RssAnon) of a fresh process after opening the collection and "
        f"{args.searches} searches (1 in 4 filtered by kind and folder), above the same process before; "
        "the 1M estimate adds 2 x 1536 int8 bytes per item and the bare process",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"item_memory-{args.items}.json").write_text(json.dumps(record, indent=2) + "\n")
    rows = list(results[LAYOUTS[0]])
    print(f"{'':>40}" + "".join(f"{layout:>12}" for layout in LAYOUTS))
    for row in rows:
        print(f"{row:>40}" + "".join(f"{results[layout][row]!s:>12}" for layout in LAYOUTS))


if __name__ == "__main__":
    main()
