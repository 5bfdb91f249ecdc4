"""The collection's schema: what each point of a ume collection holds, typed, in one place.

A collection holds two kinds of points:
- an **item** (an image, a video segment, a PDF page) with its named vectors and what the model
  wrote about it;
- a vector-less **file record** per file seen, saying how the file was indexed: its version
  (size, mtime, fingerprint), its status, how many items it has, and the settings and embedding
  recipe its vectors were made with.

Every payload key is spelled here and nowhere else: the indexer writes `FileRecord`/`ItemRecord`
through `to_point`, search reads them back with `from_payload`, and filters are built by the
functions at the bottom. Changing the layout means bumping `SCHEMA_VERSION` and adding a step to
`indexer.catalog.migrations`.

Design decisions:
- Deterministic ids (uuid5 of the path and the item's place) make every write idempotent.
- Items and their file share the file's facts (path, root, folders, kind, version, model, and
  when it was taken or made), so "under folder X", "of kind Y" or "made in June" is one indexed
  match on either kind of point.
- Items list the vectors they hold (`vectors`): a collection may hold items at different stages.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Any, Literal, NamedTuple, get_args

from indexer.catalog.store import FieldValue, Match, Point
from model.dates import UNKNOWN_DATE, TakenDate
from model.encoder import Mode

# Version history: 1 the first release; 2 items list their vectors, file records carry their
# embedding recipe, and both (with status and root) are indexed; 3 collections record their
# indexing mode apart from their vector slots, and items may lack some vectors for a while
# (progressive indexing fills gen vectors after disc ones); 4 items and their files record when
# they were taken or made (`taken`, indexed, with `taken_source`).
SCHEMA_VERSION = 4

# Fixed forever: changing it would orphan every point id already stored.
POINT_NAMESPACE = uuid.UUID("6f2b7a3e-8c1d-5e4f-9a0b-1c2d3e4f5a6b")

ItemKind = Literal["image", "video", "document"]
ITEM_KINDS: tuple[ItemKind, ...] = get_args(ItemKind)
FileStatus = Literal["pending", "ok", "failed"]
PENDING: FileStatus = "pending"  # written before a file's items: a crash leaves it to redo
OK: FileStatus = "ok"
FAILED: FileStatus = "failed"

DEFAULT_MODE: Mode = "both"
MODE_VECTORS: dict[Mode, tuple[str, ...]] = {"disc": ("disc",), "gen": ("gen",), "both": ("disc", "gen")}

PayloadIndexKind = Literal["keyword", "float", "integer"]
# Payload fields that filters use; engines index exactly these (migrations add new ones).
PAYLOAD_INDEXES: dict[str, PayloadIndexKind] = {
    "kind": "keyword",
    "folders": "keyword",  # every ancestor folder of the file, so "under folder X" is one match
    "extension": "keyword",
    "path": "keyword",
    "root": "keyword",  # the library view counts and removes by indexed root
    "fingerprint": "keyword",
    "record": "keyword",
    "mtime": "float",
    "page": "integer",
    "status": "keyword",
    "vectors": "keyword",
    "recipe_version": "integer",
    "taken": "integer",  # wall-clock seconds (`model.dates`): date filters are one range
    "taken_source": "keyword",
}

_FILE, _ITEM = "file", "item"  # values of the `record` field


def item_id(path: str, segment: int) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, f"item:{path}:{segment}"))


def file_id(path: str) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, f"file:{path}"))


def ancestors(path: PurePath) -> list[str]:
    """Every folder above `path`, outermost first: a "within folder X" filter is one match."""
    return [str(parent) for parent in reversed(path.parents)]


class FileSettings(NamedTuple):
    """What shaped a file's vectors besides the model; a change re-embeds the file."""

    cut: str  # how the file is cut into items (video segment length, PDF resolution)
    recipe: str  # how each item is embedded (`model.inputs.embedding_recipe`)
    version: int  # the recipe's version (prompt and extraction rules): what queries must match


UNKNOWN_SETTINGS = FileSettings("", "", 0)  # records written before recipes were kept


