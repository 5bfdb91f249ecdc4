"""Seconds and memory of one real-size training step: SFT with a GradCache pool, or one GRPO step.

    python benchmarks/train_step.py --stage sft --preset 2b --pairs 256 --chunk 16     # GPU
    python benchmarks/train_step.py --stage rl --preset 2b --pairs 16 --group 8 --new-tokens 256
    python benchmarks/train_step.py --stage rl                                          # tiny, CPU
    python benchmarks/train_step.py --stage sft --preset 2b --checkpoint /tmp/random-2b --out sft.json

Builds a random-weight checkpoint (the tiny model, or Qwen2-VL-2B's shape: speed does not depend
on the weights) and a synthetic data file of `--pairs` caption -> image pairs, then runs the
trainers' own step (`SFTRun.train_step`, `RLRun.train_step`) once to warm up and `--steps` more
to measure. SFT prints seconds per step for the whole pool; RL splits each step into generation
(sampling G rollouts per prompt), scoring (reference and policy forwards, backward) and update
(gradient averaging, clipping, AdamW). A random model never writes `<gen_emb>`, so every rollout
runs to `--new-tokens`: the worst case. The offline tokenizer is byte-level, so prompts carry
~4x the text tokens a real checkpoint would give them (noted in the output).

`--checkpoint DIR` keeps the random checkpoint there and reuses it when it is already there (the
2B one takes a while to build). `--out FILE` writes the report as JSON, again after every
measured step, so a run cut short keeps the steps it finished.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from PIL import Image

from model.tiny import build_tiny_model
from model.train.config import DataSource, RLConfig, SFTConfig
from model.train.data import batch_stream

WORDS = ("red", "green", "blue", "circle", "square", "left", "right", "top", "bottom", "small", "large")


def random_checkpoint(preset: str, out: Path, layers: int | None) -> Path:
    if (out / "config.json").exists() and (out / "tokenizer_config.json").exists():
        return out  # built by an earlier run (processor files come last): the weights do not matter
    if preset == "tiny":
        return build_tiny_model(out)
    sys.path.insert(0, str(Path(__file__).parent))
    from encode import random_2b_encoder  # the 2B shape the encoder benchmark measures

    encoder = random_2b_encoder("cpu", layers)
    encoder.model.save_pretrained(out)
    encoder.processor.save_pretrained(out)
    return out


def sentence(rng: random.Random, characters: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < characters:
        words.append(rng.choice(WORDS))
    return " ".join(words)


def write_pairs(root: Path, pairs: int, image_size: int, completion_chars: int) -> Path:
    """Plain JSONL pairs: a caption and a random image with reasoning of the given length."""
    rng = random.Random(0)
    lines = []
    for index in range(pairs):
        pixels = np.random.default_rng(index).integers(0, 255, (image_size, image_size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{index}.png")
        record = {
            "query": sentence(rng, 60),
            "target_image": f"{index}.png",
            "target_reasoning": sentence(rng, completion_chars),
            "target_summary": sentence(rng, 40),
        }
        lines.append(json.dumps(record))
    path = root / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(
    run: Any, steps: int, batch: int, device: torch.device, on_step: Any = None
) -> list[dict[str, float]]:
    """`steps` timed training steps after one warm-up; `on_step(results so far)` after each."""
    stream = batch_stream(run.pairs, batch, 0, run.position)
    results = []
    for index in range(steps + 1):  # the first step warms up kernels and allocators
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        values = run.train_step(next(stream))
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        if index > 0 and values is not None:
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
            results.append(values | {"seconds": seconds, "peak_gib": peak})
            if on_step is not None:
                on_step(results)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("sft", "rl"), default="rl")
    parser.add_argument("--preset", choices=("tiny", "2b"), default="tiny")
    parser.add_argument("--layers", type=int, default=None, help="shrink the 2b preset's depth (smoke runs)")
    parser.add_argument("--pairs", type=int, default=None, help="SFT pool / RL pairs per step")
    parser.add_argument("--chunk", type=int, default=16, help="SFT: pairs per GradCache forward")
    parser.add_argument("--group", type=int, default=8, help="RL: rollouts per prompt (G)")
    parser.add_argument("--new-tokens", type=int, default=256, help="RL: rollout length")
    parser.add_argument("--completion-chars", type=int, default=400, help="SFT: reasoning length")
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--steps", type=int, default=2, help="measured steps after one warm-up step")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--checkpoint", type=Path, default=None, help="keep (or reuse) the random model here")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    args = parser.parse_args()
    device = torch.device(args.device)
    work = Path(tempfile.mkdtemp(prefix="train-step-"))
    model_dir = random_checkpoint(args.preset, args.checkpoint or work / "model", args.layers)
    pairs = args.pairs or (256 if args.stage == "sft" else 16)
    (work / "data").mkdir()
    data = write_pairs(work / "data", pairs, args.image_size, args.completion_chars)
    common: dict[str, Any] = {
        "model": str(model_dir),
        "data": [DataSource(path=data, format="plain")],
        "output_dir": work / "run",
        "resume": False,
        "image_max_pixels": args.image_size**2,
    }
    if args.stage == "sft":
        from model.train.sft import SFTRun

        sft = SFTConfig.model_validate(common | {"batch_size": pairs, "chunk_size": args.chunk})
        run: Any = SFTRun(sft, device=device)
    else:
        from model.train.rl import RLRun

        rl_settings = {
            "pairs_per_step": pairs,
            "micro_batch": pairs,
            "group_size": args.group,
            "max_new_tokens": args.new_tokens,
            "rollout_rows": pairs * args.group,
            "score_rows": 8,
        }
        run = RLRun(RLConfig.model_validate(common | rl_settings), device=device)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report: dict[str, Any] = {"stage": args.stage, "preset": args.preset, "pairs": pairs, "device": card}

    def summarise(results: list[dict[str, float]]) -> None:
        keys = ("seconds", "generation_s", "scoring_s", "update_s", "peak_gib")
        report.update(
            {key: round(float(np.mean([r[key] for r in results])), 3) for key in keys if key in results[0]}
        )
        report["measured_steps"] = len(results)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report | details, indent=2) + "\n")

    details = {
        "command": shlex.join(["python", *sys.argv]),
        "settings": (
            {"chunk": args.chunk, "completion_chars": args.completion_chars}
            if args.stage == "sft"
            else {"group": args.group, "new_tokens": args.new_tokens}
        )
        | {"image_size": args.image_size, "steps": args.steps},
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    measure(run, args.steps, pairs, device, summarise)
    print(f"{args.stage} step, preset {args.preset}, {pairs} pairs, on {card} (byte-level prompts: ~4x text)")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
