"""The shape of an evaluation task (`Side`, `Query`, `Task`) and the JSONL reader for your own tasks.

Every reader yields the same `Task`: the released benchmark's (`model.eval.released_load`), BEIR
folders of your own (`model.eval.beir_data`) and the JSONL records read here:
- image tasks: JSONL (or a JSON list) of records `qry_inst, qry_text, qry_img_path, tgt_inst,
  tgt_text[], tgt_img_path[]`, image paths relative to an image root; one record per query,
  its candidate list is the record's lists and the positive is candidate 0;
- video tasks: the same record layout with frame folders in place of images
  (`qry_video_path`, `tgt_video_path[]`, relative to a frame root; each folder holds one
  video's frames, read in natural file-name order so `frame_2` comes before `frame_10`).

Design decisions:
- Every candidate of a task lives once in `Task.candidates`, de-duplicated by its content
  (instruction, text, image, frames, exact prompt), so the encoder embeds each distinct input
  once. A query holds pool indices: its own list for local tasks, none (= the whole pool) for
  global ones.
- A bad record is skipped and counted under a reason (`Task.skipped`); reading never stops on
  one. Errors the user can fix (a missing file or folder) raise with a one-line message.
- Phi-3-V style placeholders (`<|image_1|>`) that MMEB keeps in its texts are removed: the
  media travel in `Side.image` / `Side.video_frames`, and prompts are built elsewhere.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from model.eval.published import TaskSpec

logger = logging.getLogger(__name__)

FRAME_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
VIDEO_FRAMES_PER_INPUT = 8  # the evaluation samples 8 of up to 64 saved frames
MEDIA_PLACEHOLDER = re.compile(r"<\|(?:image|video)_\d+\|>")


@dataclass(frozen=True)
class Side:
    """One side of a pair (a query or a candidate), as plain data.

    `instruction` is the dataset's task instruction (MMEB's `qry_inst` / `tgt_inst`), `text`
    the content; `task_text` joins them as MMEB does. `prompt`, when set, is the exact task
    text a benchmark protocol fixes for this side, used verbatim even when empty (ViDoRe pages
    are embedded with an empty text). Turning a side into a model input is one
    line: `EmbedInput(text=s.text, image=s.load_image(), video_frames=s.load_video_frames(),
    task=s.task_text)`.
    """

    text: str
    image: Path | None = None
    video_frames: list[Path] | None = None
    instruction: str = ""
    prompt: str | None = None

    def content_key(self) -> tuple[str, str, str | None, tuple[str, ...] | None, str | None]:
        """What makes two sides the same input (used to de-duplicate candidates)."""
        frames = tuple(map(str, self.video_frames)) if self.video_frames is not None else None
        return (self.instruction, self.text, str(self.image) if self.image else None, frames, self.prompt)

    @property
    def task_text(self) -> str:
        """Instruction, a space, then the text (MMEB's composition); either may be empty."""
        return " ".join(part for part in (self.instruction, self.text) if part)

    def load_image(self) -> Image.Image | None:
        """The side's image decoded as RGB; None for text-only or video sides."""
        return _open_rgb(self.image) if self.image is not None else None

    def load_video_frames(self, count: int = VIDEO_FRAMES_PER_INPUT) -> list[Image.Image] | None:
        """`count` frames sampled uniformly over the video, decoded as RGB; None if no video."""
        if self.video_frames is None:
            return None
        return [_open_rgb(path) for path in sample_uniform(self.video_frames, count)]


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def sample_uniform(items: list[Path], count: int) -> list[Path]:
    """`count` items evenly spread from first to last; all of them when there are fewer.

    The positions are truncated, not rounded, as in the authors' evaluation
    (`np.linspace(0, n - 1, count, dtype=int)`): 8 of 10 frames are 0,1,2,3,5,6,7,9, where rounding
    would give 0,1,3,4,5,6,8,9 (for 64 saved frames both agree).
    """
    if len(items) <= count:
        return list(items)
    picks = np.linspace(0, len(items) - 1, count, dtype=int)
    return [items[index] for index in picks]


@dataclass(frozen=True)
class Query:
    """One query: its input, what it competes over, and what counts as right."""

    query_id: str
    side: Side
    relevance: dict[int, int]  # candidate-pool index -> grade; > 0 is relevant
    candidate_ids: tuple[int, ...] | None = None  # local tasks: own list; None: whole pool
    # Graded tasks: (pool index, corpus id as released, grade) in the qrels' own order, for
    # the authors' NDCG variant (`model.eval.metrics.authors_ndcg_at_k`).
    qrels: tuple[tuple[int, object, int], ...] = ()

    @property
    def relevant_ids(self) -> frozenset[int]:
        return frozenset(index for index, grade in self.relevance.items() if grade > 0)


@dataclass
class Task:
    """A readable benchmark dataset: queries, the de-duplicated candidate pool, skip counts."""

    spec: TaskSpec
    queries: list[Query]
    candidates: list[Side]
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def name(self) -> str:
        return self.spec.name

    def skip_summary(self) -> str:
        """One line: how many records were skipped and why (empty when none)."""
        if not self.skipped:
            return ""
        reasons = ", ".join(f"{count} {reason}" for reason, count in self.skipped.most_common())
        return f"{self.name}: skipped {self.skipped.total()} ({reasons})"


class RecordError(ValueError):
    """A record that cannot be used; its message is the reason it is counted under."""


class CandidatePool:
    """Distinct candidates in first-seen order, so equal inputs share one embedding."""

    def __init__(self) -> None:
        self.sides: list[Side] = []
        self._index: dict[tuple[Any, ...], int] = {}

    def add(self, side: Side, name: object = None) -> int:
        """The pool index of `side`; `name`, when given, is the identity instead of the content
        (the benchmark de-duplicates some tasks by a candidate name: the first input wins)."""
        key = side.content_key() if name is None else ("name", name)
        if key not in self._index:
            self._index[key] = len(self.sides)
            self.sides.append(side)
        return self._index[key]


def clean_text(value: object, field_name: str) -> str:
    """A text field without MMEB's media placeholders; missing or non-text is a bad record."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"field {field_name!r} is not text")
    return MEDIA_PLACEHOLDER.sub("", value).strip()


def require(record: dict[str, Any], name: str) -> Any:
    if name not in record:
        raise RecordError(f"missing field {name!r}")
    return record[name]


def iter_json_records(path: Path) -> Iterator[tuple[str, dict[str, Any] | RecordError]]:
    """(location, record or the reason it is unusable) for a JSONL file or a JSON list."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: point at the dataset's JSONL records file")
    if path.suffix == ".json":
        yield from ((f"item {i}", _as_record(row)) for i, row in enumerate(_json_list(path)))
        return
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield f"line {number}", _parse_line(line)


