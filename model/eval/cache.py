"""Embeddings of evaluation inputs, cached on disk so that a rerun encodes only what is missing.

Layout: one folder per (task, side, mode), e.g. `<out>/cache/ImageNet-1K/query/gen/`, holding
numbered chunks: `chunk-000000.npy` (n, H) float32 and `chunk-000000.json` (the n keys, in row
order). A key is a hash of everything that decides the vector: model, dtype, vision budget,
recipe version, the exact task text and media paths, and for gen the token cap.

Design decisions:
- A chunk is written as soon as its batch is encoded, each file through a temporary name and an
  atomic rename, the JSON last: a chunk without its JSON was interrupted and is ignored, so a
  killed run loses at most the batch in flight and a rerun resumes where it stopped.
- Chunks are only ever added, never rewritten: an index that grows with every batch would make
  a long run quadratic in writes.
- Identical inputs (a label shared by many queries' lists, a repeated query) are encoded once.
- Inputs are loaded and run through the processor one batch ahead, in a worker thread, so image
  decoding overlaps the model.
- One run at a time per output folder: two runs appending chunks to one folder may collide.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from model.encoder import Encoder, Mode
from model.inputs import RECIPE_VERSION, EmbedInput, PreparedInput

VectorMode = Literal["disc", "gen"]
MODES_OF: dict[Mode, tuple[VectorMode, ...]] = {
    "disc": ("disc",),
    "gen": ("gen",),
    "both": ("disc", "gen"),
}
CHUNK_DIGITS = 6
ProgressCallback = Callable[[int, int], None]  # (items encoded so far, items to encode)


class EvalDataError(Exception):
    """An evaluation input that cannot be read; the message is one line naming it."""


@dataclass(frozen=True)
class EvalItem:
    """One input to embed: what identifies it, its exact task text, and how to load it."""

    identity: tuple[str, ...]  # media paths (with the task text: equal inputs embed equally)
    task_text: str
    load: Callable[[], EmbedInput]
    label: str  # where the input comes from, for error messages


@dataclass(frozen=True)
class EncodeSettings:
    """How inputs are encoded; everything but `batch_size` is part of a gen vector's cache key."""

    batch_size: int = 8
    max_new_tokens: int = 8192
    stop_at_gen_emb: bool = True  # False: decode on to the end, as the authors' evaluation does
    temperature: float | None = None  # None: greedy; else one sampled rollout per input
    seed: int = 0  # the sampled rollout's random seed (one per pass@k sample)

    def gen_key_parts(self) -> list[Any]:
        """What decides a gen vector besides the input: cap, stop rule, sampling."""
        parts: list[Any] = [self.max_new_tokens]
        if not self.stop_at_gen_emb:
            parts.append("decode-to-end")
        if self.temperature is not None:
            parts += ["sampled", self.temperature, self.seed]
        return parts


@dataclass(frozen=True)
class Embedded:
    """Vectors per mode, one row per item in input order, and how many were encoded now."""

    vectors: dict[VectorMode, np.ndarray]
    encoded: int
    reused: int


