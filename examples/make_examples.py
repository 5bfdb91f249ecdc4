"""Build the sample media that ships under examples/media.

Why a script rather than hand-picked files: every sample is reproducible from code, so anyone can
check where a file came from and rebuild it after a change. Design decisions:
- Photos are real photographs bundled with scikit-image (credited in examples/LICENSES.md); one
  sits in a folder whose name has a space, an ampersand and a non-ASCII letter, and one is a
  greyscale PNG, so the samples exercise the awkward paths and formats users have.
- The video and the PDF are drawn from code, with a clearly different subject per time span and
  per page, so that segment search and page search have a right answer.
- Nothing is random and dates are fixed: a rerun with the same library versions writes the same
  bytes.
"""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
import skimage.data
from fpdf import FPDF, XPos, YPos
from PIL import Image, ImageDraw, ImageFont

MAX_PHOTO_SIDE = 512
JPEG_QUALITY = 90
VIDEO_SIZE = (256, 192)  # (width, height)
VIDEO_FPS = 24
SCENE_SECONDS = 4  # three scenes: moving circle, bouncing square, text
PDF_CREATION_DATE = datetime(2026, 1, 1, tzinfo=UTC)


class SamplePhoto(NamedTuple):
    """A scikit-image sample (by its `skimage.data` function name) and where it is saved."""

    loader: str
    relative_path: str


PHOTOS = (
    SamplePhoto("astronaut", "photos/astronaut_in_orange_spacesuit.jpg"),
    SamplePhoto("chelsea", "photos/tabby_cat_closeup.jpg"),
    SamplePhoto("coffee", "photos/café & friends/espresso_cup_on_saucer.jpg"),
    SamplePhoto("rocket", "photos/rocket_on_launch_pad_at_dusk.jpg"),
    SamplePhoto("hubble_deep_field", "photos/hubble_deep_field_galaxies.jpg"),
    SamplePhoto("coins", "photos/ancient_greek_coins.png"),
)

PDF_PAGES: tuple[tuple[str, str], ...] = (
    (
        "Cats: small hunters at home",
        "Cats have lived alongside people for thousands of years, first as hunters of the mice "
        "that raided grain stores and later as companions. A house cat sleeps for much of the "
        "day and is most active at dawn and dusk. Its whiskers sense the width of a gap before "
        "it squeezes through, and its ears turn independently to locate the rustle of prey. "
        "Tabby is a coat pattern, not a breed: stripes, swirls or spots, often with an M-shaped "
        "marking on the forehead.",
    ),
    (
        "Brewing coffee: espresso and pour-over",
        "Espresso forces hot water through a puck of finely ground coffee at about nine bar of "
        "pressure; a double shot uses roughly 18 g of coffee and runs for 25 to 30 seconds, "
        "topped by a layer of crema. Pour-over is gentler: medium-fine grounds sit in a paper "
        "filter and water just off the boil, around 92-96 °C, is poured in slow circles. A "
        "ratio near 1 g of coffee to 16 g of water is a good starting point; grind finer if the "
        "cup tastes sour, coarser if it tastes bitter.",
    ),
    (
        "Rocket launches that made history",
        "",  # this page is the launch table
    ),
    (
        "Growing tomatoes in a home garden",
        "Tomatoes want sun: six to eight hours a day gives the sweetest fruit. Plant seedlings "
        "deep, burying part of the stem, which grows extra roots. Water at the base, deeply "
        "and regularly, since uneven watering cracks the fruit, and tie the stems to a stake or "
        "cage as they grow. Pick the fruit when it is fully coloured and gives slightly under "
        "the thumb.",
    ),
)

LAUNCHES = (
    ("Date", "Rocket", "Mission", "Launch site"),
    ("1969-07-16", "Saturn V", "Apollo 11", "Kennedy LC-39A"),
    ("1981-04-12", "Space Shuttle", "STS-1 (Columbia)", "Kennedy LC-39A"),
    ("1990-04-24", "Space Shuttle", "STS-31 (Hubble)", "Kennedy LC-39B"),
    ("2015-02-11", "Falcon 9", "DSCOVR", "Cape Canaveral SLC-40"),
    ("2021-12-25", "Ariane 5", "James Webb Telescope", "Kourou ELA-3"),
)


