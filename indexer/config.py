"""What one indexing run is told to do: a validated pydantic config and its command-line flags.

The flags are defined here, next to the fields they fill, so `ume index` and
`python -m indexer.shard` (the torchrun entry point) parse exactly the same options without the
indexer importing the app.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from indexer.catalog.checks import QUANTIZATIONS, check_collection_name
from indexer.catalog.collection import default_quantization
from indexer.catalog.open import DATA_DIR_ENV
from indexer.catalog.store import LAYOUT_NEEDS_SERVER, ClusterLayout, CollectionInfo
from model.encoder import DEFAULT_MODEL, Mode
from model.hub import MODEL_ENV
from model.media import DEFAULT_PDF_DPI

QDRANT_URL_ENV = "UME_QDRANT_URL"
SHARDS_ENV = "UME_SHARDS"
REPLICAS_ENV = "UME_REPLICAS"
DEFAULT_COLLECTION = "media"
GIB = 1024**3
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": GIB, "t": 1024**4}
SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


class ConfigError(ValueError):
    """A bad option or path given to the indexer; the message says what to do, in one line."""


def parse_size(text: str | int) -> int:
    """Bytes from `2GiB`, `500MB`, `1.5g` or a plain number (binary units either way)."""
    if isinstance(text, int):
        return text
    found = SIZE_PATTERN.match(text)
    if not found:
        raise ValueError(f"cannot read size {text!r}: write e.g. 2GiB, 500MB or 1048576")
    number, unit = found.groups()
    return int(float(number) * SIZE_UNITS[unit.lower()])


def collection_model(info: CollectionInfo | None, requested: str | None = None) -> str:
    """The model to use with a collection: the requested one, else the one it was built with,
    else (a new collection) $UME_MODEL, else UME-R1-2B."""
    if requested:
        return requested
    return info.model_id if info is not None else os.environ.get(MODEL_ENV, DEFAULT_MODEL)


def default_decode_workers() -> int:
    """Enough threads to keep the model fed, without starving it of cores on a small machine."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


class IndexConfig(BaseModel):
    """Everything an indexing run needs; the defaults index a laptop's photos sensibly."""

    roots: list[Path] = Field(default_factory=list)
    collection: str = DEFAULT_COLLECTION
    # None: the collection's own model, or $UME_MODEL (else UME-R1-2B) for a new collection.
    model: str | None = None
    # None: the collection's own mode, or "both" for a new collection ("both" makes items
    # searchable with disc vectors first, then adds gen vectors: one generation per item).
    mode: Mode | None = None
    segment_seconds: float = Field(default=10.0, gt=0)  # one video point per span of this length
    pdf_dpi: int = Field(default=DEFAULT_PDF_DPI, ge=36, le=600)
    batch_size: int = Field(default=8, ge=1)
    # 512, not the encoder's 8192: a batch decodes until its longest row stops, so one runaway
    # generation would hold a whole batch for up to 8192 steps. Typical reasoning is ~400
    # tokens, so 512 caps the worst case near typical cost while rarely cutting a real answer.
    max_new_tokens: int = Field(default=512, ge=1)
    decode_workers: int = Field(default_factory=default_decode_workers, ge=1)
    max_file_size: int = Field(default=2 * GIB, gt=0)  # larger files fail as "absurdly large"
    data_dir: Path | None = None
    qdrant_url: str | None = None
    # How a new collection on a Qdrant server is spread (None: the server's default, one shard,
    # one copy); see `ClusterLayout`. Refused without qdrant_url.
    shards: int | None = Field(default=None, ge=1)
    replicas: int | None = Field(default=None, ge=1)
    device: str | None = None
    prune: bool = True
    reembed: bool = False
    # None: the engine's default (`collection.default_quantization`); "int8" or "none" switch
    # the collection (new or existing: nothing is embedded again).
    quantize: Literal["int8", "none"] | None = None

    @field_validator("collection")
    @classmethod
    def _plain_collection_name(cls, name: str) -> str:
        check_collection_name(name)
        return name

    @field_validator("max_file_size", mode="before")
    @classmethod
    def _size_with_units(cls, value: Any) -> Any:
        return parse_size(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_engine(self) -> IndexConfig:
        if self.data_dir is not None and self.qdrant_url is not None:
            raise ValueError("give --data-dir (embedded index) or --qdrant-url (server), not both")
        if self.qdrant_url is None and self.layout().given:
            raise ValueError(LAYOUT_NEEDS_SERVER)
        return self

    def layout(self) -> ClusterLayout:
        return ClusterLayout(self.shards, self.replicas)

    def where(self) -> str:
        """Human words for the index location, for log lines and messages."""
        if self.qdrant_url is not None:
            return f"Qdrant at {self.qdrant_url}"
        folder = self.data_dir or os.environ.get(DATA_DIR_ENV) or "the default data dir"
        return f"the index at {folder}"


def add_store_arguments(parser: argparse.ArgumentParser, collection: bool = True) -> None:
    """--collection, --data-dir and --qdrant-url: where an index lives (shared by every command)."""
    group = parser.add_argument_group("index location")
    if collection:
        group.add_argument("--collection", default=DEFAULT_COLLECTION, help="collection name")
    group.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"embedded index directory (default: ${DATA_DIR_ENV}, else the per-user data dir)",
    )
    group.add_argument(
        "--qdrant-url",
        default=os.environ.get(QDRANT_URL_ENV),
        help=f"use a Qdrant server instead (http(s)://HOST:PORT, local:PATH; env {QDRANT_URL_ENV})",
    )


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """--shards and --replicas: how a collection created on a Qdrant server is spread."""
    group = parser.add_argument_group("Qdrant cluster (a collection created on a server)")
    group.add_argument(
        "--shards",
        type=at_least_one,
        default=os.environ.get(SHARDS_ENV),
        metavar="N",
        help=f"split a new collection into N shards across the cluster's nodes (env {SHARDS_ENV}; "
        "default: the server's, one shard); fixed once created",
    )
    group.add_argument(
        "--replicas",
        type=at_least_one,
        default=os.environ.get(REPLICAS_ENV),
        metavar="R",
        help=f"keep R copies of each shard on different nodes (env {REPLICAS_ENV}; default 1)",
    )


