"""When and how the embedded engine builds a collection's search graph: its own business.

Callers only write and search, and may wait until searching runs at full speed
(`EdgeStore.wait_until_ready`). The engine counts the vectors written since its last build
began (overwrites included: an overwritten point leaves the graph until the next build) and a
planner thread starts a build in the background when

- the writes have paused for `tuning.QUIET_S` (or someone waits for full speed) and enough
  vectors lack a graph to fill a segment past the indexing threshold (smaller remainders are
  scanned exactly, which is fast);
- or, when growth is switched on (`tuning.GROW_EVERY_POINTS`), that many points were written
  since the last build while writes go on;
- or the collection is to keep its vectors another way: int8 asked for, or chosen by the engine
  once a collection holds more than `tuning.QUANTIZE_ABOVE_POINTS` items;
- or it holds more segments than the engine keeps (one grown by an older ume).

A run therefore gets one build, at its end. Meanwhile searches scan what the graph does not
hold yet, exactly: that grows with the run but stays well within what a person searching during
a first import accepts, while growing the graph in steps would add a build per step, each
rewriting the collection, and more segments for every search to visit. Growth remains a setting
so that the two schedules can be compared on other machines. A build that fails is retried, a
few times, later; its points stay searchable meanwhile (exactly).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qdrant_edge import EdgeShard

from indexer.catalog import tuning
from indexer.catalog.edge_build import (
    CATCH_UP_CHUNK,
    CATCH_UP_ROUNDS,
    SWAP_IDS,
    Build,
    ShardSettings,
    copy_points,
    describe_phases,
)
from indexer.catalog.edge_convert import create_field_indexes
from indexer.catalog.edge_files import (
    UNBUILT_MARK,
    load_shard,
    remove_tree,
    sync_tree,
)
from indexer.catalog.store import GraphStatus, StoreError

if TYPE_CHECKING:
    from indexer.catalog.edge import EdgeStore

log = logging.getLogger(__name__)

VECTOR_BYTES = 4  # float32
PLAN_POLL_S = 0.5  # how often the planner looks at the collections open in this process
MAX_TRIES = 3  # a build failing this many times in a row waits for the next wait_until_ready
RETRY_AFTER_S = 10.0  # doubled at each failure in a row


class BuildCancelled(Exception):
    """The build was cancelled (the store closed, or the collection dropped) while catching up."""


@dataclass
class Plan:
    """What the engine knows about one open collection's graph."""

    unbuilt: int = 0  # vectors written since the last build began (overwrites counted)
    last_write: float = 0.0  # time.monotonic() of the last write
    urgent: bool = False  # someone waits for full speed: build now, without waiting for quiet
    wanted: str | None = None  # a quantization asked for, applied by the next build
    build: Build | None = None
    failures: int = 0  # builds failed in a row
    retry_at: float = 0.0
    failure: str = ""  # why the last one failed
    marked: int = -1  # the unbuilt count last written to the collection's mark
    segments_built: int = 0  # segments the last build left: a merge that left them is not redone


