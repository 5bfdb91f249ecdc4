"""Dates in search: the range a query keeps (`--after` / `--before`), the order hits come in,
and how an item's date reads.

Design decisions:
- Dates are the items' own wall-clock dates (`model.dates`), so `--after 2024-06-01` keeps what
  was made on that calendar day or later, as the items' clocks read it.
- A bound may be a year (`2024`), a month (`2024-06`), a day (`2024-06-01`) or a time
  (`2024-06-01T18:00`); both bounds are inclusive and cover their whole period, so
  `--after 2024 --before 2024` is the year 2024. Items whose date is unknown never match a range.
- Sorting by date re-orders the best matches (the `top_k` a search returns) by when they were
  made, newest or oldest first, items of unknown date last: the same hits a score-sorted search
  shows, in another order. Sorting a whole library by date is not searching it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal, Protocol, TypeVar, get_args

from model.dates import wall_seconds

SortOrder = Literal["score", "newest", "oldest"]
SORT_ORDERS: tuple[SortOrder, ...] = get_args(SortOrder)
SORT_DESCRIPTIONS: dict[SortOrder, str] = {
    "score": "best match first",
    "newest": "the best matches, newest first",
    "oldest": "the best matches, oldest first",
}
DATE_SOURCE_WORDS = {"mtime": "file date", "unknown": "date unknown"}  # how a weaker date is marked
_PERIOD = re.compile(r"^(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?$")
DATE_FORMS = "YYYY-MM-DD (or YYYY-MM, YYYY, YYYY-MM-DDTHH:MM)"

TakenRange = tuple[int | None, int | None]  # inclusive wall-clock seconds; None: open


class DateError(ValueError):
    """A date bound the user can fix; the message is one line."""


class Dated(Protocol):
    taken: str | None  # ISO wall-clock time, or None when unknown


H = TypeVar("H", bound=Dated)


def taken_range(after: str | None, before: str | None) -> TakenRange | None:
    """The inclusive range of wall-clock seconds `after`..`before` keep, or None for no bound."""
    low = bound(after, "after", end=False)
    high = bound(before, "before", end=True)
    if low is None and high is None:
        return None
    if low is not None and high is not None and low > high:
        raise DateError(f"after {after} is later than before {before}: no date is in between")
    return low, high


def bound(text: str | None, name: str, end: bool) -> int | None:
    """The first (or, for `end`, the last) second of the period `text` names."""
    text = (text or "").strip()
    if not text:
        return None
    start, length = period(text, name)
    return wall_seconds(start + length) - 1 if end else wall_seconds(start)


def period(text: str, name: str) -> tuple[datetime, timedelta]:
    """The start of the year, month, day or minute `text` names, and its length."""
    problem = DateError(f"{name} {text!r} is not a date: use {DATE_FORMS}")
    found = _PERIOD.match(text)
    try:
        if found is None:
            moment = datetime.fromisoformat(text)
            return moment.replace(tzinfo=None), timedelta(minutes=1)
        year, month, day = (int(part) if part else None for part in found.groups())
        start = datetime(year or 1, month or 1, day or 1)
    except ValueError:
        raise problem from None
    if day is not None:
        return start, timedelta(days=1)
    if month is not None:
        following = datetime(start.year + start.month // 12, start.month % 12 + 1, 1)
        return start, following - start
    return start, datetime(start.year + 1, 1, 1) - start


def check_sort(sort: str | None) -> SortOrder:
    if not sort:
        return "score"
    if sort not in SORT_ORDERS:
        raise DateError(f"unknown sort {sort!r}: use one of {', '.join(SORT_ORDERS)}")
    return sort  # type: ignore[return-value]


def in_order(hits: list[H], sort: SortOrder) -> list[H]:
    """The hits as `sort` wants them (they come best first); unknown dates last, ties by score."""
    if sort == "score":
        return hits
    dated = [hit for hit in hits if hit.taken is not None]
    undated = [hit for hit in hits if hit.taken is None]
    dated.sort(key=lambda hit: hit.taken or "", reverse=sort == "newest")  # stable: score breaks ties
    return dated + undated


def date_label(taken: str | None, source: str) -> str:
    """`2024-06-01`, or `2024-06-01 (file date)` when it is only the file's modification time."""
    if taken is None:
        return DATE_SOURCE_WORDS["unknown"]
    day = taken[:10]
    return f"{day} ({DATE_SOURCE_WORDS[source]})" if source in DATE_SOURCE_WORDS else day
