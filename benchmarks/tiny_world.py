"""Cold-start SFT on the tiny world, from the tiny random model, with held-out retrieval numbers.

    python benchmarks/tiny_world.py --out /tmp/tiny-world

Writes the tiny world (model/train/tiny_world.py) and a tiny random UME-R1 model with a
word-level vocabulary under DIR, measures the held-out 200 pairs (200-way caption -> image
retrieval, Hit@1 for disc and gen, share of generations in the trained format), trains with
benchmarks/tiny_world_sft.toml through `ume train sft`'s own code, and measures again. The last
line printed is one JSON object: disc_hit1, gen_hit1, format_rate (fractions) and minutes.
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

from model.completion import format_ok
from model.encoder import Encoder
from model.eval.metrics import hit_at_k, rank_candidates
from model.tiny import build_tiny_model
from model.train.batch import load_side
from model.train.config import load_config
from model.train.data import Pair, Skipped, load_pairs
from model.train.sft import SFTRun
from model.train.tiny_world import tiny_world_words, write_tiny_world

CONFIG = Path(__file__).with_name("tiny_world_sft.toml")
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="working directory (data, model, run)")
    parser.add_argument("--steps", type=int, default=None, help="override the config's step count")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("model.train").setLevel(logging.INFO)
    started = time.monotonic()
    train_file, heldout_file = write_tiny_world(args.out / "data")
    model_dir = build_tiny_model(args.out / "model", words=tiny_world_words())
    skipped = Skipped()
    heldout = load_pairs(heldout_file, "released", None, skipped)
    config = load_config(CONFIG).with_overrides(
        {
            "model": str(model_dir),
            "data": [{"path": train_file, "format": "released"}],
            "output_dir": args.out / "run",
            "steps": args.steps,
            "resume": False,
        }
    )
    torch.set_num_threads(config.cpu_threads or torch.get_num_threads())
    before = evaluate(model_dir, heldout)
    print(f"before: {json.dumps(before)}", flush=True)
    run = SFTRun(config)
    final = run.run()
    assert final is not None
    after = evaluate(final, heldout)
    print(f"after:  {json.dumps(after)} (checkpoint {final})", flush=True)
    print(json.dumps(after | {"minutes": round((time.monotonic() - started) / 60, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
