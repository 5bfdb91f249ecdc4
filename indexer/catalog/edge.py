"""Embedded engine: qdrant-edge (the Qdrant engine in-process), one shard per collection.

Layout under the data directory:

    lock                          held (flock) while a process has the index open
    collections/NAME/info.json    the CollectionInfo, written last: a collection whose creation
                                  was interrupted has no info and is not listed; it also names
                                  the live shard directory (`shard` when it names none)
    collections/NAME/shard[-N]/   the live qdrant-edge shard (segments and write-ahead log)
    collections/NAME/build-TOKEN/ a copy being optimised in the background (`edge_build`)

Design decisions:
- Shards open lazily on first use, so listing collections or reading their info stays instant
  however large the index is.
- Upserts go through the shard's write-ahead log, so a point is durable once `upsert` returns
  even if the process dies before `close`.
- qdrant-edge builds HNSW only when asked (`optimize`, which blocks the whole process), so
  `finalize` builds it on a copy in a child process; a thread of this process brings the copy up
  to date and swaps it in when the child is done (`indexer.catalog.edge_build`); until then
  searches are exact scans (or use the older graph), which are correct, only slower on large
  collections.
- One re-entrant lock guards every use of a shard, so a swap never closes a shard that another
  thread is reading; it is held for short steps only (a search, a chunk of writes), never for a
  copy of a whole shard.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
from qdrant_edge import (
    CountRequest,
    EdgeShard,
    Filter,
    HasVectorCondition,
    Query,
    QueryBatchRequest,
    QueryRequest,
    ScoredPoint,
    ScrollRequest,
    UpdateOperation,
)

from indexer.catalog import tuning
from indexer.catalog.batches import Batches
from indexer.catalog.edge_build import (
    BUILD_DIR,
    BUILD_LOG,
    CATCH_UP_CHUNK,
    CATCH_UP_ROUNDS,
    GIVE_WAY_MOST_S,
    SWAP_IDS,
    Build,
    BuildCancelled,
    Journal,
    ShardSettings,
    copy_points,
    describe_phases,
    edge_config,
    remove_tree,
    shard_generation,
)
from indexer.catalog.edge_convert import (
    UPSERT_CHUNK,
    create_field_indexes,
    search_params,
    to_edge_filter,
    to_edge_point,
    to_stored,
)
from indexer.catalog.give_way import GiveWay
from indexer.catalog.schema import PAYLOAD_INDEXES
from indexer.catalog.store import (
    ClosesOnExit,
    CollectionInfo,
    GraphStatus,
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

log = logging.getLogger(__name__)

LOCK_FILE = "lock"
INFO_FILE = "info.json"
SHARD_DIR = "shard"  # the live shard of a collection whose info names none
SHARD_KEY = "shard"  # the info.json key naming the live shard directory
VECTOR_BYTES = 4  # float32


class EdgeStore(ClosesOnExit):
    """The default engine: an index in a local directory, nothing to start.

    `indexing_threshold_kb` (per segment, fixed at collection creation) is Qdrant's size below
    which a segment stays an exact scan; None keeps `tuning.INDEXING_THRESHOLD_KB`.
    """

    def __init__(self, data_dir: Path, indexing_threshold_kb: int | None = None) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self._collections_dir = self.data_dir / "collections"
        make_dirs(self._collections_dir)
        self._lock_handle = lock_data_dir(self.data_dir)
        self._indexing_threshold_kb = indexing_threshold_kb
        self._shards: dict[str, EdgeShard] = {}
        self._infos: dict[str, CollectionInfo] = {}
        self._dirs: dict[str, str] = {}  # the live shard's directory name, per collection
        self._builds: dict[str, Build] = {}  # background builds in progress
        self._wanted: dict[str, str] = {}  # a quantization asked for while a build ran
        self._vector_counts: dict[str, int] = {}  # per collection, forgotten at each write
        self._lock = threading.RLock()
        # searches queue in arrival order and those waiting run together (see catalog.batches)
        self._searches: Batches[SearchRequest, list[Hit]] = Batches(self._run_searches, tuning.SEARCH_BATCH)
        self._give_way = GiveWay(GIVE_WAY_MOST_S)  # between batches, to a build's catch-up
        self._closed = False

    def create_collection(self, name: str, info: CollectionInfo) -> None:
        self._check_open()
        check_info(info)
        if not needs_creation(name, self.collection_info(name), info):
            return
        folder = self._collections_dir / name
        shutil.rmtree(folder, ignore_errors=True)  # leftovers of an interrupted creation
        shard = EdgeShard.create(str(folder / SHARD_DIR), edge_config(self._settings(info)))
        create_field_indexes(shard, PAYLOAD_INDEXES)
        shard.flush()
        write_info(folder / INFO_FILE, info, SHARD_DIR)
        with self._lock:
            self._shards[name] = shard
            self._infos[name] = info
            self._dirs[name] = SHARD_DIR
            self._vector_counts.pop(name, None)

    def collection_info(self, name: str) -> CollectionInfo | None:
        self._check_open()
        check_collection_name(name)
        with self._lock:
            if name in self._infos:
                return self._infos[name]
            found = read_info(self._collections_dir / name / INFO_FILE)
            if found is None:
                return None
            self._infos[name], self._dirs[name] = found
            return found[0]

    def record_info(self, name: str, info: CollectionInfo) -> None:
        self._info(name)
        check_info(info)
        with self._lock:
            write_info(self._collections_dir / name / INFO_FILE, info, self._dirs[name])
            self._infos[name] = info

    def ensure_payload_indexes(self, name: str, indexes: dict[str, PayloadIndexKind]) -> None:
        with self._lock:
            shard = self._shard(name)
            create_field_indexes(shard, indexes)  # Qdrant leaves an existing index as it is
            shard.flush()
            if name in self._builds:
                self._builds[name].journal.field_indexes.update(indexes)

    def list_collections(self) -> list[str]:
        self._check_open()
        folders = self._collections_dir.iterdir()
        return sorted(f.name for f in folders if (f / INFO_FILE).is_file())

    def drop_collection(self, name: str) -> None:
        check_collection_name(name)
        folder = self._collections_dir / name
        with self._lock:  # from here on the collection is gone: nothing can start a build of it
            build = self._builds.pop(name, None)
            shard = self._shards.pop(name, None)
            for kept in (self._infos, self._dirs, self._vector_counts, self._wanted):
                kept.pop(name, None)
            (folder / INFO_FILE).unlink(missing_ok=True)
            if shard is not None:
                shard.close()
        if build is not None:
            build.cancel()  # without the lock: its thread may be waiting on it
        shutil.rmtree(folder, ignore_errors=True)

    def upsert(self, name: str, points: Sequence[Point]) -> None:
        with self._lock:
            shard, journal = self._shard(name), self._journal(name)
            check_points(name, self._info(name), points)
            self._vector_counts.pop(name, None)
            for start in range(0, len(points), UPSERT_CHUNK):
                chunk = points[start : start + UPSERT_CHUNK]
                shard.update(UpdateOperation.upsert_points([to_edge_point(p) for p in chunk]))
                if journal is not None:
                    journal.touched([p.id for p in chunk])

    def delete(self, name: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._lock:
            self._shard(name).update(UpdateOperation.delete_points(list(ids)))
            self._vector_counts.pop(name, None)
            journal = self._journal(name)
            if journal is not None:
                journal.touched(ids)

    def delete_where(self, name: str, match: Match) -> None:
        edge_filter = to_edge_filter(match) or Filter()
        with self._lock:
            self._note_matching(name, match)
            self._shard(name).update(UpdateOperation.delete_points_by_filter(edge_filter))
            self._vector_counts.pop(name, None)

    def set_payload_where(self, name: str, match: Match, payload: dict[str, Any]) -> None:
        edge_filter = to_edge_filter(match) or Filter()
        with self._lock:
            self._note_matching(name, match)
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
            with self._lock:  # page by page: a swap may come between two pages
                records, offset = self._shard(name).scroll(request)
            yield from (to_stored(r) for r in records)
            if offset is None:
                return

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        with self._lock:
            records = self._shard(name).retrieve(list(ids), True, with_vectors)
        by_id = {stored[0]: stored for stored in map(to_stored, records)}
        return [by_id[i] for i in ids if i in by_id]

    def count(self, name: str, match: Match | None = None) -> int:
        with self._lock:
            return self._shard(name).count(CountRequest(exact=True, filter=to_edge_filter(match)))

    def search(
        self, name: str, vector: str, query: np.ndarray, limit: int, match: Match | None = None
    ) -> list[Hit]:
        return self._searches.submit(SearchRequest(name, vector, as_float32(query), limit, match))

    def finalize(self, name: str, final: bool = True) -> None:
        """Start building the search graph in the background when enough vectors lack one, or,
        at the end of a run (`final`), when the collection has too many segments (one grown
        when runs kept 8) and they are to be merged.

        Points below the indexing threshold are scanned exactly in their small segment, so a
        run that adds a few items to a large collection starts no build at all.
        """
        with self._lock:
            self._shard(name).flush()
            if name in self._builds:
                self._builds[name].again = True
                self._builds[name].again_final |= final
                return
            build = self._build_if_needed(name, final)
        if build is not None:
            self._copy_and_start(name, build)  # outside the lock: searches go on during the copy

    def graph_status(self, name: str) -> GraphStatus:
        with self._lock:
            vectors = self._vector_count(name)
            indexed = self._shard(name).info().indexed_vectors_count  # which counts deleted ones too
            indexed = min(vectors, indexed)
            build = self._builds.get(name)
            if build is not None:
                return GraphStatus("building", indexed, vectors, build.elapsed_s(), build.estimate_s)
            return GraphStatus("ready" if indexed else "exact", indexed, vectors)

    def set_quantization(self, name: str, quantization: str) -> None:
        if quantization not in tuning.QUANTIZATIONS:
            choices = ", ".join(tuning.QUANTIZATIONS)
            raise StoreError(f"quantization must be one of {choices}, got {quantization!r}")
        with self._lock:
            shard, info = self._shard(name), self._info(name)
            if name in self._builds:
                self._wanted[name] = quantization
                return
            if tuning.quantized(quantization) == tuning.quantized(info.quantization):
                self.record_info(name, replace(info, quantization=quantization))
                return
            shard.flush()
            wanted = self._settings(replace(info, quantization=quantization))
            build = self._new_build(name, wanted, self._vector_count(name))
        self._copy_and_start(name, build)

    def indexed_vector_count(self, name: str) -> int:
        """Vectors already in an HNSW graph (0 until a build indexes a large enough segment)."""
        with self._lock:
            return self._shard(name).info().indexed_vectors_count

    def close(self) -> None:
        self._closed = True
        with self._lock:
            builds, self._builds = list(self._builds.values()), {}
            shards, self._shards = list(self._shards.values()), {}
        for build in builds:  # its journal dies with this process: the next finalize builds again
            build.cancel()  # waits for its thread, which leaves the shards alone once cancelled
        for shard in shards:
            shard.flush()
            shard.close()
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing the file releases the flock
            self._lock_handle = None

    def _run_searches(self, requests: Sequence[SearchRequest]) -> list[list[Hit] | Exception]:
        """The searches queued together (see `catalog.batches`), each collection's as one batch
        of the engine, all under one hold of the lock."""
        outcomes: dict[int, list[Hit] | Exception] = {}
        self._give_way.before_batch()
        with self._lock:
            self._give_way.before_queries()
            for name in dict.fromkeys(r.collection for r in requests):
                mine = {i: r for i, r in enumerate(requests) if r.collection == name}
                outcomes |= self._search_collection(name, mine)
        return [outcomes[i] for i in range(len(requests))]

    def _search_collection(
        self, name: str, requests: dict[int, SearchRequest]
    ) -> dict[int, list[Hit] | Exception]:
        try:
            shard, info = self._shard(name), self._info(name)
        except StoreError as error:
            return dict.fromkeys(requests, error)
        outcomes: dict[int, list[Hit] | Exception] = {}
        queries: dict[int, QueryRequest] = {}
        for i, request in requests.items():
            try:
                check_vector(name, info, request.vector, len(request.query))
                queries[i] = query_request(request, info.quantization)
            except Exception as error:  # a bad vector or filter fails its own search alone
                outcomes[i] = error
        found = run_queries(shard, list(queries.values()))
        for i, points in zip(queries, found, strict=True):
            outcomes[i] = points if isinstance(points, Exception) else to_hits(points)
        return outcomes

    def _info(self, name: str) -> CollectionInfo:
        info = self.collection_info(name)
        if info is None:
            raise missing_collection(name, f"the index at {self.data_dir}")
        return info

    def _check_open(self) -> None:
        if self._closed:
            raise closed_error(str(self.data_dir))

    def _shard(self, name: str) -> EdgeShard:
        """The live shard, opened on first use."""
        self._check_open()
        with self._lock:
            self._info(name)
            if name not in self._shards:
                folder = self._collections_dir / name
                remove_leftovers(folder, self._dirs[name])
                self._shards[name] = load_shard(folder / self._dirs[name])
            return self._shards[name]

    def _journal(self, name: str) -> Journal | None:
        build = self._builds.get(name)
        return build.journal if build is not None else None

    def _note_matching(self, name: str, match: Match) -> None:
        """Before a write by filter during a build, note the ids it is about to touch."""
        journal = self._journal(name)
        if journal is not None:
            journal.touched(stored[0] for stored in self.scroll(name, match))

    def _settings(self, info: CollectionInfo, merge: bool = False) -> ShardSettings:
        segments = tuning.MERGED_SEGMENTS if merge else tuning.SEGMENTS
        return ShardSettings(info.dim, info.vectors, info.quantization, self._indexing_threshold_kb, segments)

    def _vector_count(self, name: str) -> int:
        """Vectors stored, every name counted (vector-less records hold none).

        Counting scans every point, under the lock searches wait on, and status displays ask
        every few seconds, so the count is kept until the next write."""
        if name not in self._vector_counts:
            shard, info = self._shard(name), self._info(name)
            self._vector_counts[name] = sum(
                shard.count(CountRequest(exact=True, filter=Filter(must=[HasVectorCondition(v)])))
                for v in info.vectors
            )
        return self._vector_counts[name]

    def _build_if_needed(self, name: str, final: bool = False) -> Build | None:
        """A build (not started yet) when enough vectors lack a graph to fill a segment past the
        indexing threshold (smaller remainders are scanned exactly, which is fast), or at the end
        of a run when the collection has more segments than `tuning.MERGE_ABOVE_SEGMENTS`."""
        shard, info = self._shard(name), self._info(name)
        found, vectors = shard.info(), self._vector_count(name)
        missing = vectors - found.indexed_vectors_count
        merge = final and found.segments_count > tuning.MERGE_ABOVE_SEGMENTS
        threshold_kb = self._indexing_threshold_kb or tuning.INDEXING_THRESHOLD_KB
        if not merge and missing * info.dim * VECTOR_BYTES / len(info.vectors) < threshold_kb * 1024:
            return None
        return self._new_build(name, self._settings(info, merge), missing, vectors if merge else 0)

    def _new_build(self, name: str, settings: ShardSettings, vectors: int, merged: int = 0) -> Build:
        """Register a build: from now on, writes to the live shard are journaled for it."""
        estimate = tuning.build_estimate_s(vectors, settings.dim, settings.quantization)
        estimate += tuning.merge_estimate_s(merged, settings.dim)
        build = Build(self._collections_dir / name, settings, estimate)
        self._builds[name] = build
        merging = f", merging {merged:,} into {settings.segments} segments" if merged else ""
        log.info("building the search graph of %r in the background (%d vectors%s)", name, vectors, merging)
        return build

    def _copy_and_start(self, name: str, build: Build) -> None:
        """Start `build` (see `_start_child`) and the thread that finishes it."""
        self._start_child(name, build)
        with self._lock:  # the store may have closed, or dropped the collection, meanwhile
            current = self._builds.get(name) is build
            if current:
                build.worker = threading.Thread(
                    target=self._finish_builds, args=(name, build), name=f"ume-build-{name}", daemon=True
                )
                build.worker.start()
        if not current:
            build.cancel()

    def _start_child(self, name: str, build: Build) -> None:
        """Copy the live shard and start the child. Called without the lock: the copy takes
        seconds on a large collection."""
        try:
            build.start(self._collections_dir / name / self._dirs[name])
        except (OSError, KeyError) as error:  # KeyError: the collection was dropped meanwhile
            with self._lock:
                if self._builds.get(name) is build:
                    del self._builds[name]
            build.cancel()
            if isinstance(error, KeyError):
                raise StoreError(f"collection {name!r} was dropped before its graph was built") from None
            raise StoreError(
                f"cannot copy collection {name!r} to build its search graph: {error.strerror or error}; "
                "free some disk space (a build needs room for a second copy)"
            ) from error

    def _finish_builds(self, name: str, build: Build | None) -> None:
        """A build's own thread: finish it, then start and finish each build asked for
        meanwhile in this same thread (registered as theirs, so that closing the store waits for
        it and never leaves a child starting after it)."""
        while build is not None:
            build = self._finish_build(name, build)
            if build is None:
                return
            try:
                self._start_child(name, build)
            except StoreError as error:
                log.warning("%s", error)
                return

    def _finish_build(self, name: str, build: Build) -> Build | None:
        """Wait for the child, bring its copy up to date and swap it in; returns the build asked
        for meanwhile (registered, this thread its worker), if any. Searches and writes go on."""
        try:
            if not build.wait_for_child():
                build.cancel()  # a child started just as the build was cancelled: stop it
                return None
            if not build.succeeded():
                raise StoreError(build.failure())
            copy_dir = self._rename_copy(name, build)
            follow_up = self._catch_up_and_swap(name, build, copy_dir)
        except BuildCancelled:
            return None
        except Exception as error:  # the live shard is as it was: the next finalize builds again
            log.warning("building the search graph of %r failed: %s", name, error)
            with self._lock:
                if self._builds.get(name) is build:
                    del self._builds[name]
            remove_tree(build.directory)
            return None
        log.info(
            "swapped in the search graph of %r: %s",
            name,
            describe_phases(build.phases),
            extra={"build_phases": build.phases},
        )
        return follow_up

    def _rename_copy(self, name: str, build: Build) -> Path:
        """Name the finished copy `shard-N`, the next generation (unnamed until info.json says
        so: a process killed before the swap leaves it for the next open to remove)."""
        with self._lock:
            self._check_current(name, build)
            new_dir = f"shard-{shard_generation(self._dirs[name]) + 1}"
        copy_dir = self._collections_dir / name / new_dir
        remove_tree(copy_dir)  # a copy that failed to open in this process, never named live
        os.replace(build.directory, copy_dir)
        return copy_dir

    def _catch_up_and_swap(self, name: str, build: Build, copy_dir: Path) -> Build | None:
        """Open the finished copy, bring it up to date and swap it in; returns the build asked for
        meanwhile (registered in the same hold of the lock as the swap, so that no status shows
        the graph ready in between; this thread its worker), if any. A copy that never became
        live is closed and removed."""
        began, staging = time.monotonic(), None
        try:
            staging = load_shard(copy_dir)
            build.phases["open_s"] = time.monotonic() - began
            self._catch_up(name, build, staging)
            build.phases["catch_up_s"] = time.monotonic() - began - build.phases["open_s"]
            with self._lock:
                held = time.monotonic()
                self._check_current(name, build)
                self._copy_last_writes(name, build, staging)
                self._swap(name, build, staging, copy_dir.name)
                build.phases["held_s"] = time.monotonic() - held
                return self._next_build(name, build)
        except BaseException:
            if self._dirs.get(name) != copy_dir.name:  # not named live by info.json
                if staging is not None:
                    staging.close()
                remove_tree(copy_dir)
            raise

    def _catch_up(self, name: str, build: Build, staging: EdgeShard) -> None:
        """Copy what was written during the build into the copy, round after round, until what
        is left is small enough to copy while searches wait (see `edge_build.CATCH_UP_ROUNDS`)."""
        for _ in range(CATCH_UP_ROUNDS):
            with self._lock:
                self._check_current(name, build)
                if len(build.journal.ids) <= SWAP_IDS:
                    return
                ids = build.journal.take()
            build.phases["caught_up"] = build.phases.get("caught_up", 0) + len(ids)
            self._copy_from_live(name, build, ids, staging)

    def _copy_from_live(self, name: str, build: Build, ids: list[str], staging: EdgeShard) -> None:
        """Copy `ids` from the live shard into the copy, CATCH_UP_CHUNK at a time, each read
        with the lock held (a caller holding it already keeps it throughout) and written as a
        piece the next batch of searches waits for (see `catalog.give_way`)."""
        for start in range(0, len(ids), CATCH_UP_CHUNK):
            chunk = ids[start : start + CATCH_UP_CHUNK]
            with self._give_way.piece() as writing:
                with self._lock:
                    self._check_current(name, build)
                    records = self._shards[name].retrieve(chunk, True, True)  # type: ignore[arg-type]
                    writing()
                copy_points(chunk, records, staging)  # the copy is this thread's alone

    def _check_current(self, name: str, build: Build) -> None:
        if self._builds.get(name) is not build or build.cancelled.is_set():
            raise BuildCancelled

    def _copy_last_writes(self, name: str, build: Build, staging: EdgeShard) -> None:
        """With the lock held, so that nothing is written meanwhile: copy what is left."""
        ids = build.journal.take()
        build.phases["copied_held"] = len(ids)
        self._copy_from_live(name, build, ids, staging)
        create_field_indexes(staging, build.journal.field_indexes)  # type: ignore[arg-type]
        staging.flush()

    def _swap(self, name: str, build: Build, staging: EdgeShard, new_dir: str) -> None:
        """Make the up-to-date copy the live shard (with the lock held): writing info.json naming
        it is the swap; the old shard is deleted in the background."""
        folder, live, old_dir = self._collections_dir / name, self._shards[name], self._dirs[name]
        info = replace(self._infos[name], quantization=build.settings.quantization)
        write_info(folder / INFO_FILE, info, new_dir)
        self._infos[name], self._dirs[name], self._shards[name] = info, new_dir, staging
        self._vector_counts.pop(name, None)  # the copy now holds what was written meanwhile
        del self._builds[name]
        live.close()
        (folder / BUILD_LOG).unlink(missing_ok=True)
        remove_in_background(folder / old_dir)

    def _next_build(self, name: str, build: Build) -> Build | None:
        """`_follow_up`, run by this thread; None when the store closed meanwhile."""
        try:
            follow_up = self._follow_up(name, build)
        except Exception as error:  # the store closed meanwhile; the swap itself stands
            log.warning("no further build of %r: %s", name, error)
            return None
        if follow_up is not None:
            follow_up.worker = threading.current_thread()
        return follow_up

    def _follow_up(self, name: str, build: Build) -> Build | None:
        """The build asked for while `build` ran (registered, not started): a switch of
        quantization, or one more when a run ended meanwhile and its points want a graph."""
        wanted, info = self._wanted.pop(name, None), self._infos[name]
        if wanted is not None and tuning.quantized(wanted) != tuning.quantized(info.quantization):
            vectors = self._vector_count(name)
            settings = self._settings(replace(info, quantization=wanted), merge=build.again_final)
            return self._new_build(name, settings, vectors)  # rebuilds every segment: merges too
        if wanted is not None and wanted != info.quantization:  # "" and "none": both full
            self.record_info(name, replace(info, quantization=wanted))
        if build.again:  # a run ended during the build: its points may want one
            return self._build_if_needed(name, build.again_final)
        return None


@dataclass(frozen=True)
class SearchRequest:
    """One `EdgeStore.search`, waiting to run with the others queued beside it."""

    collection: str
    vector: str
    query: np.ndarray  # float32
    limit: int
    match: Match | None


def query_request(request: SearchRequest, quantization: str) -> QueryRequest:
    return QueryRequest(
        limit=request.limit,
        query=Query.Nearest(request.query, using=request.vector),  # type: ignore[arg-type]
        filter=to_edge_filter(request.match),
        with_payload=True,
        params=search_params(quantization),
    )


def run_queries(shard: EdgeShard, queries: list[QueryRequest]) -> list[list[ScoredPoint] | Exception]:
    """The engine's answers, in order: several queries as one batch (one pass over the
    segments), or, when the engine refuses the batch, each alone, so that only the query at
    fault fails."""
    if len(queries) > 1:
        with contextlib.suppress(Exception):
            found: list[list[ScoredPoint] | Exception] = list(shard.query_batch(QueryBatchRequest(queries)))
            if len(found) == len(queries):
                return found
    return [query_alone(shard, query) for query in queries]


def query_alone(shard: EdgeShard, query: QueryRequest) -> list[ScoredPoint] | Exception:
    try:
        return shard.query(query)
    except Exception as error:  # the engine's own, raised in the thread that asked
        return error


def to_hits(points: Sequence[ScoredPoint]) -> list[Hit]:
    return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]


def remove_in_background(path: Path) -> None:
    """Delete a folder nothing uses any more without holding up searches; one a killed process
    leaves behind is removed at the next open (`remove_leftovers`)."""
    threading.Thread(target=remove_tree, args=(path,), name="ume-remove-shard", daemon=True).start()


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


def write_info(path: Path, info: CollectionInfo, shard_dir: str) -> None:
    """Write atomically: a crash leaves either no info file or a complete one (the old or the
    new, naming the old or the new live shard)."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(info.to_json() | {SHARD_KEY: shard_dir}, indent=2))
    os.replace(temporary, path)


def read_info(path: Path) -> tuple[CollectionInfo, str] | None:
    """The recorded info and the live shard's directory name."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return CollectionInfo.from_json(data), str(data.get(SHARD_KEY) or SHARD_DIR)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StoreError(
            f"collection metadata {path} is unreadable ({error}): drop the collection and re-index"
        ) from error


def remove_leftovers(folder: Path, live_dir: str) -> None:
    """What a killed build left: its copy, and a copy renamed but never named live."""
    for path in [*folder.glob(f"{BUILD_DIR}-*"), *folder.glob("shard*")]:
        if path.is_dir() and path.name != live_dir:
            remove_tree(path)
