"""Rebuild the shipped reference model (models/ume-r1-tiny-world) from nothing, with a fixed seed.

    python benchmarks/reference_model.py --out DIR [--work DIR] [--check models/ume-r1-tiny-world]

Writes the tiny world (model/world: PNG/JPEG images, MP4 clips, PDF documents, read back through
the indexer's loaders), builds the tiny random model with the world's words as tokens, trains it
with cold-start SFT in two stages (benchmarks/reference_sft.toml on the world, then
benchmarks/reference_sft_fresh.toml with more video segments and pages rendered afresh) and GRPO
(benchmarks/reference_rl.toml) through `ume train`'s own code, measures held-out retrieval per
kind (disc and gen Hit@1, each kind against its own held-out items) and writes the final model
to DIR/ (weights, processor, the example queries the demo offers, `measured.json`). With --check,
the shipped model is measured on the same held-out set and the run fails unless the rebuilt one
retrieves as well (within `TOLERANCE`). Takes ~75 CPU minutes on 2 cores: it is not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from tiny_world import evaluate, fifth_means, train

from model.tiny import build_tiny_model
from model.train.data import Pair, Skipped, load_pairs
from model.train.rl import RLRun
from model.train.sft import SFTRun
from model.train.tiny_world import (
    HELD_OUT,
    HELD_OUT_MOTIONS,
    HELD_OUT_PAGES,
    tiny_world_words,
    write_fresh_renders,
    write_rl_split,
    write_tiny_world,
)
from model.world.gallery import write_example_queries

HERE = Path(__file__).resolve().parent
SFT_CONFIG = HERE / "reference_sft.toml"
FRESH_SFT_CONFIG = HERE / "reference_sft_fresh.toml"
RL_CONFIG = HERE / "reference_rl.toml"
SEED = 0
TRAIN_SIZES = {"train_shapes": 2400, "videos": 600, "pages": 1200}
# One source dataset: each SFT batch mixes images, segments and pages. In batches of pages
# alone, all pages' disc embeddings (queries' and pages') fell to one point within 200 steps
# and stayed there (an InfoNCE saddle: identical embeddings get identical gradients).
MIXED_DATASET = "tiny_world"
RL_SIZES = {"shapes": 600, "videos": 100, "pages": 100}
FRESH_SIZES = {"videos": 2400, "pages": 1200}  # the second SFT stage's new renders
TOLERANCE = 0.05  # a rebuilt model may differ a little (thread scheduling): Hit@1 within this
# What a checkpoint directory holds besides the optimizer and data position.
MODEL_FILES = ("*.json", "*.safetensors", "*.jinja", "*.txt")


def by_dataset(pairs: list[Pair]) -> dict[str, list[Pair]]:
    groups: dict[str, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(pair.dataset, []).append(pair)
    return groups


def measure(model_dir: Path, heldout: list[Pair]) -> dict[str, dict[str, float]]:
    """Held-out Hit@1 (disc, gen) and format rate, per dataset, each within its own kind."""
    return {name: evaluate(model_dir, pairs) for name, pairs in sorted(by_dataset(heldout).items())}


def export(checkpoint: Path, out: Path) -> None:
    """The model and processor files of a checkpoint, without the trainer's state."""
    out.mkdir(parents=True, exist_ok=True)
    for pattern in MODEL_FILES:
        for file in checkpoint.glob(pattern):
            shutil.copy2(file, out / file.name)
    write_example_queries(out)


