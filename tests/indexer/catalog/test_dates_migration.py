"""A version 3 collection (before items recorded when they were made) opens on both engines, is
upgraded in place, and loses nothing: dates are read from the files still there, files that are
gone are marked unknown, and the date filter works on the upgraded collection."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from fpdf import FPDF
from PIL import Image

from indexer.catalog import schema
from indexer.catalog.collection import open_collection
from indexer.catalog.open import open_store
from indexer.catalog.schema import OK, FileFacts, FileRecord, ItemPlace, ItemRecord
from indexer.catalog.store import CollectionInfo, Point, Store
from model.dates import EXIF_DATE_TAGS, EXIF_IFD, wall_seconds

DIM = 4
V3 = CollectionInfo("tiny-ume", DIM, 3, ("disc", "gen"), mode="both")
TAKEN = datetime(2024, 6, 1, 14, 3)  # the photo's EXIF date
CREATED = datetime(2021, 2, 3, 4, 5, 6)  # the PDF's creation date
MODIFIED = datetime(2018, 8, 8, 8, 0)  # the plain picture's mtime (local time)


def library(root: Path) -> dict[str, Path]:
    """A photo with EXIF, a two-page PDF, a picture with no date but its mtime, one gone file."""
    root.mkdir()
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[EXIF_DATE_TAGS[0]] = TAKEN.strftime("%Y:%m:%d %H:%M:%S")
    Image.new("RGB", (16, 16), "red").save(root / "photo.jpg", exif=exif)
    pdf = FPDF()
    pdf.add_page()
    pdf.add_page()
    pdf.set_creation_date(CREATED)
    pdf.output(str(root / "notes.pdf"))
    Image.new("RGB", (16, 16), "blue").save(root / "plain.png")
    os.utime(root / "plain.png", (MODIFIED.timestamp(), MODIFIED.timestamp()))
    return {name: root / name for name in ("photo.jpg", "notes.pdf", "plain.png", "gone.jpg")}


KINDS = {
    "photo.jpg": ("image", 1),
    "notes.pdf": ("document", 2),
    "plain.png": ("image", 1),
    "gone.jpg": ("image", 1),
}


def v3_points(files: dict[str, Path]) -> list[Point]:
    """What ume wrote at schema 3: items and records with no `taken` / `taken_source`."""
    points, axis = [], 0
    for name, path in files.items():
        kind, count = KINDS[name]
        facts = FileFacts(str(path), str(path.parent), kind, 100, 1.5e9, f"fp-{name}", "tiny-ume")
        for segment in range(count):
            vector = np.eye(DIM, dtype=np.float32)[axis % DIM]
            place = ItemPlace(segment, page=segment + 1 if kind == "document" else None)
            points.append(ItemRecord(facts, place, "why", "what").to_point({"disc": vector, "gen": vector}))
            axis += 1
        points.append(FileRecord(facts, OK, points=count).to_point())
    orphan = FileFacts("/elsewhere/orphan.jpg", "/elsewhere", "image", 1, 1.0, "fp-orphan", "tiny-ume")
    points.append(
        ItemRecord(orphan, ItemPlace(0), "why", "what").to_point({"disc": np.ones(DIM), "gen": np.ones(DIM)})
    )
    for point in points:
        del point.payload["taken"], point.payload["taken_source"]
    return points


def location(engine: str, tmp_path: Path) -> dict[str, object]:
    return {"data_dir": tmp_path / "edge"} if engine == "edge" else {"qdrant_url": f"local:{tmp_path / 'q'}"}


def dates_by_path(store: Store) -> dict[str, set[tuple[object, object]]]:
    found: dict[str, set[tuple[object, object]]] = {}
    for _, payload, _ in store.scroll("media"):
        found.setdefault(Path(payload["path"]).name, set()).add(
            (payload.get("taken"), payload["taken_source"])
        )
    return found


@pytest.mark.parametrize("engine", ["edge", "server"])
def test_a_version_3_collection_gets_its_dates_and_keeps_everything(engine: str, tmp_path: Path) -> None:
    files = library(tmp_path / "library")
    written = v3_points(files)
    with open_store(**location(engine, tmp_path)) as store:  # type: ignore[arg-type]
        store.create_collection("media", V3)
        store.upsert("media", written)
        before = {point_id: payload for point_id, payload, _ in store.scroll("media", with_vectors=True)}
    with open_store(**location(engine, tmp_path)) as store:  # type: ignore[arg-type]
        info = open_collection(store, "media")
        assert info is not None and info.schema_version == schema.SCHEMA_VERSION == 4
        after = {
            point_id: (payload, vectors)
            for point_id, payload, vectors in store.scroll("media", with_vectors=True)
        }
        assert after.keys() == before.keys()  # nothing lost, nothing added
        for point_id, (payload, vectors) in after.items():
            kept = {key: value for key, value in payload.items() if key not in ("taken", "taken_source")}
            assert kept == before[point_id]
            original = next(p for p in written if p.id == point_id)
            assert vectors.keys() == original.vectors.keys()
        assert dates_by_path(store) == {
            "photo.jpg": {(wall_seconds(TAKEN), "exif")},
            "notes.pdf": {(wall_seconds(CREATED), "pdf")},  # both pages and the record
            "plain.png": {(wall_seconds(MODIFIED), "mtime")},
            "gone.jpg": {(None, "unknown")},
            "orphan.jpg": {(None, "unknown")},
        }
        june = schema.items(
            taken=(wall_seconds(datetime(2024, 6, 1)), wall_seconds(datetime(2024, 6, 2)) - 1)
        )
        hits = store.search("media", "disc", np.eye(DIM, dtype=np.float32)[0], 10, june)
        assert [Path(hit.payload["path"]).name for hit in hits] == ["photo.jpg"]
        assert store.count("media", schema.items(taken=(None, wall_seconds(datetime(2022, 1, 1))))) == 3
        assert open_collection(store, "media") == info  # a second open changes nothing
