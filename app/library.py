"""The library as a server shows it: its folders, the files that failed and why, where the
reasoning pass stands, and what a run that found nothing to read says.

Everything is read from the store when asked, so a change made by any source (the page, an
`ume index` handed to the server, the folder watcher) shows the same way; `library_token` tells
a page when to read again, so an idle page costs a look at a few counters, not at the store.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.watch import root_available
from indexer.catalog import schema
from indexer.catalog.collection import FolderCounts, folder_counts, stage_counts
from indexer.catalog.schema import FAILED, FileRecord
from indexer.catalog.store import Store, StoreError
from indexer.gate import Gate
from indexer.summary import Failure, RunSummary
from model.media import DOCUMENT_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

if TYPE_CHECKING:
    from app.jobs import JobRunner
    from app.watch import FolderWatcher

FAILURES_SHOWN = 500  # failed files listed at once; `ume status --json` lists them all


def supported_files() -> str:
    """Which files ume reads, by extension, in words."""
    kinds = {"images": IMAGE_EXTENSIONS, "videos": VIDEO_EXTENSIONS, "documents": DOCUMENT_EXTENSIONS}
    return "; ".join(f"{name} ({' '.join(sorted(suffixes))})" for name, suffixes in kinds.items())


def found_nothing(summary: RunSummary) -> bool:
    """A run that met no file it reads: every count is zero."""
    return not (summary.indexed or summary.unchanged or summary.reused or summary.failed or summary.removed)


def outcome_line(summary: RunSummary, roots: str) -> str:
    """One line for a finished run; a run that found nothing says which files ume reads."""
    if found_nothing(summary):
        return f"found no files ume reads in {roots}; it reads {supported_files()}"
    counts = {
        "indexed": summary.indexed,
        "unchanged": summary.unchanged,
        "reused": summary.reused,
        "removed": summary.removed,
        "failed": summary.failed,
    }
    said = ", ".join(f"{count:,} {word}" for word, count in counts.items() if count)
    return f"{said} files; {summary.points:,} items in the collection"


def failed_files(store: Store, collection: str, limit: int = FAILURES_SHOWN) -> list[Failure]:
    """Files the collection could not index, with the reason, in path order."""
    records = itertools.islice(store.scroll(collection, schema.files(FAILED)), limit)
    failed = [FileRecord.from_payload(payload) for _, payload, _ in records]
    return sorted((Failure(r.path, r.reason or "unknown") for r in failed), key=lambda f: f.path)


@dataclass(frozen=True)
class Folder:
    """One indexed folder: its counts, and whether it is there to be re-scanned."""

    counts: FolderCounts
    available: bool


def folders(store: Store, collection: str) -> list[Folder]:
    """Every indexed folder, in path order (none before the collection exists)."""
    try:
        counted = folder_counts(store, collection)
    except StoreError:
        return []
    return [Folder(c, root_available(Path(c.root))) for c in counted]


def pending_reasoning(store: Store, collection: str) -> int:
    """Items still lacking a vector the collection's mode wants (0 before it exists)."""
    try:
        return stage_counts(store, collection).pending
    except StoreError:
        return 0


def reasoning_line(paused: bool, running_job: str | None, pending: int) -> str:
    """Where the reasoning pass stands: only 'running' while a job has items to reason about."""
    one = pending == 1
    items = f"{pending:,} item{'' if one else 's'}"
    if paused:
        if not pending:
            return "paused (no item waits for its reasoning)"
        waits = "waits for its" if one else "wait for their"
        return f"paused: {items} {waits} reasoning until you resume (new files still get searchable)"
    if running_job is not None and pending:
        return f"running ({running_job}): {items} still to reason about"
    if pending:
        has = "has" if one else "have"
        return f"idle: {items} {has} no reasoning yet; re-scan their folder with reasoning to add it"
    return "idle: nothing waits for its reasoning"


def library_token(jobs: JobRunner, gate: Gate, watcher: FolderWatcher | None) -> str:
    """Changes whenever what a page shows of the library may have changed: a job queued, started
    or ended, a folder removed (between jobs), a pause, a new note from the watcher. A page reads
    the library again when the token it last saw differs, and on every look while a job runs."""
    note = watcher.last if watcher is not None else None
    seen = (note.at, note.root, note.what) if note is not None else None
    return f"{jobs.changes}:{gate.paused}:{seen}"
