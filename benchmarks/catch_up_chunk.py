"""What writing a piece of points into a build's copy costs, by piece size (`COPY_PIECE`).

    python benchmarks/catch_up_chunk.py [--points 2000] [--chunks 32 8] [--out FILE]

A finished build is brought up to date by reading the points written during it from the live
shard and writing them into the copy (`EdgeStore._copy_from_live`); the engine holds the GIL
while it writes, so every other thread of the process (the searches) waits that long per write.
Writes `--points` items (`disc` and `gen`, 1536-d, an item's payload) into an int8 collection,
then copies them into a second one in pieces (one read and one write each), each size twice in
turn: milliseconds per chunk read and written, and per point.
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
from pathlib import Path

from qdrant_edge import UpdateOperation
from synthetic import ClusteredCollection

from indexer.catalog.edge import EdgeStore
from indexer.catalog.edge_convert import to_edge_point, to_stored
from indexer.catalog.store import CollectionInfo, Point

ROWS = 500
INFO = CollectionInfo("synthetic", 1536, 1, ("disc", "gen"), quantization="int8")


def item(index: int, disc: object, gen: object) -> Point:
    folder = f"/photos/{index // ROWS}"
    payload = {"kind": "image", "path": f"{folder}/{index}.jpg", "folders": ["/photos", folder]}
    payload |= {"fingerprint": uuid.uuid4().hex, "mtime": 1.0, "page": 0}
    return Point(str(uuid.uuid5(uuid.NAMESPACE_OID, str(index))), payload, {"disc": disc, "gen": gen})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000, help="a multiple of 500")
    parser.add_argument("--chunks", type=int, nargs="+", default=[32, 8])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data = ClusteredCollection(1536, 0, ROWS)
    results: dict[str, list[dict[str, float]]] = {str(c): [] for c in args.chunks}
    with tempfile.TemporaryDirectory() as scratch:
        live, copy = EdgeStore(Path(scratch) / "live"), EdgeStore(Path(scratch) / "copy")
        for store in (live, copy):
            store.create_collection("c", INFO)
        for number in range(args.points // ROWS):
            disc, gen = data.batch(number, ROWS)
            live.upsert("c", [item(number * ROWS + r, disc[r], gen[r]) for r in range(ROWS)])
        ids = [str(uuid.uuid5(uuid.NAMESPACE_OID, str(i))) for i in range(args.points)]
        source, staging = live._shard("c"), copy._shard("c")  # the shards the catch-up uses
        for chunk in args.chunks * 2:
            read = write = 0.0
            for start in range(0, len(ids), chunk):
                part = ids[start : start + chunk]
                began = time.perf_counter()
                records = source.retrieve(part, True, True)  # type: ignore[arg-type]
                between = time.perf_counter()
                points = [to_edge_point(Point(i, p, dict(v))) for i, p, v in map(to_stored, records)]
                staging.update(UpdateOperation.upsert_points(points))  # one write of the piece
                read, write = read + between - began, write + time.perf_counter() - between
            count = -(-len(ids) // chunk)
            figures = {
                "read_ms_per_chunk": round(1000 * read / count, 2),
                "write_ms_per_chunk": round(1000 * write / count, 2),
                "ms_per_point": round(1000 * (read + write) / len(ids), 3),
            }
            results[str(chunk)].append(figures)
            print(f"chunk {chunk:3}: " + "  ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
        live.close()
        copy.close()
    report = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "points": args.points,
        "results_by_chunk": results,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
