"""The paper's findings in miniature: disc vs gen, SFT vs GRPO, and the oracle, on the hard world.

    python benchmarks/findings.py --out DIR [--gallery 1000] [--train-pairs N] [--sft-steps N]
                                  [--rl-steps N] [--results benchmarks/results/findings.json]

Writes the hard world (model/world/hard.py): SFT and RL training splits and a 1,000-way
caption -> image evaluation set in MMEB's image layout (`DIR/eval/HardScenes`: 1,000 distinct
scenes, each record listing hard negatives that differ in one attribute; scope global, so every
query ranks against the whole gallery). Builds the tiny random model with the worlds' words as
tokens, trains it with cold-start SFT (benchmarks/findings_sft.toml) then GRPO
(benchmarks/findings_rl.toml) through `ume train`'s own code, and runs `ume eval mmeb` after
each stage with both modes on both sides: disc-disc, gen-gen, fused@A, rerank@N (the disc
shortlist re-ordered by gen), the per-query oracle, and pass@1..8 of gen (8 rollouts sampled at
temperature 1 on one side, the other side greedy; each side in turn). GRPO's reward is measured
on fixed held-out batches (the same pairs and rollout seeds) before its first step and after its
last. Writes the numbers, each phase's time, the machine and the command to --results, and
prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from provenance import commit
from tiny_world import train

from app.cli import main as ume
from model.encoder import Encoder
from model.inputs import EVALUATION_BUDGET, image_input
from model.tiny import ROPE_THETA, build_tiny_model
from model.train.hard_world import hard_world_words, write_hard_rl, write_hard_train
from model.train.rl import RLRun
from model.train.rl_fixed import FIXED_EVAL_FILE
from model.train.sft import SFTRun
from model.world.hard import ALL_HARD_SCENES, HARD_GALLERY_SIZE, HARD_TASK, differences, write_hard_task

HERE = Path(__file__).resolve().parent
SFT_CONFIG = HERE / "findings_sft.toml"
RL_CONFIG = HERE / "findings_rl.toml"
RESULTS = HERE / "results" / "findings.json"
SEED = 0
TRAIN_PAIRS = 6000
RL_PAIRS = 1000
FIXED_PAIRS = 96  # GRPO's fixed held-out batches: 12 reward pools of 8 pairs
SAMPLES = 8  # pass@1..8
MAX_NEW_TOKENS = 48  # a well-formed hard-world completion is ~30 tokens
EVAL_BATCH = 50
SHORTLIST = 20
ALPHAS = "0.25,0.5,0.75"
SHOWN = ("disc-disc", "gen-gen", "disc-gen", "gen-disc", "fused@0.5", f"rerank@{SHORTLIST}", "oracle")


def evaluate(model_dir: Path, data_root: Path, out: Path) -> dict[str, Any]:
    """`ume eval mmeb` on the hard task, both modes on both sides; its per-variant Hit@1."""
    argv = [
        "eval", "mmeb", "--data-root", str(data_root), "--tasks", HARD_TASK, "--model", str(model_dir),
        "--out", str(out), "--max-new-tokens", str(MAX_NEW_TOKENS), "--batch-size", str(EVAL_BATCH),
        "--shortlist", str(SHORTLIST), "--alphas", ALPHAS, "--device", "cpu",
        "--samples", str(SAMPLES), "--sample-side", "both",
    ]  # fmt: skip
    started = time.monotonic()
    with (out.parent / f"{out.name}.md").open("w") as report, contextlib.redirect_stdout(report):
        code = ume(argv)  # its report goes to a file (and to out/mmeb.md): the table below is ours
    if code != 0:
        raise SystemExit(f"ume {' '.join(argv)} failed ({code})")
    report = json.loads((out / "mmeb.json").read_text())
    task = report["tasks"][HARD_TASK]
    curves = report["pass_at_k"]
    return {
        "command": "ume " + shlex.join(argv),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "queries": task["queries"],
        "candidates": task["candidates"],
        "hit1": {name: round(score, 1) for name, score in task["scores"].items()},
        "gen_pass_at_k": {side: [round(v, 1) for v in curves[side][HARD_TASK]] for side in curves},
    }


def captions(model_dir: Path, data_root: Path) -> dict[str, float]:
    """How well the model describes the gallery's images: the text its gen embedding comes from.

    Each image is generated for as in the evaluation (greedy, same prompt and pixels); its
    summary is either exactly the scene's, a scene one attribute away, or anything else.
    """
    folder = data_root / HARD_TASK
    records = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    by_key = {scene.key: scene for scene in ALL_HARD_SCENES}
    by_summary = {scene.summary: scene for scene in ALL_HARD_SCENES}
    encoder = Encoder.from_pretrained(model_dir, device="cpu").with_budget(EVALUATION_BUDGET)
    images = [image_input(folder / record["tgt_img_path"][0]) for record in records]
    encoded = encoder.encode_document(
        images, mode="gen", batch_size=EVAL_BATCH, max_new_tokens=MAX_NEW_TOKENS
    )
    counts = {"exact": 0, "one_attribute_off": 0, "count_scenes_exact": 0, "relation_scenes_exact": 0}
    for record, summary in zip(records, encoded.summary, strict=True):
        scene, said = by_key[record["scene"]], by_summary.get((summary or "").strip())
        distance = differences(scene, said) if said is not None else None
        counts["exact"] += distance == 0
        counts["one_attribute_off"] += distance == 1
        counts["count_scenes_exact" if scene.second is None else "relation_scenes_exact"] += distance == 0
    relations = sum(by_key[record["scene"]].second is not None for record in records)
    totals = {"count_scenes_exact": len(records) - relations, "relation_scenes_exact": relations}
    return {name: round(value / max(1, totals.get(name, len(records))), 3) for name, value in counts.items()}


def grpo_rewards(run: Path) -> dict[str, float]:
    """The reward on GRPO's fixed held-out batches before and after, per side, and the format
    rate of its last logged steps' rollouts."""
    fixed = json.loads((run / FIXED_EVAL_FILE).read_text())
    figures = {
        f"{side}_embedding_reward_{moment}": round(fixed[moment][f"{side}_embedding_reward"], 4)
        for moment in ("before", "after")
        for side in ("query", "target")
    }
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    late = rows[-max(1, len(rows) // 5) :]
    return figures | {"rl_format_rate": round(sum(r["format"] for r in late) / len(late), 4)}


def machine() -> str:
    load = os.getloadavg()[0]
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores (load {load:.1f} at the start), "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def table(results: dict[str, Any]) -> str:
    """Markdown: one row per variant, Hit@1 after SFT and after GRPO (percent)."""
    sft, rl = results["after_sft"]["hit1"], results["after_grpo"]["hit1"]
    lines = ["| variant | after SFT | after GRPO |", "|---|---:|---:|"]
    for name in [n for n in SHOWN if n in sft] + [n for n in sft if n not in SHOWN]:
        lines.append(f"| {name} | {sft[name]:.1f} | {rl.get(name, float('nan')):.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="working directory (data, model, runs)")
    parser.add_argument("--gallery", type=int, default=HARD_GALLERY_SIZE, help="evaluation gallery size")
    parser.add_argument("--train-pairs", type=int, default=TRAIN_PAIRS)
    parser.add_argument("--rl-pairs", type=int, default=RL_PAIRS)
    parser.add_argument("--sft-steps", type=int, default=None, help="override the SFT config's steps")
    parser.add_argument("--rl-steps", type=int, default=None, help="override the RL config's steps")
    parser.add_argument("--rope-theta", type=float, default=ROPE_THETA, help="the tiny model's rotary base")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON written at the end")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("model.train").setLevel(logging.INFO)
    minutes: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        minutes[name] = round((time.monotonic() - clock) / 60, 1)
        clock = time.monotonic()

    results: dict[str, Any] = {
        "commit": commit(),
        "machine": machine(),
        "command": "python " + shlex.join(sys.argv),
    }
    data, eval_root = args.out / "data", args.out / "eval"
    train_file = write_hard_train(data, args.train_pairs, seed=SEED)
    rl_file = write_hard_rl(data, args.rl_pairs, seed=SEED + 1)
    fixed_file = write_hard_rl(data / "fixed", FIXED_PAIRS, seed=SEED + 7)
    write_hard_task(eval_root, size=args.gallery)
    model_dir = build_tiny_model(
        args.out / "model", seed=SEED, words=hard_world_words(), rope_theta=args.rope_theta
    )
    lap("data")
    sft = train(SFTRun, model_dir, train_file, args.out / "sft", args.sft_steps, SFT_CONFIG)
    lap("sft")
    results["after_sft"] = evaluate(sft, eval_root, args.out / "eval-sft")
    lap("eval_after_sft")
    results["after_sft"]["captions"] = captions(sft, eval_root)
    lap("captions_after_sft")
    print(f"after SFT: {json.dumps(results['after_sft']['hit1'])}", flush=True)
    fixed = {
        "fixed_eval_data": [{"path": fixed_file, "format": "released"}],
        "fixed_eval_batches": FIXED_PAIRS // 8,
    }
    final = train(RLRun, sft, rl_file, args.out / "rl", args.rl_steps, RL_CONFIG, fixed)
    lap("grpo")
    results["after_grpo"] = evaluate(final, eval_root, args.out / "eval-grpo")
    lap("eval_after_grpo")
    results["after_grpo"]["captions"] = captions(final, eval_root)
    lap("captions_after_grpo")
    results["grpo"] = grpo_rewards(args.out / "rl")
    results["settings"] = {
        "gallery": args.gallery,
        "train_pairs": args.train_pairs,
        "rl_pairs": args.rl_pairs,
        "rope_theta": args.rope_theta,
        "sft": f"{SFT_CONFIG.name}, steps {args.sft_steps or 'as configured'}",
        "rl": f"{RL_CONFIG.name}, steps {args.rl_steps or 'as configured'}",
        "max_new_tokens": MAX_NEW_TOKENS,
        "shortlist": SHORTLIST,
    }
    results["minutes"] = minutes | {"total": round(sum(minutes.values()), 1)}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    for stage in ("after_sft", "after_grpo"):
        print(f"{stage} gen pass@1..{SAMPLES}: {json.dumps(results[stage]['gen_pass_at_k'])}")
    print(json.dumps(results["minutes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
