"""Interactive latency: one query at a time, as a person searching, beside the authors' style.

Three measurements, each on the same model in the same run as its baseline:

fast text query -> disc vector: the path of `SearchService.search(mode="fast")` (query input,
    prompt, processor, one forward cut at `<disc_emb>`), p50/p95 over `--repeats` different
    queries after warm-up. Baseline: the same prompt through one full forward that returns every
    hidden state, the embedding picked at `<disc_emb>`.
reasoning text query: generation forced to write `<gen_emb>` as its Nth token for each N of
    `--stop-lengths` (a random model never stops by itself), the text streamed through the search
    service's own callback (`app.search._text_stream`); total seconds and seconds to the first
    streamed text, for each decode loop the encoder picks on the device (eager everywhere; the
    CUDA-graph loop on CUDA, with `UME_CUDA_GRAPHS` on), streamed and not. A loop that does not
    report tokens has no first-text time. Baseline: `model.generate` with a streamer, every
    hidden state returned, exactly N new tokens, the embedding from the last one.
image query (`--image-size` px square) -> disc vector, as the fast text query.

Every timing starts before the query becomes model input and ends with the vector on the host.

    python benchmarks/latency.py                                   # tiny model on CPU
    python benchmarks/latency.py --preset 2b --out latency.json    # GPU: random-weight 2B shape

The offline tokenizer is byte-level, so a text prompt holds ~4x the tokens Qwen's BPE would
give it (the report lists the prompt lengths). The JSON report is written after each part, so a
run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.generation.streamers import BaseStreamer

from app.search import _text_stream
from app.search_request import DEFAULT_QUERY_MAX_NEW_TOKENS, query_input
from model.encoder import Encoder, query_task, task_text
from model.engine import Sampling, forced_stops, use_cuda_graphs
from model.inputs import EmbedInput, collate

QUERIES = (
    "a red bicycle leaning against a brick wall",
    "two dogs playing in fresh snow",
    "the invoice from the plumber last spring",
    "sunset over the harbour with sailing boats",
    "a child blowing out birthday candles",
    "slides about quarterly revenue",
    "a bowl of ramen on a wooden table",
    "someone skiing down a steep slope",
    "handwritten notes about the garden",
    "a cat asleep on a laptop keyboard",
    "fireworks above the old bridge",
    "a map of the hiking trail",
)


def timing(seconds: Sequence[float], unit: str = "ms") -> dict[str, float | int]:
    """Runs, p50, p95, min and mean of the timings, in milliseconds ("ms") or seconds ("s")."""
    if not seconds:
        return {"runs": 0}
    scale = {"ms": 1000.0, "s": 1.0}[unit]
    values = np.asarray(seconds, dtype=np.float64) * scale
    digits = 2 if unit == "ms" else 3
    return {
        "runs": len(values),
        f"p50_{unit}": round(float(np.percentile(values, 50)), digits),
        f"p95_{unit}": round(float(np.percentile(values, 95)), digits),
        f"min_{unit}": round(float(values.min()), digits),
        f"mean_{unit}": round(float(values.mean()), digits),
    }


def ratio(baseline: float | None, ours: float | None) -> float | None:
    """How many times faster ours is (baseline / ours), or None when either is missing."""
    if not baseline or not ours:
        return None
    return round(baseline / ours, 2)


def stop_lengths(text: str) -> list[int]:
    """'100,200,300' -> [100, 200, 300]."""
    try:
        lengths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        lengths = []
    if not lengths or min(lengths) < 2:
        raise argparse.ArgumentTypeError(f"expected lengths of 2 or more like 100,200,300, not {text!r}")
    return lengths


def decode_loops(device: torch.device) -> list[tuple[str, bool, str]]:
    """(loop, streamed, UME_CUDA_GRAPHS) for each decode loop the encoder picks on this device,
    streamed and not, each (loop, streamed) pair once."""
    seen: dict[tuple[str, bool], str] = {}
    for setting in ("0", "1"):
        for streamed in (True, False):
            with cuda_graphs(setting):
                on_step = (lambda rows, tokens: None) if streamed else None
                loop = "graph" if use_cuda_graphs(device, Sampling(), on_step) else "eager"
            seen.setdefault((loop, streamed), setting)
    return [(loop, streamed, setting) for (loop, streamed), setting in seen.items()]


@contextmanager
def cuda_graphs(setting: str) -> Iterator[None]:
    """UME_CUDA_GRAPHS set to `setting` ("0" off, "1" on) for the duration."""
    before = os.environ.get("UME_CUDA_GRAPHS")
    os.environ["UME_CUDA_GRAPHS"] = setting
    try:
        yield
    finally:
        if before is None:
            del os.environ["UME_CUDA_GRAPHS"]
        else:
            os.environ["UME_CUDA_GRAPHS"] = before


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def query_prompt(encoder: Encoder, item: EmbedInput):
    """The prompt `encode_query` builds for a query searching images."""
    return encoder.prepare(item, task_text(item, query_task(item, "image")))


# --- fast (disc) queries ---------------------------------------------------------------------


def ours_disc(encoder: Encoder, make_item: Callable[[], EmbedInput]) -> float:
    """Seconds of the search service's fast path: query input to disc vector on the host."""
    sync(encoder.device)
    began = time.perf_counter()
    encoded = encoder.encode_query([make_item()], target_kind="image", mode="disc")
    assert encoded.disc is not None
    return time.perf_counter() - began


