"""What the index already holds for each file, and how a run writes and forgets records.

Every file seen has a file record (`indexer.catalog.schema.FileRecord`) saying what was indexed:
size, mtime, fingerprint, status, number of items, and the settings and embedding recipe its
vectors were made with. Comparing a scanned file with its record tells whether it is unchanged,
changed, moved or copied (its fingerprint is known under another path), or deleted (a record
under a root whose file is gone).

Design decisions:
- A file record goes through "pending" (written before any of its items) to "ok" or "failed"
  (written after them). A process killed in between leaves a pending record, so the next run
  re-embeds that file and a prune can find its items even if the file is gone.
- Reused vectors are read from the source path only while that source is stable: either gone
  from disk (a move) or still matching its record (a copy); a source that changed since it
  was indexed is being re-embedded and its old vectors are not taken.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from indexer.catalog import schema
from indexer.catalog.schema import (
    OK,
    UNKNOWN_SETTINGS,
    FileFacts,
    FileRecord,
    FileSettings,
    FileStatus,
    ItemRecord,
)
from indexer.catalog.store import Point, Store, StoredPoint
from indexer.scan import ScannedFile, dated
from model.dates import UNKNOWN_DATE

MTIME_TOLERANCE_S = 1e-5  # a stored epoch float comes back a few units in the last place off
DELETE_CHUNK = 500  # paths per delete-by-filter request


def facts_of(file: ScannedFile, fingerprint: str | None, model_id: str) -> FileFacts:
    taken = file.taken if file.taken is not None else UNKNOWN_DATE
    return FileFacts(
        str(file.path), str(file.root), file.kind, file.size, file.mtime, fingerprint or "", model_id, taken
    )


def file_record(
    file: ScannedFile,
    fingerprint: str | None,
    model_id: str,
    status: FileStatus,
    points: int = 0,
    reason: str | None = None,
    settings: FileSettings = UNKNOWN_SETTINGS,
) -> Point:
    """The vector-less record of one file (see the module docstring for its statuses)."""
    facts = facts_of(file, fingerprint, model_id)
    return FileRecord(facts, status, points, reason, settings).to_point()


def copied_points(
    sources: Sequence[StoredPoint], file: ScannedFile, fingerprint: str, model_id: str
) -> list[Point]:
    """Item points of another path with the same content, re-addressed to `file`."""
    facts = facts_of(file, fingerprint, model_id)
    return [
        ItemRecord.from_payload(payload).moved_to(facts).to_point(dict(vectors))
        for _, payload, vectors in sources
    ]


def made_with(record: FileRecord, settings: FileSettings) -> bool:
    """The record's vectors were made with these settings (records before recipes: never)."""
    return (record.settings.cut, record.settings.recipe) == (settings.cut, settings.recipe)


@dataclass
class IndexedState:
    """The file records of a collection as they were when the run started."""

    records: dict[str, FileRecord] = field(default_factory=dict)  # by path
    by_fingerprint: dict[str, list[str]] = field(default_factory=dict)  # ok records only

    @classmethod
    def load(cls, store: Store, collection: str) -> IndexedState:
        state = cls()
        for _, payload, _ in store.scroll(collection, schema.files()):
            state.add(FileRecord.from_payload(payload))
        return state

    def add(self, record: FileRecord) -> None:
        self.records[record.path] = record
        if record.status == OK and record.facts.fingerprint:
            self.by_fingerprint.setdefault(record.facts.fingerprint, []).append(record.path)

    def is_unchanged(self, file: ScannedFile, settings: FileSettings) -> bool:
        """Indexed successfully, and neither the file nor how it is cut up has changed since."""
        record = self.records.get(str(file.path))
        return (
            record is not None
            and record.status == OK
            and record.facts.size == file.size
            and same_mtime(record.facts.mtime, file.mtime)
            and made_with(record, settings)
        )

    def reuse_source(self, file: ScannedFile, fingerprint: str, settings: FileSettings) -> FileRecord | None:
        """The record of a stable file with this content, whose vectors `file` can take."""
        for path in self.by_fingerprint.get(fingerprint, []):
            record = self.records[path]
            if made_with(record, settings) and (path == str(file.path) or _still_as_recorded(record)):
                return record
        return None

    def deleted(self, roots: Iterable[Path], on_disk: set[str]) -> list[str]:
        """Paths recorded under `roots` that the scan did not find (deleted, or now skipped)."""
        scopes = [str(root) for root in roots]
        return [
            path
            for path, record in self.records.items()
            if path not in on_disk
            and (path in scopes or any(scope in record.facts.folders for scope in scopes))
        ]


def record_date_if_unknown(store: Store, collection: str, file: ScannedFile, state: IndexedState) -> None:
    """An unchanged file whose date is unknown (it was away when the collection was upgraded)
    gets its date now, on its record and items, without being embedded again."""
    record = state.records.get(str(file.path))
    if record is None or record.facts.taken.seconds is not None:
        return
    taken = dated(file).taken
    assert taken is not None
    store.set_payload_where(collection, schema.of_file(record.path), schema.date_payload(taken))


def _still_as_recorded(record: FileRecord) -> bool:
    """The source is gone (moved away) or unchanged (copied from): its stored vectors hold."""
    try:
        info = Path(record.path).stat()
    except OSError:
        return True
    return info.st_size == record.facts.size and same_mtime(record.facts.mtime, info.st_mtime)


def same_mtime(stored: float | None, actual: float) -> bool:
    """Equal up to what a float payload keeps: engines round epoch seconds in the last digits."""
    return stored is not None and abs(stored - actual) < MTIME_TOLERANCE_S


def delete_items(store: Store, collection: str, paths: Sequence[str]) -> None:
    """Remove every item point of these files (stale segments included)."""
    for start in range(0, len(paths), DELETE_CHUNK):
        store.delete_where(collection, schema.items(paths=list(paths[start : start + DELETE_CHUNK])))


def remove_root(store: Store, collection: str, root: str) -> int:
    """Forget every file indexed under `root` (never touching the files); returns how many."""
    paths = [FileRecord.from_payload(p).path for _, p, _ in store.scroll(collection, schema.files(root=root))]
    remove_files(store, collection, paths)
    return len(paths)


def remove_files(store: Store, collection: str, paths: Sequence[str]) -> None:
    """Forget files: their items first, then their records, so a crash leaves a record to retry."""
    delete_items(store, collection, paths)
    store.delete(collection, [schema.file_id(path) for path in paths])
