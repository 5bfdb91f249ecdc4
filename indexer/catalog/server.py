"""Server engine: qdrant-client against a Qdrant server (docker compose, or a cluster).

The same class drives qdrant-client's local mode (`local:PATH`, `:memory:`), a pure-Python
implementation of the same API; tests run every store test through it.

Design decisions:
- The CollectionInfo lives in Qdrant's collection metadata (Qdrant 1.16+) under one key, so
  points stay purely data and collections that other applications keep on a shared server are
  neither listed nor touched.
- Every write waits for the server (`wait=True`), so a point is durable once `upsert` returns.
- A `ClusterLayout` (shards, replicas) goes into the creation request and nowhere else: the
  server keeps it in the collection's config. Local mode accepts it and ignores it.
- Connection failures become one-line `StoreError`s that say how to start the server.
- A server builds its HNSW graph in the background by itself; int8 quantization is a collection
  setting it applies (and rebuilds) in the background too, so switching keeps every point.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import httpx
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from indexer.catalog import schema, tuning
from indexer.catalog.checks import (
    as_float32,
    check_collection_name,
    check_info,
    check_points,
    check_quantization,
    check_vector,
    closed_error,
    in_use_error,
    missing_collection,
    needs_creation,
)
from indexer.catalog.schema import PAYLOAD_INDEXES
from indexer.catalog.server_convert import (
    hnsw_config,
    quantization_config,
    search_params,
    to_filter,
    to_point_struct,
    to_stored,
)
from indexer.catalog.store import (
    ClosesOnExit,
    ClusterLayout,
    CollectionInfo,
    GraphStatus,
    Hit,
    Match,
    PayloadIndexKind,
    Point,
    StoredPoint,
    StoreError,
)

SIZE_CHECK_EVERY = 5_000  # points written between two checks of whether to switch to int8
INFO_KEY = "ume_collection"  # collection-metadata key that marks a collection as ours
LOCAL_PREFIX = "local:"
MEMORY_LOCATION = ":memory:"
MIN_SERVER_VERSION = (1, 16)  # first Qdrant release with collection metadata
UPSERT_CHUNK = 256  # points per request: 256 x 2 x 1536 floats stays well under 32 MB of JSON
TIMEOUT_S = 30
# Payload indexes on disk, as the embedded engine keeps them (`edge_convert.EDGE_INDEX_PARAMS`:
# held in RAM they took more memory per item than its int8 vectors).
SERVER_INDEX_PARAMS: dict[PayloadIndexKind, models.PayloadSchemaParams] = {
    "keyword": models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, on_disk=True),
    "float": models.FloatIndexParams(type=models.FloatIndexType.FLOAT, on_disk=True),
    "integer": models.IntegerIndexParams(
        type=models.IntegerIndexType.INTEGER, lookup=True, range=True, on_disk=True
    ),
}

Params = ParamSpec("Params")
Result = TypeVar("Result")


def translate_errors(method: Callable[Params, Result]) -> Callable[Params, Result]:
    """Turn a lost connection or a server refusal into a one-line StoreError."""

    @functools.wraps(method)
    def wrapper(*args: Params.args, **kwargs: Params.kwargs) -> Result:
        store = args[0]
        assert isinstance(store, ServerStore)
        with server_errors(store.location):
            return method(*args, **kwargs)

    return wrapper


class ServerStore(ClosesOnExit):
    """A ume index held by a Qdrant server, or by qdrant-client's local mode."""

    def __init__(
        self, location: str, api_key: str | None = None, layout: ClusterLayout | None = None
    ) -> None:
        self.location = location
        self.layout = layout or ClusterLayout()
        self._client = connect(location, api_key)
        self._infos: dict[str, CollectionInfo] = {}
        self._written: dict[str, int] = {}  # points upserted since the size was last checked
        self._closed = False

    @translate_errors
    def create_collection(self, name: str, info: CollectionInfo) -> None:
        check_info(info)
        if not needs_creation(name, self.collection_info(name), info):
            return
        if self._client.collection_exists(name):
            raise StoreError(
                f"Qdrant at {self.location} already has a collection {name!r} that ume did not "
                "create: choose another name"
            )
        int8 = tuning.quantized(info.quantization)
        vectors = {
            v: models.VectorParams(size=info.dim, distance=models.Distance.COSINE, on_disk=int8 or None)
            for v in info.vectors
        }
        self._client.create_collection(
            name,
            vectors,
            hnsw_config=hnsw_config(),
            optimizers_config=models.OptimizersConfigDiff(default_segment_number=tuning.SEGMENTS),
            quantization_config=quantization_config(info.quantization),
            shard_number=self.layout.shards,
            replication_factor=self.layout.replicas,
            metadata={INFO_KEY: info.to_json()},
        )
        self._create_payload_indexes(name, PAYLOAD_INDEXES)
        self._infos[name] = info

    @translate_errors
    def record_info(self, name: str, info: CollectionInfo) -> None:
        self._info(name)
        check_info(info)
        self._client.update_collection(name, metadata={INFO_KEY: info.to_json()})
        self._infos[name] = info

    @translate_errors
    def ensure_payload_indexes(self, name: str, indexes: dict[str, PayloadIndexKind]) -> None:
        self._info(name)
        self._create_payload_indexes(name, indexes)  # Qdrant leaves an existing index as it is

    @translate_errors
    def collection_info(self, name: str) -> CollectionInfo | None:
        self._check_open()
        check_collection_name(name)
        if name in self._infos:
            return self._infos[name]
        if not self._client.collection_exists(name):
            return None
        metadata = self._client.get_collection(name).config.metadata or {}
        if INFO_KEY not in metadata:
            return None
        info = CollectionInfo.from_json(metadata[INFO_KEY])
        self._infos[name] = info
        return info

    @translate_errors
    def list_collections(self) -> list[str]:
        self._check_open()
        names = [c.name for c in self._client.get_collections().collections]
        return sorted(n for n in names if self.collection_info(n) is not None)

    @translate_errors
    def drop_collection(self, name: str) -> None:
        if self.collection_info(name) is not None:  # never drop another application's data
            self._client.delete_collection(name)
        self._infos.pop(name, None)

    @translate_errors
    def upsert(self, name: str, points: Sequence[Point]) -> None:
        check_points(name, self._info(name), points)
        for start in range(0, len(points), UPSERT_CHUNK):
            chunk = [to_point_struct(p) for p in points[start : start + UPSERT_CHUNK]]
            self._client.upsert(name, chunk, wait=True)
        self._written[name] = self._written.get(name, 0) + len(points)
        if self._written[name] >= SIZE_CHECK_EVERY:
            self._quantize_if_large(name)

    @translate_errors
    def delete(self, name: str, ids: Sequence[str]) -> None:
        self._info(name)
        if ids:
            self._client.delete(name, models.PointIdsList(points=list(ids)), wait=True)

    @translate_errors
    def delete_where(self, name: str, match: Match) -> None:
        self._info(name)
        selector = models.FilterSelector(filter=to_filter(match) or models.Filter())
        self._client.delete(name, selector, wait=True)

    @translate_errors
    def set_payload_where(self, name: str, match: Match, payload: dict[str, Any]) -> None:
        self._info(name)
        selector = models.FilterSelector(filter=to_filter(match) or models.Filter())
        self._client.set_payload(name, payload, points=selector, wait=True)

    def scroll(
        self,
        name: str,
        match: Match | None = None,
        with_vectors: bool = False,
        batch: int = 1000,
    ) -> Iterator[StoredPoint]:
        with server_errors(self.location):
            self._info(name)
            offset: Any = None
            while True:
                records, offset = self._client.scroll(
                    name,
                    scroll_filter=to_filter(match),
                    limit=batch,
                    offset=offset,
                    with_payload=True,
                    with_vectors=with_vectors,
                )
                yield from (to_stored(r) for r in records)
                if offset is None:
                    return

    @translate_errors
    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        self._info(name)
        records = self._client.retrieve(name, list(ids), with_payload=True, with_vectors=with_vectors)
        by_id = {stored[0]: stored for stored in map(to_stored, records)}
        return [by_id[i] for i in ids if i in by_id]

    @translate_errors
    def count(self, name: str, match: Match | None = None) -> int:
        self._info(name)
        return self._client.count(name, count_filter=to_filter(match), exact=True).count

    @translate_errors
    def search(
        self, name: str, vector: str, query: np.ndarray, limit: int, match: Match | None = None
    ) -> list[Hit]:
        query32 = as_float32(query)
        check_vector(name, self._info(name), vector, len(query32))
        with warnings.catch_warnings():
            # local mode warns that it scans exactly whatever the params say; a server uses them
            warnings.simplefilter("ignore", UserWarning)
            response = self._client.query_points(
                name,
                query=query32.tolist(),
                using=vector,
                query_filter=to_filter(match),
                limit=limit,
                with_payload=True,
                search_params=search_params(self._info(name).quantization),
            )
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points]

    @translate_errors
    def graph_status(self, name: str) -> GraphStatus:
        """From the server's collection status: yellow while its optimizers (HNSW) run.

        qdrant-client's local mode keeps no graph: it always scans exactly.
        """
        self._info(name)
        found = self._client.get_collection(name)
        indexed = found.indexed_vectors_count or 0
        vectors = found.points_count or 0
        if found.status == models.CollectionStatus.YELLOW:
            return GraphStatus("building", indexed, vectors)
        return GraphStatus("ready" if indexed else "exact", indexed, vectors)

    @translate_errors
    def wait_until_ready(
        self, name: str, on_wait: Callable[[GraphStatus], None] | None = None, poll_s: float = 0.5
    ) -> GraphStatus:
        """Switch a large collection to int8 if it should be, then wait while the server's
        optimizers run (the server builds its graph by itself)."""
        self._quantize_if_large(name)
        while True:
            status = self.graph_status(name)
            if status.state != "building":
                return status
            if on_wait is not None:
                on_wait(status)
            time.sleep(poll_s)

    @translate_errors
    def set_quantization(self, name: str, quantization: str) -> None:
        info = self._info(name)
        check_quantization(quantization)
        if tuning.quantized(quantization) != tuning.quantized(info.quantization):
            int8 = tuning.quantized(quantization)
            self._client.update_collection(
                name,
                vectors_config={v: models.VectorParamsDiff(on_disk=int8) for v in info.vectors},
                hnsw_config=hnsw_config(),
                quantization_config=quantization_config(quantization) or models.Disabled.DISABLED,
            )
        self.record_info(name, replace(info, quantization=quantization))

    def _quantize_if_large(self, name: str) -> None:
        """int8 once the collection holds more than `tuning.QUANTIZE_ABOVE_POINTS` items, unless
        a quantization was chosen (the server rebuilds in the background, keeping every point)."""
        self._written[name] = 0
        info = self._info(name)
        if not info.quantization and self.count(name, schema.items()) > tuning.QUANTIZE_ABOVE_POINTS:
            self.set_quantization(name, "int8")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise closed_error(self.location)

    def _info(self, name: str) -> CollectionInfo:
        info = self.collection_info(name)
        if info is None:
            raise missing_collection(name, f"Qdrant at {self.location}")
        return info

    def _create_payload_indexes(self, name: str, indexes: dict[str, PayloadIndexKind]) -> None:
        with warnings.catch_warnings():
            # local mode warns that payload indexes are a no-op there; a server builds them
            warnings.simplefilter("ignore", UserWarning)
            for field_name, kind in indexes.items():
                self._client.create_payload_index(name, field_name, SERVER_INDEX_PARAMS[kind], wait=True)


