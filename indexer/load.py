"""Load: turn one scanned file into the model inputs it holds (an image, video segments, pages).

Every way a user's file can be bad (empty, corrupt, truncated, encrypted, absurdly large,
unreadable) ends as a `LoadFailure` carrying a one-line reason, so the pipeline records it and
moves on; nothing here aborts a run.

Design decisions:
- Video segments and PDF pages are decoded eagerly: a file either yields all its items or
  fails as a whole, so an index never holds half a video from a file that broke midway.
- pdfium is not thread-safe: `model.media` holds one process-wide lock around every pdfium
  call (shared with the UI, which renders pages in the same process), so workers render PDF
  pages one call at a time; images and videos decode freely in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.catalog.schema import FileSettings
from indexer.config import IndexConfig
from indexer.scan import ScannedFile
from model.inputs import (
    INDEXING_BUDGET,
    RECIPE_VERSION,
    EmbedInput,
    VisionBudget,
    embedding_recipe,
    image_input,
    pdf_inputs,
    video_inputs,
)
from model.media import MediaError

GIB = 1024**3


class LoadFailure(Exception):
    """A file that yields no model input; `reason` is one line without the path."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LoadSettings:
    """How files are cut into items and prepared for the model."""

    segment_seconds: float
    pdf_dpi: int
    max_file_size: int
    budget: VisionBudget = INDEXING_BUDGET

    @classmethod
    def of(cls, config: IndexConfig, budget: VisionBudget) -> LoadSettings:
        """The settings an indexing run's config gives, under the encoder's pixel budget."""
        return cls(config.segment_seconds, config.pdf_dpi, config.max_file_size, budget)

    def for_kind(self, kind: str) -> FileSettings:
        """The settings that shape a file of this kind."""
        cut = ""
        if kind == "video":
            cut = f"segment_seconds={self.segment_seconds:g}"
        elif kind == "document":
            cut = f"pdf_dpi={self.pdf_dpi}"
        return FileSettings(cut, embedding_recipe(kind, self.budget), RECIPE_VERSION)


def check_size(file: ScannedFile, settings: LoadSettings) -> None:
    """Refuse empty and absurdly large files before reading a byte of them."""
    if file.size == 0:
        raise LoadFailure("file is empty (0 bytes)")
    if file.size > settings.max_file_size:
        raise LoadFailure(
            f"file is absurdly large ({file.size / GIB:.1f} GiB, limit "
            f"{settings.max_file_size / GIB:.1f} GiB; raise --max-file-size to index it)"
        )


def load_inputs(file: ScannedFile, settings: LoadSettings) -> list[EmbedInput]:
    """The inputs of one file, each with its segment index in `extra["segment"]`."""
    check_size(file, settings)
    try:
        inputs = _decode(file, settings)
    except MediaError as error:
        raise LoadFailure(reason_of(error, file)) from error
    except LoadFailure:
        raise
    except Exception as error:  # a decoder's own bug on one odd file must not end the run
        raise LoadFailure(f"cannot decode file ({type(error).__name__}: {_first_line(error)})") from error
    if not inputs:
        raise LoadFailure("file holds nothing to embed (no frames or pages)")
    for segment, item in enumerate(inputs):
        item.extra["segment"] = segment
    return inputs


def _decode(file: ScannedFile, settings: LoadSettings) -> list[EmbedInput]:
    if file.kind == "image":
        return [image_input(file.path)]
    if file.kind == "video":
        return video_inputs(file.path, settings.segment_seconds)
    if file.kind == "document":
        return pdf_inputs(file.path, settings.pdf_dpi)
    raise LoadFailure(f"unsupported file type {file.path.suffix or '(none)'}")


def reason_of(error: BaseException, file: ScannedFile) -> str:
    """A media error's message without the path it starts with (the record holds the path)."""
    return _first_line(error).removeprefix(f"{file.path}: ")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
