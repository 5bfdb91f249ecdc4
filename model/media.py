"""Decode media files into what the model sees (images, video segments, PDF pages) and into what
the UI shows of them (one page, one frame): decoding lives here only.

Every failure a user's file can cause (missing, empty, corrupt, truncated, encrypted, absurdly
large) surfaces as a `MediaError` whose message is one line saying what is wrong, so callers can
record it and carry on with the next file. Every pdfium call in the process goes through this
module and holds its one process-wide lock (pdfium is not thread-safe).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
)
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"})
DOCUMENT_EXTENSIONS = frozenset({".pdf"})

FRAMES_PER_SEGMENT = 8  # the model was trained on 8 uniformly sampled frames per clip
MAX_IMAGE_PIXELS = 178_956_970  # Pillow's own bomb threshold; larger files are refused
DEFAULT_PDF_DPI = 110  # an A4 page becomes ~910x1290 px, below the model's 1536^2 budget
MAX_PDF_PAGES = 2000

# pdfium is not thread-safe, and one process renders pages from several threads at once (indexer
# workers, the UI's searches and its Index-tab runs): every call into pdfium holds this lock.
# Reentrant, so a garbage-collected page generator that closes its document on a thread already
# holding the lock cannot deadlock it.
_PDFIUM_LOCK = threading.RLock()


class MediaError(Exception):
    """A file that cannot be turned into model input; the message is one user-facing line."""


@dataclass(frozen=True)
class VideoSegment:
    """Uniformly sampled frames of one time span of a video."""

    frames: list[Image.Image]
    start: float  # seconds
    end: float  # seconds
    index: int


def media_kind(path: Path) -> str | None:
    """`image`, `video`, `document` by extension, or None for files we do not embed."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in DOCUMENT_EXTENSIONS:
        return "document"
    return None


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: file is empty (0 bytes)")


def _register_heif() -> None:
    try:  # HEIC support is optional: pillow-heif registers an opener when installed
        from pillow_heif import register_heif_opener  # type: ignore[import-not-found]

        register_heif_opener()
    except ImportError:
        pass


def load_image(path: Path) -> Image.Image:
    """Open an image file as RGB, honouring EXIF orientation; GIFs give their first frame."""
    path = Path(path)
    _check_readable(path)
    if path.suffix.lower() in {".heic", ".heif"}:
        _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_IMAGE_PIXELS:
                    raise MediaError(f"{path}: image is too large ({opened.width}x{opened.height})")
                opened.seek(0)
                image = ImageOps.exif_transpose(opened.convert("RGB"))
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # Pillow's own text is a paragraph about attacks; the limit it applied is what to know
        limit = Image.MAX_IMAGE_PIXELS or MAX_IMAGE_PIXELS
        raise MediaError(f"{path}: image is too large (more than {limit:,} pixels): resize it") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise MediaError(f"{path}: not a readable image ({_first_line(error)})") from error
    return image


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _open_video(path: Path):  # -> decord.VideoReader
    import decord  # imported lazily: only video work pays for it

    _check_readable(path)
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except Exception as error:  # decord raises its own DECORDError for every failure
        raise MediaError(f"{path}: not a readable video ({_first_line(error)})") from error
    if len(reader) == 0:
        raise MediaError(f"{path}: video has no frames")
    return reader


def video_duration(path: Path) -> float:
    """Length of a video in seconds."""
    reader = _open_video(Path(path))
    return len(reader) / _fps(reader)


def _fps(reader) -> float:
    fps = float(reader.get_avg_fps())
    return fps if fps > 0 else 25.0


def segment_bounds(duration: float, segment_seconds: float | None) -> list[tuple[float, float]]:
    """Split [0, duration] into consecutive spans of `segment_seconds` (last one may be shorter).

    A trailing remainder shorter than a third of a segment joins the previous span, so no segment
    is a sliver that says little.
    """
    if not segment_seconds or segment_seconds <= 0 or duration <= segment_seconds:
        return [(0.0, duration)]
    starts = list(np.arange(0.0, duration, segment_seconds))
    if len(starts) > 1 and duration - starts[-1] < segment_seconds / 3:
        starts.pop()
    ends = [*starts[1:], duration]
    return [(float(s), float(e)) for s, e in zip(starts, ends, strict=True)]


def sample_indices(first: int, last: int, count: int = FRAMES_PER_SEGMENT) -> list[int]:
    """`count` frame indices spread uniformly over [first, last], at the centres of equal bins."""
    span = max(last - first + 1, 1)
    return [min(first + int((i + 0.5) * span / count), last) for i in range(count)]


