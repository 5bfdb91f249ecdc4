"""The moment-retrieval tasks as released: a query (text, with a video or an image) -> one of its clips.

QVHighlight, Charades-STA (`moment`): rows `query, video_path`; the media hold, per video,
`<frames folder>/<video name>/query/` (the query video's frames) and one folder per candidate
clip beside it, the positive's name starting with `positive`. Query = the query video with
"Find the clip that corresponds to the described scene in the given video: {query}"; each clip
"Understand the content of the provided video."; each query ranks only its own clips.

MomentSeeker (`momentseeker`): rows `query, input_frames, positive_frames[], negative_frames[]`
(each clip an entry with `frame_path`, an image, or `output_path`, a clip whose frames are under
`<frames folder>/video_frames/<output_path with / as _, no .mp4>/`). The query is text only, text
and an image (`input_frames` ends in .jpg) or text and a video (.mp4), each with its own
instruction; clips are "Understand the content of the provided video clip."; every positive
counts.

Design decision: the authors list a video's clip folders in file-system order; they are sorted
here, which changes nothing but the order of exact ties.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from model.eval.mmeb_data import CandidatePool, Query, RecordError, Side, Task, finished, list_frames
from model.eval.published import TaskSpec
from model.eval.released_table import ReleasedTask

MOMENT_QUERY = "Find the clip that corresponds to the described scene in the given video:"
MOMENT_TARGET = "Understand the content of the provided video."
SEEKER_TEXT = "Find the clip that corresponds to the given text:"
SEEKER_IMAGE = "Select the video clip that aligns with the given text and image:"
SEEKER_VIDEO = "Find the clip that corresponds to the given sentence and video segment:"
SEEKER_TARGET = "Understand the content of the provided video clip."


def frames_base(media_root: Path, folder: str) -> Path:
    """The task's frame folder; the benchmark spells Charades-STA's with a dash or an underscore."""
    for candidate in (folder, folder.replace("Charades-STA", "Charades_STA")):
        if (media_root / candidate).is_dir():
            return media_root / candidate
    raise FileNotFoundError(
        f"no frame folder {media_root / folder}: unpack MMEB-V2's video-tasks/frames/video_mret archive"
    )


def _frames(folder: Path) -> list[Path]:
    found = list_frames(folder)
    if not found:
        raise RecordError("clip frame folder missing or empty")
    return found


def _moment_row(row: dict[str, Any], base: Path) -> tuple[Side, list[Side], set[int]]:
    query, video_path = str(row["query"]), str(row["video_path"])
    folder = base / os.path.splitext(os.path.basename(video_path))[0]
    clips = sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "query") if folder.is_dir() else []
    positives = {index for index, clip in enumerate(clips) if clip.name.startswith("positive")}
    if not positives:
        raise RecordError("no positive clip folder")
    side = Side(query, video_frames=_frames(folder / "query"), prompt=f"{MOMENT_QUERY} {query}".strip())
    candidates = [Side("", video_frames=_frames(clip), prompt=MOMENT_TARGET) for clip in clips]
    return side, candidates, {max(positives)}  # theirs keeps the last positive it lists


def _resolve(base: Path, relative: str | None) -> Path | None:
    """A MomentSeeker frame path, in any of the layouts the benchmark has used."""
    if not relative:
        return None
    options = [relative]
    for prefix in ("videos/", "images/"):
        if relative.startswith(prefix):
            options.append(relative[len(prefix) :])
    if relative.startswith("images/"):
        options.append(f"query_{relative}")
    return next((base / option for option in options if (base / option).is_file()), None)


def _seeker_clip(entry: dict[str, Any], base: Path) -> list[Path]:
    image = _resolve(base, entry.get("frame_path"))
    if image is not None:
        return [image]
    name = str(entry.get("output_path", "")).replace("/", "_").split(".mp4")[0]
    return _frames(base / "video_frames" / name)


def _seeker_query(row: dict[str, Any], base: Path) -> Side:
    query, given = str(row["query"]), str(row.get("input_frames") or "")
    fallback = row["positive_frames"][0].get("frame_path") if row["positive_frames"] else None
    if given.endswith(".mp4"):
        folder = base / "video_frames" / given.split(".mp4")[0].replace("/", "_")
        frames = list_frames(folder) or [p for p in [_resolve(base, fallback)] if p is not None]
        if not frames:
            raise RecordError("query video frames missing")
        return Side(query, video_frames=frames, prompt=f"{SEEKER_VIDEO} {query}".strip())
    if given.endswith(".jpg"):
        image = _resolve(base, given) or _resolve(base, fallback)
        if image is None:
            raise RecordError("query image missing")
        return Side(query, image, prompt=f"{SEEKER_IMAGE} {query}".strip())
    return Side(query, prompt=f"{SEEKER_TEXT} {query}".strip())


def _seeker_row(row: dict[str, Any], base: Path) -> tuple[Side, list[Side], set[int]]:
    positives, negatives = list(row["positive_frames"]), list(row["negative_frames"])
    if not positives:
        raise RecordError("no positive clip")
    clips = [_seeker_clip(entry, base) for entry in positives + negatives]
    candidates = [Side("", video_frames=frames, prompt=SEEKER_TARGET) for frames in clips]
    return _seeker_query(row, base), candidates, set(range(len(positives)))


def read_moment_task(
    spec: TaskSpec, released: ReleasedTask, rows: Iterable[dict[str, Any]], media_root: Path
) -> Task:
    """Build one moment-retrieval task; bad rows are counted and skipped."""
    base = frames_base(media_root, released.frames)
    build = _seeker_row if released.name == "MomentSeeker" else _moment_row
    pool, queries, skipped = CandidatePool(), [], Counter[str]()
    for number, row in enumerate(rows):
        try:
            query, candidates, positives = build(row, base)
        except (RecordError, KeyError, TypeError, AttributeError, IndexError) as reason:
            skipped[str(reason) if isinstance(reason, RecordError) else "malformed row"] += 1
            continue
        ids = tuple(pool.add(side) for side in candidates)
        queries.append(Query(f"row {number}", query, {ids[i]: 1 for i in positives}, ids))
    return finished(Task(spec, queries, pool.sides, skipped))
