"""The second pass of progressive indexing: give indexed items the vectors they still lack.

A run in `both` mode makes new and changed files searchable first, with disc vectors only (one
forward pass per item, see `indexer.pipeline`), and then this pass adds to each item its gen
vector with the reasoning and summary the model writes (one generation per item: seconds on a
GPU, minutes for a 2B model on a CPU). The same pass gives a disc-only collection gen vectors
when a later run asks for `both`, and gives disc vectors to items that lack them.

Design decisions:
- The work list is the store itself: the items whose `vectors` field lacks the vector. Each
  finished item is written whole (its stored vectors kept, the new one added) in one upsert,
  so a process killed at any moment loses at most the batch in flight, and the next run finds
  exactly the items still lacking it. No state lives outside the store.
- Items are cut from their files again with the run's settings, which are the settings their
  records were made with (the first pass has just re-embedded every file cut differently). A
  file that changed on disk since its record is left alone: the next run's first pass embeds
  it again, and this pass then follows.
- Before every batch, and between the decode steps of a batch, the pass waits for its turn at
  the server's gate (`indexer.gate`), so an interactive search never waits behind it.
- On a CPU the first batch is small, and its real cost per item is said before the rest runs,
  with how to stop or skip the pass.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from indexer.catalog import schema
from indexer.catalog.schema import ItemRecord
from indexer.catalog.store import Match, Point, Store, StoredPoint
from indexer.config import IndexConfig
from indexer.gate import Gate
from indexer.load import LoadFailure, LoadSettings, load_inputs
from indexer.scan import ScannedFile
from indexer.state import same_mtime
from model.encoder import Encoded, Encoder, Mode, document_task, task_text
from model.inputs import PreparedInput

log = logging.getLogger(__name__)

WORTH_SAYING_S = 60.0  # a second pass expected to take less than this is not worth a warning
CPU_FIRST_BATCH = 2  # items in the first batch on a CPU: enough to measure, soon to report
LOOKAHEAD_FILES = 8  # files decoded ahead of the model
# Test hook: SIGKILL this process right after the Nth batch of filled items is written.
KILL_AFTER_ENV = "UME_FILL_KILL_AFTER_BATCHES"
FILL_MODES: dict[str, Mode] = {"gen": "gen", "disc": "disc"}
FILL_WORDS = {"gen": "adding reasoning to", "disc": "adding fast-search vectors to"}

Say = Callable[[str], None]
ItemsProgress = Callable[[int, int], None]  # (items done, items to do)
Owns = Callable[[Path], bool]


@dataclass
class FillReport:
    """What one fill pass did, in items."""

    filled: int = 0  # items that gained the vector
    skipped: int = 0  # items of files that changed or vanished since they were indexed
    failed: int = 0  # items whose file could no longer be read
    seconds: float = 0.0


@dataclass
class _FileWork:
    """The items of one file that lack the vector."""

    path: str
    records: list[ItemRecord]


_Ready = list[tuple[ItemRecord, PreparedInput]]


class FillPass:
    """Gives every item under the run's roots the vector `vector`; see the module docstring."""

    def __init__(
        self,
        encoder: Callable[[], Encoder],
        store: Store,
        config: IndexConfig,
        settings: LoadSettings,
        vector: str,
        owns: Owns = lambda path: True,
        gate: Gate | None = None,
        say: Say = log.info,
        on_progress: ItemsProgress | None = None,
        progress_bar: bool = False,
    ) -> None:
        self.encoder, self.store, self.config, self.settings = encoder, store, config, settings
        self.vector, self.mode = vector, FILL_MODES[vector]
        self.owns, self.gate, self.say = owns, gate, say
        self.on_progress, self.progress_bar = on_progress, progress_bar
        self.report = FillReport()
        self._done = 0
        self._batches_written = 0

    def pending(self, roots: list[Path]) -> list[_FileWork]:
        """The files under `roots` (owned by this process) with items lacking the vector."""
        by_path: dict[str, list[ItemRecord]] = {}
        for match in _scopes(self.vector, roots):
            for _, payload, _ in self.store.scroll(self.config.collection, match):
                record = ItemRecord.from_payload(payload)
                if self.owns(Path(record.facts.path)):
                    by_path.setdefault(record.facts.path, []).append(record)
        return [
            _FileWork(path, sorted(records, key=lambda r: r.place.segment))
            for path, records in sorted(by_path.items())
        ]

    def run(self, roots: list[Path]) -> FillReport:
        started = time.perf_counter()
        work = self.pending(roots)
        total = sum(len(file.records) for file in work)
        if total:
            self.say(f"{FILL_WORDS[self.vector]} {total:,} items")
            if self.on_progress is not None:
                self.on_progress(0, total)  # a new count begins: items now, not files
            shown = None if self.progress_bar else True
            with tqdm(total=total, desc=self.vector, unit="item", disable=shown) as bar:
                self._fill(work, total, bar)
        self.report.seconds = time.perf_counter() - started
        return self.report

    def _fill(self, work: list[_FileWork], total: int, bar: tqdm) -> None:
        ready: _Ready = []
        batch_size = self._first_batch_size()
        for loaded in self._loaded(work):
            ready += loaded
            while len(ready) >= batch_size:
                self._encode_and_write(ready[:batch_size], total, bar)
                ready, batch_size = ready[batch_size:], self.config.batch_size
        if ready:
            self._encode_and_write(ready, total, bar)

    def _first_batch_size(self) -> int:
        on_cpu = self.encoder().device.type == "cpu"
        return min(self.config.batch_size, CPU_FIRST_BATCH) if on_cpu else self.config.batch_size

    def _loaded(self, work: list[_FileWork]) -> Iterator[_Ready]:
        """Each file's items, prepared on worker threads a few files ahead of the model."""
        with ThreadPoolExecutor(self.config.decode_workers, "ume-fill-decode") as pool:
            window: deque[Future[_Ready]] = deque()
            files = iter(work)
            for file in files:
                window.append(pool.submit(self._prepare_file, file))
                if len(window) == LOOKAHEAD_FILES:
                    break
            while window:
                ready = window.popleft().result()
                next_file = next(files, None)
                if next_file is not None:
                    window.append(pool.submit(self._prepare_file, next_file))
                yield ready

    def _prepare_file(self, work: _FileWork) -> _Ready:
        """The file's lacking items, ready for the model; none when it changed or cannot be read."""
        file = _scanned_as_recorded(work.records[0])
        if file is None:
            self.report.skipped += len(work.records)
            return []
        try:
            inputs = {item.extra["segment"]: item for item in load_inputs(file, self.settings)}
            encoder = self.encoder()
            return [
                (record, encoder.prepare(item, task_text(item, document_task(item))))
                for record in work.records
                if (item := inputs.get(record.place.segment)) is not None
            ]
        except (LoadFailure, OSError) as error:
            log.warning("cannot read %s again to fill its items: %s", work.path, error)
            self.report.failed += len(work.records)
            return []

    def _encode_and_write(self, batch: _Ready, total: int, bar: tqdm) -> None:
        if self.gate is not None:
            self.gate.wait_turn()
        started = time.perf_counter()
        encoded = self.encoder().encode_prepared(
            [prepared for _, prepared in batch],
            mode=self.mode,
            batch_size=len(batch),
            max_new_tokens=self.config.max_new_tokens,
            wait_turn=None if self.gate is None else self.gate.wait_turn,  # between decode steps
        )
        self.store.upsert(self.config.collection, self._points(batch, encoded))
        self._batches_written += 1
        _kill_if_asked(self._batches_written)
        self.report.filled += len(batch)
        first = self._done == 0
        self._done += len(batch)
        bar.update(len(batch))
        if self.on_progress is not None:
            self.on_progress(self._done, total)
        if first and self._done < total:
            self._estimate(time.perf_counter() - started, len(batch), total - self._done)

    def _points(self, batch: _Ready, encoded: Encoded) -> list[Point]:
        """The items with their stored vectors and the new one (items gone since are left out)."""
        ids = [record.id for record, _ in batch]
        stored = {point_id: (payload, vectors) for point_id, payload, vectors in self._retrieve(ids)}
        points = []
        for row, (record, _) in enumerate(batch):
            if record.id not in stored:
                continue
            payload, vectors = stored[record.id]
            current = ItemRecord.from_payload(payload)
            if current.facts.fingerprint != record.facts.fingerprint:
                continue  # embedded again from new content meanwhile: its vectors stand
            merged = dict(vectors) | {self.vector: getattr(encoded, self.vector)[row]}
            if self.vector == "gen":
                current = replace(current, reasoning=encoded.reasoning[row], summary=encoded.summary[row])
            points.append(current.to_point(merged))
        return points

    def _retrieve(self, ids: list[str]) -> list[StoredPoint]:
        return self.store.retrieve(self.config.collection, ids, with_vectors=True)

    def _estimate(self, seconds: float, items: int, left: int) -> None:
        """Say what the rest will cost on a CPU, and how to stop or skip it."""
        each = seconds / items
        if self.encoder().device.type != "cpu" or self.vector != "gen" or each * left < WORTH_SAYING_S:
            return
        self.say(
            f"reasoning takes about {each:.0f} s per item on this CPU: roughly {_duration(each * left)} "
            f"for the {left:,} items left. Fast search works already. Stop it any time (Ctrl-C, or "
            "pause in the Index tab): the next run carries on where it stopped; --mode disc skips it"
        )


def _kill_if_asked(batches_written: int) -> None:
    kill_after = os.environ.get(KILL_AFTER_ENV)
    if kill_after and batches_written >= int(kill_after):
        os.kill(os.getpid(), signal.SIGKILL)


def _scopes(vector: str, roots: list[Path]) -> list[Match]:
    """One filter per root: a folder's items, or a single file's."""
    return [
        schema.items_lacking(vector, folder=str(root))
        if root.is_dir()
        else schema.items_lacking(vector, paths=str(root))
        for root in roots
    ]


def _scanned_as_recorded(record: ItemRecord) -> ScannedFile | None:
    """The item's file as the scan would see it, if it is still as it was indexed."""
    facts = record.facts
    try:
        info = Path(facts.path).stat()
    except OSError:
        return None
    if info.st_size != facts.size or not same_mtime(facts.mtime, info.st_mtime):
        return None
    root = Path(facts.root or facts.path)
    return ScannedFile(Path(facts.path), root, facts.kind, facts.size, info.st_mtime)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"