def connect(location: str, api_key: str | None) -> QdrantClient:
    """Open `location`: an http(s) URL, `local:PATH`, or `:memory:`."""
    if location == MEMORY_LOCATION:
        return QdrantClient(location=MEMORY_LOCATION)
    if location.startswith(LOCAL_PREFIX):
        return open_local(Path(location.removeprefix(LOCAL_PREFIX)).expanduser())
    if not location.startswith(("http://", "https://")):
        raise StoreError(
            f"--qdrant-url must be http(s)://HOST:PORT, local:PATH or :memory:, got {location!r}"
        )
    client = QdrantClient(url=location, api_key=api_key, timeout=TIMEOUT_S, check_compatibility=False)
    with server_errors(location):
        check_server_version(location, client.info().version)
    return client


def open_local(path: Path) -> QdrantClient:
    try:
        path.mkdir(parents=True, exist_ok=True)
        return QdrantClient(path=str(path))
    except RuntimeError as error:
        if "already accessed" in str(error):
            raise in_use_error(str(path)) from None
        raise
    except OSError as error:
        raise StoreError(f"cannot create index directory {path}: {error.strerror}") from error


def check_server_version(location: str, version: str) -> None:
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return  # a development build: trust it
    if major_minor < MIN_SERVER_VERSION:
        wanted = ".".join(map(str, MIN_SERVER_VERSION))
        raise StoreError(f"Qdrant server at {location} is version {version}; ume needs {wanted} or newer")


@contextmanager
def server_errors(location: str) -> Iterator[None]:
    try:
        yield
    except (ResponseHandlingException, httpx.TransportError) as error:
        raise StoreError(
            f"Qdrant server at {location} is unreachable: start it (docker compose up qdrant) "
            "or check --qdrant-url"
        ) from error
    except UnexpectedResponse as error:
        if error.status_code in (401, 403):
            raise StoreError(
                f"Qdrant server at {location} refused access (HTTP {error.status_code}): check the API key"
            ) from error
        detail = error.content.decode(errors="replace").strip().splitlines()[:1]
        raise StoreError(
            f"Qdrant server at {location} answered HTTP {error.status_code}: {' '.join(detail)}"
        ) from error