class EdgeGraph:
    """The planner and the builds of one `EdgeStore` (every method but `close` is called with
    the store's lock held, or takes it)."""

    def __init__(self, store: EdgeStore) -> None:
        self._store = store
        self._plans: dict[str, Plan] = {}
        self._stopped = threading.Event()
        self._planner = threading.Thread(target=self._plan_forever, name="ume-graph-planner", daemon=True)
        self._planner.start()

    # -- what the store tells it ---------------------------------------------------------------

    def opened(self, name: str, folder: Path, vectors: int, indexed: int) -> None:
        """A collection's live shard was opened: what lacks a graph is what the engine's counts
        say, or, when more, what the collection's mark recorded (overwrites of indexed points)."""
        marked = read_mark(folder / UNBUILT_MARK)
        self._plans[name] = Plan(unbuilt=max(marked, vectors - indexed, 0), marked=marked)

    def written(self, name: str, vectors: int) -> None:
        plan = self._plans.setdefault(name, Plan())
        plan.unbuilt += vectors
        plan.last_write = time.monotonic()

    def forget(self, name: str) -> Build | None:
        """The collection was dropped or closed; returns its build for the caller to cancel."""
        plan = self._plans.pop(name, None)
        return plan.build if plan is not None else None

    def ask_quantization(self, name: str, quantization: str) -> None:
        self._plans.setdefault(name, Plan()).wanted = quantization
        self._plans[name].urgent = True

    def build_of(self, name: str) -> Build | None:
        plan = self._plans.get(name)
        return plan.build if plan is not None else None

    def journal(self, name: str) -> set[str] | None:
        """Where writes note the ids they touch while a build runs (None: no build)."""
        plan = self._plans.get(name)
        return plan.build.journal.ids if plan is not None and plan.build is not None else None

    # -- what callers ask ----------------------------------------------------------------------

    def status(self, name: str, vectors: int, indexed_by_engine: int) -> GraphStatus:
        plan = self._plans.setdefault(name, Plan())
        in_graph = max(0, min(vectors, vectors - plan.unbuilt))
        if plan.build is not None:
            build = plan.build
            in_graph = max(0, in_graph - build.covers)  # not until it is swapped in
            return GraphStatus("building", in_graph, vectors, build.elapsed_s(), build.estimate_s)
        note = self._failure_note(plan)
        if plan.failures and plan.failures < MAX_TRIES:
            return GraphStatus("building", in_graph, vectors, note=note)
        if not indexed_by_engine:
            return GraphStatus("exact", 0, vectors, note=note)
        return GraphStatus("ready", in_graph, vectors, note=note)

    def hurry(self, name: str) -> None:
        """Someone waits for full speed: build what is due now, and try a failed build again."""
        plan = self._plans.setdefault(name, Plan())
        plan.urgent = True
        if plan.failures >= MAX_TRIES:
            plan.failures, plan.retry_at = 0, 0.0
        self._consider(name, plan)

    def settled(self, name: str) -> bool:
        """No build runs, none is due, and none is to be retried."""
        plan = self._plans.setdefault(name, Plan())
        if plan.failures >= MAX_TRIES:
            return True  # given up until the next wait
        if plan.build is not None or plan.failures:
            return False
        return self._reason(name, plan) is None

    def close(self) -> list[Build]:
        self._stopped.set()
        builds = [p.build for p in self._plans.values() if p.build is not None]
        for plan in self._plans.values():
            plan.build = None
        return builds

    # -- the planner ---------------------------------------------------------------------------

    def _plan_forever(self) -> None:
        while not self._stopped.wait(PLAN_POLL_S):
            try:
                with self._store.lock:
                    for name, plan in list(self._plans.items()):
                        self._consider(name, plan)
                        self._mark(name, plan)
            except Exception as error:  # the store closed meanwhile, or a disk error: try again
                log.debug("graph planner: %s", error)

    def _consider(self, name: str, plan: Plan) -> None:
        """Start a build of `name` when one is due (with the store's lock held)."""
        if plan.build is not None or self._stopped.is_set() or plan.failures >= MAX_TRIES:
            return
        if time.monotonic() < plan.retry_at:
            return
        reason = self._reason(name, plan)
        if reason is None:
            plan.urgent, plan.failures = False, 0  # nothing (left) to build or to retry
            return
        settings, quantization = self._settings_for(name, plan)
        self._store.flush(name)
        vectors = self._store.vector_count(name)
        rebuilt = plan.unbuilt if quantization is None else vectors  # a switch rebuilds everything
        estimate = tuning.build_estimate_s(rebuilt, settings.dim, settings.quantization)
        build = Build(self._store.collection_folder(name), settings, estimate, covers=plan.unbuilt)
        plan.build, plan.unbuilt, plan.urgent = build, 0, False
        log.info("building the search graph of %r in the background (%s)", name, reason)
        build.worker = threading.Thread(
            target=self._run_build, args=(name, build), name=f"ume-build-{name}", daemon=True
        )
        build.worker.start()

    def _reason(self, name: str, plan: Plan) -> str | None:
        """Why a build is due now, or None."""
        info = self._store.info_of(name)
        quiet = plan.urgent or plan.failures > 0 or time.monotonic() - plan.last_write >= tuning.QUIET_S
        points = plan.unbuilt // max(1, len(info.vectors))
        if plan.wanted is not None and tuning.quantized(plan.wanted) != tuning.quantized(info.quantization):
            return f"keeping the vectors as {plan.wanted}"
        if quiet and not info.quantization and self._store.item_count(name) > tuning.QUANTIZE_ABOVE_POINTS:
            return f"int8 above {tuning.QUANTIZE_ABOVE_POINTS:,} items"
        threshold_kb = self._store.indexing_threshold_kb or tuning.INDEXING_THRESHOLD_KB
        if points * info.dim * VECTOR_BYTES >= threshold_kb * 1024:
            if quiet:
                return f"{plan.unbuilt:,} vectors written since the last build"
            if tuning.GROW_EVERY_POINTS and points >= tuning.GROW_EVERY_POINTS:
                return f"growing it by {plan.unbuilt:,} vectors while writes go on"
        segments = self._store.segment_count(name)
        if quiet and segments > tuning.SEGMENTS + 1 and segments != plan.segments_built:
            return "merging segments"
        return None

    def _settings_for(self, name: str, plan: Plan) -> tuple[ShardSettings, str | None]:
        """The settings the build gives the copy, and the quantization it switches to (None: the
        collection keeps its own)."""
        info = self._store.info_of(name)
        switch: str | None = None
        if plan.wanted is not None and tuning.quantized(plan.wanted) != tuning.quantized(info.quantization):
            switch = plan.wanted
        elif not info.quantization and self._store.item_count(name) > tuning.QUANTIZE_ABOVE_POINTS:
            switch = "int8"
        quantization = info.quantization if switch is None else switch
        settings = ShardSettings(
            info.dim, info.vectors, quantization, self._store.indexing_threshold_kb, tuning.SEGMENTS
        )
        return settings, switch

    def _mark(self, name: str, plan: Plan) -> None:
        """Keep the collection's mark of unbuilt vectors close to the count, so that a process
        that dies still lets the next one know that overwritten points lack a graph."""
        if plan.unbuilt != plan.marked:
            write_mark(self._store.collection_folder(name) / UNBUILT_MARK, plan.unbuilt)
            plan.marked = plan.unbuilt

    # -- one build -----------------------------------------------------------------------------

    def _run_build(self, name: str, build: Build) -> None:
        """A build's own thread: copy, child, catch-up, swap; a failure is noted for a retry."""
        try:
            build.start(self._store.live_dir(name))
            if not build.wait_for_child():
                raise BuildCancelled
            if not build.succeeded():
                raise StoreError(build.failure())
            build.child_done()
            self._catch_up_and_swap(name, build)
        except BuildCancelled:
            build.stop_child()
            build.remove_copy()
        except Exception as error:  # the live shard is as it was
            build.stop_child()
            build.remove_copy()
            self._failed(name, build, error)
        else:
            log.info("swapped in the search graph of %r: %s", name, describe_phases(build.phases))

    def _failed(self, name: str, build: Build, error: Exception) -> None:
        with self._store.lock:
            plan = self._plans.get(name)
            if plan is None or plan.build is not build:
                return
            plan.build = None
            plan.unbuilt += build.covers  # its points still lack a graph
            plan.failures += 1
            plan.failure = first_line(error)
            plan.retry_at = time.monotonic() + RETRY_AFTER_S * 2 ** (plan.failures - 1)
            log.warning("building the search graph of %r failed: %s", name, self._failure_note(plan))

    def _failure_note(self, plan: Plan) -> str:
        if not plan.failures:
            return ""
        if plan.failures >= MAX_TRIES:
            return (
                f"the last {MAX_TRIES} builds failed ({plan.failure}); searches scan exactly "
                "until the next `ume index` tries again"
            )
        wait = max(0.0, plan.retry_at - time.monotonic())
        attempt = f"{plan.failures + 1} of {MAX_TRIES}"
        return f"a build failed ({plan.failure}); trying again in {wait:.0f} s ({attempt})"

    def _catch_up_and_swap(self, name: str, build: Build) -> None:
        """Open the finished copy, make it durable, bring it up to date and swap it in."""
        copy_dir = self._store.next_shard_dir(name, build)
        began, staging = time.monotonic(), None
        try:
            staging = load_shard(copy_dir)
            sync_tree(copy_dir)  # most of it now, outside the lock
            build.phases["open_s"] = time.monotonic() - began
            self._catch_up(name, build, staging)
            with self._store.lock:
                self._check_current(name, build)
                ids = sorted(build.journal.ids)
                build.journal.ids.clear()
                self._copy_from_live(name, build, ids, staging)
                create_field_indexes(staging, build.journal.field_indexes)  # type: ignore[arg-type]
                staging.flush()
                sync_tree(copy_dir)  # what the catch-up wrote: the swap names a durable copy
                self._store.swap_in(name, staging, copy_dir.name, build.settings.quantization)
                self._swapped(name, build)
        except BaseException:
            if self._store.live_dir_or_none(name) != copy_dir:
                if staging is not None:
                    staging.close()
                remove_tree(copy_dir)
            raise

    def _swapped(self, name: str, build: Build) -> None:
        plan = self._plans[name]
        plan.build, plan.failures, plan.failure, plan.retry_at = None, 0, "", 0.0
        plan.segments_built = self._store.segment_count(name)
        if plan.wanted == build.settings.quantization:
            plan.wanted = None
        self._mark(name, plan)

    def _catch_up(self, name: str, build: Build, staging: EdgeShard) -> None:
        """Copy what was written during the build into the copy, round after round, until what
        is left is small enough to copy while searches wait."""
        for _ in range(CATCH_UP_ROUNDS):
            with self._store.lock:
                self._check_current(name, build)
                if len(build.journal.ids) <= SWAP_IDS:
                    return
                ids = sorted(build.journal.ids)
                build.journal.ids.clear()
            build.phases["caught_up"] = build.phases.get("caught_up", 0) + len(ids)
            self._copy_from_live(name, build, ids, staging)

    def _copy_from_live(self, name: str, build: Build, ids: list[str], staging: EdgeShard) -> None:
        """Copy `ids` from the live shard into the copy, CATCH_UP_CHUNK at a time, each read with
        the lock held and written as a piece the next batch of searches waits for."""
        for start in range(0, len(ids), CATCH_UP_CHUNK):
            chunk = ids[start : start + CATCH_UP_CHUNK]
            with self._store.give_way.piece() as writing:
                with self._store.lock:
                    self._check_current(name, build)
                    records = self._store.live_shard(name).retrieve(chunk, True, True)  # type: ignore[arg-type]
                    writing()
                copy_points(chunk, records, staging)  # the copy is this thread's alone

    def _check_current(self, name: str, build: Build) -> None:
        plan = self._plans.get(name)
        if plan is None or plan.build is not build or build.cancelled.is_set():
            raise BuildCancelled


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_mark(path: Path) -> int:
    try:
        return max(0, int(path.read_text().strip() or 0))
    except (OSError, ValueError):
        return 0


def write_mark(path: Path, unbuilt: int) -> None:
    """No fsync: after a power loss the engine's own counts still find new points; only the
    overwrites of the last moments would go unnoticed until the next build."""
    if unbuilt:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(str(unbuilt))
        temporary.replace(path)
    else:
        path.unlink(missing_ok=True)
