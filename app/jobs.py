"""The server's indexing jobs: one worker thread runs them one after another.

    runner = JobRunner(execute)          # execute(config, on_progress, on_stage) -> RunSummary
    job = runner.submit(config, origin="cli")
    for event in job.events():           # replayed from the start, then live, until it ends
        ...

Design decisions:
- One worker, one job at a time: the server holds one store and one model, and an embedded
  store has one writer. Whoever submits (the page, `ume index` over HTTP, the folder watcher)
  waits in the same queue, so what runs next is never a race.
- A job keeps every event it produced, so a listener that arrives late (a second page, a CLI
  that reconnects) sees the whole story; each listener reads with its own cursor.
- A job ends with the exit status a standalone `ume index` would return (0 all indexed, 1 some
  files failed, 2 a mistake the user can fix), so a CLI handing its work to the server exits
  exactly as it would have alone.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from app.library import outcome_line
from indexer.catalog.store import StoreError
from indexer.config import ConfigError, IndexConfig, validation_message
from indexer.pipeline import ProgressCallback
from indexer.run import StageCallback
from indexer.summary import RunSummary

log = logging.getLogger(__name__)

JobOrigin = Literal["page", "cli", "watcher"]
JobState = Literal["queued", "running", "done", "failed"]
Execute = Callable[[IndexConfig, ProgressCallback, StageCallback], RunSummary]

PROGRESS_EVERY_S = 0.25  # progress events closer together than this are merged
USER_ERRORS = (ConfigError, StoreError, ValidationError)  # CollectionMismatch is a StoreError
KEEP_FINISHED = 50  # finished jobs the runner remembers for the page and late listeners


@dataclass
class Job:
    """One indexing run the server was asked for, with everything it said so far."""

    id: str
    origin: JobOrigin
    config: IndexConfig
    state: JobState = "queued"
    stages: list[str] = field(default_factory=list)
    done: int = 0
    total: int | None = None  # None while the files are still being counted
    started: float | None = None  # time.monotonic() when it began running
    phase_started: float | None = None  # when its current count began (files, then items)
    unit: str = "files"  # what `done` and `total` count: the first pass's files, a fill's items
    finished: float | None = None
    summary: RunSummary | None = None
    error: str | None = None  # one line, when it failed
    exit_status: int | None = None  # what a standalone `ume index` would have returned
    _events: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _last_progress: float = field(default=0.0, repr=False)

    @property
    def roots(self) -> str:
        return ", ".join(str(root) for root in self.config.roots)

    @property
    def ended(self) -> bool:
        return self.state in ("done", "failed")

    def eta_seconds(self) -> float | None:
        """Seconds left at the rate so far; None until there is a rate and a total."""
        began = self.phase_started or self.started
        if self.state != "running" or began is None or not self.total or not self.done:
            return None
        elapsed = time.monotonic() - began
        return max(0.0, elapsed / self.done * (self.total - self.done))

    def events(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Every event from the first, then new ones as they come, until the job ends.

        With `timeout`, stops early when nothing new arrived for that long.
        """
        seen = 0
        while True:
            fresh = self._next_events(seen, timeout)
            if fresh is None:
                return
            seen += len(fresh)
            yield from fresh
            if not fresh:  # ended, and every event was given
                return

    def _next_events(self, seen: int, timeout: float | None) -> list[dict[str, Any]] | None:
        """Events after the first `seen`, once there are some (empty: the job ended); None on timeout."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._events) > seen or self.ended, timeout):
                return None
            return self._events[seen:]

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends; False when `timeout` ran out first."""
        with self._changed:
            return self._changed.wait_for(lambda: self.ended, timeout)

    def doing(self) -> str:
        """One true line about the job now: waiting, its current step, or how it ended."""
        if self.state == "queued":
            return "waiting for the running job to end"
        if self.state == "running":
            return self.stages[-1] if self.stages else "indexing new and changed files"
        if self.summary is not None:
            return outcome_line(self.summary, self.roots)
        return self.error or "failed"

    def to_json(self) -> dict[str, Any]:
        """What a page or client shows about the job."""
        eta = self.eta_seconds()
        return {
            "job": self.id,
            "origin": self.origin,
            "roots": [str(root) for root in self.config.roots],
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "eta_s": None if eta is None else round(eta, 1),
            "stage": self.stages[-1] if self.stages else None,
            "exit_status": self.exit_status,
        }

    def _emit(self, event: dict[str, Any], **changes: Any) -> None:
        with self._changed:
            for name, value in changes.items():
                setattr(self, name, value)
            self._events.append({"job": self.id, **event})
            self._changed.notify_all()

    def _stage(self, line: str) -> None:
        self.stages.append(line)
        self._emit({"event": "stage", "line": line})

    def _progress(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if done < self.done:  # a new count (the files of the first pass, then the items of a fill)
            self.phase_started, self.unit = now, "items"
        self.done, self.total = done, total
        if now - self._last_progress >= PROGRESS_EVERY_S or (total is not None and done >= total):
            self._last_progress = now
            self._emit(self._progress_event())

    def _progress_event(self) -> dict[str, Any]:
        eta = self.eta_seconds()
        return {"event": "progress", "done": self.done, "total": self.total, "unit": self.unit, "eta_s": eta}


class JobRunner:
    """A queue of indexing jobs and the one thread that runs them; see the module docstring."""

    def __init__(self, execute: Execute, on_finished: Callable[[Job], None] | None = None) -> None:
        self._execute = execute
        self._on_finished = on_finished
        self._ids = itertools.count(1)
        self._queue: deque[Job] = deque()
        self._finished: deque[Job] = deque(maxlen=KEEP_FINISHED)
        self._running: Job | None = None
        self._wakeup = threading.Condition()
        self._exclusive = threading.Lock()  # held while a job runs; see `between_jobs`
        self._closed = False
        self._thread: threading.Thread | None = None
        self.changes = 0  # counts jobs queued, started and ended, and work done between jobs

    def submit(self, config: IndexConfig, origin: JobOrigin) -> Job:
        """Queue a run of `config`; a watcher's re-scan already waiting is not queued twice."""
        with self._wakeup:
            if self._closed:
                raise RuntimeError("the job runner is closed")
            twin = self._waiting_twin(config, origin)
            if twin is not None:
                return twin
            job = Job(f"job-{next(self._ids)}", origin, config)
            job._emit({"event": "queued", "position": len(self._queue) + (self._running is not None)})
            self._queue.append(job)
            self.changes += 1
            self._start_thread()
            self._wakeup.notify_all()
        return job

    def _waiting_twin(self, config: IndexConfig, origin: JobOrigin) -> Job | None:
        if origin != "watcher":
            return None
        return next((job for job in self._queue if job.config.roots == config.roots), None)

    def jobs(self) -> list[Job]:
        """Running and queued jobs, in the order they run."""
        with self._wakeup:
            return ([self._running] if self._running else []) + list(self._queue)

    def recent(self) -> list[Job]:
        """Finished jobs, newest first."""
        with self._wakeup:
            return list(reversed(self._finished))

    def find(self, job_id: str) -> Job | None:
        with self._wakeup:
            every = [*self._queue, *self._finished, *([self._running] if self._running else [])]
        return next((job for job in every if job.id == job_id), None)

    @contextmanager
    def between_jobs(self) -> Iterator[None]:
        """Run the body while no job writes (removing a folder must not race a re-scan of it)."""
        with self._exclusive:
            try:
                yield
            finally:
                self.changes += 1

    def close(self, wait_s: float = 30.0) -> bool:
        """Take no more jobs, drop the queued ones, give the running one `wait_s` to end; returns
        whether no job runs any more (else its store must stay open: the process exit ends it)."""
        with self._wakeup:
            self._closed = True
            dropped = list(self._queue)
            self._queue.clear()
            self._wakeup.notify_all()
        for job in dropped:
            self._end(job, None, "the server stopped before this job ran", 2)
        if self._thread is not None:
            self._thread.join(wait_s)
        return self._thread is None or not self._thread.is_alive()

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="ume-index-jobs", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._wakeup:
                self._wakeup.wait_for(lambda: self._queue or self._closed)
                if self._closed:
                    return
                job = self._running = self._queue.popleft()
                self.changes += 1
            with self._exclusive:
                self._run(job)
            with self._wakeup:
                self._running = None
                self._finished.append(job)
                self.changes += 1

    def _run(self, job: Job) -> None:
        job._emit({"event": "running"}, state="running", started=time.monotonic())
        try:
            summary = self._execute(job.config, job._progress, job._stage)
        except USER_ERRORS as error:
            self._end(job, None, validation_message(error), 2)
        except Exception as error:  # a bug must end the job, not the worker
            log.exception("indexing job %s failed", job.id)
            self._end(job, None, f"indexing failed: {type(error).__name__}: {error}", 1)
        else:
            self._end(job, summary, None, 1 if summary.failed else 0)

    def _end(self, job: Job, summary: RunSummary | None, error: str | None, status: int) -> None:
        if summary is not None:
            job._emit(job._progress_event())  # the last count, which the merging may have held back
        state: JobState = "done" if summary is not None else "failed"
        event: dict[str, Any] = {"event": state, "exit_status": status}
        event |= {"summary": summary.to_json()} if summary is not None else {"error": error}
        changes = {"summary": summary, "error": error, "exit_status": status, "finished": time.monotonic()}
        job._emit(event, state=state, **changes)
        if self._on_finished is not None:
            try:
                self._on_finished(job)
            except Exception:
                log.exception("after job %s", job.id)
