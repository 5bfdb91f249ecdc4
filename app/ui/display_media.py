"""What the UI shows of a stored item: tiles for the gallery, the page, the clip at its start.

Files are decoded by `model.media`, the functions the indexer uses (pdfium's lock included);
this module only checks, sizes, marks and caches what they return. Every file is opened only
after `ServedFiles.check`; a file that has gone or is refused becomes a labelled placeholder tile
instead of an error, so one bad hit never breaks a result page. Thumbnails are cached by file,
position and modification time, because the same hits come back across searches.
"""

from __future__ import annotations

import html
import logging
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from app.files import FileAccessError, ServedFiles
from app.hits import IndexedItem
from model.media import DEFAULT_PDF_DPI, MediaError, load_image, render_pdf_page, video_frame

log = logging.getLogger(__name__)

TILE_PIXELS = 360  # longest side of a gallery tile
PAGE_DPI = DEFAULT_PDF_DPI  # a detail-pane PDF page: ~910x1290 px for A4, as the indexer renders it
TILE_DPI = 40  # a gallery tile's page: ~330x470 px for A4, then fitted into the tile
TILE_BACKGROUND = (236, 238, 244)


def tile(item: IndexedItem, files: ServedFiles) -> Image.Image:
    """A small picture of the item: the image, the page, or a frame from the middle of the clip."""
    try:
        resolved = files.check(item.path)
        return _cached_tile(str(resolved), item.kind, item.page, item.start, item.end, _mtime(resolved))
    except (FileAccessError, MediaError, OSError) as error:
        log.info("no tile for %s: %s", item.path, error)
        return placeholder("file unavailable")


def page_image(item: IndexedItem, files: ServedFiles, dpi: int = PAGE_DPI) -> Image.Image:
    """The document page of a hit, rendered at reading size."""
    return render_pdf_page(files.check(item.path), item.page or 1, dpi)


def original_image(item: IndexedItem, files: ServedFiles) -> Image.Image:
    return load_image(files.check(item.path))


def video_html(item: IndexedItem, files: ServedFiles) -> str:
    """A <video> element that starts at the segment's start (a media fragment `#t=start,end`)."""
    url = files.url(item.path)
    start = item.start or 0.0
    fragment = f"#t={start:.2f}" + (f",{item.end:.2f}" if item.end is not None else "")
    return (
        f'<video class="ume-video" controls preload="metadata" src="{html.escape(url + fragment)}">'
        "your browser cannot play this video</video>"
    )


def placeholder(label: str) -> Image.Image:
    picture = Image.new("RGB", (TILE_PIXELS, TILE_PIXELS * 3 // 4), TILE_BACKGROUND)
    ImageDraw.Draw(picture).text((16, 16), label, fill=(90, 96, 110))
    return picture


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


@lru_cache(maxsize=1024)
def _cached_tile(
    path: str, kind: str, page: int | None, start: float | None, end: float | None, _mtime: float
) -> Image.Image:
    if kind == "document":
        picture = render_pdf_page(Path(path), page or 1, TILE_DPI)
    elif kind == "video":
        middle = ((start or 0.0) + (end if end is not None else (start or 0.0))) / 2
        picture = _with_play_mark(video_frame(Path(path), middle))
    else:
        picture = load_image(Path(path))
    return ImageOps.contain(picture, (TILE_PIXELS, TILE_PIXELS))


def _with_play_mark(frame: Image.Image) -> Image.Image:
    """A video tile gets a small play triangle, so it reads as a clip at a glance."""
    picture = ImageOps.contain(frame, (TILE_PIXELS, TILE_PIXELS)).convert("RGBA")
    overlay = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    size = max(picture.height // 4, 16)
    x, y = (picture.width - size) // 2, (picture.height - size) // 2
    draw.ellipse((x, y, x + size, y + size), fill=(0, 0, 0, 140))
    inset = size // 3
    draw.polygon(
        [
            (x + inset + 2, y + inset),
            (x + inset + 2, y + size - inset),
            (x + size - inset + 2, y + size // 2),
        ],
        fill=(255, 255, 255, 230),
    )
    return Image.alpha_composite(picture, overlay).convert("RGB")