@torch.inference_mode()
def authors_disc(encoder: Encoder, make_item: Callable[[], EmbedInput]) -> float:
    """Seconds of one full forward with every hidden state, the vector read at `<disc_emb>`."""
    ids = encoder.token_ids
    sync(encoder.device)
    began = time.perf_counter()
    prepared = query_prompt(encoder, make_item())
    batch = {k: v.to(encoder.device) for k, v in collate([prepared], ids.pad).items()}
    states = encoder.model(**batch, output_hidden_states=True).hidden_states[-1]
    position = (batch["input_ids"] == ids.disc_emb).int().argmax(dim=1)
    picked = states[torch.arange(len(position)), position].float()
    _ = torch.nn.functional.normalize(picked, dim=-1).cpu()
    return time.perf_counter() - began


def disc_latency(
    encoder: Encoder, items: Sequence[Callable[[], EmbedInput]], repeats: int, warmup: int
) -> dict[str, Any]:
    """Ours and the baseline, alternating query by query so that load hits both alike."""
    for index in range(warmup):
        ours_disc(encoder, items[index % len(items)])
        authors_disc(encoder, items[index % len(items)])
    ours, base = [], []
    for index in range(repeats):
        ours.append(ours_disc(encoder, items[index % len(items)]))
        base.append(authors_disc(encoder, items[index % len(items)]))
    lengths = [query_prompt(encoder, make()).length for make in items[: min(len(items), repeats)]]
    report: dict[str, Any] = {
        "prompt_tokens": round(float(np.mean(lengths)), 1),
        "ours": timing(ours),
        "authors_style": timing(base),
    }
    report["p50_ratio"] = ratio(report["authors_style"]["p50_ms"], report["ours"]["p50_ms"])
    return report


# --- reasoning queries -----------------------------------------------------------------------


def ours_reasoning(encoder: Encoder, text: str, length: int, streamed: bool) -> dict[str, Any]:
    """One reasoning query ending at `length` tokens, as `SearchService._generate` runs it."""
    first: float | None = None
    updates = 0

    def on_text(_text: str) -> None:
        nonlocal first, updates
        updates += 1
        if first is None:
            first = time.perf_counter() - began

    sync(encoder.device)
    began = time.perf_counter()
    prepared = [query_prompt(encoder, query_input(text))]
    encoded = encoder.encode_prepared(
        prepared,
        mode="gen",
        max_new_tokens=max(DEFAULT_QUERY_MAX_NEW_TOKENS, length),
        on_tokens=_text_stream(encoder, on_text) if streamed else None,
        override=forced_stops(torch.tensor([length]), encoder.token_ids),
    )
    assert encoded.gen is not None
    return {"total": time.perf_counter() - began, "first": first, "updates": updates}


