"""Embedded engine: qdrant-edge (the Qdrant engine in-process), one shard per collection.

Layout under the data directory:

    lock                          held (flock) while a process has the index open
    collections/NAME/info.json    the CollectionInfo, written last: a collection whose creation
                                  was interrupted has no info and is not listed
    collections/NAME/shard/       the qdrant-edge shard (segments and write-ahead log)

Design decisions:
- Shards open lazily on first use, so listing collections or reading their info stays instant
  however large the index is.
- Upserts go through the shard's write-ahead log, so a point is durable once `upsert` returns
  even if the process dies before `close`.
- qdrant-edge builds HNSW only when asked (`optimize`, blocking); until `finalize` runs, searches
  are exact scans, which are correct, only slower on large collections.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeOptimizersConfig,
    EdgeShard,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    IsEmptyCondition,
    MatchAny,
    MatchValue,
    PayloadSchemaType,
    Query,
    QueryRequest,
    RangeFloat,
    ScrollRequest,
    UpdateOperation,
)
from qdrant_edge import Point as EdgePoint

from indexer.catalog.schema import PAYLOAD_INDEXES
from indexer.catalog.store import (
    ClosesOnExit,
    CollectionInfo,
    FieldValue,
    Hit,
    Match,
    PayloadIndexKind,
    Point,
    StoredPoint,
    StoreError,
    as_float32,
    check_collection_name,
    check_info,
    check_points,
    check_vector,
    closed_error,
    in_use_error,
    missing_collection,
    needs_creation,
)

try:
    import fcntl
except ImportError:  # Windows: the shard's own WAL lock still refuses a second opener
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "lock"
INFO_FILE = "info.json"
SHARD_DIR = "shard"
UPSERT_CHUNK = 512  # points per engine update: bounds the memory of one conversion
EDGE_INDEX_TYPES = {
    "keyword": PayloadSchemaType.Keyword,
    "float": PayloadSchemaType.Float,
    "integer": PayloadSchemaType.Integer,
}


class EdgeStore(ClosesOnExit):
    """The default engine: an index in a local directory, nothing to start.

    `indexing_threshold_kb` (per segment, fixed at collection creation) is Qdrant's size below
    which `finalize` leaves a segment as an exact scan; None keeps Qdrant's default.
    """

    def __init__(self, data_dir: Path, indexing_threshold_kb: int | None = None) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self._collections_dir = self.data_dir / "collections"
        make_dirs(self._collections_dir)
        self._lock_handle = lock_data_dir(self.data_dir)
        self._indexing_threshold_kb = indexing_threshold_kb
        self._shards: dict[str, EdgeShard] = {}
        self._infos: dict[str, CollectionInfo] = {}
        self._opening = threading.Lock()
        self._closed = False

    def create_collection(self, name: str, info: CollectionInfo) -> None:
        self._check_open()
        check_info(info)
        if not needs_creation(name, self.collection_info(name), info):
            return
        folder = self._collections_dir / name
        shutil.rmtree(folder, ignore_errors=True)  # leftovers of an interrupted creation
        shard = EdgeShard.create(str(folder / SHARD_DIR), self._config(info))
        create_field_indexes(shard, PAYLOAD_INDEXES)
        shard.flush()
        write_info(folder / INFO_FILE, info)
        with self._opening:
            self._shards[name] = shard
            self._infos[name] = info

    def collection_info(self, name: str) -> CollectionInfo | None:
        self._check_open()
        check_collection_name(name)
        if name in self._infos:
            return self._infos[name]
        info = read_info(self._collections_dir / name / INFO_FILE)
        if info is not None:
            self._infos[name] = info
        return info

    def record_info(self, name: str, info: CollectionInfo) -> None:
        self._info(name)
        check_info(info)
        write_info(self._collections_dir / name / INFO_FILE, info)
        with self._opening:
            self._infos[name] = info

    def ensure_payload_indexes(self, name: str, indexes: dict[str, PayloadIndexKind]) -> None:
        shard = self._shard(name)
        create_field_indexes(shard, indexes)  # Qdrant leaves an existing index as it is
        shard.flush()

    def list_collections(self) -> list[str]:
        self._check_open()
        folders = self._collections_dir.iterdir()
        return sorted(f.name for f in folders if (f / INFO_FILE).is_file())

    def drop_collection(self, name: str) -> None:
        check_collection_name(name)
        with self._opening:
            shard = self._shards.pop(name, None)
            self._infos.pop(name, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self._collections_dir / name, ignore_errors=True)

    def upsert(self, name: str, points: Sequence[Point]) -> None:
        shard = self._shard(name)
        check_points(name, self._info(name), points)
        for start in range(0, len(points), UPSERT_CHUNK):
            chunk = [to_edge_point(p) for p in points[start : start + UPSERT_CHUNK]]
            shard.update(UpdateOperation.upsert_points(chunk))

    def delete(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            self._shard(name).update(UpdateOperation.delete_points(list(ids)))

    def delete_where(self, name: str, match: Match) -> None:
        edge_filter = to_edge_filter(match) or Filter()
        self._shard(name).update(UpdateOperation.delete_points_by_filter(edge_filter))

    def set_payload_where(self, name: str, match: Match, payload: dict[str, Any]) -> None:
        edge_filter = to_edge_filter(match) or Filter()
        shard = self._shard(name)
        shard.update(UpdateOperation.set_payload_by_filter(edge_filter, payload))
        shard.flush()

    def scroll(
        self,
        name: str,
        match: Match | None = None,
        with_vectors: bool = False,
        batch: int = 1000,
    ) -> Iterator[StoredPoint]:
        shard = self._shard(name)
        edge_filter = to_edge_filter(match)
        offset: Any = None
        while True:
            request = ScrollRequest(
                offset=offset,
                limit=batch,
                filter=edge_filter,
                with_payload=True,
                with_vector=with_vectors,
            )
            records, offset = shard.scroll(request)
            yield from (to_stored(r) for r in records)
            if offset is None:
                return

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        records = self._shard(name).retrieve(list(ids), True, with_vectors)
        by_id = {stored[0]: stored for stored in map(to_stored, records)}
        return [by_id[i] for i in ids if i in by_id]

    def count(self, name: str, match: Match | None = None) -> int:
        return self._shard(name).count(CountRequest(exact=True, filter=to_edge_filter(match)))

    def search(
        self, name: str, vector: str, query: np.ndarray, limit: int, match: Match | None = None
    ) -> list[Hit]:
        shard = self._shard(name)
        query32 = as_float32(query)
        check_vector(name, self._info(name), vector, len(query32))
        request = QueryRequest(
            limit=limit,
            query=Query.Nearest(query32, using=vector),  # type: ignore[arg-type]
            filter=to_edge_filter(match),
            with_payload=True,
        )
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in shard.query(request)]

    def finalize(self, name: str) -> None:
        """Build HNSW and flush. Blocks: ~25 s at 10k and ~30 min at 100k 2x1536-d points on 2 cores."""
        shard = self._shard(name)
        shard.optimize()
        shard.flush()

    def indexed_vector_count(self, name: str) -> int:
        """Vectors already in an HNSW graph (0 until `finalize` indexes a large enough segment)."""
        return self._shard(name).info().indexed_vectors_count

    def close(self) -> None:
        self._closed = True
        with self._opening:
            shards, self._shards = list(self._shards.values()), {}
        for shard in shards:
            shard.flush()
            shard.close()
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing the file releases the flock
            self._lock_handle = None

    def _info(self, name: str) -> CollectionInfo:
        info = self.collection_info(name)
        if info is None:
            raise missing_collection(name, f"the index at {self.data_dir}")
        return info

    def _check_open(self) -> None:
        if self._closed:
            raise closed_error(str(self.data_dir))

    def _shard(self, name: str) -> EdgeShard:
        self._check_open()
        self._info(name)
        with self._opening:
            if name not in self._shards:
                self._shards[name] = load_shard(self._collections_dir / name / SHARD_DIR)
            return self._shards[name]

    def _config(self, info: CollectionInfo) -> EdgeConfig:
        vectors = {v: EdgeVectorParams(size=info.dim, distance=Distance.Cosine) for v in info.vectors}
        optimizers = None
        if self._indexing_threshold_kb is not None:
            optimizers = EdgeOptimizersConfig(indexing_threshold=self._indexing_threshold_kb)
        return EdgeConfig(vectors=vectors, optimizers=optimizers)


def make_dirs(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(
            f"cannot create index directory {folder}: {error.strerror}; "
            "choose another with --data-dir or UME_DATA_DIR"
        ) from error


def lock_data_dir(data_dir: Path) -> IO[str] | None:
    """Hold an exclusive lock for this store's lifetime, so a second opener fails up front."""
    if fcntl is None:
        return None
    handle = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 (held open until close())
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise in_use_error(str(data_dir)) from None
    return handle