@dataclass(frozen=True)
class FileFacts:
    """A file and its version, shared by its record and its items."""

    path: str
    root: str
    kind: str
    size: int
    mtime: float
    fingerprint: str
    model_id: str
    taken: TakenDate = UNKNOWN_DATE  # when it was taken or made

    @property
    def folders(self) -> list[str]:
        return ancestors(PurePath(self.path))

    def to_payload(self) -> dict[str, Any]:
        path = PurePath(self.path)
        return {
            "path": self.path,
            "root": self.root,
            "folders": self.folders,
            "name": path.name,
            "extension": path.suffix.lower(),
            "kind": self.kind,
            "size": self.size,
            "mtime": self.mtime,
            "fingerprint": self.fingerprint,
            "model_id": self.model_id,
            "indexed_at": time.time(),
        } | date_payload(self.taken)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> FileFacts:
        return cls(
            path=str(payload.get("path", "")),
            root=str(payload.get("root") or ""),
            kind=str(payload.get("kind", "")),
            size=int(payload.get("size") or 0),
            mtime=float(payload.get("mtime") or 0.0),
            fingerprint=str(payload.get("fingerprint") or ""),
            model_id=str(payload.get("model_id") or ""),
            taken=date_of(payload),
        )


@dataclass(frozen=True)
class FileRecord:
    """How one file was indexed (see the module docstring)."""

    facts: FileFacts
    status: FileStatus
    points: int = 0  # its items, numbered 0..points-1
    reason: str | None = None  # why it failed
    settings: FileSettings = UNKNOWN_SETTINGS

    @property
    def path(self) -> str:
        return self.facts.path

    def item_ids(self) -> list[str]:
        return [item_id(self.path, segment) for segment in range(self.points)]

    def to_point(self) -> Point:
        payload = {"record": _FILE, **self.facts.to_payload()}
        payload |= {"status": self.status, "reason": self.reason, "points": self.points}
        payload |= {
            "settings": self.settings.cut,
            "recipe": self.settings.recipe,
            "recipe_version": self.settings.version,
        }
        return Point(file_id(self.path), payload)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> FileRecord:
        settings = FileSettings(
            str(payload.get("settings") or ""),
            str(payload.get("recipe") or ""),
            int(payload.get("recipe_version") or 0),
        )
        return cls(
            facts=FileFacts.from_payload(payload),
            status=payload.get("status", PENDING),
            points=int(payload.get("points") or 0),
            reason=payload.get("reason"),
            settings=settings,
        )


@dataclass(frozen=True)
class ItemPlace:
    """Where an item sits within its file."""

    segment: int  # index within the file: 0 for images, page - 1 for documents
    page: int | None = None  # 1-based, documents only
    start: float | None = None  # seconds, videos only
    end: float | None = None


@dataclass(frozen=True)
class ItemRecord:
    """One embedded item and what the model wrote about it."""

    facts: FileFacts
    place: ItemPlace
    reasoning: str | None = None
    summary: str | None = None
    vectors: tuple[str, ...] = field(default=())  # names of the vectors the point holds

    @property
    def id(self) -> str:
        return item_id(self.facts.path, self.place.segment)

    def to_point(self, vectors: dict[str, Any]) -> Point:
        """The item with these vectors (their names are recorded in the payload)."""
        payload = {"record": _ITEM, **self.facts.to_payload()}
        payload |= {"page": self.place.page, "start": self.place.start, "end": self.place.end}
        payload |= {"segment": self.place.segment, "reasoning": self.reasoning, "summary": self.summary}
        payload["vectors"] = sorted(vectors)
        return Point(self.id, payload, vectors)

    def moved_to(self, facts: FileFacts) -> ItemRecord:
        """The same item under another file (a moved or copied file keeps its vectors)."""
        return replace(self, facts=facts)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> ItemRecord:
        place = ItemPlace(
            int(payload.get("segment") or 0), payload.get("page"), payload.get("start"), payload.get("end")
        )
        return cls(
            facts=FileFacts.from_payload(payload),
            place=place,
            reasoning=payload.get("reasoning"),
            summary=payload.get("summary"),
            vectors=tuple(payload.get("vectors") or ()),
        )


