"""Room for another named vector in an existing collection, keeping every point it holds.

Neither engine can add a vector slot to a collection, so widening copies: the points go to a
staging collection made with the wider slots, the collection is made again with them, and the
points come back. Every step is idempotent (points keep their ids), and the order makes a
killed widening safe:

    staging exists, collection still narrow   the first copy was cut short: drop the staging
                                              (the run that asked for the room widens again)
    staging exists, collection wide or gone   the staging holds every point: finish copying
                                              it back, then drop it

`resume_widening` runs whenever a collection is opened, so no point is ever lost to a crash.
Collections made since slots were kept apart from modes hold every slot from the start and are
never widened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from indexer.catalog.store import VECTOR_NAMES, CollectionInfo, Point, Store

STAGING_SUFFIX = "--widening"
COPY_BATCH = 256  # points per scroll page and upsert


def staging_name(collection: str) -> str:
    """The staging collection's name (collection names are at most 64 characters)."""
    return collection[: 64 - len(STAGING_SUFFIX)] + STAGING_SUFFIX


def is_staging(collection: str) -> bool:
    return collection.endswith(STAGING_SUFFIX)


def widen(store: Store, collection: str, info: CollectionInfo, vectors: Iterable[str]) -> CollectionInfo:
    """Give `collection` slots for `vectors` too; returns its new info."""
    held = set(info.vectors) | set(vectors)
    wide = replace(info, vectors=tuple(name for name in VECTOR_NAMES if name in held))
    staging = staging_name(collection)
    store.create_collection(staging, wide)  # a no-op when a cut-short copy left it
    _copy(store, collection, staging)
    store.drop_collection(collection)
    store.create_collection(collection, wide)
    _copy(store, staging, collection)
    store.drop_collection(staging)
    return wide


def resume_widening(store: Store, collection: str) -> None:
    """Finish or undo a widening that a killed process left half done (see the module docstring)."""
    staging = staging_name(collection)
    wide = store.collection_info(staging)
    if wide is None:
        return
    info = store.collection_info(collection)
    if info is not None and not set(wide.vectors) <= set(info.vectors):
        store.drop_collection(staging)
        return
    if info is None:
        store.create_collection(collection, wide)
    _copy(store, staging, collection)
    store.drop_collection(staging)


def _copy(store: Store, source: str, target: str) -> None:
    page: list[Point] = []
    for point_id, payload, vectors in store.scroll(source, with_vectors=True, batch=COPY_BATCH):
        page.append(Point(point_id, payload, dict(vectors)))
        if len(page) == COPY_BATCH:
            store.upsert(target, page)
            page = []
    if page:
        store.upsert(target, page)
