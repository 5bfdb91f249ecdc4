"""One build of a collection's search graph, made beside the live shard while searches go on.

qdrant-edge builds HNSW only in `EdgeShard.optimize()`, which blocks every query on the shard it
optimises and holds the GIL for the whole build. So a build never runs on the live shard or in
the serving process:

1. the live shard is flushed and its directory copied to `build-TOKEN/` beside it;
2. a child process (`python -m indexer.catalog.edge_build`, on idle cores only) opens the copy
   with the wanted settings (HNSW, segments, int8 or not) and optimises it; it holds
   `build-TOKEN.lock` while it lives, so that the next open of an index whose process was killed
   ends it before removing its copy (`edge_files.remove_leftovers`);
3. every write to the live shard meanwhile notes the ids it touched in a `Journal`; the parent
   then brings the finished copy up to date from the live shard and swaps it in
   (`edge_graph`).

The journal lives in memory, so a build never outlives its process: a killed build leaves a copy
that the next open removes, and the collection is as it was before the build began.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qdrant_edge import (
    Distance,
    EdgeConfig,
    EdgeOptimizersConfig,
    EdgeShard,
    EdgeVectorParams,
    HnswIndexConfig,
    Memory,
    Record,
    ScalarQuantizationConfig,
    ScalarType,
    UpdateOperation,
)

from indexer.catalog import tuning
from indexer.catalog.edge_convert import (
    move_field_indexes_to_disk,
    to_edge_point,
    to_stored,
)
from indexer.catalog.edge_files import (
    BUILD_DIR,
    child_lock_path,
    lock_for_child,
    note_child,
    remove_tree,
)
from indexer.catalog.store import Point

# The child runs only on cores nothing else wants (SCHED_IDLE on Linux), niced elsewhere: niced
# alone it still took its share of a core a search was waiting for.
NICENESS = 10
IDLE_PRIORITY = True
IDLE_FLAG = "--idle"
BUILD_LOG = "build.log"  # the child's stderr, kept when it fails
# Bringing a finished copy up to date: CATCH_UP_CHUNK points are read from the live shard at a
# time (holding the lock searches wait on only while reading) and written into the copy
# COPY_PIECE at a time (each write holds the GIL, so small pieces keep searches from waiting
# long). At most CATCH_UP_ROUNDS rounds, each taking what was written during the one before,
# until at most SWAP_IDS remain: those are copied with the lock held, then the copy is swapped in.
CATCH_UP_CHUNK = 32
COPY_PIECE = 8
CATCH_UP_ROUNDS = 8
SWAP_IDS = 256
GIVE_WAY_MOST_S = 0.1  # the longest a batch of searches waits for a piece of the catch-up
CHILD_MODULE = "indexer.catalog.edge_build"  # what the child runs (`main` below)


@dataclass(frozen=True)
class ShardSettings:
    """What a shard is (re)built with; sent to the child as JSON."""

    dim: int
    vectors: tuple[str, ...]
    quantization: str = ""  # "int8", else full precision
    indexing_threshold_kb: int | None = None
    segments: int = tuning.SEGMENTS  # what the engine keeps: fewer merges the smallest ones

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ShardSettings:
        data = json.loads(text)
        threshold, segments = data["indexing_threshold_kb"], data.get("segments", tuning.SEGMENTS)
        return cls(data["dim"], tuple(data["vectors"]), data["quantization"], threshold, segments)


def edge_config(settings: ShardSettings) -> EdgeConfig:
    """The engine configuration for `settings` (see `indexer.catalog.tuning` for the numbers).

    Quantized collections keep their original vectors on disk (read only to rescore) and the
    int8 ones pinned in RAM; payloads are on disk either way (qdrant-edge's default).
    """
    int8 = tuning.quantized(settings.quantization)
    originals = Memory.Cold if int8 else None
    vectors = {
        name: EdgeVectorParams(size=settings.dim, distance=Distance.Cosine, memory=originals)
        for name in settings.vectors
    }
    quantization = None
    if int8:
        quantization = ScalarQuantizationConfig(
            ScalarType.Int8, quantile=tuning.QUANTILE, memory=Memory.Pinned
        )
    optimizers = EdgeOptimizersConfig(
        default_segment_number=settings.segments,
        indexing_threshold=settings.indexing_threshold_kb or tuning.INDEXING_THRESHOLD_KB,
    )
    hnsw = HnswIndexConfig(m=tuning.HNSW_M, ef_construct=tuning.HNSW_EF_CONSTRUCT, full_scan_threshold=10_000)
    return EdgeConfig(
        vectors=vectors,
        hnsw_config=hnsw,
        quantization_config=quantization,
        optimizers=optimizers,
        max_search_threads=tuning.SEARCH_THREADS,  # kept by the shard: every later load uses it
    )


@dataclass
class Journal:
    """The ids of the points written to the live shard during a build (upserted, deleted, or
    changed by a filter), to be copied again from the live shard into the copy: the live shard
    is the truth, so copying a point twice, or in any order, ends the same."""

    ids: set[str] = field(default_factory=set)
    field_indexes: dict[str, str] = field(default_factory=dict)

    def touched(self, ids: Iterable[str]) -> None:
        self.ids.update(ids)

    def take(self) -> list[str]:
        """The ids noted so far, in a stable order; later writes start a new set."""
        taken, self.ids = self.ids, set()
        return sorted(taken)


@dataclass
class Build:
    """One background build of a collection's shard (see the module docstring)."""

    folder: Path  # the collection's folder
    settings: ShardSettings
    estimate_s: float
    covers: int = 0  # vectors written since the previous build that this one puts in its graph
    journal: Journal = field(default_factory=Journal)
    started: float = field(default_factory=time.monotonic)
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    process: subprocess.Popen[bytes] | None = None
    worker: threading.Thread | None = None  # starts the child, waits for it, catches up, swaps
    phases: dict[str, float] = field(default_factory=dict)  # seconds and counts, for the log
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def directory(self) -> Path:
        return self.folder / f"{BUILD_DIR}-{self.token}"

    def start(self, live_dir: Path) -> None:
        """Copy the (flushed) live shard and start optimising the copy in a child process."""
        remove_tree(self.directory)
        began = time.monotonic()
        shutil.copytree(live_dir, self.directory)
        self.phases["copy_s"] = time.monotonic() - began
        command = [sys.executable, "-m", CHILD_MODULE, str(self.directory), self.settings.to_json()]
        lock = lock_for_child(self.directory)
        with open(self.folder / BUILD_LOG, "wb") as log:
            self.process = subprocess.Popen(
                [*command, IDLE_FLAG] if IDLE_PRIORITY else command,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=os.environ | {"PYTHONPATH": child_path()},
                pass_fds=() if lock is None else (lock.fileno(),),
            )
        note_child(lock, self.process.pid)

    def finished(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def succeeded(self) -> bool:
        return self.finished() and self.process is not None and self.process.returncode == 0

    def failure(self) -> str:
        """The last line the child wrote, for the status and the log."""
        with contextlib.suppress(OSError):
            lines = (self.folder / BUILD_LOG).read_text(errors="replace").strip().splitlines()
            if lines:
                return lines[-1]
        code = self.process.returncode if self.process else None
        return (
            f"the build process was killed (signal {-code})" if code and code < 0 else f"exit status {code}"
        )

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def cancel(self) -> None:
        """Stop the child and the thread catching up, and remove the copy (the live shard is
        untouched). Call it without holding the store's lock: the thread may be waiting on it."""
        self.cancelled.set()
        self.stop_child()
        if self.worker is not None and self.worker is not threading.current_thread():
            self.worker.join()
        self.remove_copy()

    def stop_child(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def child_done(self) -> None:
        """The child has exited: its lock has nothing left to guard."""
        child_lock_path(self.directory).unlink(missing_ok=True)

    def remove_copy(self) -> None:
        remove_tree(self.directory)
        child_lock_path(self.directory).unlink(missing_ok=True)

    def wait_for_child(self, poll_s: float = 0.5) -> bool:
        """Wait until the child exits; False when the build was cancelled first."""
        began = time.monotonic()
        while not self.cancelled.is_set():
            if self.process is None:
                return False
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(poll_s)
                self.phases["child_s"] = time.monotonic() - began
                return not self.cancelled.is_set()
        return False


def describe_phases(phases: dict[str, float]) -> str:
    """`copy_s 3.10, child_s 40.02, caught_up 9888, ...`: seconds with two decimals, counts."""
    return ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in phases.items())


class BuildCancelled(Exception):
    """The build was cancelled (the store closed, or the collection dropped) while catching up."""


def copy_points(ids: Sequence[str], records: Sequence[Record], staging: EdgeShard) -> None:
    """Make `ids` in the copy what `records` (read from the live shard) say: upserted as they
    are there (COPY_PIECE at a time: each write holds the GIL), deleted when gone."""
    present = [to_edge_point(Point(i, payload, dict(v))) for i, payload, v in map(to_stored, records)]
    for start in range(0, len(present), COPY_PIECE):
        staging.update(UpdateOperation.upsert_points(present[start : start + COPY_PIECE]))
    gone = set(ids) - {str(record.id) for record in records}
    if gone:
        staging.update(UpdateOperation.delete_points(sorted(gone)))


def child_path() -> str:
    """The child imports this package from where the parent did."""
    here = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)


def shard_generation(name: str) -> int:
    """`shard` (every collection made before builds were swapped) is 0, `shard-N` is N."""
    prefix, _, number = name.partition("-")
    return int(number) if prefix == "shard" and number.isdigit() else 0


def optimize(directory: Path, settings: ShardSettings) -> None:
    """The child's work: open the copy with the wanted settings, move payload indexes still held
    in RAM to disk (see `edge_convert.EDGE_INDEX_PARAMS`), and build its graph."""
    shard = EdgeShard.load(str(directory), edge_config(settings))
    move_field_indexes_to_disk(shard)
    shard.optimize()
    shard.flush()
    shard.close()


def main(argv: Sequence[str]) -> int:
    """The child. A parent that is killed leaves it running (Linux's parent-death signal follows
    the thread that started it, which in a server may be a short-lived worker); the lock it
    inherited tells the next open of the index to end it (`edge_files.end_orphaned_child`)."""
    directory, settings = Path(argv[0]), ShardSettings.from_json(argv[1])
    lower_priority(idle=IDLE_FLAG in argv[2:])
    optimize(directory, settings)
    return 0


def lower_priority(idle: bool) -> None:
    """Nice every thread of this process (the engine's threads start from them and inherit it),
    and on Linux, when `idle`, schedule them only on otherwise idle cores."""
    tasks = Path("/proc/self/task")
    threads = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]
    for thread in threads:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile; a sandbox refusing
            if hasattr(os, "setpriority"):
                os.setpriority(os.PRIO_PROCESS, thread, NICENESS)
            if idle and hasattr(os, "SCHED_IDLE"):  # when refused, niced is enough
                os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