def date_payload(taken: TakenDate) -> dict[str, Any]:
    """The payload part that says when a file was made (for setting it in place)."""
    return {"taken": taken.seconds, "taken_source": taken.source}


def date_of(payload: dict[str, Any]) -> TakenDate:
    seconds, source = payload.get("taken"), payload.get("taken_source")
    if seconds is None or source not in ("exif", "container", "pdf", "mtime"):
        return UNKNOWN_DATE
    return TakenDate(int(seconds), source)


def is_item(payload: dict[str, Any]) -> bool:
    return payload.get("record") == _ITEM


# --- filters --------------------------------------------------------------------------------


def items(
    kind: str | list[str] | None = None,
    folder: str | None = None,
    paths: str | list[str] | None = None,
    vector: str | None = None,
    root: str | None = None,
    taken: tuple[int | None, int | None] | None = None,
) -> Match:
    """Item points, optionally of a kind, under a folder, of some files, holding a vector,
    indexed under one root (exactly that root, not one nested in it), or taken within an
    inclusive range of wall-clock seconds (either side may be open; undated items never match)."""
    fields: dict[str, FieldValue] = {"record": _ITEM}
    optional: dict[str, FieldValue | None] = {
        "kind": kind,
        "folders": folder,
        "path": paths,
        "vectors": vector,
        "root": root,
    }
    fields |= {key: value for key, value in optional.items() if value is not None}
    ranges: dict[str, tuple[float | None, float | None]] = {}
    if taken is not None and taken != (None, None):
        ranges["taken"] = taken
    return Match(fields=fields, ranges=ranges)


def files(status: FileStatus | None = None, kind: str | None = None, root: str | None = None) -> Match:
    """File records, optionally with a status, of a kind, indexed under one root."""
    fields: dict[str, FieldValue] = {"record": _FILE}
    optional: dict[str, FieldValue | None] = {"status": status, "kind": kind, "root": root}
    fields |= {key: value for key, value in optional.items() if value is not None}
    return Match(fields=fields)


def files_not_made_with(kind: str, recipe: str) -> Match:
    """Indexed files of `kind` whose vectors were made under another recipe than `recipe`."""
    return Match(fields={"record": _FILE, "status": OK, "kind": kind}, not_fields={"recipe": recipe})


def files_before_recipe(version: int) -> Match:
    """Indexed files embedded under another recipe version than `version`."""
    return Match(fields={"record": _FILE, "status": OK}, not_fields={"recipe_version": version})


def items_lacking(
    vector: str,
    folder: str | None = None,
    paths: str | list[str] | None = None,
    root: str | None = None,
) -> Match:
    """Item points that do not hold `vector` yet, optionally under a folder, of some files, or
    indexed under one root."""
    return lacking(items(folder=folder, paths=paths, root=root), vector)


def holding(match: Match, vector: str) -> Match:
    """The points `match` selects that hold `vector`."""
    return Match(match.fields | {"vectors": vector}, match.not_fields, match.ranges, match.missing)


def lacking(match: Match, vector: str) -> Match:
    """The points `match` selects that do not hold `vector` (yet)."""
    return Match(match.fields, match.not_fields | {"vectors": vector}, match.ranges, match.missing)


def files_without_date() -> Match:
    """File records written before schema 4, which did not say when their file was made."""
    return Match(fields={"record": _FILE}, missing=("taken_source",))


def points_without_date() -> Match:
    """Any point written before schema 4 (items whose file record is gone, after the above)."""
    return Match(missing=("taken_source",))


def of_file(path: str) -> Match:
    """A file's record and all its items."""
    return Match(fields={"path": path})


def items_without_vector_list() -> Match:
    """Items written before schema 2, which did not list their vectors."""
    return Match(fields={"record": _ITEM}, missing=("vectors",))


def vector_list(vectors: tuple[str, ...]) -> dict[str, Any]:
    """The payload part that lists an item's vectors (for setting it in place)."""
    return {"vectors": sorted(vectors)}


def root_of(payload: dict[str, Any]) -> str | None:
    """The indexed root a point's file lies under."""
    return payload.get("root") or None