class _Streamer(BaseStreamer):
    """A `transformers` streamer that times the first new token and decodes the text so far at
    each one, as a UI that shows the reasoning would."""

    def __init__(self, tokenizer: Any, began: float) -> None:
        self.tokenizer, self.began = tokenizer, began
        self.prompt_seen = False
        self.first: float | None = None
        self.tokens: list[int] = []

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate hands the prompt over first
            self.prompt_seen = True
            return
        if self.first is None:
            self.first = time.perf_counter() - self.began
        self.tokens += value.reshape(-1).tolist()
        self.tokenizer.decode(self.tokens, skip_special_tokens=True)

    def end(self) -> None:
        pass


@torch.inference_mode()
def authors_reasoning(encoder: Encoder, text: str, length: int) -> dict[str, Any]:
    """`model.generate` streaming exactly `length` tokens, every hidden state returned."""
    ids = encoder.token_ids
    sync(encoder.device)
    began = time.perf_counter()
    prepared = query_prompt(encoder, query_input(text))
    batch = {k: v.to(encoder.device) for k, v in collate([prepared], ids.pad).items()}
    streamer = _Streamer(encoder.processor.tokenizer, began)
    out = encoder.model.generate(
        **batch,
        max_new_tokens=length,
        min_new_tokens=length,
        do_sample=False,
        output_hidden_states=True,
        return_dict_in_generate=True,
        pad_token_id=ids.pad,
        streamer=streamer,
    )
    _ = torch.nn.functional.normalize(out.hidden_states[-1][-1][:, -1].float(), dim=-1).cpu()
    return {"total": time.perf_counter() - began, "first": streamer.first, "updates": len(streamer.tokens)}


def reasoning_latency(
    encoder: Encoder, args: argparse.Namespace, rows: list[dict[str, Any]], save: Callable[[], None]
) -> None:
    """Append a row per stop length and decode loop (and one for the baseline), with ratios;
    `save()` after each length."""
    loops = decode_loops(encoder.device)
    for _loop, streamed, setting in loops:  # warm-up: kernels, allocator, graph capture code
        with cuda_graphs(setting):
            ours_reasoning(encoder, QUERIES[0], 8, streamed)
    authors_reasoning(encoder, QUERIES[0], 8)
    for length in args.stop_lengths:
        texts = [QUERIES[i % len(QUERIES)] for i in range(max(args.baseline_repeats, args.reasoning_repeats))]
        runs = [authors_reasoning(encoder, text, length) for text in texts[: args.baseline_repeats]]
        base = summarise_runs(runs, length)
        rows.append({"stop_length": length, "decoder": "authors_style", "streamed": True} | base)
        for loop, streamed, setting in loops:
            with cuda_graphs(setting):
                measured = texts[: args.reasoning_repeats]
                runs = [ours_reasoning(encoder, text, length, streamed) for text in measured]
            row = {"stop_length": length, "decoder": f"ours_{loop}", "streamed": streamed}
            row |= summarise_runs(runs, length)
            row["total_ratio"] = ratio(base["total_s"]["p50_s"], row["total_s"]["p50_s"])
            row["first_text_ratio"] = ratio(
                base["first_text_s"].get("p50_s"), row["first_text_s"].get("p50_s")
            )
            rows.append(row)
        save()


def summarise_runs(runs: list[dict[str, Any]], length: int) -> dict[str, Any]:
    firsts = [run["first"] for run in runs if run["first"] is not None]
    return {
        "total_s": timing([run["total"] for run in runs], "s"),
        "first_text_s": timing(firsts, "s"),
        "tokens_per_s": round(length / float(np.median([run["total"] for run in runs])), 1),
        "streamed_updates": runs[0]["updates"],
    }


# --- the run ---------------------------------------------------------------------------------


