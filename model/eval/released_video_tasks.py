"""The video tasks as released: one hub dataset per task, frames from the unpacked media.

Frames: `<media root>/<task frames folder>/[frames/]<video id>/`, one image per saved frame
(`frame_0001.jpg` …), read in natural order; 8 are taken by `np.linspace(0, n - 1, 8)` truncated
(`model.eval.mmeb_data.sample_uniform`). A row whose frame folder is missing or empty is skipped
and counted (the authors' evaluation embedded a blank image in its place).

The authors' prompts, per reader (their loaders, after the chat collator strips the text):
- `video_ret`: query (text only) = the task's instruction, a space, the caption; candidate =
  the video with "Understand the content of the provided video."; one candidate per video,
  every query ranks against all of them.
- `video_cls`: query = the video with the task's instruction; candidates = label texts, the
  full label list of the task (`released_video_labels.json`) after the labels seen in the rows.
- `video_mc` (SmthSmthV2): as `video_cls`, but each query ranks only its row's own choices
  (`neg_text`, the answer `pos_text` among them); the first 1,000 rows, as evaluated.
- `video_qa`: query = the video with "Given a video and a question, … Question: " and the
  question with its options written in per dataset; candidates = the row's options.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from model.eval.mmeb_data import CandidatePool, Query, RecordError, Side, Task, finished, list_frames
from model.eval.published import TaskSpec
from model.eval.released_table import ReleasedTask, video_class_labels

RetRow = Callable[[dict[str, Any]], tuple[str, str]]  # row -> (video id, caption)
# (row, prompt) -> (query text, options, index of the answer, video folder)
QaRow = Callable[[dict[str, Any], str], tuple[str, list[str], int, str]]


def _first(value: Any) -> str:
    """A caption column that holds one caption or a list of them (the first is the query)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str):
        raise RecordError("caption is not text")
    return value


RET_ROWS: dict[str, RetRow] = {
    "MSR-VTT": lambda row: (str(row["video_id"]), _first(row["caption"])),
    "MSVD": lambda row: (str(row["video_id"]), _first(row["caption"])),
    "DiDeMo": lambda row: (os.path.splitext(os.path.basename(row["video"]))[0], _first(row["caption"])),
    "YouCook2": lambda row: (str(row["id"]), _first(row["sentence"])),
    "VATEX": lambda row: (str(row["videoID"]), _first(row["enCap"])),
}


def _option_text(option: str) -> str:
    # Their `o[o.find('. '):].strip('. ')`: "A. a cat" -> "a cat" (no ". " keeps the last char).
    return option[option.find(". ") :].strip(". ")


def _lettered(question: str, options: list[str]) -> tuple[str, list[str]]:
    """Question and options in the benchmark's "(A) …" template, as its `qa_template` writes them."""
    lettered = [f"({chr(ord('A') + index)}) {option}" for index, option in enumerate(options)]
    return (f"{question}\nOptions:\n" + "".join(f"{line}\n" for line in lettered)).rstrip(), lettered


def _video_mme(row: dict[str, Any], prompt: str) -> tuple[str, list[str], int, str]:
    options = list(row["options"])
    query = f"{prompt} {row['question']}\n" + "\n".join(options)
    return query.strip(), [_option_text(o) for o in options], "ABCD".index(row["answer"]), str(row["videoID"])


def _nextqa(row: dict[str, Any], prompt: str) -> tuple[str, list[str], int, str]:
    options = [str(row[f"a{index}"]) for index in range(5)]
    query, _ = _lettered(f"{prompt} {row['question']}", options)
    return query.strip(), options, int(row["answer"]), str(row["video"])


def _egoschema(row: dict[str, Any], prompt: str) -> tuple[str, list[str], int, str]:
    options = list(row["option"])
    query = f"{prompt} {row['question']}" + " ".join(options)
    return query.strip(), [_option_text(o) for o in options], int(row["answer"]), str(row["video_idx"])


