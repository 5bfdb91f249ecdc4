"""The indexing pipeline for one process: scan -> load -> encode -> store, overlapped.

    feeder thread     walks the roots, skips unchanged files, hands the rest to the pool
    decode workers    fingerprint; reuse vectors of identical content, or decode the file and
                      run the processor on its items (`encoder.prepare`), ahead of the model
    main thread       takes loaded files in scan order and encodes their items in batches
    writer thread     writes finished files to the store (see `indexer.writer`)

The feeder -> main hand-over is a bounded queue of futures, so decoding runs at most
`LOOKAHEAD_FILES` files ahead of the model and memory stays flat on any folder size. Batches
are full `batch_size` ones, except that the model never idles while items are ready: when the
next file is still decoding, what is pending is encoded as a smaller batch (so batch sizes
adapt to how fast decoding keeps up). A file's items may span batches; it goes to the writer
once its last item is encoded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from indexer.catalog.fingerprint import fingerprint
from indexer.catalog.schema import MODE_VECTORS, FileSettings, ItemPlace
from indexer.catalog.store import Store
from indexer.config import IndexConfig
from indexer.gate import Gate
from indexer.load import LoadFailure, LoadSettings, check_size, load_inputs
from indexer.scan import ScannedFile, dated, walk
from indexer.state import IndexedState, record_date_if_unknown
from indexer.summary import RunSummary, StageClock
from indexer.writer import EncodedFile, FailedFile, ReusedFile, StoreWriter, WriteJob
from model.encoder import Encoder, document_task, task_text
from model.inputs import INDEXING_BUDGET, EmbedInput, PreparedInput, VisionBudget

log = logging.getLogger(__name__)

DECODE_NICENESS = 10  # decode threads run at this niceness (Linux), below the model's thread
LOOKAHEAD_FILES = 32  # loaded files waiting for the model, at most
Owns = Callable[[Path], bool]  # does this process handle the file? (sharding)


@dataclass
class LoadedFile:
    """A decoded file whose items are ready for the model."""

    file: ScannedFile
    fingerprint: str
    settings: FileSettings
    places: list[ItemPlace]
    prepared: list[PreparedInput]


Loaded = LoadedFile | WriteJob


class LazyEncoder:
    """The encoder, loaded on first use: a run with nothing new to embed never loads the model."""

    def __init__(self, load: Callable[[], Encoder], budget: VisionBudget = INDEXING_BUDGET) -> None:
        self._load = load
        self.budget = budget  # the pixel limits the encoder prepares under, known before it loads
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()

    def get(self) -> Encoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = self._load()
            return self._encoder


ProgressCallback = Callable[[int, int | None], None]  # (files done, total; None while counting)


class Progress:
    """A tqdm bar over files whose total arrives later, from a background count.

    `on_progress`, when given, hears every change too (a UI's own progress bar)."""

    def __init__(self, enabled: bool, on_progress: ProgressCallback | None = None) -> None:
        self._bar = tqdm(desc="indexing", unit="file", disable=None if enabled else True)
        self._on_progress = on_progress
        self._done = 0
        self._total: int | None = None
        self._lock = threading.Lock()

    def advance(self) -> None:
        with self._lock:
            self._bar.update(1)
            self._done += 1
            done, total = self._done, self._total
        if self._on_progress is not None:
            self._on_progress(done, total)

    def set_total(self, total: int) -> None:
        with self._lock:
            self._bar.total = self._total = total
            self._bar.refresh()
            done = self._done
        if self._on_progress is not None:
            self._on_progress(done, total)

    def close(self) -> None:
        self._bar.close()


class _Accumulator:
    """Encoded rows of one file, filled as its items come out of (possibly several) batches."""

    def __init__(self, loaded: LoadedFile, vector_names: list[str], hidden: int) -> None:
        self.loaded = loaded
        count = len(loaded.places)
        self.vectors = {name: np.zeros((count, hidden), np.float32) for name in vector_names}
        self.reasoning: list[str | None] = [None] * count
        self.summary: list[str | None] = [None] * count
        self.remaining = count

    def job(self) -> EncodedFile:
        loaded = self.loaded
        return EncodedFile(
            loaded.file,
            loaded.fingerprint,
            loaded.settings,
            loaded.places,
            self.vectors,
            self.reasoning,
            self.summary,
        )


Pending = list[tuple[_Accumulator, int, PreparedInput]]  # (file, row in file, item) to encode


class Pipeline:
    """One process's share of an indexing run; see the module docstring."""

    def __init__(
        self,
        encoder: LazyEncoder,
        store: Store,
        config: IndexConfig,
        state: IndexedState,
        owns: Owns = lambda path: True,
        progress: bool = True,
        on_progress: ProgressCallback | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.encoder, self.store, self.config = encoder, store, config
        self.gate = gate  # in a server: searches go ahead of this pass's batches
        self.state, self.owns = state, owns
        self.settings = LoadSettings.of(config, encoder.budget)
        if config.mode is None or config.model is None:
            raise ValueError("settle config.mode and config.model before building a pipeline")
        self.mode, self.model_id = config.mode, config.model
        self.vector_names: list[str] = list(MODE_VECTORS[config.mode])
        self.clock = StageClock()
        self.summary = RunSummary()
        self.on_disk: set[str] = set()  # every media path the scan found, owned or not
        self._progress_enabled, self._on_progress = progress, on_progress
        self._progress = Progress(False)
        self._stop = threading.Event()

    def run(self, roots: Iterable[Path]) -> RunSummary:
        """Index what changed under `roots`; pruning and finalising are left to the caller."""
        roots = list(roots)
        self._progress = Progress(self._progress_enabled, self._on_progress)
        threading.Thread(target=self._count, args=(roots,), daemon=True).start()
        writer = StoreWriter(
            self.store,
            self.config.collection,
            self.model_id,
            self.clock,
            self.summary,
            self._progress.advance,
        )
        writer.start()
        try:
            self._pass(self._candidates(roots), writer, allow_reuse=True)
            writer.flush()
            retry, writer.needs_encoding = writer.needs_encoding, []
            if retry:  # files whose reuse source proved incomplete: embed them after all
                self._pass(iter(retry), writer, allow_reuse=False)
            writer.finish()
        finally:
            writer.close()  # after an error: still write the files already encoded
            self._stop.set()
            self._progress.close()
        self.summary.seconds = dict(self.clock.seconds)
        return self.summary

    def _count(self, roots: list[Path]) -> None:
        self._progress.set_total(sum(1 for file in walk(roots) if self.owns(file.path)))

    def _candidates(self, roots: list[Path]) -> Iterator[ScannedFile]:
        """Owned files that are not already indexed as they are (those count as unchanged)."""
        files = walk(roots)
        while True:
            with self.clock.measure("scan"):
                file = next(files, None)
            if file is None:
                return
            self.on_disk.add(str(file.path))
            if not self.owns(file.path):
                continue
            if self.state.is_unchanged(file, self.settings.for_kind(file.kind)):
                record_date_if_unknown(self.store, self.config.collection, file, self.state)
                self.summary.unchanged += 1
                self._progress.advance()
                continue
            yield file

    def _pass(self, files: Iterator[ScannedFile], writer: StoreWriter, allow_reuse: bool) -> None:
        loads: queue.Queue[Future[Loaded] | None] = queue.Queue(LOOKAHEAD_FILES)
        with ThreadPoolExecutor(
            self.config.decode_workers, "ume-decode", initializer=_init_decode_worker
        ) as pool:
            feeder = threading.Thread(target=self._feed, args=(files, pool, loads, allow_reuse), daemon=True)
            feeder.start()
            try:
                self._encode_all(loads, writer)
            finally:
                self._stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
            self._stop.clear()

    def _feed(
        self,
        files: Iterator[ScannedFile],
        pool: ThreadPoolExecutor,
        loads: queue.Queue[Future[Loaded] | None],
        allow_reuse: bool,
    ) -> None:
        try:
            for file in files:
                if not self._put(loads, pool.submit(self._load, file, allow_reuse)):
                    return
        except BaseException as error:  # a scan error reaches the main thread as a failed future
            failed: Future[Loaded] = Future()
            failed.set_exception(error)
            self._put(loads, failed)
        self._put(loads, None)

    def _put(self, loads: queue.Queue[Future[Loaded] | None], item: Future[Loaded] | None) -> bool:
        while not self._stop.is_set():
            try:
                loads.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _load(self, file: ScannedFile, allow_reuse: bool) -> Loaded:
        """Runs on a decode worker: fingerprint, then reuse or decode + prepare."""
        settings = self.settings.for_kind(file.kind)
        digest: str | None = None
        file = dated(file)  # headers only; bad metadata falls back to the mtime
        try:
            check_size(file, self.settings)
            with self.clock.measure("scan"):
                digest = fingerprint(file.path, file.size)
            source = self.state.reuse_source(file, digest, settings) if allow_reuse else None
            if source is not None:
                return ReusedFile(file, digest, settings, source)
            encoder = self.encoder.get()  # loads the model on first need; a load error ends the run
            with self.clock.measure("decode"):
                return self._decoded(encoder, file, digest, settings)
        except LoadFailure as failure:
            return FailedFile(file, digest, settings, failure.reason)
        except OSError as error:
            return FailedFile(file, digest, settings, f"cannot read file ({error.strerror or error})")

    def _decoded(
        self, encoder: Encoder, file: ScannedFile, digest: str, settings: FileSettings
    ) -> LoadedFile:
        inputs = load_inputs(file, self.settings)
        prepared = [_prepare(encoder, item) for item in inputs]
        return LoadedFile(file, digest, settings, [_place(item) for item in inputs], prepared)

    def _encode_all(self, loads: queue.Queue[Future[Loaded] | None], writer: StoreWriter) -> None:
        """Encode items in scan order, in full batches, or in a partial one rather than idle."""
        pending: Pending = []
        while (future := self._next_loaded(loads)) is not None:
            if pending and not future.done():  # the model would wait: give it what is ready
                pending = self._encode_batch(pending, writer)
            loaded = self._wait_for(future)
            if not isinstance(loaded, LoadedFile):
                writer.submit(loaded)
                continue
            accumulator = _Accumulator(loaded, self.vector_names, self.encoder.get().hidden_size)
            pending += [(accumulator, row, item) for row, item in enumerate(loaded.prepared)]
            loaded.prepared = []  # the pending list holds them now; free each after its batch
            while len(pending) >= self.config.batch_size:
                pending = self._encode_batch(pending, writer)
        while pending:
            pending = self._encode_batch(pending, writer)

    def _next_loaded(self, loads: queue.Queue[Future[Loaded] | None]) -> Future[Loaded] | None:
        with self.clock.measure("wait"):
            return loads.get()

    def _wait_for(self, future: Future[Loaded]) -> Loaded:
        """The loaded file; the time spent here is the model idling for want of input."""
        with self.clock.measure("wait"):
            future.exception()  # blocks until the worker is done with it
        return future.result()

    def _encode_batch(self, pending: Pending, writer: StoreWriter) -> Pending:
        batch, rest = pending[: self.config.batch_size], pending[self.config.batch_size :]
        with self.clock.measure("encode"):
            encoded = self.encoder.get().encode_prepared(
                [item for _, _, item in batch],
                mode=self.mode,
                batch_size=self.config.batch_size,
                max_new_tokens=self.config.max_new_tokens,
                wait_turn=None if self.gate is None else self.gate.yield_to_searches,
            )
        for position, (accumulator, row, _) in enumerate(batch):
            for name, vectors in accumulator.vectors.items():
                vectors[row] = getattr(encoded, name)[position]
            accumulator.reasoning[row] = encoded.reasoning[position]
            accumulator.summary[row] = encoded.summary[position]
            accumulator.remaining -= 1
            if accumulator.remaining == 0:
                writer.submit(accumulator.job())
        return rest


def _init_decode_worker() -> None:
    """Keep decoding out of the model's way: the model is the bottleneck, decoding runs ahead.

    One torch thread per decode worker (the processor's tensor ops would otherwise start a
    thread team per worker, competing with the model's), and, on Linux, a lower CPU priority,
    so on a busy machine decoding fills the cycles the model leaves idle instead of taking its.
    """
    torch.set_num_threads(1)  # per thread: the model's thread keeps its own setting
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DECODE_NICENESS)


def _prepare(encoder: Encoder, item: EmbedInput) -> PreparedInput:
    try:
        return encoder.prepare(item, task_text(item, document_task(item)))
    except Exception as error:  # the processor rejecting one odd image must not end the run
        raise LoadFailure(f"cannot prepare for the model ({type(error).__name__}: {error})") from error


def _place(item: EmbedInput) -> ItemPlace:
    return ItemPlace(item.extra["segment"], item.page, item.start, item.end)
