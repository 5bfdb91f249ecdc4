"""The sample media committed under examples/media opens with the readers the product uses.

These files are what a new user indexes first, so a photo that will not decode, a video of the
wrong length or a PDF without text would be their first impression.
"""

from pathlib import Path

import decord
import numpy as np
import pypdfium2
from PIL import Image

from tests.conftest import REPO

EXAMPLES = REPO / "examples"
MEDIA = EXAMPLES / "media"
PHOTO_SUFFIXES = {".jpg", ".png"}
PAGE_TOPICS = ("Cats", "coffee", "Rocket launches", "tomatoes")


def photo_paths() -> list[Path]:
    return sorted(p for p in (MEDIA / "photos").rglob("*") if p.suffix in PHOTO_SUFFIXES)


def test_photos_open_and_fit_512_pixels() -> None:
    photos = photo_paths()
    assert len(photos) == 6
    for path in photos:
        with Image.open(path) as image:
            image.load()
            assert max(image.size) <= 512, path
            assert min(image.size) >= 256, path
    assert any(p.suffix == ".png" for p in photos)
    assert any(p.parent.name == "café & friends" for p in photos)


def test_every_photo_is_credited_in_licenses() -> None:
    licenses = (EXAMPLES / "LICENSES.md").read_text(encoding="utf-8")
    for path in photo_paths():
        assert path.relative_to(MEDIA).as_posix() in licenses, path


def test_video_lasts_12_seconds_and_changes_scene() -> None:
    reader = decord.VideoReader(str(MEDIA / "videos" / "circle_square_hello.mp4"))
    fps = reader.get_avg_fps()
    assert fps == 24
    assert abs(len(reader) / fps - 12.0) < 0.1
    assert reader[0].shape == (192, 256, 3)
    # One frame from the middle of each 4-second scene: sky blue, grass green, dark.
    sky, grass, dark = (reader[round(s * fps)].asnumpy().mean(axis=(0, 1)) for s in (2, 6, 10))
    assert sky[2] > sky[0] + 50
    assert grass[1] > max(grass[0], grass[2]) + 40
    assert dark.mean() < 60


def test_pdf_pages_render_with_searchable_text() -> None:
    document = pypdfium2.PdfDocument(MEDIA / "documents" / "cats_coffee_rockets_tomatoes.pdf")
    assert len(document) == len(PAGE_TOPICS)
    for page, topic in zip(document, PAGE_TOPICS, strict=True):
        pixels = np.asarray(page.render(scale=0.5).to_pil().convert("L"))
        assert pixels.min() < 100, "page renders blank"
        assert topic in page.get_textpage().get_text_range()


def test_media_stays_small() -> None:
    total = sum(p.stat().st_size for p in MEDIA.rglob("*") if p.is_file())
    assert total < 1.5 * 1024 * 1024
