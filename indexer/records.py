"""Records: point ids, payloads, and what the index already holds for each file.

Every item point (an image, a video segment, a PDF page) has an id derived from its path and
segment, and every file seen has a vector-less *file record* (id derived from its path) saying
what was indexed: size, mtime, fingerprint, status, number of points. Comparing a scanned file
with its record tells whether it is unchanged, changed, moved or copied (its fingerprint is
known under another path), or deleted (a record under a root whose file is gone).

Design decisions:
- Deterministic ids (uuid5) make every write idempotent: writing a file twice overwrites.
- A file record goes through "pending" (written before any of its item points) to "ok" or
  "failed" (written after them). A process killed in between leaves a pending record, so the
  next run re-embeds that file and a prune can find its items even if the file is gone.
- Reused vectors are read from the source path only while that source is stable: either gone
  from disk (a move) or still matching its record (a copy); a source that changed since it
  was indexed is being re-embedded and its old vectors are not taken.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from indexer.load import UNKNOWN_SETTINGS, FileSettings
from indexer.scan import ScannedFile
from indexer.store import Match, Point, Store, StoredPoint

# Fixed forever: changing it would orphan every point id already stored.
POINT_NAMESPACE = uuid.UUID("6f2b7a3e-8c1d-5e4f-9a0b-1c2d3e4f5a6b")
FILE_RECORD = "file"
ITEM_RECORD = "item"
PENDING, OK, FAILED = "pending", "ok", "failed"
MTIME_TOLERANCE_S = 1e-5  # a stored epoch float comes back a few units in the last place off
DELETE_CHUNK = 500  # paths per delete-by-filter request


def item_id(path: str, segment: int) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, f"item:{path}:{segment}"))


def file_id(path: str) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, f"file:{path}"))


def ancestors(path: PurePath) -> list[str]:
    """Every folder above `path`, outermost first: a "within folder X" filter is one match."""
    return [str(parent) for parent in reversed(path.parents)]


@dataclass(frozen=True)
class ItemPlace:
    """Where an item sits within its file."""

    segment: int  # index within the file: 0 for images, page - 1 for documents
    page: int | None = None  # 1-based, documents only
    start: float | None = None  # seconds, videos only
    end: float | None = None


def _file_fields(file: ScannedFile, fingerprint: str | None, model_id: str) -> dict[str, Any]:
    return {
        "path": str(file.path),
        "root": str(file.root),
        "folders": ancestors(file.path),
        "name": file.path.name,
        "extension": file.path.suffix.lower(),
        "kind": file.kind,
        "size": file.size,
        "mtime": file.mtime,
        "fingerprint": fingerprint or "",
        "model_id": model_id,
        "indexed_at": time.time(),
    }


def file_record(
    file: ScannedFile,
    fingerprint: str | None,
    model_id: str,
    status: str,
    points: int = 0,
    reason: str | None = None,
    settings: FileSettings = UNKNOWN_SETTINGS,
) -> Point:
    """The vector-less record of one file (see the module docstring for its statuses)."""
    payload = {"record": FILE_RECORD, **_file_fields(file, fingerprint, model_id)}
    payload |= {"status": status, "reason": reason, "points": points}
    payload |= {"settings": settings.cut, "recipe": settings.recipe, "recipe_version": settings.version}
    return Point(file_id(str(file.path)), payload)


def item_point(
    file: ScannedFile,
    fingerprint: str,
    model_id: str,
    place: ItemPlace,
    text: tuple[str | None, str | None],
    vectors: dict[str, Any],
) -> Point:
    """One item point; `text` is (reasoning, summary) as the model generated them."""
    payload = {"record": ITEM_RECORD, **_file_fields(file, fingerprint, model_id)}
    payload |= {"page": place.page, "start": place.start, "end": place.end}
    payload |= {"segment": place.segment, "reasoning": text[0], "summary": text[1]}
    return Point(item_id(str(file.path), place.segment), payload, vectors)


def copied_points(
    sources: Sequence[StoredPoint], file: ScannedFile, fingerprint: str, model_id: str
) -> list[Point]:
    """Item points of another path with the same content, re-addressed to `file`."""
    copies = []
    for _, payload, vectors in sources:
        place = ItemPlace(payload["segment"], payload.get("page"), payload.get("start"), payload.get("end"))
        text = (payload.get("reasoning"), payload.get("summary"))
        copies.append(item_point(file, fingerprint, model_id, place, text, dict(vectors)))
    return copies


def made_with(record: dict[str, Any], settings: FileSettings) -> bool:
    """The file record's vectors were made with these settings (records before recipes: never)."""
    return record.get("settings", "") == settings.cut and record.get("recipe", "") == settings.recipe


@dataclass
class IndexedState:
    """The file records of a collection as they were when the run started."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> payload
    by_fingerprint: dict[str, list[str]] = field(default_factory=dict)  # ok records only

    @classmethod
    def load(cls, store: Store, collection: str) -> IndexedState:
        state = cls()
        for _, payload, _ in store.scroll(collection, Match(fields={"record": FILE_RECORD})):
            state.add(payload)
        return state

    def add(self, payload: dict[str, Any]) -> None:
        self.records[payload["path"]] = payload
        if payload.get("status") == OK and payload.get("fingerprint"):
            self.by_fingerprint.setdefault(payload["fingerprint"], []).append(payload["path"])

    def is_unchanged(self, file: ScannedFile, settings: FileSettings) -> bool:
        """Indexed successfully, and neither the file nor how it is cut up has changed since."""
        record = self.records.get(str(file.path))
        return (
            record is not None
            and record.get("status") == OK
            and record.get("size") == file.size
            and same_mtime(record.get("mtime"), file.mtime)
            and made_with(record, settings)
        )

    def reuse_source(
        self, file: ScannedFile, fingerprint: str, settings: FileSettings
    ) -> dict[str, Any] | None:
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
            and (path in scopes or any(scope in record.get("folders", ()) for scope in scopes))
        ]


def _still_as_recorded(record: dict[str, Any]) -> bool:
    """The source is gone (moved away) or unchanged (copied from): its stored vectors hold."""
    try:
        info = Path(record["path"]).stat()
    except OSError:
        return True
    return info.st_size == record.get("size") and same_mtime(record.get("mtime"), info.st_mtime)


def same_mtime(stored: float | None, actual: float) -> bool:
    """Equal up to what a float payload keeps: engines round epoch seconds in the last digits."""
    return stored is not None and abs(stored - actual) < MTIME_TOLERANCE_S


def source_ids(record: dict[str, Any]) -> list[str]:
    """The ids of every item point a file record says its file has."""
    return [item_id(record["path"], segment) for segment in range(int(record.get("points", 0)))]


def delete_items(store: Store, collection: str, paths: Sequence[str]) -> None:
    """Remove every item point of these files (stale segments included)."""
    for start in range(0, len(paths), DELETE_CHUNK):
        chunk = list(paths[start : start + DELETE_CHUNK])
        store.delete_where(collection, Match(fields={"record": ITEM_RECORD, "path": chunk}))


def remove_files(store: Store, collection: str, paths: Sequence[str]) -> None:
    """Forget files: their items first, then their records, so a crash leaves a record to retry."""
    delete_items(store, collection, paths)
    store.delete(collection, [file_id(path) for path in paths])
