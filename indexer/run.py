"""One indexing run from start to end: check the collection, index, prune, finalise.

    summary = index_folders(IndexConfig(roots=[Path("~/Photos")], model="zhibinlan/UME-R1-2B"))

A single process does every step with the store open once. In a sharded run (see
`indexer.shard`) the steps are separated by meeting points: rank 0 prepares the collection,
every rank indexes its share, then rank 0 prunes and finalises once all shares are written.
Each rank opens the store only for its own steps, so engines that admit one process at a time
still work, one rank after another.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from indexer import records
from indexer.collection import (
    CollectionMismatch,
    check_compatible,
    check_model,
    collection_info,
    ensure_collection,
    resolved_model_id,
)
from indexer.config import ConfigError, IndexConfig
from indexer.pipeline import LazyEncoder, Pipeline
from indexer.records import IndexedState
from indexer.scan import absolute_root
from indexer.shard import ShardSpec, open_store_waiting
from indexer.store import CollectionInfo, Match, Store
from indexer.summary import RunSummary
from model.encoder import Encoder

log = logging.getLogger(__name__)


def index_folders(
    config: IndexConfig,
    encoder: Encoder | None = None,
    progress: bool = True,
    shard: ShardSpec | None = None,
) -> RunSummary:
    """Index `config.roots` into `config.collection`; see the module docstring."""
    started = time.perf_counter()
    shard = shard or ShardSpec()
    config = _resolved(config, shard)
    log.info("indexing with %s", config.model_dump_json())
    run = _Run(config, encoder, shard, progress)
    if shard.world == 1:
        with open_store_waiting(config, wait_s=0) as store:
            summary = run.alone(store)
    else:
        shard.start()
        try:
            summary = run.sharded()
        finally:
            shard.stop()
    summary.seconds["total"] = time.perf_counter() - started
    return summary


def _resolved(config: IndexConfig, shard: ShardSpec) -> IndexConfig:
    """Absolute roots that exist, a canonical model id, and this rank's device."""
    if not config.roots:
        raise ConfigError("give at least one folder or file to index")
    roots = [absolute_root(root) for root in config.roots]
    missing = [str(root) for root in roots if not root.exists()]
    if missing:
        raise ConfigError(f"no such file or folder: {missing[0]}")
    if shard.world > 1 and config.qdrant_url is None:
        raise ConfigError(
            "sharded indexing needs --qdrant-url: the embedded index opens in one process at a time"
        )
    update: dict[str, object] = {"roots": roots, "model": resolved_model_id(config.model)}
    if shard.world > 1 and config.device is None and torch.cuda.is_available():
        update["device"] = f"cuda:{shard.local_rank % torch.cuda.device_count()}"
    return config.model_copy(update=update)


@dataclass
class _Run:
    config: IndexConfig
    encoder: Encoder | None
    shard: ShardSpec
    progress: bool
    info: CollectionInfo | None = None  # what the collection holds, once known
    extra_roots: list[Path] = field(default_factory=list)  # old roots of a re-embedded collection
    state: IndexedState = field(default_factory=IndexedState)
    on_disk: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.lazy_encoder = LazyEncoder(self._load_encoder)

    def alone(self, store: Store) -> RunSummary:
        self.prepare(store)
        summary = self.index(store)
        return self.finish(store, summary)

    def sharded(self) -> RunSummary:
        if self.shard.is_leader:
            with open_store_waiting(self.config) as store:
                self.prepare(store)
        self.extra_roots = self.shard.broadcast(self.extra_roots)  # also: wait for rank 0
        with open_store_waiting(self.config) as store:
            summary = self.index(store)
        summary = self.shard.gather(summary)
        if self.shard.is_leader:
            with open_store_waiting(self.config) as store:
                summary = self.finish(store, summary)
        return summary

    def prepare(self, store: Store) -> None:
        """Check the collection, or create it (re-created empty with --reembed)."""
        name, config = self.config.collection, self.config
        existing = None if config.reembed else check_model(store, name, config.model)
        if existing is not None:  # same model, so the same size: checked again when it loads
            check_compatible(store, name, collection_info(config.model, existing.dim, config.mode))
            return
        dim = self.lazy_encoder.get().hidden_size
        info = collection_info(config.model, dim, config.mode)
        old_roots = ensure_collection(store, name, info, config.reembed)
        self.extra_roots = [root for root in old_roots if root.exists()]

    def index(self, store: Store) -> RunSummary:
        name = self.config.collection
        existing = store.collection_info(name)
        wanted = collection_info(self.config.model, existing.dim if existing else 0, self.config.mode)
        self.info = check_compatible(store, name, wanted)
        self.state = IndexedState.load(store, name)
        roots = list(dict.fromkeys([*self.config.roots, *self.extra_roots]))
        pipeline = Pipeline(self.lazy_encoder, store, self.config, self.state, self.shard.owns, self.progress)
        summary = pipeline.run(roots)
        self.on_disk = pipeline.on_disk
        return summary

    def finish(self, store: Store, summary: RunSummary) -> RunSummary:
        """Prune files gone from disk, build the search index, count what the collection holds."""
        collection, started = self.config.collection, time.perf_counter()
        if self.config.prune:
            gone = self.state.deleted(self.config.roots, self.on_disk)
            records.remove_files(store, collection, gone)
            summary.removed = len(gone)
        store.finalize(collection)
        summary.points = store.count(collection, Match(fields={"record": records.ITEM_RECORD}))
        summary.seconds["store"] = summary.seconds.get("store", 0.0) + time.perf_counter() - started
        return summary

    def _load_encoder(self) -> Encoder:
        encoder = self.encoder or self._from_pretrained()
        if self.info is not None and encoder.hidden_size != self.info.dim:
            raise CollectionMismatch(
                f"{self.config.model} makes {encoder.hidden_size}-d vectors but collection "
                f"{self.config.collection!r} holds {self.info.dim}-d ones: add --reembed"
            )
        return encoder

    def _from_pretrained(self) -> Encoder:
        if self.shard.world > 1 and not (self.config.device or "").startswith("cuda"):
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.shard.local_world))
        return Encoder.from_pretrained(self.config.model, device=self.config.device)
