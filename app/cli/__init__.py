"""The `ume` command line: one module per command group, each adding its own subparsers.

Every command module exposes `register(subparsers)`; the parser it adds sets `handler`, a
function taking the parsed arguments and returning the exit status. Errors a user can cause are
raised as `UserError` (or a known error type) and printed as one line, without a stack trace.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "app.cli.embed_cmd",
    "app.cli.index_cmd",
    "app.cli.serve_cmd",
    "app.cli.demo_cmd",
    "app.cli.eval_cmd",
    "app.cli.train_cmd",
    "app.cli.model_cmd",
)


class UserError(Exception):
    """A mistake the user can fix; printed as `ume: error: <message>`."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ume", description="Reasoning-driven multimodal search with UME-R1 embeddings."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name == name:  # a command group not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    from app.limits import LimitError
    from model.encoder import ModelLoadError
    from model.media import MediaError

    errors: list[type[BaseException]] = [UserError, LimitError, ModelLoadError, MediaError]
    try:
        from indexer.catalog.store import StoreError

        errors.append(StoreError)
    except ImportError:
        pass
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _quiet_libraries(progress_bars=getattr(args, "progress_bars", False))
    try:
        return int(args.handler(args) or 0)
    except _known_errors() as error:
        print(f"ume: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resumes = " (what was written stays: run the same command again to carry on)"
        print(f"ume: interrupted{resumes if getattr(args, 'resumable', False) else ''}", file=sys.stderr)
        return 130


def _quiet_libraries(progress_bars: bool = False) -> None:
    """Library chatter (weight-loading bars, deprecation notes) is noise on a command line;
    a command that fetches files (`progress_bars`) keeps the hub's download bars."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="transformers")
    if not progress_bars:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


if __name__ == "__main__":
    sys.exit(main())
