"""Training pairs from disk: the released SFT format and a plain JSONL for users' own data.

Design decisions:
- A `Pair` holds what each side needs to become a prompt + completion: its task text, its media
  paths (checked to exist) and the assistant message to learn. Pixels are read only when the
  pair's batch is built (`model.train.batch`), so a 1.4M-pair file costs little memory.
- A record that cannot be used is skipped and counted under a one-line reason (`Skipped`); a
  bad line never stops a run.
- Released records carry the whole human turn (`<image><video>\\n{task}\\n<disc_emb>\\n{INSTRUCTION}`):
  we keep the task text and let `model.prompts` render the rest, so training and inference
  prompts come from the same code. Media tags with no media behind them are dropped.
- Batches are homogeneous by source dataset (as the paper's), in a seeded order that a
  (epoch, index) position reproduces exactly on resume.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.encoder import document_task, query_task, task_text
from model.inputs import EmbedInput
from model.prompts import DISC_EMB_TOKEN, GEN_EMB_TOKEN, blank_image, render_completion

MEDIA_TAGS = ("<image>", "<video>")


@dataclass(frozen=True)
class Side:
    """One side of a pair: the task text, at most one image or one frame list, and its target."""

    task: str
    completion: str  # the assistant message, ending with <gen_emb>
    image: Path | None = None
    video: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Pair:
    dataset: str
    query: Side
    target: Side


@dataclass
class Skipped:
    """Why records were left out, counted by reason."""

    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str) -> None:
        self.reasons[reason] += 1

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def summary(self) -> str:
        return ", ".join(f"{count} {reason}" for reason, count in self.reasons.most_common())


class BadRecord(ValueError):
    """A record that cannot become a pair; the message is the reason it is counted under."""


def read_records(path: Path) -> Iterator[Any]:
    """Records of a JSONL file, or of a JSON file holding a list; unparsable lines yield None."""
    if path.suffix == ".json":
        yield from json.loads(path.read_text())
        return
    with path.open() as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                yield None


def with_gen_emb(completion: str) -> str:
    """A target must end with <gen_emb>, so the model learns to emit it and gen has its token."""
    return completion if completion.rstrip().endswith(GEN_EMB_TOKEN) else completion + GEN_EMB_TOKEN


def media_path(root: Path, value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise BadRecord("media path is not a string")
    path = root / value
    if not path.is_file():
        raise BadRecord("missing media file")
    return path


def released_task(human: str) -> str:
    """The task text of a released human turn: tags and the fixed disc/instruction tail removed."""
    for tag in MEDIA_TAGS:
        human = human.replace(tag, "")
    return human.split(f"\n{DISC_EMB_TOKEN}", 1)[0].strip()


def released_side(value: Any, root: Path) -> Side:
    if not isinstance(value, dict):
        raise BadRecord("side is not an object")
    turns = value.get("conversations")
    if not isinstance(turns, list) or len(turns) < 2:
        raise BadRecord("conversations need a human and a gpt turn")
    human = next((t.get("value") for t in turns if isinstance(t, dict) and t.get("from") == "human"), None)
    gpt = next((t.get("value") for t in turns if isinstance(t, dict) and t.get("from") == "gpt"), None)
    if not isinstance(human, str) or not isinstance(gpt, str) or not gpt.strip():
        raise BadRecord("conversations need a human and a gpt turn")
    image = value.get("image")
    if isinstance(image, list):
        if len(image) > 1:
            raise BadRecord("more than one image on a side")
        image = image[0] if image else None
    video = value.get("video") or []
    if image and video:
        raise BadRecord("an image and a video on one side")
    if not isinstance(video, list):
        raise BadRecord("video is not a list of frame paths")
    return Side(
        task=released_task(human),
        completion=with_gen_emb(gpt),
        image=media_path(root, image) if image else None,
        video=tuple(media_path(root, frame) for frame in video),
    )


def released_pair(record: Any, root: Path) -> Pair:
    """A UME-sft-train record: {"dataset_name", "qry": {...}, "pos": {...}}."""
    if not isinstance(record, dict):
        raise BadRecord("not a JSON object")
    return Pair(
        dataset=str(record.get("dataset_name") or "default"),
        query=released_side(record.get("qry"), root),
        target=released_side(record.get("pos"), root),
    )


def plain_side(record: dict[str, Any], prefix: str, root: Path, target_kind: str) -> Side:
    """`{prefix}` text, `{prefix}_image`, `{prefix}_video` (frames), `{prefix}_reasoning`, `_summary`.

    Without a summary the side's own text is the answer; without reasoning the think block is
    empty. The task text is the one inference uses for such an input (`model.encoder`).
    """
    text, image, video = record.get(prefix), record.get(f"{prefix}_image"), record.get(f"{prefix}_video")
    if text is not None and not isinstance(text, str):
        raise BadRecord(f"{prefix} is not a string")
    if not (text or image or video):
        raise BadRecord(f"{prefix} side is empty")
    if video and not isinstance(video, list):
        raise BadRecord(f"{prefix}_video is not a list of frame paths")
    if image and video:
        raise BadRecord("an image and a video on one side")
    stand_in = EmbedInput(
        text=text or None,
        image=blank_image() if image else None,
        video_frames=[blank_image()] if video else None,
    )
    if prefix == "query":
        task = task_text(stand_in, query_task(stand_in, target_kind))
    else:
        task = task_text(stand_in, document_task(stand_in))
    summary = record.get(f"{prefix}_summary") or text or ""
    completion = render_completion(str(record.get(f"{prefix}_reasoning") or ""), str(summary))
    return Side(
        task=task,
        completion=completion,
        image=media_path(root, image) if image else None,
        video=tuple(media_path(root, frame) for frame in video or []),
    )


def plain_pair(record: Any, root: Path) -> Pair:
    """A flat record: query/target text, media and optional reasoning (see `plain_side`)."""
    if not isinstance(record, dict):
        raise BadRecord("not a JSON object")
    target_kind = "video" if record.get("target_video") else "image" if record.get("target_image") else "text"
    return Pair(
        dataset=str(record.get("dataset") or "default"),
        query=plain_side(record, "query", root, target_kind),
        target=plain_side(record, "target", root, target_kind),
    )


PairReader = Callable[[Any, Path], Pair]


def load_pairs(path: Path, fmt: str, root: Path | None, skipped: Skipped) -> list[Pair]:
    """Every usable SFT pair of one file; the rest are counted in `skipped`."""
    return read_pairs(path, released_pair if fmt == "released" else plain_pair, root, skipped)


def read_pairs(path: Path, reader: PairReader, root: Path | None, skipped: Skipped) -> list[Pair]:
    """Every record of `path` that `reader` turns into a pair; media relative to `root`."""
    root = root or path.parent
    pairs = []
    for record in read_records(path):
        if record is None:
            skipped.add("unparsable JSON line")
            continue
        try:
            pairs.append(reader(record, root))
        except BadRecord as error:
            skipped.add(str(error))
    return pairs


def batch_order(pairs: list[Pair], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch of batches (pair indices), each from a single dataset, in a seeded order.

    A dataset's leftover pairs short of a batch wait for the next epoch (they are reshuffled);
    a dataset smaller than one batch forms one short batch, so no data is ignored for good.
    """
    rng = random.Random(seed * 100_003 + epoch)
    by_dataset: dict[str, list[int]] = {}
    for index, pair in enumerate(pairs):
        by_dataset.setdefault(pair.dataset, []).append(index)
    batches: list[list[int]] = []
    for name in sorted(by_dataset):
        members = by_dataset[name]
        rng.shuffle(members)
        size = min(batch_size, len(members))
        batches.extend(members[start : start + size] for start in range(0, len(members) - size + 1, size))
    rng.shuffle(batches)
    return batches


@dataclass
class DataPosition:
    """Where the batch stream stands, saved in checkpoints for an exact resume."""

    epoch: int = 0
    index: int = 0


def batch_stream(
    pairs: list[Pair], batch_size: int, seed: int, position: DataPosition
) -> Iterator[list[Pair]]:
    """Batches forever, advancing `position` past each batch it yields."""
    while True:
        order = batch_order(pairs, batch_size, seed, position.epoch)
        while position.index < len(order):
            batch = [pairs[i] for i in order[position.index]]
            position.index += 1
            yield batch
        position.epoch, position.index = position.epoch + 1, 0