def _json_list(path: Path) -> list[object]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        message = f"{path} is not valid JSON ({error.msg}); expected a list of records"
        raise ValueError(message) from None
    if not isinstance(rows, list):
        raise ValueError(f"{path} holds no list of records; use JSONL or a JSON list")
    return rows


def _parse_line(line: str) -> dict[str, Any] | RecordError:
    try:
        return _as_record(json.loads(line))
    except json.JSONDecodeError:
        return RecordError("invalid JSON")


def _as_record(row: object) -> dict[str, Any] | RecordError:
    return row if isinstance(row, dict) else RecordError("record is not a JSON object")


# --- image and video tasks: one record per query, candidate 0 is the positive -------------

Media = tuple[Path | None, list[Path] | None]  # (image, video frames)
MediaResolver = Callable[[object, str], Media]
NO_MEDIA: Media = (None, None)


def image_media(root: Path, check_files: bool) -> MediaResolver:
    """Resolve an image path field ("" or null: text only), checking each file once."""
    exists: dict[Path, bool] = {}

    def resolve(raw: object, field_name: str) -> Media:
        if raw in (None, ""):
            return NO_MEDIA
        if not isinstance(raw, str):
            raise RecordError(f"field {field_name!r} is not a path")
        path = root / raw
        if check_files and not exists.setdefault(path, path.is_file()):
            raise RecordError("image not found")
        return path, None

    return resolve


