"""The tiny world as real files (PNG/JPEG images, MP4 clips, PDF documents), and read back.

A model trained on the world must understand the files `ume index` reads, so the world writes
the same kinds of files a user has, and training reads them back through the indexer's own
loaders (`model.inputs`): the 8 frames sampled from each video segment and the pages pdfium
renders are exactly the pixels an index is built from.

Design decisions:
- Only runtime dependencies: Pillow writes the PDFs (one image per page), PyAV the MP4s.
- A clip is `SEGMENTS_PER_CLIP` motions back to back, each lasting `SEGMENT_SECONDS` (the
  indexer's default segment length) at one frame per second, so a default `ume index` cuts
  every clip into exactly its motions.
- PDF pages are sized so that pdfium's render at the indexer's resolution is `IMAGE_SIZE` wide.
"""

from __future__ import annotations

import random
from pathlib import Path

import av
import numpy as np
from PIL import Image

from model.inputs import EmbedInput, pdf_inputs, video_inputs
from model.media import DEFAULT_PDF_DPI
from model.world.scenes import IMAGE_SIZE, Motion, Page, Scene, render_motion, render_page, render_scene

SEGMENT_SECONDS = 10.0  # the indexer's default `segment_seconds`
FRAMES_PER_SECOND = 1
SEGMENTS_PER_CLIP = 2
JPEG_QUALITY = 95
VIDEO_CRF = "12"  # near-lossless: H.264's colour subsampling already blurs small shapes
# With macroblock-tree rate control on, x264 gives about one clip in ten another byte stream
# from one encoding to the next; off, a world renders the same bytes every time, as well encoded.
X264_PARAMS = "mbtree=0"


def write_image(path: Path, scene: Scene, rng: random.Random) -> Path:
    """A PNG or JPEG (by the suffix of `path`) of one render of `scene`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = render_scene(scene, rng)
    if path.suffix.lower() in {".jpg", ".jpeg"}:
        image.save(path, quality=JPEG_QUALITY)
    else:
        image.save(path)
    return path


def motion_frames(motion: Motion, rng: random.Random) -> list[Image.Image]:
    """One frame per second of a segment: the motion's renders, each held as long as needed."""
    renders = render_motion(motion, rng)
    count = int(SEGMENT_SECONDS * FRAMES_PER_SECOND)
    return [renders[index * len(renders) // count] for index in range(count)]


def write_clip(path: Path, motions: list[Motion], rng: random.Random) -> Path:
    """An H.264 MP4 showing `motions` one after the other, one per indexer segment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FRAMES_PER_SECOND)
        stream.width, stream.height, stream.pix_fmt = IMAGE_SIZE, IMAGE_SIZE, "yuv420p"
        stream.options = {"crf": VIDEO_CRF, "x264-params": X264_PARAMS}
        for motion in motions:
            for frame in motion_frames(motion, rng):
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(frame), "rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_pdf(path: Path, pages: list[Page], rng: random.Random) -> Path:
    """A PDF with one page per `Page`, each an image of its two words."""
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [render_page(page, rng) for page in pages]
    images[0].save(path, "PDF", save_all=True, append_images=images[1:], resolution=float(DEFAULT_PDF_DPI))
    return path


def clip_segments(path: Path) -> list[EmbedInput]:
    """The clip's segments as `ume index` reads them (8 sampled frames each)."""
    return video_inputs(path, SEGMENT_SECONDS)


def pdf_pages(path: Path) -> list[EmbedInput]:
    """The document's pages as `ume index` renders them."""
    return pdf_inputs(path, DEFAULT_PDF_DPI)
