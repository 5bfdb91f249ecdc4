"""`ume download-model`: fetch a model into the Hugging Face cache once, while online.

Every later command loads it from the cache without the network (`model.hub`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.cli import UserError
from model.hub import DEFAULT_MODEL, MODEL_ENV, default_model, download


def register(subparsers: argparse._SubParsersAction) -> None:
    fetch = subparsers.add_parser(
        "download-model", help="fetch a model from the Hugging Face hub into the cache, with progress"
    )
    fetch.add_argument(
        "name",
        nargs="?",
        default=None,
        help=f"hub model name (default: ${MODEL_ENV}, else {DEFAULT_MODEL})",
    )
    fetch.set_defaults(handler=run_download, progress_bars=True)


def run_download(args: argparse.Namespace) -> int:
    name = args.name or default_model()
    if Path(name).is_dir():
        print(f"ume: {name} is a folder on this machine: nothing to download", file=sys.stderr)
        return 0
    try:
        folder = download(name)
    except OSError as error:
        raise UserError(str(error)) from error
    print(f"ume: {name} is in the cache at {folder}; commands load it from there with no network")
    return 0
