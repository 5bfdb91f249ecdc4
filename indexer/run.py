"""One indexing run from start to end: check the collection, index, prune, fill, finalise.

    summary = index_folders(IndexConfig(roots=[Path("~/Photos")], model="zhibinlan/UME-R1-2B"))

Indexing is progressive. The first pass (`indexer.pipeline`) makes every new or changed file
searchable: in `both` mode with disc vectors only, one forward pass per item. Files gone from
disk are pruned. Then fill passes (`indexer.fill`) give the items under the run's roots the
vectors the mode wants and they lack: the gen vector with its reasoning and summary (one
generation per item), or, for items made in gen mode, a disc vector. `--mode disc` stops after
the first pass; items wait for their reasoning until a later run in `both` mode.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from indexer.catalog.collection import (
    CollectionMismatch,
    check_compatible,
    check_model,
    collection_info,
    collection_mode,
    ensure_collection,
    make_ready,
    quantization_to_apply,
    resolved_model_id,
    server_advice,
    stage_counts,
)
from indexer.catalog.schema import DEFAULT_MODE, MODE_VECTORS
from indexer.catalog.store import CollectionInfo, GraphStatus, Store
from indexer.config import ConfigError, IndexConfig, collection_model
from indexer.fill import FillPass
from indexer.gate import Gate
from indexer.load import LoadSettings
from indexer.pipeline import LazyEncoder, Pipeline, ProgressCallback
from indexer.scan import absolute_root
from indexer.sharding import ShardSpec, open_store_waiting
from indexer.state import IndexedState, remove_files
from indexer.summary import RunSummary
from model.encoder import Encoder, Mode, ModelLoadError
from model.hub import fetch_refusal, on_this_machine
from model.inputs import INDEXING_BUDGET

log = logging.getLogger(__name__)

StageCallback = Callable[[str], None]  # one line saying what a slow step is doing
GraphCallback = Callable[[GraphStatus], None]  # the search graph's build, while the run waits


def index_folders(
    config: IndexConfig,
    encoder: Encoder | None = None,
    progress: bool = True,
    shard: ShardSpec | None = None,
    store: Store | None = None,
    on_progress: ProgressCallback | None = None,
    on_stage: StageCallback | None = None,
    gate: Gate | None = None,
    on_graph: GraphCallback | None = None,
) -> RunSummary:
    """Index `config.roots` into `config.collection`; see the module docstring.

    `encoder` and `store`, when given, are used as they are (an app that already holds them);
    otherwise the run loads the model (only if something needs embedding) and opens the store
    that `config` names. `progress` shows a terminal bar; `on_progress(done, total)` hears the
    same counts (total is None until the background count finishes). `on_stage(line)` hears,
    in words, every step that can take more than a moment (loading the model, removing files
    gone from disk, waiting for the search graph), so a run never stalls in silence. `gate`, in a
    server, lets interactive searches go first: the fill passes wait their turn at it.

    The store builds its search graph by itself, in the background. A run that opened the
    store itself waits for it before closing (`on_graph(status)` hears how far it
    is, about twice a second); with a `store` handed in, the run ends at once and searches
    answer meanwhile.
    """
    started = time.perf_counter()
    shard = shard or ShardSpec()
    config = _resolved(config, shard)
    log.info("indexing with %s", config.model_dump_json())
    run = _Run(config, encoder, shard, progress, on_progress, on_stage, gate, on_graph)
    run.owns_store = store is None
    if store is not None and shard.world == 1:
        summary = run.alone(store)
    elif shard.world == 1:
        with open_store_waiting(config, wait_s=0) as opened:
            summary = run.alone(opened)
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
    model = resolved_model_id(config.model) if config.model else None
    update: dict[str, object] = {"roots": roots, "model": model}
    if shard.world > 1 and config.device is None and torch.cuda.is_available():
        update["device"] = f"cuda:{shard.local_rank % torch.cuda.device_count()}"
    return config.model_copy(update=update)


@dataclass
class _Run:
    config: IndexConfig
    encoder: Encoder | None
    shard: ShardSpec
    progress: bool
    on_progress: ProgressCallback | None = None
    on_stage: StageCallback | None = None
    gate: Gate | None = None
    on_graph: GraphCallback | None = None
    owns_store: bool = True  # the run opened the store: it waits for the search graph
    info: CollectionInfo | None = None  # what the collection holds, once known
    extra_roots: list[Path] = field(default_factory=list)  # old roots of a re-embedded collection
    state: IndexedState = field(default_factory=IndexedState)
    on_disk: set[str] = field(default_factory=set)
    model_seconds: float = 0.0  # loading the model, when something needed it

    def __post_init__(self) -> None:
        budget = self.encoder.budget if self.encoder is not None else INDEXING_BUDGET
        self.lazy_encoder = LazyEncoder(self._load_encoder, budget)

    def alone(self, store: Store) -> RunSummary:
        self.prepare(store)
        summary = self.index(store)
        self.prune(store, summary)
        self.fill(store, summary)
        return self.finish(store, summary)

    def sharded(self) -> RunSummary:
        if self.shard.is_leader:
            with open_store_waiting(self.config) as store:
                self.prepare(store)
        self.extra_roots = self.shard.broadcast(self.extra_roots)  # also: wait for rank 0
        with open_store_waiting(self.config) as store:
            summary = self.index(store)
            self.fill(store, summary)
        summary = self.shard.gather(summary)
        if self.shard.is_leader:
            with open_store_waiting(self.config) as store:
                self.prune(store, summary)
                summary = self.finish(store, summary)
        return summary

    def prepare(self, store: Store) -> None:
        """Check the collection, or create it (re-created empty with --reembed)."""
        name = self.config.collection
        self._settle(store.collection_info(name))
        model, mode = self.model, self.mode
        existing = None if self.config.reembed else check_model(store, name, model)
        if existing is not None:  # same model, so the same size: checked again when it loads
            make_ready(store, name, collection_info(model, existing.dim, mode))
            self.quantize_as_asked(store)
            return
        info = collection_info(model, self.lazy_encoder.get().hidden_size, mode)
        old_roots = ensure_collection(store, name, info, self.config.reembed)
        self.extra_roots = [root for root in old_roots if root.exists()]
        self.quantize_as_asked(store)

    def quantize_as_asked(self, store: Store) -> None:
        """Switch to the quantization asked for (`--quantize`) before writing, so that the
        graphs the engine builds during the run are built in that form already."""
        quantization = quantization_to_apply(
            store.collection_info(self.config.collection), self.config.quantize
        )
        if quantization is not None:
            self.say(f"keeping the vectors as {quantization} from now on (nothing is embedded again)")
            store.set_quantization(self.config.collection, quantization)

    def index(self, store: Store) -> RunSummary:
        """The first pass: embed new and changed files (see the module docstring)."""
        name = self.config.collection
        existing = store.collection_info(name)
        self._settle(existing)
        dim = existing.dim if existing else 0
        self.info = check_compatible(store, name, collection_info(self.model, dim, self.mode))
        self.state = IndexedState.load(store, name)
        pipeline = Pipeline(
            self.lazy_encoder,
            store,
            self.config.model_copy(update={"mode": first_pass_mode(self.mode)}),
            self.state,
            self.shard.owns,
            self.progress,
            self.on_progress,
            self.gate,
        )
        summary = pipeline.run(self.all_roots)
        self.on_disk = pipeline.on_disk
        if self.model_seconds:
            summary.seconds["model"] = self.model_seconds
        return summary

    @property
    def all_roots(self) -> list[Path]:
        """The roots asked for, then the old roots of a re-embedded collection, each once."""
        return list(dict.fromkeys([*self.config.roots, *self.extra_roots]))

    @property
    def mode(self) -> Mode:
        assert self.config.mode is not None, "settled by _settle"
        return self.config.mode

    @property
    def model(self) -> str:
        assert self.config.model is not None, "settled by _settle"
        return self.config.model

    def fill(self, store: Store, summary: RunSummary) -> None:
        """Give the items under the run's roots the vectors its mode wants and they lack."""
        roots = [root for root in self.all_roots if root.exists()]
        settings = LoadSettings.of(self.config, self.lazy_encoder.budget)
        for vector in MODE_VECTORS[self.mode]:  # disc first: it is fast (a no-op scroll if none lack it)
            report = FillPass(
                self.lazy_encoder.get,
                store,
                self.config,
                settings,
                vector,
                self.shard.owns,
                self.gate,
                self.say,
                self.on_progress,
                self.progress,
            ).run(roots)
            summary.filled[vector] = summary.filled.get(vector, 0) + report.filled
            summary.seconds[f"fill_{vector}"] = report.seconds

    def _settle(self, existing: CollectionInfo | None) -> None:
        """No --mode or --model given: keep the collection's, or the defaults for a new one.

        An encoder handed in (an app that holds one) names the model itself.
        """
        update: dict[str, object] = {}
        if self.config.mode is None:
            update["mode"] = collection_mode(existing) if existing else DEFAULT_MODE
        if self.config.model is None:
            update["model"] = self._default_model(existing)
        if update:
            self.config = self.config.model_copy(update=update)

    def _default_model(self, existing: CollectionInfo | None) -> str:
        if self.encoder is not None:
            return resolved_model_id(self.encoder.model_id)
        return resolved_model_id(collection_model(existing))

    def prune(self, store: Store, summary: RunSummary) -> None:
        """Forget the files under the run's roots that are gone from disk."""
        if not self.config.prune:
            return
        started = time.perf_counter()
        gone = self.state.deleted(self.config.roots, self.on_disk)
        if gone:
            self.say(f"removing {len(gone)} files no longer on disk from the index")
        remove_files(store, self.config.collection, gone)
        summary.removed = len(gone)
        summary.seconds["store"] = summary.seconds.get("store", 0.0) + time.perf_counter() - started

    def finish(self, store: Store, summary: RunSummary) -> RunSummary:
        """Count what the collection holds, per stage, and see the search graph built (the
        engine builds it by itself; a run that opened the store waits for it)."""
        collection, started = self.config.collection, time.perf_counter()
        stages = stage_counts(store, collection)
        summary.points, summary.with_reasoning = stages.searchable, stages.with_reasoning
        summary.pending = stages.pending
        summary.seconds["store"] = summary.seconds.get("store", 0.0) + time.perf_counter() - started
        summary.advice = server_advice(summary.points, self.config.qdrant_url is None) or ""
        summary.graph = self.wait_graph(store, summary) if self.owns_store else self.graph_state(store)
        return summary

    def graph_state(self, store: Store) -> str:
        status = store.graph_status(self.config.collection)
        if status.state == "building":
            self.say(status.describe())
        return status.state

    def wait_graph(self, store: Store, summary: RunSummary) -> str:
        """Wait for the search graph before the store closes, saying so (a close would stop a
        build)."""
        collection, started = self.config.collection, time.perf_counter()
        told: list[bool] = []

        def on_wait(status: GraphStatus) -> None:
            if not told:
                told.append(True)
                self.say(
                    f"{status.describe()}; Ctrl-C skips it: every item is saved, and searches "
                    "scan exactly until the next `ume index` builds the graph"
                )
            if self.on_graph is not None:
                self.on_graph(status)

        status = store.wait_until_ready(collection, on_wait)
        if told:
            summary.seconds["graph"] = time.perf_counter() - started
            self.say(status.describe())
        return status.state

    def _load_encoder(self) -> Encoder:
        encoder = self.encoder
        if encoder is None:
            started = time.perf_counter()
            refusal = fetch_refusal(self.model)  # before saying anything: one line, not two
            if refusal is not None:
                raise ModelLoadError(refusal)
            fetched = "" if on_this_machine(self.model) else " (a first download can take minutes)"
            self.say(f"loading model {self.model}{fetched}")
            encoder = self._from_pretrained()
            self.model_seconds = time.perf_counter() - started
            self.say(f"model loaded in {self.model_seconds:.1f} s")
        if self.info is not None and encoder.hidden_size != self.info.dim:
            raise CollectionMismatch(
                f"{self.model} makes {encoder.hidden_size}-d vectors but collection "
                f"{self.config.collection!r} holds {self.info.dim}-d ones: add --reembed"
            )
        return encoder

    def say(self, line: str) -> None:
        """Tell what a step that may take a while is doing (log, and the caller's `on_stage`)."""
        log.info(line)
        if self.on_stage is not None and self.shard.is_leader:
            self.on_stage(line)

    def _from_pretrained(self) -> Encoder:
        if self.shard.world > 1 and not (self.config.device or "").startswith("cuda"):
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.shard.local_world))
        return Encoder.from_pretrained(self.model, device=self.config.device)


def first_pass_mode(mode: Mode) -> Mode:
    """What the first pass embeds: in `both` mode only disc, so items are searchable soon."""
    return "disc" if mode == "both" else mode
