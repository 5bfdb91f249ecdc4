"""When a media file was taken or made: the photo's EXIF date, the video container's creation
time, the PDF's creation date; else the file's modification time, marked as such.

Design decisions:
- A date is a wall-clock time without a time zone, kept as whole seconds since
  1970-01-01T00:00 on that clock ("floating" time), the way photo libraries show it: a photo
  taken at 14:03 in Lisbon reads 14:03 wherever it is searched, and a filter from 2024-06-01
  means that calendar day as the items' own clocks read it. EXIF and PDF dates are such clock
  readings already; times kept in UTC (a video container's) and modification times are turned
  into this machine's local time first.
- Bad or absent metadata never fails a file: each reader's failure falls through to the next
  source, down to the modification time, and only a file that cannot even be stat'ed is
  "unknown".
- Readers read headers only (no pixels, frames or pages), so dating a file costs milliseconds.
"""

from __future__ import annotations

import calendar
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, NamedTuple

from PIL import Image

from model.media import pdf_metadata

log = logging.getLogger(__name__)

DateSource = Literal["exif", "container", "pdf", "mtime", "unknown"]
EXIF_IFD = 0x8769  # the Exif sub-IFD, where the camera's own dates live
EXIF_DATE_TAGS = (36867, 36868)  # DateTimeOriginal, DateTimeDigitized (in the Exif IFD)
EXIF_DATETIME = 306  # DateTime (in IFD0): when the file was last written by the camera or an editor
# A container's creation time in local wall-clock time (Apple devices) comes before its UTC one.
CONTAINER_LOCAL_KEYS = ("com.apple.quicktime.creationdate",)
CONTAINER_UTC_KEYS = ("creation_time",)
EARLIEST_YEAR = 1900  # earlier "dates" are unset fields (0000:00:00) or garbage
FUTURE_SLACK = timedelta(days=2)  # a clock a little ahead (time zones) is still believed
_EPOCH = datetime(1970, 1, 1)
_EXIF_PATTERN = re.compile(r"(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_PDF_PATTERN = re.compile(r"^(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?")


class TakenDate(NamedTuple):
    """When an item was taken or made, and where that was read from."""

    seconds: int | None  # wall-clock seconds since 1970-01-01T00:00 (see above); None: unknown
    source: DateSource

    @property
    def iso(self) -> str | None:
        """`2024-06-01T14:03:00`, or None when unknown."""
        return None if self.seconds is None else iso_of(self.seconds)


UNKNOWN_DATE = TakenDate(None, "unknown")


def iso_of(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).isoformat()


def wall_seconds(moment: datetime) -> int:
    """A naive wall-clock datetime as floating seconds (its own clock, read as if UTC)."""
    return calendar.timegm(moment.replace(tzinfo=None).timetuple())


def taken_date(path: Path, kind: str, mtime: float | None = None) -> TakenDate:
    """When the file was made: its metadata's date, else its modification time (`mtime`, or
    read from the file), else unknown. Never raises."""
    reader, source = READERS.get(kind, (None, "unknown"))
    if reader is not None:
        try:
            found = reader(Path(path))
        except Exception as error:  # any library's error on odd metadata means: no date there
            log.debug("no %s date in %s: %s", source, path, error)
            found = None
        if found is not None and believable(found):
            return TakenDate(wall_seconds(found), source)  # type: ignore[arg-type]
    return modified_date(path, mtime)


def modified_date(path: Path, mtime: float | None = None) -> TakenDate:
    """The file's modification time in this machine's local time, marked as such."""
    try:
        stamp = Path(path).stat().st_mtime if mtime is None else mtime
        return TakenDate(wall_seconds(datetime.fromtimestamp(stamp)), "mtime")
    except (OSError, OverflowError, ValueError):
        return UNKNOWN_DATE


def believable(moment: datetime) -> bool:
    return moment.year >= EARLIEST_YEAR and moment.replace(tzinfo=None) <= datetime.now() + FUTURE_SLACK


def exif_date(path: Path) -> datetime | None:
    """DateTimeOriginal (else DateTimeDigitized, else DateTime) from the image's EXIF."""
    with Image.open(path) as image:
        exif = image.getexif()
        camera = exif.get_ifd(EXIF_IFD)
        for value in [camera.get(tag) for tag in EXIF_DATE_TAGS] + [exif.get(EXIF_DATETIME)]:
            found = parse_exif_date(value)
            if found is not None:
                return found
    return None


def parse_exif_date(value: object) -> datetime | None:
    """`2024:06:01 14:03:00` (some writers use dashes); blanks and zeros are no date."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    found = _EXIF_PATTERN.search(value) if isinstance(value, str) else None
    if found is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in found.groups())
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def container_date(path: Path) -> datetime | None:
    """The video container's creation time: a local one as stated, else the UTC one in local time."""
    import av  # imported lazily: only videos pay for it

    with av.open(str(path), metadata_errors="ignore") as container:
        tags = [dict(container.metadata)] + [dict(stream.metadata) for stream in container.streams]
    for keys, local in ((CONTAINER_LOCAL_KEYS, True), (CONTAINER_UTC_KEYS, False)):
        for value in (found[key] for found in tags for key in keys if key in found):
            moment = parse_iso_date(value, local)
            if moment is not None and moment > _EPOCH:  # 0 (1904 or 1970) means "not set"
                return moment
    return None


def parse_iso_date(value: str, keep_wall_clock: bool) -> datetime | None:
    """An ISO 8601 time as a naive wall-clock datetime: its own clock (`keep_wall_clock`), or
    converted to this machine's local time (a time without a zone is taken as UTC)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if keep_wall_clock:
        return moment.replace(tzinfo=None)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().replace(tzinfo=None)


def pdf_date(path: Path) -> datetime | None:
    """The PDF's /CreationDate (`D:YYYYMMDDHHmmSS+HH'mm'`), on the clock it was written with."""
    return parse_pdf_date(pdf_metadata(path).get("CreationDate", ""))


def parse_pdf_date(value: str) -> datetime | None:
    found = _PDF_PATTERN.match(value.strip())
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(part) if part else None for part in found.groups())
    try:
        return datetime(year or 0, month or 1, day or 1, hour or 0, minute or 0, second or 0)
    except ValueError:
        return None


READERS: dict[str, tuple[Callable[[Path], datetime | None] | None, DateSource]] = {
    "image": (exif_date, "exif"),
    "video": (container_date, "container"),
    "document": (pdf_date, "pdf"),
}
