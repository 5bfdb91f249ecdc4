"""`ume demo`: index a gallery into an embedded index and open the search UI.

It serves the page the way `ume serve` does (same server options, same policy for the Index tab,
the same note in its data dir, so `ume status` / `ume search --data-dir` hand their work to it)
on a context of its own: the demo's index, its model, and the offline-model banner when it applies.

Which model: `--model NAME` when given, or UME-R1-2B when a GPU is present, if it loads. Without
a GPU the 2B model takes minutes per reasoning search, so the demo runs the shipped reference
model (`models/ume-r1-tiny-world`, trained on the tiny world) on a gallery written from that
world, with example queries in its words; it does the same when the named model cannot be
loaded (offline, no cache). Only when the reference model is missing (an install without the
repository's `models/`) does it fall back to an untrained test model. The UI then shows a banner
that results come from a tiny offline model, so nobody mistakes them for the method's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from app.cli import UserError
from app.cli.index_cmd import say_stage
from app.cli.serve_cmd import add_server_options, indexing_policy, parse_auth, serve_page, warn_if_exposed
from app.context import AppContext, make_context
from app.search_request import DEFAULT_QUERY_MAX_NEW_TOKENS
from indexer.catalog.open import default_data_dir, open_store
from indexer.config import DEFAULT_COLLECTION, IndexConfig
from indexer.summary import RunSummary
from model.encoder import DEFAULT_MODEL, Encoder
from model.world import REFERENCE_MODEL, REFERENCE_MODEL_ENV
from model.world.files import SEGMENT_SECONDS
from model.world.gallery import write_gallery

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "media"
TEST_MODEL_FOLDER = "tiny-model"
GALLERY_FOLDER = "world-gallery"
TEST_MODEL_MAX_NEW_TOKENS = 16  # the random model never stops by itself: keep its babble short
REFERENCE_MAX_NEW_TOKENS = 48  # a well-formed tiny-world completion is ~25 tokens
DEMO_SEGMENT_SECONDS = 4.0  # the example clip is 12 s: three segments to tell apart


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="index the bundled examples and open the search UI")
    demo.add_argument(
        "--model",
        default=None,
        help=f"the model to run (default: {DEFAULT_MODEL} on a GPU, else the tiny reference model); "
        "the reference model is used if it cannot load",
    )
    demo.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: best available)")
    demo.add_argument("--max-new-tokens", type=int, default=None, help="cap on generated tokens")
    demo.add_argument(
        "--media", type=Path, default=None, help="folder to index (default: the model's gallery)"
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the demo keeps its index and test model (default: <data dir>/demo)",
    )
    demo.add_argument(
        "--index-mode",
        choices=("disc", "both"),
        default=None,
        help="both: all three search modes (default on GPU or with the test model)",
    )
    add_server_options(demo)
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    auth = parse_auth(args.auth)
    warn_if_exposed(args.host, auth)
    ctx = prepare_demo(
        model=args.model,
        media=args.media,
        data_dir=args.data_dir,
        device=args.device,
        index_mode=args.index_mode,
        max_new_tokens=args.max_new_tokens,
        indexing=indexing_policy(args.host, args.index_under),
    )
    # registered in its data dir as `ume serve` is, so `ume status` / `ume search` reach it
    return serve_page(ctx, args.host, args.port, auth, demo_data_dir(args.data_dir), args.watch)


def demo_data_dir(data_dir: Path | None) -> Path:
    """The demo keeps its own index, so it never touches (or locks) a real one."""
    return Path(data_dir).expanduser() if data_dir else default_data_dir() / "demo"


def load_demo_encoder(model: str | None, data_dir: Path, device: str | None) -> tuple[Encoder, bool]:
    """(encoder, is_offline_model): the real model when asked for or on a GPU, else the reference."""
    name = model or DEFAULT_MODEL
    if model is None and not torch.cuda.is_available():
        print(
            f"ume demo: no GPU, so using the tiny reference model instead of {name} (minutes per "
            f"reasoning search on a CPU); pass --model {name} to run it anyway",
            file=sys.stderr,
        )
        return offline_encoder(data_dir, device), True
    try:  # from a folder or the cache; fetched only when the hub answers at once (`model.hub`)
        return Encoder.from_pretrained(name, device=device), False
    except Exception as error:  # offline, no cache, no disk space: every reason ends the same way
        reason = first_sentence(error.__cause__ or error)
        print(f"ume demo: cannot load {name} ({reason}); using the tiny reference model", file=sys.stderr)
    return offline_encoder(data_dir, device), True


def offline_encoder(data_dir: Path, device: str | None) -> Encoder:
    """The shipped reference model, or an untrained test model when it is not there."""
    if (REFERENCE_MODEL / "config.json").is_file():
        return Encoder.from_pretrained(REFERENCE_MODEL, device=device)
    target = data_dir / TEST_MODEL_FOLDER
    print(
        f"ume demo: no reference model at {REFERENCE_MODEL} (set {REFERENCE_MODEL_ENV} to its folder); "
        f"using an untrained test model built in {target}, so results will be random",
        file=sys.stderr,
    )
    return Encoder.from_pretrained(offline_test_model(target), device=device)


def is_reference(encoder: Encoder) -> bool:
    return Path(encoder.model_id).resolve() == REFERENCE_MODEL.resolve()


def demo_media(media: Path | None, encoder: Encoder, data_dir: Path) -> tuple[Path, float]:
    """(folder to index, its video segment length): the reference model gets its own world."""
    if media is not None:
        return Path(media), DEMO_SEGMENT_SECONDS
    if not is_reference(encoder):
        return EXAMPLES, DEMO_SEGMENT_SECONDS
    gallery = data_dir / GALLERY_FOLDER
    if not (gallery / "queries.jsonl").is_file():  # written once: it is deterministic
        write_gallery(gallery)
    return gallery, SEGMENT_SECONDS


def first_sentence(error: BaseException, limit: int = 120) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    sentence = text.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


def offline_test_model(folder: Path) -> Path:
    """The tiny test checkpoint in `folder`, built once (it is deterministic)."""
    from model.tiny import build_tiny_model

    if (folder / "config.json").is_file():
        return folder
    return build_tiny_model(folder)


def index_examples(
    encoder: Encoder,
    media: Path,
    data_dir: Path,
    mode: str,
    max_new_tokens: int | None,
    segment_seconds: float = DEMO_SEGMENT_SECONDS,
) -> RunSummary:
    from indexer.run import index_folders

    settings: dict[str, Any] = {"max_new_tokens": max_new_tokens} if max_new_tokens else {}
    config = IndexConfig(
        roots=[media],
        collection=DEFAULT_COLLECTION,
        model=encoder.model_id,
        mode=mode,  # type: ignore[arg-type]
        data_dir=data_dir,
        segment_seconds=segment_seconds,
        reembed=True,  # the demo's own index: rebuild it when the model changed
        **settings,
    )
    return index_folders(config, encoder=encoder, progress=True, on_stage=say_stage)


def prepare_demo(
    model: str | None = None,
    media: Path | None = None,
    data_dir: Path | None = None,
    device: str | None = None,
    index_mode: str | None = None,
    max_new_tokens: int | None = None,
    **options: Any,
) -> AppContext:
    """Load a model, index the gallery, and return the context the UI serves."""
    folder = demo_data_dir(data_dir)
    if media is not None and not Path(media).is_dir():
        raise UserError(f"no media folder at {media}: pass --media DIR")
    encoder, is_test_model = load_demo_encoder(model, folder, device)
    media, segment_seconds = demo_media(media, encoder, folder)
    if is_test_model and max_new_tokens is None:
        max_new_tokens = REFERENCE_MAX_NEW_TOKENS if is_reference(encoder) else TEST_MODEL_MAX_NEW_TOKENS
    mode = index_mode or ("both" if is_test_model or torch.cuda.is_available() else "disc")
    if mode == "disc":
        print(
            "ume demo: indexing disc vectors only (reasoning for every item takes minutes on "
            "a CPU); pass --index-mode both for all three search modes",
            file=sys.stderr,
        )
    summary = index_examples(encoder, media, folder, mode, max_new_tokens, segment_seconds)
    print(f"ume demo: {summary.points} items from {media} in {folder}", file=sys.stderr)
    return make_context(
        open_store(data_dir=folder),
        DEFAULT_COLLECTION,
        encoder,
        test_model=is_test_model,
        max_new_tokens=max_new_tokens or DEFAULT_QUERY_MAX_NEW_TOKENS,
        index_settings={"data_dir": folder, "segment_seconds": segment_seconds},
        **options,
    )