def _mvbench(row: dict[str, Any], prompt: str) -> tuple[str, list[str], int, str]:
    options = [str(option) for option in row["candidates"]]
    if row["answer"] not in options:
        raise RecordError("answer is not among the candidates")
    query, lettered = _lettered(f"{prompt} {row['question']}", options)
    return query.strip(), lettered, options.index(row["answer"]), f"{row['subset']}/{row['video']}"


def _activitynetqa(row: dict[str, Any], prompt: str) -> tuple[str, list[str], int, str]:
    options = ["yes", "no"]
    if row["answer"] not in options:
        raise RecordError("answer is neither yes nor no")
    query = f"{prompt} {row['question']}? (A) yes; (B) no."
    return query.strip(), options, options.index(row["answer"]), f"v_{row['video_name']}"


QA_ROWS: dict[str, QaRow] = {
    "Video-MME": _video_mme,
    "NExTQA": _nextqa,
    "EgoSchema": _egoschema,
    "MVBench": _mvbench,
    "ActivityNetQA": _activitynetqa,
}


class Frames:
    """Frame lists of one task's videos, each folder listed once."""

    def __init__(self, media_root: Path, folder: str) -> None:
        base = media_root / folder
        if not base.is_dir():
            raise FileNotFoundError(
                f"no frame folder {base}: unpack MMEB-V2's video-tasks/frames archives under --media-root"
            )
        self.base = base / "frames" if (base / "frames").is_dir() else base
        self._listed: dict[str, list[Path]] = {}

    def of(self, video_id: str) -> list[Path]:
        if video_id not in self._listed:
            self._listed[video_id] = list_frames(self.base / video_id)
        if not self._listed[video_id]:
            raise RecordError("video frame folder missing or empty")
        return self._listed[video_id]


def read_media_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records shipped inside the media as JSON lines (ActivityNetQA); bad lines are dropped."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: it ships in MMEB-V2's video-tasks/data/")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_video_task(
    spec: TaskSpec, released: ReleasedTask, rows: Iterable[dict[str, Any]], media_root: Path
) -> Task:
    """Build one video task from its released rows; bad rows are counted and skipped."""
    frames = Frames(media_root, released.frames)
    pool, queries, skipped = CandidatePool(), [], Counter[str]()
    for number, row in enumerate(rows):
        if released.limit is not None and number >= released.limit:
            break
        try:
            query, candidates, positive = _row(released, row, frames)
        except (RecordError, KeyError, TypeError, ValueError) as reason:
            skipped[_reason(reason)] += 1
            continue
        ids = tuple(pool.add(side) for side in candidates)
        local = ids if spec.scope == "local" else None
        queries.append(Query(f"row {number}", query, {ids[positive]: 1}, local))
    if released.loader == "video_cls":
        for label in video_class_labels(released.name):
            pool.add(Side(label, prompt=label.strip()))
    return finished(Task(spec, queries, pool.sides, skipped))


def _reason(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing field {error}"
    return str(error) if isinstance(error, RecordError) else "malformed row"


def _row(released: ReleasedTask, row: dict[str, Any], frames: Frames) -> tuple[Side, list[Side], int]:
    """(query, candidates, index of the positive) of one row, by the task's reader."""
    if released.loader == "video_ret":
        video_id, caption = RET_ROWS[released.name](row)
        query = Side(caption, instruction=released.query_instruction,
                     prompt=f"{released.query_instruction} {caption}".strip())  # fmt: skip
        video = Side("", video_frames=frames.of(video_id), prompt=released.target_instruction)
        return query, [video], 0
    if released.loader == "video_qa":
        prompt, options, answer, video_id = QA_ROWS[released.name](row, released.query_instruction)
        query = Side("", video_frames=frames.of(video_id), prompt=prompt)
        return query, [Side(o, prompt=o.strip()) for o in options], answer
    label = str(row["pos_text"])
    query = Side("", video_frames=frames.of(str(row["video_id"])), prompt=released.query_instruction.strip())
    if released.loader == "video_cls":
        return query, [Side(label, prompt=label.strip())], 0
    choices = [str(choice) for choice in row["neg_text"]]
    if label not in choices:
        raise RecordError("answer is not among the choices")
    return query, [Side(c, prompt=c.strip()) for c in choices], choices.index(label)
