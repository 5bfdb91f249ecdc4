"""Checks every engine makes before it stores or searches, and the errors a user can fix."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from indexer.catalog.store import VECTOR_NAMES, CollectionInfo, Point, StoreError

COLLECTION_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

QUANTIZATIONS = ("int8", "none")  # how a collection may be asked to keep its vectors


def check_quantization(quantization: str) -> None:
    if quantization not in QUANTIZATIONS:
        raise StoreError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")


def check_collection_name(name: str) -> None:
    """Names become directory names in the embedded engine, so keep them plain."""
    if not COLLECTION_NAME_PATTERN.match(name):
        raise StoreError(f"invalid collection name {name!r}: use 1-64 letters, digits, '_' or '-'")


def check_info(info: CollectionInfo) -> None:
    """A collection needs at least one known vector name and a positive dimension."""
    unknown = [v for v in info.vectors if v not in VECTOR_NAMES]
    if not info.vectors or unknown or len(set(info.vectors)) != len(info.vectors):
        raise ValueError(f"vectors must be distinct names from {VECTOR_NAMES}, got {info.vectors}")
    if info.dim <= 0:
        raise ValueError(f"dim must be positive, got {info.dim}")


def needs_creation(name: str, existing: CollectionInfo | None, wanted: CollectionInfo) -> bool:
    """False when the collection already exists as wanted; StoreError when it holds another."""
    if existing is None:
        return True
    if replace(existing, quantization=wanted.quantization) == wanted:
        return False  # how vectors are kept is changed by `set_quantization`, not by creating
    raise StoreError(
        f"collection {name!r} already exists for {existing.model_id} ({existing.dim}-d, schema "
        f"{existing.schema_version}): drop it or choose another name"
    )


def missing_collection(name: str, where: str) -> StoreError:
    return StoreError(f"no collection {name!r} in {where}: index some folders first")


def closed_error(where: str) -> StoreError:
    return StoreError(f"the index at {where} was closed: open it again")


def in_use_error(where: str) -> StoreError:
    return StoreError(
        f"cannot open index at {where}: it is in use by another ume process "
        "(close it, or use --qdrant-url for a shared server)"
    )


def check_points(name: str, info: CollectionInfo, points: Sequence[Point]) -> None:
    """Reject vectors the collection was not built for before they reach an engine."""
    for point in points:
        for vector_name, vector in point.vectors.items():
            check_vector(name, info, vector_name, len(vector))


def check_vector(name: str, info: CollectionInfo, vector_name: str, size: int) -> None:
    if vector_name not in info.vectors:
        held = ", ".join(info.vectors) or "none"
        raise StoreError(
            f"collection {name!r} holds no {vector_name!r} vectors (it holds: {held}); "
            "re-index with that embedding mode"
        )
    if size != info.dim:
        raise StoreError(
            f"collection {name!r} holds {info.dim}-d vectors from {info.model_id}, got {size}-d: "
            "use the same model or re-index into a new collection"
        )


def as_float32(vector: list[float] | np.ndarray) -> np.ndarray:
    return np.asarray(vector, dtype=np.float32).reshape(-1)
