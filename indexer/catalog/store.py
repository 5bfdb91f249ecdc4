"""The storage layer's narrow interface: the types every engine speaks.

Two engines sit behind the `Store` protocol and behave identically from the outside
(`indexer.catalog.open.open_store` picks one):

- **embedded** (`catalog.edge.EdgeStore`, the default): qdrant-edge, the real Qdrant engine
  running in-process under a data directory, so a laptop user has nothing to start.
- **server** (`catalog.server.ServerStore`): qdrant-client against a URL (the docker-compose Qdrant
  or a cluster). qdrant-client's local mode (`local:PATH`, `:memory:`) speaks the same API, which
  is how tests exercise this path without a server.

Design decisions:
- A collection records a `CollectionInfo` (model, dimension, schema version, vector names) when
  it is created, so an index built by one model is never silently searched with another.
- Point ids are UUID strings both ways; the indexer derives them with uuid5, which makes every
  run idempotent (re-indexing a file overwrites its points instead of duplicating them).
- Filters are a small `Match` value rather than engine filter objects, so callers never import
  either engine's types.
- How a collection is spread over a Qdrant cluster (`ClusterLayout`) is the store's, not the
  collection info's: Qdrant records it in the collection's own config, and it is fixed there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol

import numpy as np

VECTOR_NAMES: tuple[str, ...] = ("disc", "gen")

PayloadIndexKind = Literal["keyword", "float", "integer"]


FieldValue = str | int | bool | list[str]  # a list matches any of its values
# What scroll and retrieve yield: (id, payload, vectors by name; empty unless asked for).
StoredPoint = tuple[str, dict[str, Any], dict[str, list[float]]]


class StoreError(Exception):
    """A storage problem the user can fix; the message is one line that says how."""


@dataclass(frozen=True)
class CollectionInfo:
    """What a collection was built with; recorded at creation, checked by callers on open."""

    model_id: str
    dim: int
    schema_version: int
    vectors: tuple[str, ...]  # the named vectors its points can hold, subset of VECTOR_NAMES
    # Which of them an indexing run fills when told nothing else ("disc", "gen" or "both");
    # empty for collections made before it was recorded, which fill all their vectors.
    mode: str = ""
    # How vectors are kept for search: "int8" (quantized in RAM, originals on disk), "none"
    # (full precision, chosen), or empty (full precision until a run ends above
    # `tuning.QUANTIZE_ABOVE_POINTS`; every collection made before it was recorded).
    quantization: str = ""
    # A fingerprint of a local checkpoint's weight files (`collection.weights_revision`): a
    # model retrained in place keeps its path. Empty for hub names and for collections made
    # before it was recorded.
    model_revision: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model_id": self.model_id,
            "dim": self.dim,
            "schema_version": self.schema_version,
            "vectors": list(self.vectors),
        }
        data |= {"mode": self.mode} if self.mode else {}
        data |= {"quantization": self.quantization} if self.quantization else {}
        return data | ({"model_revision": self.model_revision} if self.model_revision else {})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CollectionInfo:
        return cls(
            model_id=str(data["model_id"]),
            dim=int(data["dim"]),
            schema_version=int(data["schema_version"]),
            vectors=tuple(data["vectors"]),
            mode=str(data.get("mode") or ""),
            quantization=str(data.get("quantization") or ""),
            model_revision=str(data.get("model_revision") or ""),
        )


@dataclass(frozen=True)
class ClusterLayout:
    """How the server engine spreads a collection it creates; None leaves it to the server.

    A Qdrant server creates a collection with one shard, so a cluster can copy it but not spread
    it. `shards` splits it across the cluster's nodes (points go to a shard by id; a search asks
    every shard), `replicas` keeps that many copies of each shard on different nodes. Both are
    fixed when the collection is created. A write returns once one copy has it (Qdrant's
    `write_consistency_factor` of 1): the other copies catch up, and a node being down does not
    stop indexing.
    """

    shards: int | None = None
    replicas: int | None = None

    def __post_init__(self) -> None:
        for flag, value in (("--shards", self.shards), ("--replicas", self.replicas)):
            if value is not None and value < 1:
                raise StoreError(f"{flag} must be at least 1, got {value}")

    @property
    def given(self) -> bool:
        return self.shards is not None or self.replicas is not None


LAYOUT_NEEDS_SERVER = (
    "--shards and --replicas apply to collections on a Qdrant server (--qdrant-url); the "
    "embedded index keeps each collection in one shard on this machine"
)


@dataclass
class Point:
    """One stored item. Records of files carry no vectors (`vectors` empty)."""

    id: str  # a UUID string
    payload: dict[str, Any]
    vectors: dict[str, list[float] | np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    """A filter: every condition must hold (AND).

    `fields` values match exactly; a list matches any of its values (keyword fields, and array
    payloads such as `folders` match when any element does). `not_fields` excludes points whose
    field equals the value (or any value of a list). `ranges` are inclusive; None leaves that
    side open. `missing` selects points where these fields are absent, null or empty.
    """

    fields: dict[str, FieldValue] = field(default_factory=dict)
    not_fields: dict[str, FieldValue] = field(default_factory=dict)
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    missing: tuple[str, ...] = ()


GraphState = Literal["exact", "building", "ready"]


@dataclass(frozen=True)
class GraphStatus:
    """Where a collection's search graph (HNSW) stands.

    `exact`: no graph yet (a small collection, or one never finalised): searches scan every
    vector, which is correct, only slower on large collections. `building`: a graph is being
    built in the background while searches keep answering from what there was before.
    `ready`: searches use the graph (points added since are scanned exactly until the next
    build).
    """

    state: GraphState
    indexed: int = 0  # vectors in a graph
    vectors: int = 0  # vectors stored, every name counted
    elapsed_s: float | None = None  # building: seconds since it started
    estimate_s: float | None = None  # building: how long the whole build should take
    note: str = ""  # a build that failed: what happened and what comes next

    def describe(self) -> str:
        """One line for a status display."""
        return self._state_line() + (f"; {self.note}" if self.note else "")

    def _state_line(self) -> str:
        if self.state == "ready" and self.indexed < self.vectors:
            return (
                f"search graph: {self.indexed:,} of {self.vectors:,} vectors in it, the rest "
                "scanned exactly until the next build"
            )
        if self.state == "ready":
            return f"search graph: ready ({self.indexed:,} of {self.vectors:,} vectors in it)"
        if self.state == "exact":
            return f"search graph: none, exact scan over {self.vectors:,} vectors"
        if self.elapsed_s is None:
            return f"search graph: waiting to build ({self.indexed:,} of {self.vectors:,} vectors in it)"
        line = f"search graph: building ({duration(self.elapsed_s)} elapsed"
        if self.estimate_s is not None:
            left = self.estimate_s - self.elapsed_s
            line += f", about {duration(left)} left" if left > 0 else ", taking longer than estimated"
        return line + "); searches answer meanwhile"


def duration(seconds: float) -> str:
    """`42 s`, `3 min 5 s`, `1 h 2 min`."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


