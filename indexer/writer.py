"""Store stage: a background thread that writes finished files to the collection in groups.

Each group of finished files is written in four steps, in this order, which is what makes a
killed run resumable with every item present exactly once:

1. pending file records (a crash from here on leaves a record that says "redo me"),
2. delete the files' existing item points (stale segments of an older version),
3. upsert the new item points (freshly encoded, or copied from identical content),
4. final file records ("ok" with the point count, or "failed" with the reason).

Writing trails the model on its own thread, so the encoder never waits for the store.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from indexer import state
from indexer.catalog.schema import (
    FAILED,
    OK,
    PENDING,
    FileRecord,
    FileSettings,
    FileStatus,
    ItemPlace,
    ItemRecord,
)
from indexer.catalog.store import Point, Store
from indexer.scan import ScannedFile
from indexer.summary import Failure, RunSummary, StageClock

log = logging.getLogger(__name__)

GROUP_FILES = 64  # files written per group at most: fewer, larger store requests
QUEUE_FILES = 256  # finished files waiting for the writer before the encoder pauses
# Test hook: SIGKILL this process right after the Nth item upsert, before the file records that
# would mark those files done: the worst moment for a crash.
KILL_AFTER_ENV = "UME_INDEX_KILL_AFTER_ITEM_WRITES"


@dataclass
class EncodedFile:
    """A file whose every item went through the model."""

    file: ScannedFile
    fingerprint: str
    settings: FileSettings
    places: list[ItemPlace]
    vectors: dict[str, np.ndarray]  # vector name -> (items, hidden)
    reasoning: list[str | None]
    summary: list[str | None]


@dataclass
class ReusedFile:
    """A file whose content is already indexed under `source` (a record payload)."""

    file: ScannedFile
    fingerprint: str
    settings: FileSettings
    source: FileRecord


@dataclass
class FailedFile:
    file: ScannedFile
    fingerprint: str | None
    settings: FileSettings
    reason: str


WriteJob = EncodedFile | ReusedFile | FailedFile


@dataclass
class _Group:
    jobs: list[WriteJob]
    items: dict[str, list[Point]] = field(default_factory=dict)  # path -> its item points


class StoreWriter(threading.Thread):
    """Consumes `WriteJob`s from `submit` until `finish`; re-raises its error on the caller.

    A write error stops writing (later jobs are drained unwritten, their files stay pending or
    absent and the next run redoes them) and is raised by the next `submit`, `flush` or `finish`.
    """

    def __init__(
        self,
        store: Store,
        collection: str,
        model_id: str,
        clock: StageClock,
        summary: RunSummary,
        on_file_done: Callable[[], None],
    ) -> None:
        super().__init__(name="ume-store-writer", daemon=True)
        self.store, self.collection, self.model_id = store, collection, model_id
        self.clock, self.summary, self.on_file_done = clock, summary, on_file_done
        self.needs_encoding: list[ScannedFile] = []  # reuse sources that turned out incomplete
        self.error: BaseException | None = None
        self._queue: queue.Queue[WriteJob | None] = queue.Queue(QUEUE_FILES)
        self._item_writes = 0

    def submit(self, job: WriteJob) -> None:
        self.raise_error()
        self._queue.put(job)

    def flush(self) -> None:
        """Wait until everything submitted is written; surface the thread's error if it had one."""
        self._queue.join()
        self.raise_error()

    def finish(self) -> None:
        """Write what is queued, stop the thread, and surface its error if it had one."""
        self.close()
        self.raise_error()

    def close(self) -> None:
        """Write what is queued and stop the thread (safe to call twice, never raises)."""
        if self.is_alive():
            self._queue.put(None)
            self.join()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def run(self) -> None:
        stop = False
        while not stop:
            jobs, stop = self._next_group()
            try:
                if jobs and self.error is None:  # after an error, jobs are only drained
                    with self.clock.measure("store"):
                        self._write(_Group(jobs))
            except BaseException as error:  # handed to the main thread by raise_error
                self.error = error
            finally:
                for _ in range(len(jobs) + stop):
                    self._queue.task_done()

    def _next_group(self) -> tuple[list[WriteJob], bool]:
        """Up to GROUP_FILES queued jobs (waiting for the first), and whether to stop after."""
        jobs: list[WriteJob] = []
        job = self._queue.get()
        while job is not None:
            jobs.append(job)
            if len(jobs) == GROUP_FILES:
                return jobs, False
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return jobs, False
        return jobs, True

    def _write(self, group: _Group) -> None:
        self._gather_items(group)
        paths = [str(job.file.path) for job in group.jobs]
        self.store.upsert(self.collection, [self._record(job, PENDING) for job in group.jobs])
        state.delete_items(self.store, self.collection, paths)
        items = [point for points in group.items.values() for point in points]
        if items:
            self.store.upsert(self.collection, items)
            self._after_item_write()
        self.store.upsert(self.collection, [self._final_record(job, group) for job in group.jobs])
        for job in group.jobs:
            self._count(job)
        log.info("stored %d item points of %d files", len(items), len(group.jobs))

    def _gather_items(self, group: _Group) -> None:
        """Build each job's item points; drop reuse jobs whose source proved incomplete."""
        kept: list[WriteJob] = []
        for job in group.jobs:
            points = self._points_of(job)
            if points is None:
                self.needs_encoding.append(job.file)
                continue
            group.items[str(job.file.path)] = points
            kept.append(job)
        group.jobs = kept

    def _points_of(self, job: WriteJob) -> list[Point] | None:
        if isinstance(job, FailedFile):
            return []
        if isinstance(job, ReusedFile):
            return self._copied(job)
        facts = state.facts_of(job.file, job.fingerprint, self.model_id)
        return [
            ItemRecord(facts, place, job.reasoning[row], job.summary[row]).to_point(
                {name: vectors[row] for name, vectors in job.vectors.items()}
            )
            for row, place in enumerate(job.places)
        ]

    def _copied(self, job: ReusedFile) -> list[Point] | None:
        ids = job.source.item_ids()
        sources = self.store.retrieve(self.collection, ids, with_vectors=True)
        if not ids or len(sources) != len(ids):
            log.info("vectors of %s are incomplete; embedding %s", job.source.path, job.file.path)
            return None
        return state.copied_points(sources, job.file, job.fingerprint, self.model_id)

    def _record(self, job: WriteJob, status: FileStatus, points: int = 0) -> Point:
        reason = job.reason if isinstance(job, FailedFile) else None
        return state.file_record(
            job.file, job.fingerprint, self.model_id, status, points, reason, job.settings
        )

    def _final_record(self, job: WriteJob, group: _Group) -> Point:
        if isinstance(job, FailedFile):
            return self._record(job, FAILED)
        return self._record(job, OK, len(group.items[str(job.file.path)]))

    def _count(self, job: WriteJob) -> None:
        if isinstance(job, FailedFile):
            self.summary.failed += 1
            self.summary.failures.append(Failure(str(job.file.path), job.reason))
        elif isinstance(job, ReusedFile):
            self.summary.reused += 1
        else:
            self.summary.indexed += 1
            self.summary.embedded += len(job.places)
        self.on_file_done()

    def _after_item_write(self) -> None:
        self._item_writes += 1
        kill_after = os.environ.get(KILL_AFTER_ENV)
        if kill_after and self._item_writes >= int(kill_after):
            os.kill(os.getpid(), signal.SIGKILL)
