"""Watched folders (`ume serve --watch`): keep every indexed root current while the server runs.

    watcher = FolderWatcher(roots=ctx.refresh_roots, submit=rescan_job)
    watcher.start()      # re-scans every root once (changes made while the server was down)
    ...
    watcher.stop()

Design decisions:
- A change becomes a re-scan of the indexed ROOT it falls under, never of a sub-path: a run's
  root is recorded on every item it writes, and re-indexing a root is incremental (unchanged
  files skipped, moved ones reuse their vectors, deleted ones pruned), so a re-scan costs a walk.
- Changes are debounced per root: a copy of a thousand photos is one re-scan, queued once they
  stop arriving for `debounce_s`.
- Events come from the operating system (inotify and the like) where it can deliver them, and
  from a polling observer (a periodic walk) where it cannot: a network share, a full watch table.
- A root that is gone (an unmounted disk, a deleted folder) or left empty is never re-scanned,
  because a re-scan would prune all it held: its items stay searchable and it is reported as
  unavailable until it is back (then it is re-scanned) or the person removes it.
- Indexed roots are re-read when told (`roots_changed`, after every job), not on a timer:
  listing them reads every file record, which a large collection should not do every second.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

if TYPE_CHECKING:
    from app.jobs import Job

log = logging.getLogger(__name__)

DEBOUNCE_S = 2.0  # a root is re-scanned once its changes stop for this long
CHECK_S = 5.0  # how often roots are checked for disappearing and coming back
POLL_S = 30.0  # the polling observer's walk interval, where events are unavailable
TICK_S = 0.1  # the watcher's own loop
CHANGE_WORDS = {
    "created": "new",
    "modified": "changed",
    "closed": "changed",  # closed after writing
    "moved": "moved",
    "deleted": "deleted",
}

Submit = Callable[[Path], "Job"]  # queue a re-scan of this root; returns the job


@dataclass(frozen=True)
class WatchNote:
    """What the watcher did last, for the Index tab."""

    at: float  # time.time()
    root: str
    what: str  # "2 new, 1 deleted", "unavailable: not re-scanned, its items stay searchable"
    job: Job | None = None  # the re-scan it queued, if it did

    def describe(self) -> str:
        """`what`, then where its re-scan stands now (queued, running, or how it ended)."""
        job = self.job
        if job is None:
            return self.what
        if job.state == "queued":
            return f"{self.what}: re-scan queued ({job.id})"
        if job.state == "running":
            return f"{self.what}: re-scanning ({job.id})"
        if job.state == "done":
            return f"{self.what}: re-scanned ({job.id}: {job.doing()})"
        return f"{self.what}: re-scan failed ({job.id}: {job.doing()})"


@dataclass
class _Pending:
    changes: dict[str, str] = field(default_factory=dict)  # path -> new / changed / moved / deleted
    last: float = 0.0  # time.monotonic() of the latest change


def root_available(root: Path) -> bool:
    """A root to re-scan: it exists, and a folder is not empty (an unmounted disk's mount point)."""
    try:
        return root.is_file() or (root.is_dir() and any(root.iterdir()))
    except OSError:
        return False


def describe_changes(changes: dict[str, str]) -> str:
    counts = {word: list(changes.values()).count(word) for word in ("new", "changed", "moved", "deleted")}
    return ", ".join(f"{count} {word}" for word, count in counts.items() if count) or "changes"


class _Forward(FileSystemEventHandler):
    """Hands every event of one observed folder to the watcher."""

    def __init__(self, watcher: FolderWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        word = CHANGE_WORDS.get(event.event_type)
        if word is None or (event.is_directory and word in ("new", "changed")):
            return  # opened/closed-without-writing; a new or "modified" folder echoes its files
        paths = [event.src_path, getattr(event, "dest_path", "")]
        for path in (p for p in paths if p):
            self.watcher.noticed(str(path if isinstance(path, str) else path.decode()), word)


class FolderWatcher:
    """Watches the indexed roots and queues their re-scans; see the module docstring."""

    def __init__(
        self,
        roots: Callable[[], list[Path]],
        submit: Submit,
        debounce_s: float = DEBOUNCE_S,
        check_s: float = CHECK_S,
        poll_s: float = POLL_S,
        polling: bool = False,
    ) -> None:
        self._read_roots, self._submit = roots, submit
        self.debounce_s, self.check_s, self.poll_s = debounce_s, check_s, poll_s
        self._polling_only = polling
        self._lock = threading.Lock()
        self._roots: list[Path] = []
        self._watches: dict[Path, tuple[BaseObserver, ObservedWatch]] = {}
        self._unavailable: set[Path] = set()
        self._pending: dict[Path, _Pending] = {}
        self._observers: dict[str, BaseObserver] = {}
        self._roots_changed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: WatchNote | None = None

    def start(self) -> None:
        """Watch every indexed root and queue one catch-up re-scan of each."""
        self._reconcile(catch_up=True)
        self._thread = threading.Thread(target=self._loop, name="ume-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for observer in self._observers.values():
            observer.stop()
        for observer in self._observers.values():
            observer.join(5)

    def roots_changed(self) -> None:
        """The indexed roots may differ now (a job ended, a folder was removed): re-read them."""
        self._roots_changed.set()

    def unavailable(self) -> set[str]:
        with self._lock:
            return {str(root) for root in self._unavailable}

    def noticed(self, path: str, word: str) -> None:
        """One changed path (from an observer thread): note it under the root it falls under."""
        root = self._root_of(Path(path))
        if root is None:
            return
        with self._lock:
            pending = self._pending.setdefault(root, _Pending())
            if pending.changes.get(path) != "new":  # a new file written in steps stays new
                pending.changes[path] = word
            pending.last = time.monotonic()

    def _root_of(self, path: Path) -> Path | None:
        """The most specific indexed root holding `path` (roots may nest)."""
        with self._lock:
            holding = [root for root in self._roots if path == root or path.is_relative_to(root)]
        return max(holding, key=lambda root: len(root.parts), default=None)

    def _loop(self) -> None:
        checked = time.monotonic()
        while not self._stop.wait(TICK_S):
            if self._roots_changed.is_set():
                self._roots_changed.clear()
                self._reconcile(catch_up=False)
                checked = time.monotonic()
            elif time.monotonic() - checked >= self.check_s:
                self._check_availability()
                checked = time.monotonic()
            self._submit_quiet_roots()

    def _submit_quiet_roots(self) -> None:
        now = time.monotonic()
        with self._lock:
            quiet = [root for root, p in self._pending.items() if now - p.last >= self.debounce_s]
            ready = {root: self._pending.pop(root).changes for root in quiet}
        for root, changes in ready.items():
            if self._still_available(root):
                self._rescan(root, describe_changes(changes))

    def _reconcile(self, catch_up: bool) -> None:
        """Follow the indexed roots: watch new ones (and re-scan them), forget removed ones."""
        try:
            roots = sorted(set(self._read_roots()))
        except Exception:  # a store hiccup must not end the watcher: keep the roots we know
            log.exception("cannot list the indexed folders")
            return
        with self._lock:
            known, self._roots = set(self._roots), roots
        for root in known - set(roots):
            self._forget(root)
        for root in roots:
            if root not in known or catch_up:
                self._follow(root, "re-scan at start" if catch_up else None)

    def _follow(self, root: Path, why: str | None) -> None:
        """Watch an available root (re-scanning it when `why` says so), or mark it unavailable."""
        if not root_available(root):
            self._mark_unavailable(root)
            return
        self._watch(root)
        if why is not None:
            self._rescan(root, why)

    def _check_availability(self) -> None:
        with self._lock:
            roots = list(self._roots)
            was_away = set(self._unavailable)
        for root in roots:
            if root in was_away and root_available(root):
                with self._lock:
                    self._unavailable.discard(root)
                self._follow(root, "back: re-scan")
            elif root not in was_away:
                self._still_available(root)

    def _still_available(self, root: Path) -> bool:
        if root_available(root):
            return True
        self._mark_unavailable(root)
        return False

    def _mark_unavailable(self, root: Path) -> None:
        with self._lock:
            if root in self._unavailable:
                return
            self._unavailable.add(root)
            self._pending.pop(root, None)
        self._unwatch(root)
        self._note(root, "unavailable: not re-scanned, its items stay searchable")

    def _rescan(self, root: Path, why: str) -> None:
        try:
            job = self._submit(root)
        except Exception as error:  # the server is stopping, or the job was refused
            self._note(root, f"{why}: could not queue a re-scan ({error})")
            return
        self._note(root, why, job)

    def _note(self, root: Path, what: str, job: Job | None = None) -> None:
        log.info("watching %s: %s%s", root, what, f" (re-scan {job.id})" if job is not None else "")
        self.last = WatchNote(time.time(), str(root), what, job)

    def _forget(self, root: Path) -> None:
        self._unwatch(root)
        with self._lock:
            self._unavailable.discard(root)
            self._pending.pop(root, None)

    def _watch(self, root: Path) -> None:
        if root in self._watches or not root.is_dir():
            return  # a single indexed file is re-scanned at start and when it comes back only
        handler = _Forward(self)
        if not self._polling_only:
            try:
                self._watches[root] = (self._observer("events"), self._schedule("events", handler, root))
                return
            except OSError as error:  # e.g. the watch table is full: poll this root instead
                log.warning("no change events for %s (%s): walking it every %.0f s", root, error, self.poll_s)
        self._watches[root] = (self._observer("polling"), self._schedule("polling", handler, root))

    def _schedule(self, kind: str, handler: _Forward, root: Path) -> ObservedWatch:
        return self._observer(kind).schedule(handler, str(root), recursive=True)

    def _observer(self, kind: str) -> BaseObserver:
        if kind not in self._observers:
            observer = Observer() if kind == "events" else PollingObserver(timeout=self.poll_s)
            observer.daemon = True
            observer.start()
            self._observers[kind] = observer
        return self._observers[kind]

    def _unwatch(self, root: Path) -> None:
        watched = self._watches.pop(root, None)
        if watched is None:
            return
        observer, watch = watched
        with contextlib.suppress(KeyError, OSError):  # the folder may be gone, and its watch with it
            observer.unschedule(watch)
