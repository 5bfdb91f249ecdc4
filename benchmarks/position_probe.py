"""Can the tiny model see where a shape is? A linear probe of its disc state, left/right and top/bottom.

    python benchmarks/position_probe.py --work DIR [--thetas 20 2] [--steps 600] [--jobs 2]
                                        [--model models/ume-r1-tiny-world …]

A scene of the tiny world puts its shapes in one quadrant. For each rotary base in `--thetas`, a
tiny model is built from random weights with that base (its M-RoPE frequencies: Qwen2-VL gives
the width axis the lowest ones), trained briefly with SFT on the world's images
(benchmarks/tiny_world_sft.toml, `--steps`), and probed: a ridge classifier on the disc state of
the 200 held-out scenes, 5-fold cross-validated, predicts the column (left/right) and the row
(top/bottom). `--model` adds the same probe of trained models as they are. Prints one row per
model and writes `position_probe.json` (under --out, when given). Below one half means the
column is invisible: the nearest training scenes are the same shapes in the same row, in the
other column.
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
from model.train.data import Pair, Skipped, load_pairs
from model.train.sft import SFTRun
from model.train.tiny_world import tiny_world_words, write_tiny_world
from model.world.scenes import ALL_SCENES, QUADRANTS

FOLDS = 5
RIDGE = 1.0
TRAIN_SHAPES = 2400


def quadrant_of(pair: Pair) -> str:
    """The held-out scene's quadrant, read from its caption ("… at the top left")."""
    caption = pair.query.task
    found = [name for name in QUADRANTS if caption.endswith(f"at the {name}")]
    assert len(found) == 1, caption
    return found[0]


def disc_states(model_dir: Path, pairs: list[Pair]) -> np.ndarray:
    encoder = Encoder.from_pretrained(model_dir, device="cpu")
    prepared = [encoder.prepare(load_side(pair.target), pair.target.task) for pair in pairs]
    encoded = encoder.encode_prepared(prepared, mode="disc", batch_size=EVAL_BATCH)
    assert encoded.disc is not None
    return encoded.disc


def probe_accuracy(states: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Cross-validated accuracy of a ridge classifier (labels ±1) on standardised states.

    Folds are stratified: with unstratified folds a state that says nothing scores below chance
    (each fold's training part leans towards the other label), which reads as a signal."""
    rng = np.random.default_rng(seed)
    by_label = [rng.permutation(np.flatnonzero(labels == label)) for label in (-1.0, 1.0)]
    split = [np.array_split(indices, FOLDS) for indices in by_label]
    folds = [np.concatenate(parts) for parts in zip(*split, strict=True)]
    order = np.concatenate(folds)
    right = 0
    for held in folds:
        fit = np.setdiff1d(order, held)
        mean, std = states[fit].mean(0), states[fit].std(0) + 1e-6
        x = (states[fit] - mean) / std
        weights = np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T @ labels[fit])
        right += int(np.sum(np.sign(((states[held] - mean) / std) @ weights) == labels[held]))
    return right / len(labels)


def probe(model_dir: Path, heldout: list[Pair]) -> dict[str, float]:
    states = disc_states(model_dir, heldout)
    columns = np.array([1.0 if QUADRANTS[quadrant_of(p)][0] else -1.0 for p in heldout])
    rows = np.array([1.0 if QUADRANTS[quadrant_of(p)][1] else -1.0 for p in heldout])
    return {
        "left_right": round(probe_accuracy(states, columns), 3),
        "top_bottom": round(probe_accuracy(states, rows), 3),
    }


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
    parser.add_argument("--out", type=Path, default=None, help="write position_probe.json here")
    args = parser.parse_args()
    _, heldout = world(args.work)
    assert len({quadrant_of(p) for p in heldout}) == len(QUADRANTS) and len(ALL_SCENES) >= len(heldout)
    rows: dict[str, dict[str, Any]] = {}
    for model_dir in args.model:
        rows[str(model_dir)] = probe(model_dir, heldout)
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {theta: pool.submit(trained_probe, theta, args) for theta in args.thetas}
        rows |= {f"theta {theta:g}, {args.steps} SFT steps": f.result() for theta, f in futures.items()}
    for name, row in rows.items():
        print(f"{name}: left/right {row['left_right']:.3f}, top/bottom {row['top_bottom']:.3f}")
    if args.out is not None:
        record = {
            "commit": commit(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU; torch {torch.__version__}",
            "command": "python " + " ".join(sys.argv),
            "probe": f"ridge classifier on the disc state, {FOLDS}-fold cross-validated, 200 held-out scenes",
            "models": rows,
        }
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "position_probe.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