class ChunkCache:
    """The vectors of one (task, side, mode) folder, keyed by content key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _chunks(self) -> Iterator[tuple[int, Path]]:
        for index_file in sorted(self.folder.glob("chunk-*.json")):
            number = index_file.stem.removeprefix("chunk-")
            if number.isdigit():
                yield int(number), index_file

    def load(self) -> dict[str, np.ndarray]:
        """Every complete chunk's vectors by key; a damaged or partial chunk is skipped."""
        found: dict[str, np.ndarray] = {}
        for _, index_file in self._chunks():
            try:
                keys = json.loads(index_file.read_text(encoding="utf-8"))["keys"]
                vectors = np.load(index_file.with_suffix(".npy"))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if isinstance(keys, list) and vectors.ndim == 2 and len(keys) == vectors.shape[0]:
                found.update(zip(keys, vectors, strict=True))
        return found

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Write one chunk: the vectors first, then the key list that makes it count."""
        if len(keys) != vectors.shape[0]:
            raise ValueError(f"{len(keys)} keys for {vectors.shape[0]} vectors")
        self.folder.mkdir(parents=True, exist_ok=True)
        number = max((n for n, _ in self._chunks()), default=-1) + 1
        stem = self.folder / f"chunk-{number:0{CHUNK_DIGITS}d}"
        _write_atomic(stem.with_suffix(".npy"), lambda h: np.save(h, vectors.astype(np.float32)))
        payload = json.dumps({"keys": list(keys)}).encode("utf-8")
        _write_atomic(stem.with_suffix(".json"), lambda h: h.write(payload))


def _write_atomic(path: Path, write: Callable[[Any], object]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def item_keys(encoder: Encoder, item: EvalItem, settings: EncodeSettings) -> dict[VectorMode, str]:
    """The cache key of each vector of `item` under this encoder and these settings."""
    # The recipe version covers prompt and extraction rules: vectors of an older one are not reused.
    model = [encoder.model_id, str(encoder.model.dtype), asdict(encoder.budget), RECIPE_VERSION]
    base = [*model, item.task_text, *item.identity]
    return {
        "disc": _digest([*base, "disc"]),
        "gen": _digest([*base, "gen", *settings.gen_key_parts()]),
    }


def _digest(parts: list[Any]) -> str:
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def embed_items(
    encoder: Encoder,
    items: Sequence[EvalItem],
    mode: Mode,
    folder: Path,
    settings: EncodeSettings,
    on_progress: ProgressCallback | None = None,
) -> Embedded:
    """Vectors of `items` for each mode in `mode`, reusing and extending the cache in `folder`."""
    wanted = MODES_OF[mode]
    caches = {m: ChunkCache(folder / m) for m in wanted}
    known = {m: caches[m].load() for m in wanted}
    keys = [item_keys(encoder, item, settings) for item in items]
    plan = _missing_by_call(items, keys, known)
    total = sum(len(indices) for indices in plan.values())
    done = 0
    for call_mode, indices in plan.items():
        for batch, encoded in _encode_batches(encoder, items, indices, call_mode, settings):
            for m in MODES_OF[call_mode]:
                rows = getattr(encoded, m)
                batch_keys = [keys[i][m] for i in batch]
                caches[m].add(batch_keys, rows)
                known[m].update(zip(batch_keys, rows, strict=True))
            done += len(batch)
            if on_progress is not None:
                on_progress(done, total)
    vectors = {m: _stack([known[m][k[m]] for k in keys], encoder.hidden_size) for m in wanted}
    return Embedded(vectors, encoded=total, reused=len(items) - total)


def _stack(rows: list[np.ndarray], hidden: int) -> np.ndarray:
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, hidden), np.float32)


def _missing_by_call(
    items: Sequence[EvalItem],
    keys: list[dict[VectorMode, str]],
    known: dict[VectorMode, dict[str, np.ndarray]],
) -> dict[Mode, list[int]]:
    """First index of each distinct missing input, grouped by the encoder call it needs.

    An input missing both vectors costs one `both` call; one missing only disc costs a forward
    pass, not a generation.
    """
    plan: dict[Mode, list[int]] = {"both": [], "gen": [], "disc": []}
    seen: set[tuple[str, ...]] = set()
    for index, item in enumerate(items):
        identity = (item.task_text, *item.identity)
        missing = tuple(m for m in known if keys[index][m] not in known[m])
        if not missing or identity in seen:
            continue
        seen.add(identity)
        plan["both" if len(missing) == 2 else missing[0]].append(index)
    return {call: indices for call, indices in plan.items() if indices}


def _encode_batches(
    encoder: Encoder,
    items: Sequence[EvalItem],
    indices: list[int],
    mode: Mode,
    settings: EncodeSettings,
) -> Iterator[tuple[list[int], Any]]:
    """(batch indices, Encoded) per batch, preparing the next batch while this one encodes."""
    size = max(1, settings.batch_size)
    batches = [indices[start : start + size] for start in range(0, len(indices), size)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming: Future[list[PreparedInput]] | None = None
        if batches:
            upcoming = pool.submit(_prepare, encoder, items, batches[0])
        for number, batch in enumerate(batches):
            assert upcoming is not None
            prepared = upcoming.result()
            if number + 1 < len(batches):
                upcoming = pool.submit(_prepare, encoder, items, batches[number + 1])
            encoded = encoder.encode_prepared(
                prepared,
                mode=mode,
                batch_size=size,
                max_new_tokens=settings.max_new_tokens,
                stop_at_gen_emb=settings.stop_at_gen_emb,
                do_sample=settings.temperature is not None,
                temperature=settings.temperature or 1.0,
                seed=None if settings.temperature is None else settings.seed + number,
            )
            yield batch, encoded


def _prepare(encoder: Encoder, items: Sequence[EvalItem], batch: list[int]) -> list[PreparedInput]:
    prepared = []
    for index in batch:
        item = items[index]
        try:
            loaded = item.load()
        except (OSError, ValueError) as error:
            raise EvalDataError(f"cannot read {item.label}: {error}") from error
        prepared.append(encoder.prepare(loaded, item.task_text))
    return prepared