def at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_index_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that fill `IndexConfig` (besides the index location)."""
    defaults = IndexConfig()
    group = parser.add_argument_group("indexing")
    group.add_argument("roots", nargs="+", type=Path, metavar="PATH", help="folders or files")
    group.add_argument(
        "--model",
        default=defaults.model,
        help=f"model name or dir (default: the collection's own; for a new one ${MODEL_ENV}, "
        f"else {DEFAULT_MODEL})",
    )
    group.add_argument(
        "--mode",
        choices=("disc", "gen", "both"),
        default=None,
        help="disc: one forward pass per item (fast search only); both: disc first, then the "
        "model's reasoning and gen vectors filled in behind; gen: reasoning only "
        "(default: the collection's mode; both for a new one)",
    )
    numbers = (
        ("--segment-seconds", float, defaults.segment_seconds, "seconds of video per point"),
        ("--pdf-dpi", int, defaults.pdf_dpi, "resolution PDF pages are rendered at"),
        ("--batch-size", int, defaults.batch_size, "items per model call"),
        ("--max-new-tokens", int, defaults.max_new_tokens, "cap on generated reasoning tokens"),
        ("--decode-workers", int, defaults.decode_workers, "threads decoding ahead of the model"),
    )
    for flag, kind, default, meaning in numbers:
        group.add_argument(flag, type=kind, default=default, help=f"{meaning} (default {default:g})")
    group.add_argument("--max-file-size", default="2GiB", help="larger files fail (default 2GiB)")
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: best available)")
    group.add_argument(
        "--prune",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="remove files deleted from disk under the given roots (default: on)",
    )
    group.add_argument(
        "--reembed",
        action="store_true",
        help="if the collection was built by another model or mode, empty it and embed all it held again",
    )
    group.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default=None,
        help="int8: keep vectors as int8 in RAM (4x less memory; originals on disk rescore the best "
        "hits); none: full precision. Switches an existing collection without embedding again "
        f"(default: {default_quantization()})",
    )


def config_from_args(args: argparse.Namespace) -> IndexConfig:
    """An `IndexConfig` from parsed flags; raises pydantic's ValidationError on bad values."""
    values = {name: getattr(args, name) for name in IndexConfig.model_fields if hasattr(args, name)}
    return IndexConfig(**values)


def validation_message(error: Exception) -> str:
    """One line out of a pydantic ValidationError: the first problem and its field."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return str(error)
    first = errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    flag = f"--{where.replace('_', '-')}: " if where else ""
    return f"{flag}{first.get('msg', 'invalid value')}".replace("Value error, ", "")