def load_shard(path: Path) -> EdgeShard:
    try:
        return EdgeShard.load(str(path))
    except Exception as error:  # the engine raises a bare Exception with its Rust message
        if "WouldBlock" in str(error):
            raise in_use_error(str(path)) from None
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise StoreError(f"cannot open collection at {path}: {first_line}") from error


def create_field_indexes(shard: EdgeShard, indexes: dict[str, PayloadIndexKind]) -> None:
    for field_name, kind in indexes.items():
        shard.update(UpdateOperation.create_field_index(field_name, EDGE_INDEX_TYPES[kind]))


def write_info(path: Path, info: CollectionInfo) -> None:
    """Write atomically: a crash leaves either no info file or a complete one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(info.to_json(), indent=2))
    os.replace(temporary, path)


def read_info(path: Path) -> CollectionInfo | None:
    if not path.is_file():
        return None
    try:
        return CollectionInfo.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StoreError(
            f"collection metadata {path} is unreadable ({error}): drop the collection and re-index"
        ) from error


def to_edge_point(point: Point) -> EdgePoint:
    vectors = {name: as_float32(v) for name, v in point.vectors.items()}
    return EdgePoint(point.id, vectors, point.payload)  # type: ignore[arg-type]


def to_stored(record: Any) -> StoredPoint:
    vectors = record.vector if isinstance(record.vector, dict) else {}
    return str(record.id), dict(record.payload or {}), {k: list(v) for k, v in vectors.items()}


def to_edge_filter(match: Match | None) -> Filter | None:
    if match is None:
        return None
    must: list[FieldCondition | IsEmptyCondition] = [
        to_condition(key, value) for key, value in match.fields.items()
    ]
    must += [
        FieldCondition(key, range=RangeFloat(gte=low, lte=high)) for key, (low, high) in match.ranges.items()
    ]
    must += [IsEmptyCondition(key) for key in match.missing]
    must_not = [to_condition(key, value) for key, value in match.not_fields.items()]
    if not must and not must_not:
        return None
    return Filter(must=must or None, must_not=must_not or None)  # type: ignore[arg-type]


def to_condition(key: str, value: FieldValue) -> FieldCondition:
    if isinstance(value, list):
        return FieldCondition(key, match=MatchAny(list(value)))
    if isinstance(value, bool):
        # qdrant-edge 0.9.0 reads a Python bool as the integer 0/1, which never equals a boolean
        # payload; numpy's bool is not an int subclass and reaches the engine as a boolean.
        return FieldCondition(key, match=MatchValue(np.bool_(value)))  # type: ignore[arg-type]
    return FieldCondition(key, match=MatchValue(value))
