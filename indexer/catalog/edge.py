"""Embedded engine: qdrant-edge (the Qdrant engine in-process), one shard per collection.

Its files are described in `edge_files`; when and how it builds a collection's search graph, in
`edge_graph` (a planner in this process) and `edge_build` (a copy optimised by a child process,
swapped in when done). Until a graph covers them, points are found by exact scans, which are
correct, only slower on large collections.

- Shards open lazily on first use, so listing collections or reading their info stays instant
  however large the index is.
- Upserts go through the shard's write-ahead log, so a point is durable once `upsert` returns
  even if the process dies before `close`.
- One re-entrant lock guards every use of a shard, so a swap never closes a shard that another
  thread is reading; it is held for short steps only (a batch of searches, a chunk of writes),
  never for a copy of a whole shard.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_edge import (
    CountRequest,
    EdgeShard,
    Filter,
    ScrollRequest,
    UpdateOperation,
)

from indexer.catalog import checks, edge_files, edge_search, tuning
from indexer.catalog.batches import Batches
from indexer.catalog.edge_build import (
    BUILD_LOG,
    GIVE_WAY_MOST_S,
    Build,
    ShardSettings,
    edge_config,
    shard_generation,
)
from indexer.catalog.edge_convert import (
    UPSERT_CHUNK,
    create_field_indexes,
    to_edge_filter,
    to_edge_point,
    to_stored,
)
from indexer.catalog.edge_counts import KeptCounts
from indexer.catalog.edge_files import INFO_FILE, SHARD_DIR
from indexer.catalog.edge_graph import EdgeGraph
from indexer.catalog.edge_search import QueuedSearch
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
)


class EdgeStore(ClosesOnExit):
    """The default engine: an index in a local directory, nothing to start.

    `indexing_threshold_kb` (per segment, fixed at collection creation) is Qdrant's size below
    which a segment stays an exact scan; None keeps `tuning.INDEXING_THRESHOLD_KB`.
    """

    def __init__(self, data_dir: Path, indexing_threshold_kb: int | None = None) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self._collections_dir = self.data_dir / "collections"
        edge_files.make_dirs(self._collections_dir)
        self._lock_handle = edge_files.lock_data_dir(self.data_dir)
        self.indexing_threshold_kb = indexing_threshold_kb
        self._shards: dict[str, EdgeShard] = {}
        self._infos: dict[str, CollectionInfo] = {}
        self._dirs: dict[str, str] = {}  # the live shard's directory name, per collection
        self._counts = KeptCounts()
        self.lock = threading.RLock()
        # searches queue in arrival order and those waiting run together (see catalog.batches)
        self._searches: Batches[QueuedSearch, list[Hit]] = Batches(self._run_searches, tuning.SEARCH_BATCH)
        self.give_way = GiveWay(GIVE_WAY_MOST_S)  # between batches, to a build's catch-up
        self._closed = False
        self._graph = EdgeGraph(self)

    # -- collections ---------------------------------------------------------------------------

    def create_collection(self, name: str, info: CollectionInfo) -> None:
        self._check_open()
        checks.check_info(info)
        if not checks.needs_creation(name, self.collection_info(name), info):
            return
        folder = self._collections_dir / name
        edge_files.remove_tree(folder)  # leftovers of an interrupted creation
        settings = ShardSettings(info.dim, info.vectors, info.quantization, self.indexing_threshold_kb)
        shard = EdgeShard.create(str(folder / SHARD_DIR), edge_config(settings))
        create_field_indexes(shard, PAYLOAD_INDEXES)
        shard.flush()
        edge_files.write_info(folder / INFO_FILE, info, SHARD_DIR)
        with self.lock:
            self._shards[name], self._infos[name], self._dirs[name] = shard, info, SHARD_DIR
            self._counts.forget(name)
            self._graph.opened(name, folder, 0, 0)

    def collection_info(self, name: str) -> CollectionInfo | None:
        self._check_open()
        checks.check_collection_name(name)
        with self.lock:
            if name in self._infos:
                return self._infos[name]
            found = edge_files.read_info(self._collections_dir / name / INFO_FILE)
            if found is None:
                return None
            self._infos[name], self._dirs[name] = found
            return found[0]

    def record_info(self, name: str, info: CollectionInfo) -> None:
        self.info_of(name)
        checks.check_info(info)
        with self.lock:
            edge_files.write_info(self._collections_dir / name / INFO_FILE, info, self._dirs[name])
            self._infos[name] = info

    def ensure_payload_indexes(self, name: str, indexes: dict[str, PayloadIndexKind]) -> None:
        with self.lock:
            shard = self.live_shard(name)
            create_field_indexes(shard, indexes)  # Qdrant leaves an existing index as it is
            shard.flush()
            build = self._graph.build_of(name)
            if build is not None:
                build.journal.field_indexes.update(indexes)

    def list_collections(self) -> list[str]:
        self._check_open()
        folders = self._collections_dir.iterdir()
        return sorted(f.name for f in folders if (f / INFO_FILE).is_file())

    def drop_collection(self, name: str) -> None:
        checks.check_collection_name(name)
        folder = self._collections_dir / name
        with self.lock:  # from here on the collection is gone: nothing can start a build of it
            build = self._graph.forget(name)
            shard = self._shards.pop(name, None)
            self._infos.pop(name, None)
            self._dirs.pop(name, None)
            self._counts.forget(name)
            (folder / INFO_FILE).unlink(missing_ok=True)
            if shard is not None:
                shard.close()
        if build is not None:
            build.cancel()  # without the lock: its thread may be waiting on it
        edge_files.remove_tree(folder)

    # -- writes --------------------------------------------------------------------------------

    def upsert(self, name: str, points: Sequence[Point]) -> None:
        with self.lock:
            shard = self.live_shard(name)
            checks.check_points(name, self.info_of(name), points)
            self._counts.forget(name)
            for start in range(0, len(points), UPSERT_CHUNK):
                chunk = points[start : start + UPSERT_CHUNK]
                shard.update(UpdateOperation.upsert_points([to_edge_point(p) for p in chunk]))
                self._touched(name, [p.id for p in chunk])
            self._graph.written(name, sum(len(p.vectors) for p in points))

    def delete(self, name: str, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self.lock:
            self.live_shard(name).update(UpdateOperation.delete_points(list(ids)))
            self._counts.forget(name)
            self._touched(name, ids)

    def delete_where(self, name: str, match: Match) -> None:
        edge_filter = to_edge_filter(match) or Filter()
        with self.lock:
            self._note_matching(name, match)
            self.live_shard(name).update(UpdateOperation.delete_points_by_filter(edge_filter))
            self._counts.forget(name)

    def set_payload_where(self, name: str, match: Match, payload: dict[str, Any]) -> None:
        edge_filter = to_edge_filter(match) or Filter()
        with self.lock:
            self._note_matching(name, match)
            shard = self.live_shard(name)
            shard.update(UpdateOperation.set_payload_by_filter(edge_filter, payload))
            shard.flush()

    # -- reads ---------------------------------------------------------------------------------

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
            with self.lock:  # page by page: a swap may come between two pages
                records, offset = self.live_shard(name).scroll(request)
            yield from (to_stored(r) for r in records)
            if offset is None:
                return

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        with self.lock:
            records = self.live_shard(name).retrieve(list(ids), True, with_vectors)
        by_id = {stored[0]: stored for stored in map(to_stored, records)}
        return [by_id[i] for i in ids if i in by_id]

    def count(self, name: str, match: Match | None = None) -> int:
        with self.lock:
            return self.live_shard(name).count(CountRequest(exact=True, filter=to_edge_filter(match)))

    def search(
        self, name: str, vector: str, query: np.ndarray, limit: int, match: Match | None = None
    ) -> list[Hit]:
        return self._searches.submit(QueuedSearch(name, vector, checks.as_float32(query), limit, match))

    # -- the search graph ----------------------------------------------------------------------

    def graph_status(self, name: str) -> GraphStatus:
        with self.lock:
            vectors = self.vector_count(name)
            indexed = self.live_shard(name).info().indexed_vectors_count
            return self._graph.status(name, vectors, indexed)

    def wait_until_ready(
        self, name: str, on_wait: Callable[[GraphStatus], None] | None = None, poll_s: float = 0.5
    ) -> GraphStatus:
        with self.lock:
            self.live_shard(name)
            self._graph.hurry(name)
        while True:
            with self.lock:
                settled, status = self._graph.settled(name), self.graph_status(name)
            if settled:
                return status
            if on_wait is not None:
                on_wait(status)
            time.sleep(poll_s)

    def set_quantization(self, name: str, quantization: str) -> None:
        checks.check_quantization(quantization)
        with self.lock:
            info = self.info_of(name)
            self.live_shard(name)
            if tuning.quantized(quantization) == tuning.quantized(info.quantization):
                self.record_info(name, replace(info, quantization=quantization))
            else:
                self._graph.ask_quantization(name, quantization)

    def indexed_vector_count(self, name: str) -> int:
        """Vectors the engine holds in HNSW graphs (old versions of overwritten points included)."""
        with self.lock:
            return self.live_shard(name).info().indexed_vectors_count

    def close(self) -> None:
        self._closed = True
        with self.lock:
            builds = self._graph.close()
            shards, self._shards = list(self._shards.values()), {}
        for build in builds:  # its journal dies with this process: the next open builds again
            build.cancel()  # waits for its thread, which leaves the shards alone once cancelled
        for shard in shards:
            shard.flush()
            shard.close()
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing the file releases the flock
            self._lock_handle = None

    # -- what the graph's builds use (with the lock held) --------------------------------------

    def info_of(self, name: str) -> CollectionInfo:
        info = self.collection_info(name)
        if info is None:
            raise checks.missing_collection(name, f"the index at {self.data_dir}")
        return info

    def live_shard(self, name: str) -> EdgeShard:
        """The live shard, opened on first use (removing what a killed process left beside it)."""
        self._check_open()
        with self.lock:
            self.info_of(name)
            if name not in self._shards:
                folder = self._collections_dir / name
                edge_files.remove_leftovers(folder, self._dirs[name])
                shard = edge_files.load_shard(folder / self._dirs[name])
                self._shards[name] = shard
                self._graph.opened(name, folder, self.vector_count(name), shard.info().indexed_vectors_count)
            return self._shards[name]

    def collection_folder(self, name: str) -> Path:
        return self._collections_dir / name

    def live_dir(self, name: str) -> Path:
        if (found := self.live_dir_or_none(name)) is None:
            raise StoreError(f"collection {name!r} was dropped before its graph was built")
        return found

    def live_dir_or_none(self, name: str) -> Path | None:
        with self.lock:
            return self._collections_dir / name / self._dirs[name] if name in self._dirs else None

    def next_shard_dir(self, name: str, build: Build) -> Path:
        """Name the finished copy `shard-N`, the next generation (not live until info.json names
        it: a process killed before the swap leaves it for the next open to remove)."""
        with self.lock:
            current = self.live_dir(name)
            new_dir = current.with_name(f"shard-{shard_generation(current.name) + 1}")
        edge_files.remove_tree(new_dir)  # a copy that failed to open in this process, never named live
        build.directory.replace(new_dir)
        return new_dir

    def swap_in(self, name: str, staging: EdgeShard, new_dir: str, quantization: str) -> None:
        """Make the up-to-date copy the live shard (with the lock held): writing info.json naming
        it is the swap; the old shard is deleted in the background."""
        folder, live, old_dir = self._collections_dir / name, self._shards[name], self._dirs[name]
        info = replace(self._infos[name], quantization=quantization)
        edge_files.write_info(folder / INFO_FILE, info, new_dir)
        self._infos[name], self._dirs[name], self._shards[name] = info, new_dir, staging
        self._counts.forget(name)
        live.close()
        (folder / BUILD_LOG).unlink(missing_ok=True)
        remove_in_background(folder / old_dir)

    def flush(self, name: str) -> None:
        self.live_shard(name).flush()

    def vector_count(self, name: str) -> int:
        """Vectors stored, every name counted (kept between writes)."""
        return self._counts.vectors(name, self.live_shard(name), self.info_of(name).vectors)

    def item_count(self, name: str) -> int:
        """Items stored, file records left out (kept between writes)."""
        return self._counts.items(name, self.live_shard(name))

    def segment_count(self, name: str) -> int:
        return self.live_shard(name).info().segments_count

    # -- inside --------------------------------------------------------------------------------

    def _touched(self, name: str, ids: Sequence[str]) -> None:
        journal = self._graph.journal(name)
        if journal is not None:
            journal.update(ids)

    def _note_matching(self, name: str, match: Match) -> None:
        """Before a write by filter during a build, note the ids it is about to touch."""
        journal = self._graph.journal(name)
        if journal is not None:
            journal.update(stored[0] for stored in self.scroll(name, match))

    def _check_open(self) -> None:
        if self._closed:
            raise checks.closed_error(str(self.data_dir))

    def _run_searches(self, requests: Sequence[QueuedSearch]) -> list[list[Hit] | Exception]:
        """The searches queued together (see `catalog.batches`), each collection's as one batch
        of the engine, all under one hold of the lock."""
        outcomes: dict[int, list[Hit] | Exception] = {}
        self.give_way.before_batch()
        with self.lock:
            self.give_way.before_queries()
            for name in dict.fromkeys(r.collection for r in requests):
                mine = {i: r for i, r in enumerate(requests) if r.collection == name}
                try:
                    shard, info = self.live_shard(name), self.info_of(name)
                except StoreError as error:
                    outcomes |= dict.fromkeys(mine, error)
                    continue
                outcomes |= edge_search.search_collection(shard, name, info, mine)
        return [outcomes[i] for i in range(len(requests))]


def remove_in_background(path: Path) -> None:
    """Delete a folder nothing uses any more without holding up searches; one a killed process
    leaves behind is removed at the next open (`edge_files.remove_leftovers`)."""
    threading.Thread(
        target=edge_files.remove_tree, args=(path,), name="ume-remove-shard", daemon=True
    ).start()
