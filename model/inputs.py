"""What gets embedded: a small typed description of one input, and its tensors for the model.

An `EmbedInput` is text, an image, a video clip (frames + time span), a document page, or words
combined with one of those. `prepare` turns one input plus its task text into the processor's
tensors; `collate` left-pads several prepared inputs into one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image

from model import media
from model.prompts import blank_image, render_prompt

Kind = Literal["text", "image", "video", "document"]


# qwen-vl-utils' `fetch_image` floor. The authors' evaluation and RL pass every image (and every
# video frame) through it before the processor, so nothing is seen smaller than 56x56: the 28-px
# blank of a text-only input becomes 4 vision tokens (grid 1x4x4), not 1.
FETCH_IMAGE_MIN_PIXELS = 4 * 28 * 28
# The largest image of the authors' pipeline at every stage (the processor's `longest_edge`).
RELEASED_MAX_PIXELS = 1536 * 1536


@dataclass(frozen=True)
class VisionBudget:
    """Pixel limits handed to the Qwen2-VL processors (the model's dynamic resolution).

    Each stage uses what the released weights saw there, never what a checkpoint's own processor
    file says: the defaults are the authors' evaluation (`ume eval`, RL); `INDEXING_BUDGET` (the
    encoder's default: search and indexing) differs only by a frame budget; `SFT_BUDGET` is SFT's.
    """

    image_min_pixels: int = FETCH_IMAGE_MIN_PIXELS
    image_max_pixels: int = RELEASED_MAX_PIXELS
    # Evaluation and RL send frame lists through `fetch_image` too: image limits per frame.
    video_min_pixels: int = FETCH_IMAGE_MIN_PIXELS
    video_max_pixels: int = RELEASED_MAX_PIXELS


EVALUATION_BUDGET = VisionBudget()
# Indexing caps video frames at the model card's 256*28*28 px (a 1080p frame would otherwise give
# ~2,700 vision tokens per frame pair); images and the text-only blank stay as in evaluation.
INDEXING_BUDGET = VisionBudget(video_max_pixels=256 * 28 * 28)
# The authors' SFT: the processor's own resize with min 768 px (so the 28-px blank stays one
# token) and tiny video frames (4..32 * 28 * 28 px).
SFT_BUDGET = VisionBudget(image_min_pixels=768, video_max_pixels=32 * 28 * 28)

# Bump when the prompt text, the task templates or the way an embedding is read out change:
# vectors made under another recipe are not comparable with new ones. 1: the first release;
# 2: the 56-px blank, gen read at the last generated step when no `<gen_emb>` was written.
RECIPE_VERSION = 2


def embedding_recipe(kind: str, budget: VisionBudget) -> str:
    """What shapes an item's vectors besides the model and the file, as a short stable text.

    Indexes store it per file; when it differs from the running code's, the file is embedded
    again (and counted as stale until then).
    """
    if kind == "video":
        limits = (
            f"frames={media.FRAMES_PER_SEGMENT};video_px={budget.video_min_pixels}..{budget.video_max_pixels}"
        )
    else:
        limits = f"image_px={budget.image_min_pixels}..{budget.image_max_pixels}"
    return f"recipe={RECIPE_VERSION};{limits}"


@dataclass
class EmbedInput:
    """One thing to embed. At most one visual item; text-only inputs get the blank image.

    `task` overrides the task template (`{text}` is replaced by `text`); `source`, `page`,
    `start` and `end` say where the input came from and are passed through to results.
    """

    text: str | None = None
    image: Image.Image | None = None
    video_frames: list[Image.Image] | None = None
    kind: Kind = "text"
    task: str | None = None
    source: str | None = None
    page: int | None = None
    start: float | None = None
    end: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image is not None and self.video_frames is not None:
            raise ValueError("an input holds an image or a video, not both")
        if self.kind == "text" and self.image is not None:
            self.kind = "image"
        if self.kind == "text" and self.video_frames is not None:
            self.kind = "video"


def text_input(text: str, **kwargs: Any) -> EmbedInput:
    return EmbedInput(text=text, kind="text", **kwargs)


def image_input(image: Image.Image | Path | str, text: str | None = None) -> EmbedInput:
    """An image from a file or a PIL image, optionally with words."""
    if isinstance(image, Image.Image):
        return EmbedInput(text=text, image=image.convert("RGB"), kind="image")
    return EmbedInput(text=text, image=media.load_image(Path(image)), kind="image", source=str(image))


def video_inputs(path: Path | str, segment_seconds: float | None = None) -> list[EmbedInput]:
    """One input per segment of a video file, each with 8 uniformly sampled frames."""
    return [
        EmbedInput(
            video_frames=segment.frames,
            kind="video",
            source=str(path),
            start=segment.start,
            end=segment.end,
        )
        for segment in media.read_video_segments(Path(path), segment_seconds)
    ]


def pdf_inputs(path: Path | str, dpi: int = media.DEFAULT_PDF_DPI) -> list[EmbedInput]:
    """One input per page of a PDF, rendered as an image, with its page number."""
    return [
        EmbedInput(image=image, kind="document", source=str(path), page=number)
        for number, image in media.render_pdf_pages(Path(path), dpi)
    ]


def inputs_from_path(path: Path | str, segment_seconds: float | None = None) -> list[EmbedInput]:
    """The inputs a file holds, chosen by its extension; raises `MediaError` when unreadable."""
    path = Path(path)
    kind = media.media_kind(path)
    if kind == "image":
        return [image_input(path)]
    if kind == "video":
        return video_inputs(path, segment_seconds)
    if kind == "document":
        return pdf_inputs(path)
    if not path.exists():
        raise media.MediaError(f"{path}: no such file")
    raise media.MediaError(f"{path}: unsupported file type {path.suffix or '(none)'}")


@dataclass
class PreparedInput:
    """Processor output for one input: (1, L) token rows and its vision tensors."""

    input_ids: torch.Tensor  # (L,)
    mm_token_type_ids: torch.Tensor  # (L,)
    pixel_values: torch.Tensor | None  # (patches, C*T*P*P) for an image
    image_grid_thw: torch.Tensor | None  # (1, 3)
    pixel_values_videos: torch.Tensor | None
    video_grid_thw: torch.Tensor | None

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])


def prepare(processor: Any, item: EmbedInput, task_text: str, budget: VisionBudget) -> PreparedInput:
    """Render the prompt for `item` and run the processor on it alone."""
    if item.video_frames is not None:
        out = processor(
            text=[render_prompt(task_text, ["video"])],
            videos=[item.video_frames],
            return_tensors="pt",
            videos_kwargs={
                "size": {"shortest_edge": budget.video_min_pixels, "longest_edge": budget.video_max_pixels},
                "cap_pixels_per_frame": False,
                "do_sample_frames": False,
            },
        )
    else:
        out = processor(
            text=[render_prompt(task_text, ["image"])],
            images=[item.image if item.image is not None else blank_image()],
            return_tensors="pt",
            images_kwargs={
                "size": {"shortest_edge": budget.image_min_pixels, "longest_edge": budget.image_max_pixels}
            },
        )
    return PreparedInput(
        input_ids=out["input_ids"][0],
        mm_token_type_ids=out["mm_token_type_ids"][0],
        pixel_values=out.get("pixel_values"),
        image_grid_thw=out.get("image_grid_thw"),
        pixel_values_videos=out.get("pixel_values_videos"),
        video_grid_thw=out.get("video_grid_thw"),
    )


def _cat(tensors: Sequence[torch.Tensor | None]) -> torch.Tensor | None:
    present = [t for t in tensors if t is not None]
    return torch.cat(present) if present else None


def collate(items: Sequence[PreparedInput], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Left-pad prepared inputs into one batch (left padding keeps every prompt's end aligned)."""
    width = max(item.length for item in items)
    input_ids = torch.full((len(items), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    mm_token_type_ids = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        input_ids[row, width - item.length :] = item.input_ids
        attention_mask[row, width - item.length :] = 1
        mm_token_type_ids[row, width - item.length :] = item.mm_token_type_ids
    batch: dict[str, torch.Tensor] = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "mm_token_type_ids": mm_token_type_ids,
    }
    for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
        joined = _cat([getattr(item, key) for item in items])
        if joined is not None:
            batch[key] = joined
    return batch