def build(work: Path, sft_checkpoint: Path | None) -> tuple[Path, dict[str, float]]:
    """Both SFT stages then GRPO on the world under `work`; (final checkpoint, training numbers).
    Each stage's minutes are recorded (a stage skipped with `sft_checkpoint` is not)."""
    minutes: dict[str, float] = {}
    started = time.monotonic()

    def lap(stage: str) -> None:
        nonlocal started
        minutes[f"{stage}_minutes"] = round((time.monotonic() - started) / 60, 1)
        started = time.monotonic()

    train_file = mixed(world_files(work)[0])
    if sft_checkpoint is None:
        model_dir = build_tiny_model(work / "model", seed=SEED, words=tiny_world_words())
        sft_checkpoint = train(SFTRun, model_dir, train_file, work / "sft", None, SFT_CONFIG)
        lap("sft")
    fresh_file = with_fresh_renders(train_file)
    sft_checkpoint = train(SFTRun, sft_checkpoint, fresh_file, work / "sft-fresh", None, FRESH_SFT_CONFIG)
    lap("sft_fresh")
    rl_file = write_rl_split(work / "data", seed=SEED + 1, **RL_SIZES)
    final = train(RLRun, sft_checkpoint, rl_file, work / "rl", None, RL_CONFIG)
    lap("rl")
    return final, fifth_means(work / "rl" / "metrics.jsonl") | minutes


def world_files(work: Path) -> tuple[Path, Path]:
    """The world's training and held-out files (written once: they are deterministic)."""
    data = work / "data"
    if (data / "heldout.jsonl").is_file():
        return data / "train.jsonl", data / "heldout.jsonl"
    sizes = {"held_out": HELD_OUT, "held_out_motions": HELD_OUT_MOTIONS, "held_out_pages": HELD_OUT_PAGES}
    return write_tiny_world(data, seed=SEED, **TRAIN_SIZES, **sizes)


def mixed(train_file: Path) -> Path:
    """The training records under one dataset name, so batches mix the three kinds."""
    return write_mixed(train_file.with_name("train-mixed.jsonl"), read_records(train_file))


def read_records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_mixed(path: Path, records: list[dict[str, object]]) -> Path:
    """`records` under the one dataset name `MIXED_DATASET`, as JSON lines at `path`."""
    lines = (json.dumps(record | {"dataset_name": MIXED_DATASET}) + "\n" for record in records)
    path.write_text("".join(lines))
    return path


def with_fresh_renders(train_file: Path) -> Path:
    """The first stage's records plus the second stage's fresh renders, as one mixed dataset."""
    path = train_file.with_name("train-fresh.jsonl")
    if path.is_file():
        return path
    fresh = write_fresh_renders(train_file.parent, seed=SEED + 2, **FRESH_SIZES)
    return write_mixed(path, read_records(train_file) + fresh)


def check(rebuilt: dict[str, dict[str, float]], shipped: dict[str, dict[str, float]]) -> list[str]:
    """Where the rebuilt model retrieves worse than the shipped one (beyond `TOLERANCE`)."""
    return [
        f"{name} {metric}: rebuilt {value:.3f} < shipped {shipped[name][metric]:.3f}"
        for name, metrics in rebuilt.items()
        for metric, value in metrics.items()
        if metric.endswith("hit1") and value < shipped[name][metric] - TOLERANCE
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where the rebuilt model goes")
    parser.add_argument("--work", type=Path, default=None, help="data and runs (default: OUT.work)")
    parser.add_argument("--check", type=Path, default=None, help="a shipped model to match")
    parser.add_argument(
        "--sft-checkpoint", type=Path, default=None, help="skip the first SFT stage, go on from here"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("model.train").setLevel(logging.INFO)
    work = args.work or args.out.with_name(args.out.name + ".work")
    final, numbers = build(work, args.sft_checkpoint)
    heldout = load_pairs(world_files(work)[1], "released", None, Skipped())
    rebuilt = measure(final, heldout)
    measured = {"heldout": rebuilt, "training": numbers}
    export(final, args.out)
    (args.out / "measured.json").write_text(json.dumps(measured, indent=2) + "\n")
    print(json.dumps(measured))
    if args.check is None:
        return 0
    problems = check(rebuilt, measure(args.check, heldout))
    print("\n".join(problems) or f"rebuilt model retrieves as well as {args.check}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
