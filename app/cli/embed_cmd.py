"""`ume embed` and `ume build-tiny-model`: embed files or text from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from model.encoder import DEFAULT_MODEL, Encoded, Encoder
from model.inputs import EmbedInput, inputs_from_path, text_input
from model.media import MediaError, media_kind


def register(subparsers: argparse._SubParsersAction) -> None:
    embed = subparsers.add_parser("embed", help="embed files or text and print the vectors")
    embed.add_argument("inputs", nargs="+", metavar="INPUT", help="image/video/PDF files, or text")
    embed.add_argument("--model", default=DEFAULT_MODEL, help="hub name or local checkpoint dir")
    embed.add_argument("--mode", choices=("disc", "gen", "both"), default="disc")
    embed.add_argument(
        "--side",
        choices=("query", "document"),
        default="document",
        help="which task texts to use (query: searching; document: being searched)",
    )
    embed.add_argument("--json", action="store_true", help="one JSON object per line")
    embed.add_argument("--batch-size", type=int, default=8)
    embed.add_argument("--max-new-tokens", type=int, default=8192)
    embed.add_argument("--segment-seconds", type=float, default=None, help="split videos into spans")
    embed.add_argument("--device", default=None)
    embed.set_defaults(handler=run_embed)

    tiny = subparsers.add_parser("build-tiny-model", help="write a tiny random UME-R1 checkpoint (offline)")
    tiny.add_argument("out_dir", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(handler=run_build_tiny)


def looks_like_file(argument: str) -> bool:
    """An argument is a file when it exists or has a media extension; otherwise it is text."""
    path = Path(argument)
    return path.exists() or media_kind(path) is not None


def collect_inputs(arguments: list[str], segment_seconds: float | None):
    """(input argument, EmbedInput) pairs, and per-argument errors for unreadable files."""
    pairs: list[tuple[str, EmbedInput]] = []
    errors: list[dict[str, Any]] = []
    for argument in arguments:
        if not looks_like_file(argument):
            pairs.append((argument, text_input(argument)))
            continue
        try:
            pairs.extend((argument, item) for item in inputs_from_path(Path(argument), segment_seconds))
        except MediaError as error:
            errors.append({"input": argument, "error": str(error)})
    return pairs, errors


def result_record(argument: str, item: EmbedInput, encoded: Encoded, row: int) -> dict[str, Any]:
    record: dict[str, Any] = {"input": argument, "kind": item.kind}
    for key in ("page", "start", "end"):
        if getattr(item, key) is not None:
            record[key] = getattr(item, key)
    record["disc"] = None if encoded.disc is None else [round(float(x), 6) for x in encoded.disc[row]]
    record["gen"] = None if encoded.gen is None else [round(float(x), 6) for x in encoded.gen[row]]
    record["reasoning"] = encoded.reasoning[row]
    record["summary"] = encoded.summary[row]
    return record


def run_embed(args: argparse.Namespace) -> int:
    pairs, errors = collect_inputs(args.inputs, args.segment_seconds)
    for error in errors:
        print(f"ume: {error['error']}", file=sys.stderr)
    if pairs:
        encoder = Encoder.from_pretrained(args.model, device=args.device)
        items = [item for _, item in pairs]
        encode = encoder.encode_query if args.side == "query" else encoder.encode_document
        encoded = encode(
            items, mode=args.mode, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens
        )
        for row, (argument, item) in enumerate(pairs):
            _print_record(result_record(argument, item, encoded, row), args.json)
    for error in errors:
        _print_record(error, args.json)
    return 1 if errors else 0


def _print_record(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(record, ensure_ascii=False))
        return
    if "error" in record:
        print(f"{record['input']}\terror: {record['error']}")
        return
    where = "".join(f" {k}={record[k]}" for k in ("page", "start", "end") if k in record)
    vectors = ", ".join(f"{m}[{len(record[m])}]" for m in ("disc", "gen") if record[m] is not None)
    print(f"{record['input']}\t{record['kind']}{where}\t{vectors}")
    if record["summary"]:
        print(f"  summary: {record['summary']}")


def run_build_tiny(args: argparse.Namespace) -> int:
    from model.tiny import build_tiny_model

    out = build_tiny_model(args.out_dir, seed=args.seed)
    print(f"wrote a tiny random UME-R1 checkpoint to {out} (for tests and offline demos; untrained)")
    return 0
