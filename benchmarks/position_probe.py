"""Can the tiny model see where a shape is? A linear probe of its disc state, left/right and top/bottom.

    python benchmarks/position_probe.py --work DIR [--thetas 20 2] [--steps 600] [--jobs 2]
                                        [--model models/ume-r1-tiny-world …] [--out DIR]
                                        [--name position_probe]

A scene of the tiny world puts its shapes in one quadrant. For each rotary base in `--thetas`, a
tiny model is built from random weights with that base (its M-RoPE frequencies: Qwen2-VL gives
the width axis the lowest ones), trained briefly with SFT on the world's images
(benchmarks/tiny_world_sft.toml, `--steps`), and probed: a ridge classifier on the disc state of
the 200 held-out scenes, 5-fold cross-validated, predicts the column (left/right) and the row
(top/bottom); and each image's disc embedding is asked to prefer its own caption to the same
caption with the column flipped, and with the row flipped (model/world/position.py). `--model`
adds the same readings of trained models as they are. Prints one row per model and writes
`NAME.json` (under --out, when given). Below one half on the probe means the column is
invisible: the nearest training scenes are the same shapes in the same row, in the other column.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from provenance import commit
from tiny_world import EVAL_BATCH, train

from model.encoder import Encoder
from model.tiny import build_tiny_model
from model.train.batch import load_side
from model.train.data import Pair, Side, Skipped, load_pairs
from model.train.sft import SFTRun
from model.train.tiny_world import tiny_world_words, write_tiny_world
from model.world.position import FOLDS, position_choice, position_readout, quadrant_of
from model.world.scenes import QUADRANTS

TRAIN_SHAPES = 2400


def disc_states(encoder: Encoder, sides: list[tuple[Side, str]]) -> np.ndarray:
    """Disc embeddings of (side, task text) pairs."""
    prepared = [encoder.prepare(load_side(side), task) for side, task in sides]
    encoded = encoder.encode_prepared(prepared, mode="disc", batch_size=EVAL_BATCH)
    assert encoded.disc is not None
    return encoded.disc


def probe(model_dir: Path, heldout: list[Pair]) -> dict[str, Any]:
    """The linear probe of the images' disc state, and the flipped-caption choice."""
    encoder = Encoder.from_pretrained(model_dir, device="cpu")
    images = disc_states(encoder, [(pair.target, pair.target.task) for pair in heldout])
    captions = [pair.query.task for pair in heldout]

    def embed_captions(texts: list[str]) -> np.ndarray:
        return disc_states(encoder, [(pair.query, text) for pair, text in zip(heldout, texts, strict=True)])

    choice = position_choice(images, captions, embed_captions)
    return position_readout(images, captions) | {"flipped_caption_choice": choice}


def trained_probe(theta: float, args: argparse.Namespace) -> dict[str, Any]:
    """Build with `theta`, train briefly, probe; in a process of its own with one thread."""
    torch.set_num_threads(1)
    work: Path = args.work
    started = time.monotonic()
    folder = work / f"theta-{theta:g}"
    model_dir = build_tiny_model(folder / "model", seed=0, words=tiny_world_words(), rope_theta=theta)
    train_file, heldout = world(work)
    final = train(SFTRun, model_dir, train_file, folder / "sft", args.steps)
    minutes = round((time.monotonic() - started) / 60, 1)
    return {"rope_theta": theta, "sft_steps": args.steps, "minutes": minutes} | probe(final, heldout)


def world(work: Path) -> tuple[Path, list[Pair]]:
    """The world's images only (videos and pages say nothing of quadrants), and its held-out
    scenes."""
    data = work / "data"
    if not (data / "heldout.jsonl").is_file():
        write_tiny_world(data, train_shapes=TRAIN_SHAPES, videos=0, pages=0)
    heldout = load_pairs(data / "heldout.jsonl", "released", None, Skipped())
    return data / "train.jsonl", [pair for pair in heldout if pair.dataset == "tiny_shapes"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="data and runs go here")
    parser.add_argument("--thetas", type=float, nargs="*", default=[20.0, 2.0])
    parser.add_argument("--steps", type=int, default=600, help="SFT steps of each brief training")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at a time (one thread each)")
    parser.add_argument("--model", type=Path, nargs="*", default=[], help="also probe these trained models")
    parser.add_argument("--out", type=Path, default=None, help="write NAME.json here")
    parser.add_argument("--name", default="position_probe", help="the results file's name, without .json")
    args = parser.parse_args()
    _, heldout = world(args.work)
    assert len({quadrant_of(pair.query.task) for pair in heldout}) == len(QUADRANTS)
    rows: dict[str, dict[str, Any]] = {}
    for model_dir in args.model:
        rows[str(model_dir)] = probe(model_dir, heldout)
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {theta: pool.submit(trained_probe, theta, args) for theta in args.thetas}
        rows |= {f"theta {theta:g}, {args.steps} SFT steps": f.result() for theta, f in futures.items()}
    for name, row in rows.items():
        choice = row["flipped_caption_choice"]
        print(
            f"{name}: probe left/right {row['left_right']:.3f}, top/bottom {row['top_bottom']:.3f}; "
            f"own caption over flipped: column {choice['left_right']:.3f}, row {choice['top_bottom']:.3f}"
        )
    if args.out is not None:
        record = {
            "commit": commit(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU; torch {torch.__version__}",
            "command": "python " + " ".join(sys.argv),
            "probe": f"ridge classifier on the disc state, {FOLDS}-fold cross-validated, 200 held-out scenes;"
            " flipped_caption_choice: share of images closer to their own caption than to it flipped",
            "models": rows,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
