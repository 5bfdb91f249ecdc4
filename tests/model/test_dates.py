"""When a file was made: read from a photo's EXIF, a video's container, a PDF's creation date,
else the file's modification time (marked), and never an error, whatever the metadata says."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import av
import numpy as np
import pytest
from fpdf import FPDF
from PIL import Image

from model.dates import (
    EXIF_DATE_TAGS,
    EXIF_DATETIME,
    EXIF_IFD,
    TakenDate,
    parse_pdf_date,
    taken_date,
    wall_seconds,
)

MTIME = datetime(2019, 5, 4, 10, 0, 0)  # the files' modification time, in local time


def dated_file(path: Path) -> Path:
    stamp = MTIME.timestamp()
    os.utime(path, (stamp, stamp))
    return path


def expected(moment: datetime, source: str) -> TakenDate:
    return TakenDate(wall_seconds(moment), source)  # type: ignore[arg-type]


def write_jpeg(path: Path, original: str | None = None, plain: str | None = None) -> Path:
    """A JPEG with DateTimeOriginal (Exif IFD) and/or DateTime (IFD0), as cameras write them."""
    exif = Image.Exif()
    if plain is not None:
        exif[EXIF_DATETIME] = plain
    if original is not None:
        exif.get_ifd(EXIF_IFD)[EXIF_DATE_TAGS[0]] = original
    Image.new("RGB", (16, 16), (200, 10, 10)).save(path, exif=exif)
    return dated_file(path)


def write_mp4(path: Path, creation_time: str | None) -> Path:
    with av.open(str(path), "w") as container:
        if creation_time is not None:
            container.metadata["creation_time"] = creation_time
        stream = container.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(4):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return dated_file(path)


def write_pdf(path: Path, created: datetime | None) -> Path:
    """A PDF with this /CreationDate, or none at all (fpdf2 always writes one)."""
    if created is None:
        Image.new("RGB", (32, 32), "white").save(path, creationDate="", modDate="")
        return dated_file(path)
    pdf = FPDF()
    pdf.add_page()
    pdf.set_creation_date(created)
    pdf.output(str(path))
    return dated_file(path)


def test_a_photo_is_dated_by_its_exif_original_date_else_its_datetime(tmp_path: Path) -> None:
    both = write_jpeg(tmp_path / "both.jpg", "2024:06:01 14:03:00", "2024:07:09 08:00:00")
    assert taken_date(both, "image") == expected(datetime(2024, 6, 1, 14, 3), "exif")
    plain = write_jpeg(tmp_path / "plain.jpg", plain="2023:12:24 19:30:05")
    assert taken_date(plain, "image") == expected(datetime(2023, 12, 24, 19, 30, 5), "exif")
    assert taken_date(both, "image").iso == "2024-06-01T14:03:00"


def test_a_video_is_dated_by_its_container_creation_time_in_local_time(tmp_path: Path) -> None:
    clip = write_mp4(tmp_path / "clip.mp4", "2024-06-01T12:00:00.000000Z")
    utc = datetime.fromisoformat("2024-06-01T12:00:00+00:00")
    assert taken_date(clip, "video") == expected(utc.astimezone().replace(tzinfo=None), "container")


def test_a_pdf_is_dated_by_its_creation_date_on_its_own_clock(tmp_path: Path) -> None:
    from datetime import timedelta, timezone

    created = datetime(2022, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    document = write_pdf(tmp_path / "doc.pdf", created)
    assert taken_date(document, "document") == expected(datetime(2022, 3, 4, 5, 6, 7), "pdf")
    assert parse_pdf_date("D:2021") == datetime(2021, 1, 1)
    assert parse_pdf_date("D:20211399") is None


def test_files_without_usable_metadata_fall_back_to_their_mtime_marked_as_such(tmp_path: Path) -> None:
    fallback = expected(MTIME, "mtime")
    assert taken_date(write_jpeg(tmp_path / "none.jpg"), "image") == fallback
    assert taken_date(write_jpeg(tmp_path / "zeros.jpg", "0000:00:00 00:00:00"), "image") == fallback
    assert taken_date(write_jpeg(tmp_path / "blank.jpg", "    :  :     :  :  "), "image") == fallback
    assert taken_date(write_jpeg(tmp_path / "future.jpg", "2999:01:01 00:00:00"), "image") == fallback
    assert taken_date(write_mp4(tmp_path / "plain.mp4", None), "video") == fallback
    assert taken_date(write_mp4(tmp_path / "odd.mp4", "yesterday"), "video") == fallback
    assert taken_date(write_pdf(tmp_path / "plain.pdf", None), "document") == fallback


@pytest.mark.parametrize(("name", "kind"), [("x.jpg", "image"), ("x.mp4", "video"), ("x.pdf", "document")])
def test_broken_files_never_fail_and_gone_ones_are_unknown(tmp_path: Path, name: str, kind: str) -> None:
    broken = tmp_path / name
    broken.write_bytes(b"\x00not media at all" * 10)
    assert taken_date(dated_file(broken), kind) == expected(MTIME, "mtime")
    assert taken_date(tmp_path / "gone" / name, kind) == TakenDate(None, "unknown")
