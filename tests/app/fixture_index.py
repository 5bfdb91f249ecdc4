"""A small searchable index for the search, UI and browser tests, written through the store API.

The example media is copied into a temporary root (so the served-files boundary is a folder the
test owns), embedded with the tiny model in both modes, and stored with the indexer's own record
builders, each file dated as the indexer dates it. The copies get known modification times
(`FILE_DAYS`: the example pictures and clip carry no date of their own; the PDF's own creation
date, 2026-01-01, is what it records). Each item's reasoning is a known sentence that includes
literal `<think>` and `<answer>` tags, so tests can check that the UI shows them as text.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from indexer.catalog.collection import collection_info, resolved_model_id
from indexer.catalog.fingerprint import fingerprint
from indexer.catalog.open import open_store
from indexer.catalog.schema import OK, ItemPlace, ItemRecord
from indexer.catalog.store import Store
from indexer.load import LoadSettings
from indexer.scan import dated, walk
from indexer.state import facts_of, file_record
from model.encoder import Encoder
from model.inputs import EmbedInput, VisionBudget, inputs_from_path
from model.media import DEFAULT_PDF_DPI

COLLECTION = "media"
MAX_NEW_TOKENS = 8
SEGMENT_SECONDS = 4.0  # the 12 s example clip becomes three segments
# Small pictures keep the tiny model quick; queries use the same encoder, so they match.
TEST_BUDGET = VisionBudget(image_max_pixels=224 * 224, video_max_pixels=64 * 28 * 28)
# The copies' modification times (local noon), which are their dates ("file date").
FILE_DAYS = {
    "photos/ancient_greek_coins.png": "2019-02-10",
    "photos/astronaut_in_orange_spacesuit.jpg": "2020-07-20",
    "photos/café & friends/espresso_cup_on_saucer.jpg": "2021-03-05",
    "photos/hubble_deep_field_galaxies.jpg": "2022-11-30",
    "photos/rocket_on_launch_pad_at_dusk.jpg": "2023-06-15",
    "photos/tabby_cat_closeup.jpg": "2024-06-01",
    "videos/circle_square_hello.mp4": "2025-01-09",
}
PDF_DAY = "2026-01-01"  # the example PDF's /CreationDate


@dataclass(frozen=True)
class FixtureIndex:
    root: Path  # the indexed root: a copy of examples/media
    data_dir: Path  # the embedded store (closed; open it with `open_store(data_dir=...)`)
    model_dir: Path
    items: int


_BUILT: dict[Path, FixtureIndex] = {}


def load_encoder(model_dir: Path) -> Encoder:
    return Encoder.from_pretrained(model_dir, budget=TEST_BUDGET)


def shared_index(model_dir: Path, examples: Path, factory: pytest.TempPathFactory) -> FixtureIndex:
    """The fixture index, built once per test session and shared by every module that asks."""
    base = factory.getbasetemp() / "search-index"
    if base not in _BUILT:
        base.mkdir()
        root = copy_examples(examples, base)
        with open_store(data_dir=base / "data") as store:
            items = fill_store(store, load_encoder(model_dir), root)
        _BUILT[base] = FixtureIndex(root, base / "data", model_dir, items)
    return _BUILT[base]


def reasoning_for(path: Path) -> str:
    """The stored reasoning of every item of `path`: unique per file, with tags kept as text."""
    return f"Reasoning about {path.stem}: <think>looks at {path.suffix}</think> then <answer>."


def summary_for(path: Path) -> str:
    return path.stem.replace("_", " ")


def place_of(item: EmbedInput, segment: int) -> ItemPlace:
    return ItemPlace(segment, item.page, item.start, item.end)


def fill_store(store: Store, encoder: Encoder, root: Path, collection: str = COLLECTION) -> int:
    """Embed every media file under `root` and store it as the indexer would; returns items.

    All items go through one encoder call (one batched generation), which keeps this fast.
    """
    model_id = resolved_model_id(encoder.model_id)
    store.create_collection(collection, collection_info(model_id, encoder.hidden_size, "both"))
    files = [(dated(file), inputs_from_path(file.path, SEGMENT_SECONDS)) for file in walk([root])]
    items = [item for _, file_items in files for item in file_items]
    encoded = encoder.encode_document(items, mode="both", max_new_tokens=MAX_NEW_TOKENS, batch_size=32)
    assert encoded.disc is not None and encoded.gen is not None
    settings, row = LoadSettings(SEGMENT_SECONDS, DEFAULT_PDF_DPI, 2**40, encoder.budget), 0
    for file, file_items in files:
        digest = fingerprint(file.path)
        text = (reasoning_for(file.path), summary_for(file.path))
        points = []
        for segment, item in enumerate(file_items):
            vectors = {"disc": encoded.disc[row], "gen": encoded.gen[row]}
            record = ItemRecord(facts_of(file, digest, model_id), place_of(item, segment), *text)
            points.append(record.to_point(vectors))
            row += 1
        record = file_record(file, digest, model_id, OK, len(points), settings=settings.for_kind(file.kind))
        store.upsert(collection, [*points, record])
    return row


def copy_examples(examples: Path, destination: Path) -> Path:
    root = destination / "media"
    shutil.copytree(examples, root)
    for relative, day in FILE_DAYS.items():
        noon = datetime.fromisoformat(day).replace(hour=12).timestamp()
        os.utime(root / relative, (noon, noon))
    return root.resolve()
