"""Schema migrations: an older collection is upgraded in place when it is opened, never rejected.

Each step takes a collection from version N to N+1 and is idempotent, and the collection's info
records the new version only after its step has finished. A process killed during an upgrade
therefore leaves a collection that still says version N, opens, and finishes the step the next
time; running a step twice changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from indexer.catalog import schema
from indexer.catalog.schema import FileRecord
from indexer.catalog.store import CollectionInfo, Store, StoreError
from model.dates import UNKNOWN_DATE, taken_date

log = logging.getLogger(__name__)

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


def record_dates(store: Store, name: str, info: CollectionInfo) -> None:
    """3 -> 4: every item and file record says when its file was taken or made.

    Dates are read from the files that are still there (their metadata, else their modification
    time); a file that is gone (deleted, or on a disk not mounted now) is marked "unknown", and
    the next indexing run that finds it unchanged reads its date then. File by file, each in one
    write, so an interrupted step carries on with the files still undated.
    """
    store.ensure_payload_indexes(name, schema.PAYLOAD_INDEXES)
    records = [FileRecord.from_payload(p) for _, p, _ in store.scroll(name, schema.files_without_date())]
    if records:
        log.info("recording when %d indexed files were made (once, for this version of ume)", len(records))
    for record in records:
        path = Path(record.path)
        taken = taken_date(path, record.facts.kind) if path.is_file() else UNKNOWN_DATE
        store.set_payload_where(name, schema.of_file(record.path), schema.date_payload(taken))
    store.set_payload_where(name, schema.points_without_date(), schema.date_payload(UNKNOWN_DATE))


STEPS: dict[int, Step] = {1: list_item_vectors, 2: separate_mode_from_slots, 3: record_dates}


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
