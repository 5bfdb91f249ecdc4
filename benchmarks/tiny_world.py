"""Cold-start SFT (and GRPO with --rl) on the tiny world, with held-out retrieval numbers.

    python benchmarks/tiny_world.py --out /tmp/tiny-world [--rl] [--sft-checkpoint DIR]

Writes the tiny world (model/train/tiny_world.py) and a tiny random UME-R1 model with a
word-level vocabulary under DIR, measures the held-out 200 pairs (200-way caption -> image
retrieval, Hit@1 for disc and gen, share of generations in the trained format), trains with
benchmarks/tiny_world_sft.toml through `ume train sft`'s own code, and measures again. The last
line printed is one JSON object: disc_hit1, gen_hit1, format_rate (fractions) and minutes.

With --rl, GRPO (benchmarks/tiny_world_rl.toml, `ume train rl`'s code) continues from the SFT
checkpoint on the world's RL split, and the JSON line gains reward_first / reward_last (mean
embedding reward rank x gap over the first / last fifth of RL steps), rl_format_rate (share of
rollouts in the format over the last fifth), gen_hit1_before_rl / gen_hit1_after_rl and
rl_minutes. --sft-checkpoint DIR skips SFT and starts RL from DIR (its numbers are re-measured).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from model.encoder import Encoder
from model.engine import format_ok
from model.eval.metrics import hit_at_k, rank_candidates
from model.tiny import build_tiny_model
from model.train.batch import load_side
from model.train.config import RLConfig, SFTConfig, load_config
from model.train.data import Pair, Skipped, load_pairs
from model.train.rl import RLRun
from model.train.sft import SFTRun
from model.train.tiny_world import tiny_world_words, write_rl_split, write_tiny_world

CONFIG = Path(__file__).with_name("tiny_world_sft.toml")
RL_CONFIG = Path(__file__).with_name("tiny_world_rl.toml")
MAX_NEW_TOKENS = 48  # a well-formed tiny-world completion is ~25 tokens
EVAL_BATCH = 50


def hit1(queries: np.ndarray, candidates: np.ndarray) -> float:
    """Share of queries whose own candidate (same index) ranks first."""
    order = rank_candidates(queries, candidates)
    return float(np.mean([hit_at_k(list(row), {i}, 1) for i, row in enumerate(order)]))


def evaluate(model_dir: Path, pairs: list[Pair]) -> dict[str, float]:
    """Held-out retrieval (disc and gen) and the format rate of all 2×N generations."""
    encoder = Encoder.from_pretrained(model_dir, device="cpu")
    sides = {"query": [p.query for p in pairs], "target": [p.target for p in pairs]}
    encoded = {
        name: encoder.encode_prepared(
            [encoder.prepare(load_side(side), side.task) for side in group],
            mode="both",
            batch_size=EVAL_BATCH,
            max_new_tokens=MAX_NEW_TOKENS,
        )
        for name, group in sides.items()
    }
    query, target = encoded["query"], encoded["target"]
    assert query.disc is not None and target.disc is not None
    assert query.gen is not None and target.gen is not None
    completions = [text or "" for text in query.completion + target.completion]
    return {
        "disc_hit1": hit1(query.disc, target.disc),
        "gen_hit1": hit1(query.gen, target.gen),
        "format_rate": sum(format_ok(text) for text in completions) / len(completions),
    }


def train(
    stage: type[SFTRun] | type[RLRun],
    start: Path,
    data: Path,
    out: Path,
    steps: int | None,
    config_file: Path | None = None,
    extra: dict[str, object] | None = None,
) -> Path:
    """Run one stage with its config (the benchmark's by default) from `start` on `data`;
    `extra` overrides more of the config."""
    kind, path = (SFTConfig, CONFIG) if stage is SFTRun else (RLConfig, RL_CONFIG)
    path = config_file or path
    overrides = {
        "model": str(start),
        "data": [{"path": data, "format": "released"}],
        "output_dir": out,
        "steps": steps,
        "resume": False,
    } | (extra or {})
    config = load_config(path, kind).with_overrides(overrides)
    torch.set_num_threads(config.cpu_threads or torch.get_num_threads())
    final = stage(config).run()  # type: ignore[arg-type]  # the config kind matches the stage
    assert final is not None
    return final


def fifth_means(metrics_file: Path) -> dict[str, float]:
    """Mean embedding reward over the first and last fifth of the RL steps, and the late format rate."""
    rows = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    fifth = max(1, len(rows) // 5)
    first, last = rows[:fifth], rows[-fifth:]
    return {
        "reward_first": round(float(np.mean([r["embedding_reward"] for r in first])), 4),
        "reward_last": round(float(np.mean([r["embedding_reward"] for r in last])), 4),
        "rl_format_rate": round(float(np.mean([r["format"] for r in last])), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="working directory (data, model, run)")
    parser.add_argument("--steps", type=int, default=None, help="override the SFT config's step count")
    parser.add_argument("--rl", action="store_true", help="add the GRPO stage after SFT")
    parser.add_argument("--rl-steps", type=int, default=None, help="override the RL config's step count")
    parser.add_argument("--sft-checkpoint", type=Path, default=None, help="skip SFT, start RL from here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("model.train").setLevel(logging.INFO)
    started = time.monotonic()
    train_file, heldout_file = write_tiny_world(args.out / "data")
    heldout = load_pairs(heldout_file, "released", None, Skipped())
    if args.sft_checkpoint is None:
        model_dir = build_tiny_model(args.out / "model", words=tiny_world_words())
        print(f"before: {json.dumps(evaluate(model_dir, heldout))}", flush=True)
        sft = train(SFTRun, model_dir, train_file, args.out / "run", args.steps)
    else:
        sft = args.sft_checkpoint
    after = evaluate(sft, heldout)
    print(f"after:  {json.dumps(after)} (checkpoint {sft})", flush=True)
    result: dict[str, float] = after | {"minutes": round((time.monotonic() - started) / 60, 2)}
    if args.rl:
        rl_started = time.monotonic()
        rl_file = write_rl_split(args.out / "data")
        final = train(RLRun, sft, rl_file, args.out / "rl", args.rl_steps)
        after_rl = evaluate(final, heldout)
        print(f"after RL: {json.dumps(after_rl)} (checkpoint {final})", flush=True)
        result |= fifth_means(args.out / "rl" / "metrics.jsonl") | {
            "gen_hit1_before_rl": after["gen_hit1"],
            "gen_hit1_after_rl": after_rl["gen_hit1"],
            "disc_hit1_after_rl": after_rl["disc_hit1"],
            "format_rate_after_rl": after_rl["format_rate"],
            "rl_minutes": round((time.monotonic() - rl_started) / 60, 2),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