def _video_media(root: Path) -> MediaResolver:
    """Resolve a frame-folder field to its sorted frame list, listing each folder once."""
    listed: dict[Path, list[Path]] = {}

    def resolve(raw: object, field_name: str) -> Media:
        if raw in (None, ""):
            return NO_MEDIA
        if not isinstance(raw, str):
            raise RecordError(f"field {field_name!r} is not a path")
        folder = root / raw
        if folder not in listed:
            listed[folder] = list_frames(folder)
        if not listed[folder]:
            raise RecordError("video frame folder missing or empty")
        return None, listed[folder]

    return resolve


def _natural_key(path: Path) -> list[int | str]:
    # Case-folded like the benchmark's own frame listing, so both pick the same 8 frames.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_frames(folder: Path) -> list[Path]:
    """A video's frame images in natural name order (`2.jpg` before `10.jpg`)."""
    if not folder.is_dir():
        return []
    frames = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()]
    return sorted(frames, key=_natural_key)


def _record_sides(
    record: dict[str, Any], media_field: str, resolve: MediaResolver
) -> tuple[Side, list[Side]]:
    """The query side and the candidate list of one image- or video-task record."""
    query = make_side(
        clean_text(require(record, "qry_text"), "qry_text"),
        clean_text(record.get("qry_inst"), "qry_inst"),
        resolve(record.get(f"qry_{media_field}"), f"qry_{media_field}"),
    )
    if not (query.text or query.instruction or query.image or query.video_frames):
        raise RecordError("query has no text and no media")
    texts = require(record, "tgt_text")
    media = record.get(f"tgt_{media_field}") or [""] * _list_length(texts)
    if not isinstance(texts, list) or not isinstance(media, list) or not texts:
        raise RecordError("candidate lists are missing or empty")
    if len(texts) != len(media):
        raise RecordError("tgt_text and candidate media lists differ in length")
    instruction = clean_text(record.get("tgt_inst"), "tgt_inst")
    field_name = f"tgt_{media_field}"
    candidates = [
        make_side(clean_text(text, "tgt_text"), instruction, resolve(path, field_name))
        for text, path in zip(texts, media, strict=True)
    ]
    return query, candidates


def make_side(text: str, instruction: str, media: Media) -> Side:
    return Side(text=text, image=media[0], video_frames=media[1], instruction=instruction)


def _list_length(value: object) -> int:
    return len(value) if isinstance(value, list) else 0


def _read_paired_task(records_path: Path, spec: TaskSpec, media_field: str, resolve: MediaResolver) -> Task:
    """Build a task from per-query records; the scope decides local lists vs one pool."""
    pool, queries, skipped = CandidatePool(), [], Counter[str]()
    for where, record in iter_json_records(records_path):
        try:
            if isinstance(record, RecordError):
                raise record
            query, candidates = _record_sides(record, media_field, resolve)
        except RecordError as reason:
            skipped[str(reason)] += 1
            logger.debug("%s %s: skipped (%s)", records_path, where, reason)
            continue
        ids = tuple(pool.add(side) for side in candidates)
        local_ids = ids if spec.scope == "local" else None
        queries.append(Query(where, query, {ids[0]: 1}, local_ids))
    return finished(Task(spec, queries, pool.sides, skipped))


def finished(task: Task) -> Task:
    if task.skipped:
        logger.warning(task.skip_summary())
    return task


def read_image_task(
    records_path: Path, image_root: Path, spec: TaskSpec, *, check_files: bool = True
) -> Task:
    """An MMEB image task from its records; `check_files` skips records with missing images."""
    return _read_paired_task(records_path, spec, "img_path", image_media(image_root, check_files))


def read_video_task(records_path: Path, frame_root: Path, spec: TaskSpec) -> Task:
    """An MMEB video task whose videos are frame folders under `frame_root`."""
    return _read_paired_task(records_path, spec, "video_path", _video_media(frame_root))