def read_video_segments(
    path: Path,
    segment_seconds: float | None = None,
    frames_per_segment: int = FRAMES_PER_SEGMENT,
) -> Iterator[VideoSegment]:
    """Yield the segments of a video one at a time, each with uniformly sampled frames."""
    path = Path(path)
    reader = _open_video(path)
    fps, total = _fps(reader), len(reader)
    for index, (start, end) in enumerate(segment_bounds(total / fps, segment_seconds)):
        first = min(int(start * fps), total - 1)
        last = max(min(int(np.ceil(end * fps)) - 1, total - 1), first)
        try:
            batch = reader.get_batch(sample_indices(first, last, frames_per_segment)).asnumpy()
        except Exception as error:
            raise MediaError(
                f"{path}: cannot decode frames near {start:.1f}s ({_first_line(error)})"
            ) from error
        yield VideoSegment([Image.fromarray(f) for f in batch], start, end, index)


def video_frame(path: Path, seconds: float) -> Image.Image:
    """The one frame shown at `seconds` into a video (clamped to its first and last frame)."""
    path = Path(path)
    reader = _open_video(path)
    index = min(max(int(seconds * _fps(reader)), 0), len(reader) - 1)
    try:
        return Image.fromarray(reader[index].asnumpy())
    except Exception as error:  # decord raises its own DECORDError for every failure
        raise MediaError(f"{path}: cannot read a frame at {seconds:.1f}s ({_first_line(error)})") from error


def pdf_page_count(path: Path) -> int:
    """Number of pages of a PDF, with the same errors as rendering."""
    with _open_pdf(Path(path)) as (_, pages):
        return pages


def render_pdf_page(path: Path, page: int, dpi: int = DEFAULT_PDF_DPI) -> Image.Image:
    """One page of a PDF (numbered from 1) at `dpi`, without rendering the pages before it."""
    path = Path(path)
    with _open_pdf(path) as (document, pages):
        if not 1 <= page <= pages:
            raise MediaError(f"{path}: has no page {page}")
        return _render_page(document, path, page, dpi)


def render_pdf_pages(path: Path, dpi: int = DEFAULT_PDF_DPI) -> Iterator[tuple[int, Image.Image]]:
    """Yield `(page_number, image)` for every page, numbered from 1, rendered at `dpi`.

    The pdfium lock is held for each call into pdfium, never across a `yield`.
    """
    path = Path(path)
    with _open_pdf(path) as (document, pages):
        for number in range(1, pages + 1):
            yield number, _render_page(document, path, number, dpi)


def pdf_metadata(path: Path) -> dict[str, str]:
    """The PDF's document information (`Title`, `CreationDate`, ...), with rendering's errors."""
    with _open_pdf(Path(path)) as (document, _), _PDFIUM_LOCK:
        return {str(key): str(value) for key, value in document.get_metadata_dict().items()}


@contextmanager
def _open_pdf(path: Path) -> Iterator[tuple[Any, int]]:
    """(pypdfium2.PdfDocument, page count); the document is closed, under the lock, on the way out."""
    import pypdfium2 as pdfium

    _check_readable(path)
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as error:
            message = _first_line(error)
            if "password" in message.lower():
                raise MediaError(f"{path}: PDF is password-protected; decrypt it to index it") from error
            raise MediaError(f"{path}: not a readable PDF ({message})") from error
        pages = len(document)
        if pages > MAX_PDF_PAGES:
            document.close()
            raise MediaError(f"{path}: PDF has {pages} pages, more than the {MAX_PDF_PAGES} allowed")
    try:
        yield document, pages
    finally:
        with _PDFIUM_LOCK:
            document.close()


def _render_page(document: Any, path: Path, number: int, dpi: int) -> Image.Image:
    """Page `number` (from 1) of an open document as an RGB image that owns its pixels.

    The page and its bitmap are closed here, inside the lock, rather than left to the garbage
    collector, which would close them later in whatever thread it runs, without the lock.
    """
    with _PDFIUM_LOCK:
        try:
            page = document[number - 1]
            try:
                bitmap = page.render(scale=dpi / 72)
                try:
                    return bitmap.to_pil().convert("RGB")  # a copy: the bitmap's buffer is freed below
                finally:
                    bitmap.close()
            finally:
                page.close()
        except Exception as error:
            raise MediaError(f"{path}: cannot render page {number} ({_first_line(error)})") from error