def save_photo(photo: SamplePhoto, out: Path) -> Path:
    """Copy one scikit-image sample, shrunk to fit MAX_PHOTO_SIDE, as JPEG or PNG by suffix."""
    image = Image.fromarray(getattr(skimage.data, photo.loader)())
    image.thumbnail((MAX_PHOTO_SIDE, MAX_PHOTO_SIDE), Image.Resampling.LANCZOS)
    path = out / photo.relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        image.save(path, optimize=True)
    else:
        image.save(path, quality=JPEG_QUALITY)
    return path


def draw_frame(index: int) -> Image.Image:
    """Draw frame `index`: red circle (0-4 s), bouncing green square (4-8 s), "HELLO" (8-12 s)."""
    width, height = VIDEO_SIZE
    scene_frames = SCENE_SECONDS * VIDEO_FPS
    scene, step = divmod(index, scene_frames)
    progress = step / (scene_frames - 1)  # 0.0 .. 1.0 within the scene
    if scene == 0:
        frame = Image.new("RGB", VIDEO_SIZE, (135, 206, 235))
        x = round(24 + progress * (width - 48))
        ImageDraw.Draw(frame).ellipse((x - 20, 76, x + 20, 116), fill=(220, 20, 20))
    elif scene == 1:
        frame = Image.new("RGB", VIDEO_SIZE, (60, 140, 40))
        bounce = abs(math.sin(progress * 3 * math.pi))  # three bounces
        top = round(height - 44 - bounce * (height - 60))
        box = (108, top, 148, top + 40)
        ImageDraw.Draw(frame).rectangle(box, fill=(150, 240, 90), outline=(255, 255, 255), width=2)
    else:
        frame = Image.new("RGB", VIDEO_SIZE, (18, 18, 36))
        font = ImageFont.load_default(size=56)
        ImageDraw.Draw(frame).text(
            (width / 2, height / 2), "HELLO", fill=(255, 230, 120), font=font, anchor="mm"
        )
    return frame


def write_video(path: Path) -> Path:
    """Encode the three scenes as a small H.264 mp4 with PyAV (no system ffmpeg needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=VIDEO_FPS, options={"crf": "22"})
        stream.width, stream.height = VIDEO_SIZE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, VIDEO_FPS)
        stream.codec_context.thread_count = 1  # a single thread keeps the bytes reproducible
        for index in range(3 * SCENE_SECONDS * VIDEO_FPS):
            frame = av.VideoFrame.from_ndarray(np.asarray(draw_frame(index)), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def add_launch_table(pdf: FPDF) -> None:
    """Lay out LAUNCHES as a table with a header row."""
    pdf.set_font("Helvetica", size=11)
    with pdf.table(col_widths=(25, 25, 35, 35), line_height=8) as table:
        for launch in LAUNCHES:
            row = table.row()
            for value in launch:
                row.cell(value)


class SamplePdf(FPDF):
    """An A4 document whose pages carry a "Page n of N" footer."""

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", size=9)
        self.cell(0, 8, f"Page {self.page_no()} of {{nb}}", align="C")


def write_pdf(path: Path) -> Path:
    """Write an A4 PDF with one topic per page and a real text layer (searchable, selectable)."""
    pdf = SamplePdf(format="A4")
    pdf.set_creation_date(PDF_CREATION_DATE)
    pdf.set_title("Sample pages: cats, coffee, rockets, tomatoes")
    for heading, body in PDF_PAGES:
        pdf.add_page()
        pdf.set_font("Helvetica", style="B", size=22)
        pdf.cell(0, 14, heading, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(4)
        if body:
            pdf.set_font("Helvetica", size=13)
            pdf.multi_cell(0, 7, body)
        else:
            add_launch_table(pdf)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def make_examples(out: Path) -> list[Path]:
    """Write every sample under `out` and return the files written."""
    written = [save_photo(photo, out) for photo in PHOTOS]
    written.append(write_video(out / "videos" / "circle_square_hello.mp4"))
    written.append(write_pdf(out / "documents" / "cats_coffee_rockets_tomatoes.pdf"))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the sample photos, video and PDF.")
    default_out = Path(__file__).resolve().parent / "media"
    parser.add_argument("--out", type=Path, default=default_out, help="folder to write into")
    args = parser.parse_args()
    for path in make_examples(args.out):
        print(f"{path.stat().st_size:>9,d}  {path}")


if __name__ == "__main__":
    main()