def load(args: argparse.Namespace) -> Encoder:
    sys.path.insert(0, str(Path(__file__).parent))
    from encode import load_encoder  # the same models the throughput benchmark measures

    return load_encoder(args.preset, args.device, args.layers)


def random_image(seed: int, size: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def print_disc(name: str, part: dict[str, Any]) -> None:
    ours, base = part["ours"], part["authors_style"]
    print(f"{name}: {part['prompt_tokens']:.0f} prompt tokens, {ours['runs']} queries")
    print(f"  {'':16} {'p50 ms':>9} {'p95 ms':>9}")
    print(f"  {'authors-style':16} {base['p50_ms']:9.2f} {base['p95_ms']:9.2f}")
    print(f"  {'ours':16} {ours['p50_ms']:9.2f} {ours['p95_ms']:9.2f}   {part['p50_ratio']}x at p50")


def print_reasoning(rows: list[dict[str, Any]]) -> None:
    print("reasoning query (p50 seconds; first = first streamed text)")
    print(
        f"  {'tokens':>6} {'decoder':16} {'streamed':>8} {'total s':>9} {'first s':>9} "
        f"{'tok/s':>8} {'ratio':>7}"
    )
    for row in rows:
        first = row["first_text_s"].get("p50_s")
        first_text = f"{first:9.3f}" if first is not None else f"{'-':>9}"
        total_ratio = row.get("total_ratio")
        print(
            f"  {row['stop_length']:6} {row['decoder']:16} {'yes' if row['streamed'] else 'no':>8} "
            f"{row['total_s']['p50_s']:9.3f} {first_text} {row['tokens_per_s']:8.1f} "
            f"{f'{total_ratio}x' if total_ratio else '':>7}"
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=("tiny", "2b"), default="tiny")
    parser.add_argument("--layers", type=int, default=None, help="shrink the 2b preset's depth (smoke runs)")
    parser.add_argument("--repeats", type=int, default=30, help="fast text queries measured")
    parser.add_argument("--image-repeats", type=int, default=10, help="image queries measured")
    parser.add_argument("--warmup", type=int, default=3, help="queries of each fast kind run first")
    parser.add_argument("--stop-lengths", type=stop_lengths, default=[100, 200, 300], metavar="N,N,...")
    parser.add_argument("--reasoning-repeats", type=int, default=3, help="runs per length and loop")
    parser.add_argument("--baseline-repeats", type=int, default=1, help="baseline runs per length")
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    parser.add_argument("--machine", default=None, help="a description of the machine, for the report")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def main() -> None:
    import transformers

    args = parse_args()
    torch.manual_seed(0)
    encoder = load(args)
    device = encoder.device
    report: dict[str, Any] = {
        "command": shlex.join(["python", *sys.argv]),
        "machine": args.machine or platform.processor() or platform.machine(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "preset": args.preset,
        "dtype": str(next(encoder.model.parameters()).dtype).removeprefix("torch."),
        "max_new_tokens": DEFAULT_QUERY_MAX_NEW_TOKENS,
    }

    def save() -> None:
        if device.type == "cuda":
            report["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")

    texts = [lambda text=text: query_input(text) for text in QUERIES]
    report["fast_text"] = disc_latency(encoder, texts, args.repeats, args.warmup)
    print_disc("fast text query -> disc", report["fast_text"])
    save()

    pictures = [random_image(seed, args.image_size) for seed in range(4)]
    images = [lambda picture=picture: query_input(image=picture) for picture in pictures]
    report["image"] = disc_latency(encoder, images, args.image_repeats, args.warmup) | {
        "image_size": args.image_size
    }
    print_disc(f"image query ({args.image_size} px) -> disc", report["image"])
    save()

    report["reasoning_prompt_tokens"] = query_prompt(encoder, query_input(QUERIES[0])).length
    report["reasoning"] = []
    reasoning_latency(encoder, args, report["reasoning"], save)
    print_reasoning(report["reasoning"])
    save()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
