"""Does GRPO lift held-out gen retrieval, and through better reasoning? Seeds against a control.

    python benchmarks/grpo_gain.py --work DIR [--model models/ume-r1-tiny-world] [--seeds 0 1 2]
                                   [--steps 80] [--jobs 2] [--out benchmarks/results]
                                   [--name grpo_gain] [--rl-split shapes=600 videos=100 pages=100]

From the shipped reference model, GRPO (benchmarks/reference_rl.toml, its schedule over
`--steps`) runs once per seed, and once more as a control: seed 0 with a learning rate too small
to move a weight, so that whatever the control reports is the noise of the measurement itself.
Each run is measured the same way before and after:

- the reward on fixed batches (the trainer's `fixed_eval`: the same held-out pairs and rollout
  seeds, rewarded as training rewards them), per side: `reward_query_*`, `reward_target_*`
  (the embedding reward rank x gap), the share of groups whose rewards are all equal
  (`zero_spread_*`) and the format rate;
- held-out Hit@1 per kind, each against its own kind (images 200-way, video segments 48-way,
  PDF pages 40-way; the reference model's held-out set), gen and disc. One clip is 0.02 of a
  48-way Hit@1, so clips are measured on `--clip-galleries` galleries of 48 (the held-out
  file's and fresh renders of 48 distinct motions each) and their Hit@1 averaged; each
  gallery's is kept too (`video_*_hit1_per_gallery`, the held-out file's first);
- whether the reasoning got better or only vaguer: the share of generated summaries equal to the
  true one, for queries (`query_summary_exact_*`) and for images (`target_caption_exact_*`);
  for clips, the same (`video_query_summary_exact_*`, `video_caption_exact_*`), the share of
  distinct captions (`video_captions_distinct_*`: clips described alike cannot be told apart by
  gen) and of pairs whose query and clip say the same, right or wrong (`video_summaries_agree_*`).

Runs go `--jobs` at a time, each in a process of its own with one thread. A run that already
finished under --work (its last checkpoint and its fixed-batch rewards after training are there)
is measured again without training; its `minutes` are those its training took. Writes
`NAME.json` (under --out) with the commit, machine and command, and prints the figures side
by side.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from provenance import commit
from reference_model import RL_CONFIG, SEED, by_dataset, world_files
from tiny_world import EVAL_BATCH, MAX_NEW_TOKENS, hit1

from model.encoder import Encoder
from model.engine import format_ok, parse_completion
from model.hub import REFERENCE_MODEL
from model.train.batch import load_side
from model.train.config import RLConfig, load_config
from model.train.data import Pair, Skipped, load_pairs
from model.train.rl import RLRun
from model.train.rl_fixed import FIXED_EVAL_FILE
from model.train.tiny_world import HELD_OUT_MOTIONS, write_clip_gallery, write_rl_split

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CONTROL_LR = 1e-15  # AdamW moves a weight by about lr: far below float32's resolution of any weight
RL_SIZES = {"shapes": 600, "videos": 100, "pages": 100}  # as the reference model's RL split
FIXED_SIZES = {"shapes": 32, "videos": 32, "pages": 32}  # fresh renders: 4 batches of 8 per kind
FIXED_BATCHES = 12
MINUTES_FILE = "training_minutes.json"  # in a run's directory: its training's wall-clock minutes
KINDS = {"tiny_shapes": "image", "tiny_videos": "video", "tiny_pages": "page"}
CLIP_GALLERIES = 4  # the held-out file's 48 clips and three more galleries of 48: 192 in all
CLIP_GALLERY_SEED = SEED + 20


def encoded_sides(encoder: Encoder, pairs: list[Pair]) -> dict[str, Any]:
    return {
        name: encoder.encode_prepared(
            [encoder.prepare(load_side(side), side.task) for side in sides],
            mode="both",
            batch_size=EVAL_BATCH,
            max_new_tokens=MAX_NEW_TOKENS,
        )
        for name, sides in (("query", [p.query for p in pairs]), ("target", [p.target for p in pairs]))
    }


def exact_share(generated: list[str | None], pairs: list[Pair]) -> float:
    """Share of generated summaries equal to the true one (the training target's)."""
    truth = [parse_completion(pair.target.completion).summary for pair in pairs]
    return float(np.mean([made == true for made, true in zip(generated, truth, strict=True)]))


def heldout_figures(model_dir: Path, heldout: list[Pair], clip_galleries: list[list[Pair]]) -> dict[str, Any]:
    """Hit@1 (gen, disc) per kind, the format rate, and the summaries' exactness. Clips are
    measured on the held-out file's gallery and on `clip_galleries`, each against itself."""
    encoder = Encoder.from_pretrained(model_dir, device="cpu")
    figures: dict[str, Any] = {}
    completions: list[str] = []
    for dataset, pairs in sorted(by_dataset(heldout).items()):
        kind = KINDS[dataset]
        galleries = [pairs, *clip_galleries] if kind == "video" else [pairs]
        encoded = [encoded_sides(encoder, gallery) for gallery in galleries]
        for mode in ("gen", "disc"):
            hits = [round(hit1(getattr(s["query"], mode), getattr(s["target"], mode)), 4) for s in encoded]
            figures[f"{kind}_{mode}_hit1"] = round(float(np.mean(hits)), 4)
            if len(hits) > 1:
                figures[f"{kind}_{mode}_hit1_per_gallery"] = hits
        every = [pair for gallery in galleries for pair in gallery]
        queries = [text for s in encoded for text in s["query"].summary]
        targets = [text for s in encoded for text in s["target"].summary]
        for sides in encoded:
            completions += [text or "" for text in sides["query"].completion + sides["target"].completion]
        if kind == "image":
            figures["query_summary_exact"] = round(exact_share(queries, every), 4)
            figures["target_caption_exact"] = round(exact_share(targets, every), 4)
        if kind == "video":  # a clip's caption says its motion; fewer distinct ones tie in retrieval
            figures["video_query_summary_exact"] = round(exact_share(queries, every), 4)
            figures["video_caption_exact"] = round(exact_share(targets, every), 4)
            agree = [q is not None and q == t for q, t in zip(queries, targets, strict=True)]
            figures["video_summaries_agree"] = round(sum(agree) / len(every), 4)
            distinct = [len(set(sides["target"].summary)) / len(sides["target"].summary) for sides in encoded]
            figures["video_captions_distinct"] = round(float(np.mean(distinct)), 4)
    figures["format_rate"] = round(sum(map(format_ok, completions)) / len(completions), 4)
    return figures


def finished_run(run_dir: Path, steps: int) -> Path | None:
    """The last checkpoint of a run that already trained `steps` and rewarded its fixed batches
    after them (an earlier invocation's), so that measuring again does not train again."""
    checkpoint = run_dir / f"checkpoint-{steps}"
    fixed = run_dir / FIXED_EVAL_FILE
    if (
        (checkpoint / "trainer_state.pt").is_file()
        and fixed.is_file()
        and "after" in json.loads(fixed.read_text())
    ):
        return checkpoint
    return None


def train_once(name: str, seed: int, lr: float | None, args: argparse.Namespace) -> dict[str, Any]:
    """One GRPO run from the reference model, in this process; its figures before and after."""
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    work: Path = args.work
    overrides = {
        "model": str(args.model),
        "data": [{"path": work / "data" / "rl.jsonl", "format": "released"}],
        "fixed_eval_data": [{"path": work / "fixed" / "rl.jsonl", "format": "released"}],
        "fixed_eval_batches": FIXED_BATCHES,
        "output_dir": work / name,
        "steps": args.steps,
        "seed": seed,
        "lr": lr,
        "cpu_threads": 1,
        "save_every": args.steps,
        "resume": False,
    }
    config = load_config(RL_CONFIG, RLConfig).with_overrides(overrides)
    started = time.monotonic()
    final = finished_run(work / name, args.steps)
    minutes_file = work / name / MINUTES_FILE  # kept, since a finished run is not trained again
    if final is None:
        final = RLRun(config).run(progress=False)
        assert final is not None
        minutes_file.write_text(json.dumps(round((time.monotonic() - started) / 60, 1)))
    minutes = json.loads(minutes_file.read_text()) if minutes_file.is_file() else None
    fixed = json.loads((work / name / FIXED_EVAL_FILE).read_text())
    heldout = load_pairs(world_files(work)[1], "released", None, Skipped())
    galleries = clip_galleries(work, args.clip_galleries - 1)
    figures = {"seed": seed, "lr": config.lr, "minutes": minutes}
    for moment in ("before", "after"):
        figures[f"reward_query_{moment}"] = fixed[moment]["query_embedding_reward"]
        figures[f"reward_target_{moment}"] = fixed[moment]["target_embedding_reward"]
        for side in ("query", "target"):  # groups whose G rewards are equal teach GRPO nothing
            figures[f"zero_spread_{side}_{moment}"] = fixed[moment][f"{side}_zero_spread"]
        figures[f"rollout_format_{moment}"] = round(
            (fixed[moment]["query_format"] + fixed[moment]["target_format"]) / 2, 4
        )
    after = heldout_figures(final, heldout, galleries)
    return figures | {f"{key}_after": value for key, value in after.items()}


def prepare(work: Path, rl_sizes: dict[str, int]) -> Path:
    """Write the world (its held-out file is returned), the RL split and the fixed batches' pairs."""
    heldout_file = world_files(work)[1]
    if not (work / "data" / "rl.jsonl").is_file():
        write_rl_split(work / "data", seed=SEED + 1, **rl_sizes)
    if not (work / "fixed" / "rl.jsonl").is_file():
        write_rl_split(work / "fixed", seed=SEED + 7, **FIXED_SIZES)
    return heldout_file


def clip_galleries(work: Path, count: int) -> list[list[Pair]]:
    """`count` galleries of clips beyond the held-out file's, each 48 distinct motions rendered
    afresh (written once under work/clips: they are deterministic)."""
    root = work / "clips"
    root.mkdir(parents=True, exist_ok=True)
    galleries = []
    for number in range(1, count + 1):
        path = root / f"gallery-{number}.jsonl"
        if not path.is_file():
            write_clip_gallery(root, seed=CLIP_GALLERY_SEED + number, prefix=f"gallery-{number}")
        galleries.append(load_pairs(path, "released", None, Skipped()))
    return galleries


def split_size(text: str) -> tuple[str, int]:
    """`videos=200` -> ("videos", 200), for --rl-split."""
    kind, _, count = text.partition("=")
    if kind not in RL_SIZES or not count.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: write KIND=COUNT with KIND one of {', '.join(RL_SIZES)}")
    return kind, int(count)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="data and runs go here")
    parser.add_argument("--model", type=Path, default=REFERENCE_MODEL, help="the model GRPO starts from")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=80, help="GRPO steps per run")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    parser.add_argument(
        "--clip-galleries",
        type=int,
        default=CLIP_GALLERIES,
        help="48-way clip galleries whose Hit@1 is averaged (the held-out file's is the first)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="grpo_gain", help="the results file's name, without .json")
    parser.add_argument(
        "--rl-split",
        type=split_size,
        nargs="+",
        default=list(RL_SIZES.items()),
        help="KIND=COUNT of the RL split's renders (steps draw each kind in proportion)",
    )
    args = parser.parse_args()
    rl_sizes = RL_SIZES | dict(args.rl_split)
    started = time.monotonic()
    heldout = load_pairs(prepare(args.work, rl_sizes), "released", None, Skipped())
    before = heldout_figures(args.model, heldout, clip_galleries(args.work, args.clip_galleries - 1))
    runs = [(f"seed-{seed}", seed, None) for seed in args.seeds] + [("control", args.seeds[0], CONTROL_LR)]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {name: pool.submit(train_once, name, seed, lr, args) for name, seed, lr in runs}
        results = {name: future.result() for name, future in futures.items()}
    for figures in results.values():
        figures |= {f"{key}_before": value for key, value in before.items()}
    record = {
        "commit": commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, no GPU; torch {torch.__version__}",
        "command": "python " + " ".join(sys.argv),
        "start": str(args.model),
        "steps": args.steps,
        "rl_config": RL_CONFIG.name,
        "rl_split": rl_sizes,
        "clip_galleries": f"{args.clip_galleries} of {HELD_OUT_MOTIONS} distinct motions, Hit@1 averaged",
        "fixed_batches": f"{FIXED_BATCHES} batches of 8 pairs, fresh renders of each kind, G 8",
        "minutes": round((time.monotonic() - started) / 60, 1),
        "runs": {name: dict(sorted(figures.items())) for name, figures in results.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(side_by_side(record["runs"]))
    return 0


def side_by_side(runs: dict[str, dict[str, Any]]) -> str:
    keys = sorted({key for figures in runs.values() for key in figures})
    rows = [["", *runs]] + [[key, *(str(figures.get(key)) for figures in runs.values())] for key in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


if __name__ == "__main__":
    sys.exit(main())
