"""Schema migrations: an older collection is upgraded in place when it is opened, never rejected.

Each step takes a collection from version N to N+1 and is idempotent, and the collection's info
records the new version only after its step has finished. A process killed during an upgrade
therefore leaves a collection that still says version N, opens, and finishes the step the next
time; running a step twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from indexer.catalog import schema
from indexer.catalog.store import CollectionInfo, Store, StoreError

Step = Callable[[Store, str, CollectionInfo], None]


class SchemaMismatch(StoreError):
    """A collection this ume cannot upgrade (written by a newer one, or too old to migrate)."""


def list_item_vectors(store: Store, name: str, info: CollectionInfo) -> None:
    """1 -> 2: index the new fields, and list on every item the vectors it holds.

    A version 1 collection filled every item with all of the collection's vectors.
    """
    store.ensure_payload_indexes(name, schema.PAYLOAD_INDEXES)
    store.set_payload_where(name, schema.items_without_vector_list(), schema.vector_list(info.vectors))


def separate_mode_from_slots(store: Store, name: str, info: CollectionInfo) -> None:
    """2 -> 3: collections record their indexing mode apart from their vector slots, and items
    may lack some vectors for a while (progressive indexing).

    Nothing in the points changes: a version 2 collection records no mode, and its mode stays
    what its vectors say (`indexer.catalog.collection.collection_mode`).
    """


STEPS: dict[int, Step] = {1: list_item_vectors, 2: separate_mode_from_slots}


def upgrade(store: Store, name: str, info: CollectionInfo) -> CollectionInfo:
    """Bring the collection to `schema.SCHEMA_VERSION`; returns its new info."""
    if info.schema_version > schema.SCHEMA_VERSION:
        raise SchemaMismatch(
            f"collection {name!r} has schema version {info.schema_version}, newer than this ume "
            f"understands ({schema.SCHEMA_VERSION}): upgrade ume to use it, or add --reembed to rebuild it"
        )
    while info.schema_version < schema.SCHEMA_VERSION:
        step = STEPS.get(info.schema_version)
        if step is None:
            raise SchemaMismatch(
                f"collection {name!r} has schema version {info.schema_version}, which this ume cannot "
                "upgrade: add --reembed to rebuild it"
            )
        step(store, name, info)
        info = replace(info, schema_version=info.schema_version + 1)
        store.record_info(name, info)  # only after the step: a crash before this redoes it
    return info
