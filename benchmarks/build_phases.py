"""Where a growing collection's time goes: each background build's phases, and what one
searcher sees meanwhile.

Writes `--points` clustered points (`benchmarks/synthetic.py`, 2 x 1536-d, int8, as
`benchmarks/store.py` does) at `--write-rate` items per second with a background build every
`--grow-every`, then ends the run and waits for the graph. Meanwhile it records:

- every build the store swaps in, from its log: seconds copying the collection, in the child
  (graph and merge), opening the copy, catching up with the writes made during the build (and how
  many), and holding searches for the last ones and the swap (`held_s`);
- every 0.5 s, one search's time and how many vectors no graph covers yet (scanned exactly by
  every search), summed up per 10 s.

    python benchmarks/build_phases.py --points 100000 --write-rate 400 --grow-every 5000
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import store as bench
from synthetic import ClusteredCollection

from indexer.catalog.edge import EdgeStore
from indexer.catalog.store import CollectionInfo

SAMPLE_EVERY_S = 0.5
WINDOW_S = 10


class BuildLog(bench.SwapLog):
    """Keeps the phases of every build the store logs as swapped in, with the time and the
    graph's coverage right after."""

    def __init__(self, store: EdgeStore, began: float) -> None:
        super().__init__(began)
        self.store = store

    def after_swap(self) -> dict[str, float]:
        status = self.store.graph_status(bench.COLLECTION)
        return {"indexed": status.indexed, "vectors": status.vectors}


Sample = tuple[float, float, int]  # seconds since start, ms of one search, vectors without a graph


def sample(
    store: EdgeStore, queries: np.ndarray, began: float, done: threading.Event
) -> tuple[list[Sample], threading.Thread]:
    """A `Sample` every SAMPLE_EVERY_S until `done` is set, in the thread returned (join it
    before closing the store)."""
    samples: list[Sample] = []

    def run() -> None:
        for i in itertools.count():
            if done.wait(SAMPLE_EVERY_S):
                return
            status = store.graph_status(bench.COLLECTION)
            ms = bench.timed_search(store, queries[i % len(queries)], None)
            samples.append((time.perf_counter() - began, ms, status.vectors - status.indexed))

    sampler = threading.Thread(target=run, name="sampler", daemon=True)
    sampler.start()
    return samples, sampler


def windows(samples: list[Sample]) -> list[dict[str, Any]]:
    """Per WINDOW_S: the median and longest search, and the most vectors without a graph."""
    by_window: dict[int, list[Sample]] = {}
    for at, ms, unindexed in samples:
        by_window.setdefault(int(at // WINDOW_S) * WINDOW_S, []).append((at, ms, unindexed))
    return [
        {
            "from_s": start,
            "search_median_ms": round(float(np.median([ms for _, ms, _ in rows])), 2),
            "search_max_ms": round(max(ms for _, ms, _ in rows), 2),
            "unindexed_vectors": max(u for _, _, u in rows),
            "samples": len(rows),
        }
        for start, rows in sorted(by_window.items())
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--write-rate", type=float, default=400.0)
    parser.add_argument("--grow-every", type=int, default=5_000)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=bench.RESULTS)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    data = ClusteredCollection(args.dim, args.seed, 256)
    queries = data.queries(200, args.points)
    with (
        tempfile.TemporaryDirectory(prefix="ume-build-phases-", dir=args.scratch) as scratch,
        EdgeStore(Path(scratch)) as store,
    ):
        info = CollectionInfo("synthetic", args.dim, 1, ("disc", "gen"), quantization="int8")
        store.create_collection(bench.COLLECTION, info)
        began, done = time.perf_counter(), threading.Event()
        handler = BuildLog(store, began)
        logging.getLogger("indexer.catalog.edge").addHandler(handler)
        logging.getLogger("indexer.catalog.edge").setLevel(logging.INFO)
        samples, sampler = sample(store, queries, began, done)
        bench.fill(store, data, args.points, bench.ExactTopK(queries), args.grow_every, args.write_rate)
        written_s = time.perf_counter() - began
        store.finalize(bench.COLLECTION)
        while store.graph_status(bench.COLLECTION).state == "building":
            time.sleep(SAMPLE_EVERY_S)
        ready_s = time.perf_counter() - began
        done.set()
        sampler.join()  # its search under way ends before the store closes
    memory = psutil.virtual_memory().total / 1024**3
    result = {
        "points": args.points,
        "write_rate": args.write_rate,
        "grow_every": args.grow_every,
        "written_s": round(written_s, 1),
        "graph_ready_s": round(ready_s, 1),
        "builds": handler.swaps,
        "windows": windows(samples),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB"
        + (f"; {args.note}" if args.note else ""),
        "command": "python benchmarks/build_phases.py "
        f"--points {args.points} --write-rate {args.write_rate:g} --grow-every {args.grow_every}",
        "note": "builds: seconds (_s) and point counts per phase, logged by the store at each swap; "
        f"windows: one search every {SAMPLE_EVERY_S} s, per {WINDOW_S} s",
    }
    out = args.out / f"build_phases-{args.points}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for build in handler.swaps:
        print(build)
    print(f"written in {written_s:.0f} s, graph ready at {ready_s:.0f} s; {out}")


if __name__ == "__main__":
    main()
