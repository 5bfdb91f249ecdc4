"""What a video segment costs under the indexing frame budget and under the evaluation's limits.

`ume index` caps each sampled frame at 256*28*28 px (the model card's video example); the
authors' evaluation and RL let frames through at image limits (up to 1536^2 px). For common
frame sizes this prints, side by side, the vision tokens of one 8-frame segment (exact: the
real Qwen2-VL processor, which the tiny model shares) and the time of one disc forward over it
with the tiny model (relative cost only: the tiny model is not the 2B one).

    python benchmarks/video_budget.py --out benchmarks/results/video_budget.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.encoder import Encoder
from model.inputs import EVALUATION_BUDGET, INDEXING_BUDGET, EmbedInput, VisionBudget
from model.media import FRAMES_PER_SEGMENT
from model.prompts import DOCUMENT_TASKS
from model.tiny import build_tiny_model

FRAME_SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}


def segment(size: tuple[int, int]) -> EmbedInput:
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(8)]
    return EmbedInput(video_frames=frames)


def vision_tokens(encoder: Encoder, item: EmbedInput) -> int:
    grid = encoder.prepare(item, DOCUMENT_TASKS["video"]).video_grid_thw
    assert grid is not None
    return int(grid.prod()) // 4  # 2x2 patches merge into one token


def disc_seconds(encoder: Encoder, item: EmbedInput, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        encoder.encode_document([item], mode="disc")
        times.append(time.perf_counter() - started)
    return min(times)


def measure(encoder: Encoder, budgets: dict[str, VisionBudget], repeats: int) -> list[dict]:
    rows = []
    for name, size in FRAME_SIZES.items():
        item = segment(size)
        row: dict = {"frames": name, "frame_px": f"{size[0]}x{size[1]}"}
        for label, budget in budgets.items():
            sized = encoder.with_budget(budget)
            row[f"{label}_tokens"] = vision_tokens(sized, item)
            row[f"{label}_tiny_disc_s"] = round(disc_seconds(sized, item, repeats), 4)
        rows.append(row)
        ratio = row["evaluation_tokens"] / row["indexing_tokens"]
        print(
            f"{name:>6} {row['frame_px']:>10}: indexing {row['indexing_tokens']:>6} tokens "
            f"{row['indexing_tiny_disc_s']:.3f}s | evaluation {row['evaluation_tokens']:>6} tokens "
            f"{row['evaluation_tiny_disc_s']:.3f}s | x{ratio:.1f} tokens"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the numbers here as JSON")
    args = parser.parse_args()
    encoder = Encoder.from_pretrained(build_tiny_model(Path(tempfile.mkdtemp())))
    budgets = {"indexing": INDEXING_BUDGET, "evaluation": EVALUATION_BUDGET}
    rows = measure(encoder, budgets, args.repeats)
    if args.out:
        result = {
            "command": "python benchmarks/video_budget.py --out " + str(args.out),
            "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads",
            "frames_per_segment": FRAMES_PER_SEGMENT,
            "budgets": {k: vars(v) for k, v in budgets.items()},
            "rows": rows,
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
