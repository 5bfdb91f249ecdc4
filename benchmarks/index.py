"""Indexing speed: the whole pipeline against pure encoding of the same items.

Generates a folder of photos, short videos and PDFs, indexes it with the tiny model into a
fresh embedded index, then encodes the very same items (prepared beforehand, in the same
batches) with the encoder alone. The ratio of the two wall times is the pipeline's overhead:
decoding, preparing and storing should hide behind the model (target <= 1.2). Both are timed
`--repeats` times, alternating, and the fastest of each is kept: shared machines are noisy.
On CPU the model gets the cores the decode workers leave (`--threads` overrides), the same
for both measurements, so the ratio shows whether decoding hides behind the model.

    python benchmarks/index.py                         # 200 images, 5 videos, 5 PDFs
    python benchmarks/index.py --mode disc --images 50 # the fast path, a quick look
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from fpdf import FPDF
from PIL import Image

from indexer.config import IndexConfig, default_decode_workers
from indexer.load import LoadSettings, load_inputs
from indexer.run import index_folders
from indexer.scan import walk
from indexer.summary import RunSummary
from model.encoder import Encoder, document_task, task_text
from model.inputs import PreparedInput
from model.tiny import build_tiny_model

PHOTO_SIZE = (320, 240)
VIDEO_SECONDS = 4.0
PDF_PAGES = 3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--videos", type=int, default=5)
    parser.add_argument("--pdfs", type=int, default=5)
    parser.add_argument("--mode", choices=("disc", "gen", "both"), default="both")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--segment-seconds", type=float, default=2.0)
    parser.add_argument("--decode-workers", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=2, help="timings kept: the fastest")
    parser.add_argument(
        "--threads", type=int, default=None, help="model threads (default: cores left by decoding)"
    )
    return parser.parse_args()


def make_folder(root: Path, images: int, videos: int, pdfs: int) -> None:
    rng = np.random.default_rng(0)
    for index in range(images):
        folder = root / "photos" / f"album {index % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_picture(rng, PHOTO_SIZE)).save(folder / f"photo {index}.jpg", quality=90)
    for index in range(videos):
        _write_video(root / "videos" / f"clip {index}.mp4", rng)
    for index in range(pdfs):
        _write_pdf(root / "docs" / f"report {index}.pdf", index)


def _picture(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A smooth random picture (a noise field would make JPEG decoding unrealistically slow)."""
    small = rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BILINEAR))


def _write_video(path: Path, rng: np.random.Generator, fps: int = 10) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for _ in range(int(VIDEO_SECONDS * fps)):
            frame = av.VideoFrame.from_ndarray(_picture(rng, (160, 120)), "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _write_pdf(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = FPDF()
    document.set_font("helvetica", size=14)
    for page in range(1, PDF_PAGES + 1):
        document.add_page()
        document.multi_cell(0, 8, f"Report {seed}, page {page}. " * 40)
    document.output(str(path))


def prepared_items(encoder: Encoder, root: Path, config: IndexConfig) -> list[PreparedInput]:
    """Every item of the folder, decoded and prepared, in the order the pipeline meets them."""
    settings = LoadSettings(config.segment_seconds, config.pdf_dpi, config.max_file_size)
    inputs = [item for file in walk([root]) for item in load_inputs(file, settings)]
    return [encoder.prepare(item, task_text(item, document_task(item))) for item in inputs]


def pure_encoding_seconds(encoder: Encoder, items: list[PreparedInput], config: IndexConfig) -> float:
    started = time.perf_counter()
    for start in range(0, len(items), config.batch_size):
        encoder.encode_prepared(
            items[start : start + config.batch_size],
            mode=config.mode or "both",
            batch_size=config.batch_size,
            max_new_tokens=config.max_new_tokens,
        )
    return time.perf_counter() - started


def report(summary: RunSummary, pipeline_s: float, encode_s: float, items: int) -> None:
    rows = [
        ("items", f"{items}", f"{items}"),
        ("wall seconds", f"{pipeline_s:.2f}", f"{encode_s:.2f}"),
        ("items/s", f"{items / pipeline_s:.1f}", f"{items / encode_s:.1f}"),
    ]
    print(f"{'':14}{'pipeline':>12}{'encode only':>14}")
    for label, left, right in rows:
        print(f"{label:14}{left:>12}{right:>14}")
    stages = ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in summary.seconds.items())
    print(f"pipeline busy seconds per stage (stages overlap): {stages}")
    print(f"ratio pipeline / pure encoding: {pipeline_s / encode_s:.2f} (target <= 1.2)")


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    decode_workers = args.decode_workers or default_decode_workers()
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) - decode_workers))
    with tempfile.TemporaryDirectory(prefix="ume-bench-") as folder:
        work = Path(folder)
        make_folder(work / "media", args.images, args.videos, args.pdfs)
        encoder = Encoder.from_pretrained(build_tiny_model(work / "model"), device=args.device)
        config = IndexConfig(
            roots=[work / "media"], model=encoder.model_id, mode=args.mode,
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
            segment_seconds=args.segment_seconds, decode_workers=decode_workers,
        )  # fmt: skip
        items = prepared_items(encoder, work / "media", config)
        pure_encoding_seconds(encoder, items[: config.batch_size], config)  # warm-up
        pipeline_s, encode_s = float("inf"), float("inf")
        for repeat in range(args.repeats):
            index = config.model_copy(update={"data_dir": work / f"index-{repeat}"})
            started = time.perf_counter()
            summary = index_folders(index, encoder=encoder, progress=False)
            pipeline_s = min(pipeline_s, time.perf_counter() - started)
            encode_s = min(encode_s, pure_encoding_seconds(encoder, items, config))
        print(f"{args.images} images, {args.videos} videos, {args.pdfs} PDFs; mode {args.mode}, "
              f"max_new_tokens {args.max_new_tokens}, batch {args.batch_size}, "
              f"{config.decode_workers} decode workers, {torch.get_num_threads()} torch threads, "
              f"{os.cpu_count()} CPUs")  # fmt: skip
        report(summary, pipeline_s, encode_s, summary.embedded)


if __name__ == "__main__":
    main()
