"""RL training pairs: the released flat format and the plain JSONL of the SFT stage.

RL needs only prompts (the completions are sampled), so a pair here is the SFT `Pair` with
empty completions. Released records are flat:
`{"qry_text", "qry_image", "qry_video", "pos_text", "pos_image", "pos_video"}` (+ optional
`dataset_name`), where a text is the side's task text (media tags and a trailing
`<disc_emb>`/instruction are removed, as in the SFT reader), an image is one path and a video is
a list of frame paths, all relative to the data root. A side with media and no text gets the
task text inference would use for it. Plain records are read by the SFT reader and their
reasoning/summary fields ignored. Unusable records are skipped and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model.encoder import document_task, task_text
from model.inputs import EmbedInput
from model.prompts import blank_image
from model.train.data import BadRecord, Pair, Side, Skipped, media_path, plain_pair, read_pairs, released_task


def flat_side(record: dict[str, Any], prefix: str, root: Path) -> Side:
    """One side of a released RL record (`qry` or `pos`)."""
    text, image, video = (record.get(f"{prefix}_{key}") for key in ("text", "image", "video"))
    if text is not None and not isinstance(text, str):
        raise BadRecord(f"{prefix}_text is not a string")
    if isinstance(image, list):
        if len(image) > 1:
            raise BadRecord("more than one image on a side")
        image = image[0] if image else None
    if video and not isinstance(video, list):
        raise BadRecord(f"{prefix}_video is not a list of frame paths")
    if image and video:
        raise BadRecord("an image and a video on one side")
    task = released_task(text or "")
    if not (task or image or video):
        raise BadRecord(f"{prefix} side is empty")
    if not task:
        frames = [blank_image()] if video else None
        stand_in = EmbedInput(image=blank_image() if image else None, video_frames=frames)
        task = task_text(stand_in, document_task(stand_in))
    return Side(
        task=task,
        completion="",
        image=media_path(root, image) if image else None,
        video=tuple(media_path(root, frame) for frame in video or []),
    )


def flat_pair(record: Any, root: Path) -> Pair:
    if not isinstance(record, dict):
        raise BadRecord("not a JSON object")
    return Pair(
        dataset=str(record.get("dataset_name") or "default"),
        query=flat_side(record, "qry", root),
        target=flat_side(record, "pos", root),
    )


def load_rl_pairs(path: Path, fmt: str, root: Path | None, skipped: Skipped) -> list[Pair]:
    """Every usable RL pair of one file ("released" flat records or "plain" JSONL)."""
    return read_pairs(path, flat_pair if fmt == "released" else plain_pair, root, skipped)
