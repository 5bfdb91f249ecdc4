"""What indexing and searching cost per item on this machine, in each mode, with a 2B-shaped model.

Measures a random-weight Qwen2-VL-2B-shaped encoder (speed does not depend on the weights) in
the dtype the encoder loads on this device (float32 on a CPU: these CPUs only emulate
bfloat16), on 448-px photos shaped like real prompts:

- disc (fast mode, and the first pass of `both`): one forward per item, measured;
- gen (the second pass of `both`, and `gen`): a prefill and one decode step per generated
  token. A random model never stops, so the decode is timed at two lengths and the cost per
  token is the slope; a typical ~400-token reasoning is extrapolated from it (say so when
  quoting it);
- a text query in fast mode (one forward) and in reasoning mode (prefill + 400 tokens, the same
  extrapolation).

It prints the per-item figures side by side and what 10,000 photos cost in each mode, and
writes them as JSON.

    python benchmarks/index_cost.py --out benchmarks/results/index_cost-cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from encode import random_2b_encoder, synthetic_prompts

from model.encoder import Encoder
from model.inputs import EmbedInput

REASONING_TOKENS = 400  # a typical UME-R1 reasoning, `<think>` to `<gen_emb>`
PHOTOS = 10_000


def timed(run: Any) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def per_item_disc(encoder: Encoder, prepared: list, batch_size: int) -> float:
    encoder.encode_prepared(prepared[:1], mode="disc", max_new_tokens=1)  # warm-up
    seconds = timed(lambda: encoder.encode_prepared(prepared, mode="disc", batch_size=batch_size))
    return seconds / len(prepared)


def generation_cost(encoder: Encoder, prepared: list, short: int, long: int) -> dict[str, float]:
    """Seconds for a prefill and per decoded token, from two decode lengths (batch 1)."""
    item = prepared[:1]
    at = {
        n: timed(lambda n=n: encoder.encode_prepared(item, mode="gen", max_new_tokens=n))
        for n in (short, long)
    }
    per_token = (at[long] - at[short]) / (long - short)
    return {"prefill_s": max(at[short] - short * per_token, 0.0), "per_token_s": per_token}


def query_costs(encoder: Encoder, short: int, long: int) -> dict[str, float]:
    query = [EmbedInput(text="a dog running on a beach at sunset", kind="text")]
    encoder.encode_query(query, mode="disc")  # warm-up
    fast = timed(lambda: encoder.encode_query(query, mode="disc"))
    at = {
        n: timed(lambda n=n: encoder.encode_query(query, mode="gen", max_new_tokens=n)) for n in (short, long)
    }
    per_token = (at[long] - at[short]) / (long - short)
    prefill = max(at[short] - short * per_token, 0.0)
    return {"fast_s": fast, "reasoning_s": prefill + REASONING_TOKENS * per_token}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--items", type=int, default=4, help="photos timed in disc mode")
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--short", type=int, default=4, help="the shorter timed decode, tokens")
    parser.add_argument("--long", type=int, default=20, help="the longer timed decode, tokens")
    parser.add_argument("--layers", type=int, default=None, help="shrink the model's depth (smoke runs)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = random_2b_encoder(args.device, args.layers)
    dtype = torch.float32 if args.device == "cpu" else torch.bfloat16  # as `Encoder.from_pretrained`
    encoder.model.to(dtype)
    prepared = synthetic_prompts(encoder, args.items, args.image_size, 74)
    disc = per_item_disc(encoder, prepared, batch_size=1)
    gen = generation_cost(encoder, prepared, args.short, args.long)
    gen_item = gen["prefill_s"] + REASONING_TOKENS * gen["per_token_s"]
    queries = query_costs(encoder, args.short, args.long)
    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "device": args.device,
        "dtype": str(dtype).removeprefix("torch."),
        "model": "random-weight Qwen2-VL-2B shape",
        "image_px": args.image_size,
        "command": "python benchmarks/index_cost.py " + " ".join(sys.argv[1:]),
        "disc_s_per_item": round(disc, 3),
        "gen_prefill_s": round(gen["prefill_s"], 3),
        "gen_s_per_token": round(gen["per_token_s"], 4),
        "gen_s_per_item_400_tokens": round(gen_item, 1),
        "gen_extrapolated_from_tokens": [args.short, args.long],
        "query_fast_s": round(queries["fast_s"], 3),
        "query_reasoning_s_400_tokens": round(queries["reasoning_s"], 1),
        f"photos_{PHOTOS}_disc_hours": round(PHOTOS * disc / 3600, 2),
        f"photos_{PHOTOS}_both_hours": round(PHOTOS * (disc + gen_item) / 3600, 1),
    }
    print(
        f"per item:  disc {disc:.2f} s   |   gen {gen_item:.1f} s "
        f"({gen['prefill_s']:.2f} s prefill + {REASONING_TOKENS} x {gen['per_token_s']:.3f} s)"
    )
    print(f"queries:   fast {queries['fast_s']:.2f} s   |   reasoning {queries['reasoning_s']:.1f} s")
    print(
        f"{PHOTOS:,} photos: disc {figures[f'photos_{PHOTOS}_disc_hours']} h   |   "
        f"both {figures[f'photos_{PHOTOS}_both_hours']} h"
    )
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