@dataclass(frozen=True)
class Hit:
    id: str
    score: float  # cosine similarity, higher is better
    payload: dict[str, Any]


class Store(Protocol):
    """The operations the indexer and the search service need, and nothing more.

    Every method but `collection_info`, `list_collections`, `drop_collection` and
    `create_collection` raises StoreError for a collection that does not exist.
    """

    def create_collection(self, name: str, info: CollectionInfo) -> None:
        """Create vectors and payload indexes; a no-op when it exists with the same info."""
        ...

    def collection_info(self, name: str) -> CollectionInfo | None:
        """The info recorded at creation; None when there is no such collection."""
        ...

    def record_info(self, name: str, info: CollectionInfo) -> None:
        """Replace the recorded info of an existing collection (after a schema upgrade)."""
        ...

    def ensure_payload_indexes(self, name: str, indexes: dict[str, PayloadIndexKind]) -> None:
        """Create the payload indexes the collection lacks; existing ones are left alone."""
        ...

    def list_collections(self) -> list[str]:
        """Names of ume collections, sorted."""
        ...

    def drop_collection(self, name: str) -> None:
        """Delete the collection and its points; a no-op when it does not exist."""
        ...

    def upsert(self, name: str, points: Sequence[Point]) -> None:
        """Insert or replace points by id; durable when it returns."""
        ...

    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Delete points by id; unknown ids are ignored."""
        ...

    def delete_where(self, name: str, match: Match) -> None:
        """Delete every point `match` selects (an empty Match selects every point)."""
        ...

    def set_payload_where(self, name: str, match: Match, payload: dict[str, Any]) -> None:
        """Set these payload fields on every point `match` selects (other fields are kept)."""
        ...

    def scroll(
        self,
        name: str,
        match: Match | None = None,
        with_vectors: bool = False,
        batch: int = 1000,
    ) -> Iterator[StoredPoint]:
        """Every matching point, vector-less records included, in id order, `batch` at a time."""
        ...

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        """The points with these ids, in the order asked; missing ids are left out."""
        ...

    def count(self, name: str, match: Match | None = None) -> int:
        """Exact number of matching points, vector-less records included."""
        ...

    def search(
        self, name: str, vector: str, query: np.ndarray, limit: int, match: Match | None = None
    ) -> list[Hit]:
        """Nearest points by cosine on the named vector, best first (vector-less ones never)."""
        ...

    def graph_status(self, name: str) -> GraphStatus:
        """Where the collection's search graph stands (see `GraphStatus`)."""
        ...

    def wait_until_ready(
        self, name: str, on_wait: Callable[[GraphStatus], None] | None = None, poll_s: float = 0.5
    ) -> GraphStatus:
        """Block until searching the collection runs at full speed: the engine builds, now,
        whatever graph it still wants (it builds on its own in the background otherwise, once
        writes pause); `on_wait` hears each status seen meanwhile (to show progress)."""
        ...

    def set_quantization(self, name: str, quantization: str) -> None:
        """Keep the collection's vectors as `quantization` ("int8", or "none" for full
        precision) from now on, with the current HNSW settings, keeping every point: nothing is
        embedded again. The rebuild runs in the background; the recorded info says the new
        quantization once searches use it."""
        ...

    def close(self) -> None:
        """Flush and release files, locks or connections; safe to call twice."""
        ...

    def __enter__(self) -> Store: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ClosesOnExit(ABC):
    """Lets an engine be used as `with open_store(...) as store:`."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine's files or connection; safe to call twice."""

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
