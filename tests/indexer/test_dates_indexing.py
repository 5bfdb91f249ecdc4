"""An indexing run records when each file was made on its items and its record: the photo's EXIF
date, the PDF's creation date, else the file's mtime (marked); a copied file carries its own
date; a file whose date is unknown (it was away when its collection was upgraded) gets it on
the next run that finds it unchanged, without being embedded again."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF
from PIL import Image

from indexer.catalog import schema
from indexer.catalog.open import open_store
from indexer.catalog.store import Match
from indexer.config import IndexConfig
from indexer.run import index_folders
from model.dates import EXIF_DATE_TAGS, EXIF_IFD, UNKNOWN_DATE, wall_seconds
from tests.indexer.conftest import CountingEncoder

TAKEN = datetime(2024, 6, 1, 14, 3)
CREATED = datetime(2020, 1, 2, 3, 4, 5)
MODIFIED = datetime(2017, 9, 9, 9, 0)


def make_library(root: Path) -> Path:
    root.mkdir()
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[EXIF_DATE_TAGS[0]] = TAKEN.strftime("%Y:%m:%d %H:%M:%S")
    Image.new("RGB", (40, 32), "red").save(root / "camera.jpg", exif=exif)
    Image.new("RGB", (40, 32), "blue").save(root / "drawing.png")
    os.utime(root / "drawing.png", (MODIFIED.timestamp(), MODIFIED.timestamp()))
    pdf = FPDF(format=(60, 40))
    pdf.add_page()
    pdf.set_creation_date(CREATED)
    pdf.output(str(root / "letter.pdf"))
    return root


def run(root: Path, encoder: CountingEncoder, data_dir: Path) -> Any:
    encoder.encoded_items = 0
    config = IndexConfig(
        roots=[root], model=str(encoder.model_id), mode="disc", pdf_dpi=40, batch_size=4, data_dir=data_dir
    )
    return index_folders(config, encoder=encoder, progress=False)


def dates(data_dir: Path) -> dict[tuple[str, str], tuple[Any, str]]:
    """(file name, record kind) -> (taken, taken_source) of every point."""
    with open_store(data_dir) as store:
        points = list(store.scroll("media"))
    return {
        (Path(payload["path"]).name, payload["record"]): (payload.get("taken"), payload["taken_source"])
        for _, payload, _ in points
    }


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return make_library(tmp_path / "library")


def test_items_and_records_say_when_their_file_was_made(
    library: Path, encoder: CountingEncoder, tmp_path: Path
) -> None:
    run(library, encoder, tmp_path / "index")
    shutil.copy(library / "camera.jpg", library / "copy.jpg")  # a new mtime, the same EXIF
    summary = run(library, encoder, tmp_path / "index")
    assert summary.reused == 1 and encoder.encoded_items == 0
    expected = {
        "camera.jpg": (wall_seconds(TAKEN), "exif"),
        "copy.jpg": (wall_seconds(TAKEN), "exif"),
        "drawing.png": (wall_seconds(MODIFIED), "mtime"),
        "letter.pdf": (wall_seconds(CREATED), "pdf"),
    }
    found = dates(tmp_path / "index")
    assert found == {(name, record): taken for name, taken in expected.items() for record in ("item", "file")}


def test_an_unknown_date_is_read_when_the_file_is_found_unchanged(
    library: Path, encoder: CountingEncoder, tmp_path: Path
) -> None:
    run(library, encoder, tmp_path / "index")
    with open_store(tmp_path / "index") as store:  # as an upgrade leaves a file that was away
        store.set_payload_where(
            "media", schema.of_file(str(library / "camera.jpg")), schema.date_payload(UNKNOWN_DATE)
        )
        assert store.count("media", Match(fields={"taken_source": "unknown"})) == 2
    summary = run(library, encoder, tmp_path / "index")
    assert summary.unchanged == 3 and encoder.encoded_items == 0
    found = dates(tmp_path / "index")
    assert found[("camera.jpg", "item")] == found[("camera.jpg", "file")] == (wall_seconds(TAKEN), "exif")
