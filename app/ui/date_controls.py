"""The Search tab's dates: the range a search keeps (after, before) and the order of its hits.

Dates are typed (or picked) as `YYYY-MM-DD`; the search service reads them (`app.search_dates`),
so a date it cannot read comes back as one line in the status, like any other mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.search_dates import SORT_ORDERS, SortOrder

SORT_CHOICES: list[tuple[str, SortOrder]] = [
    ("Best match", "score"),
    ("Newest first", "newest"),
    ("Oldest first", "oldest"),
]
DateValues = tuple[str | None, str | None, str]  # after, before, sort
NO_DATES: DateValues = (None, None, "score")
LAYOUT: dict[str, Any] = {"scale": 1, "min_width": 150}


@dataclass
class DateControls:
    after: gr.DateTime
    before: gr.DateTime
    sort: gr.Dropdown

    @property
    def inputs(self) -> list[Any]:
        return [self.after, self.before, self.sort]


def date_controls() -> DateControls:
    """The three controls, laid out where they are called (beside kind and folder)."""
    options: dict[str, Any] = {"include_time": False, "type": "string", **LAYOUT}
    return DateControls(
        after=gr.DateTime(label="Made from", elem_id="ume-after", **options),
        before=gr.DateTime(label="Made until", elem_id="ume-before", **options),
        sort=gr.Dropdown(SORT_CHOICES, value="score", label="Order", elem_id="ume-sort", **LAYOUT),
    )


def date_values(values: Sequence[str | None]) -> DateValues:
    """The handlers' trailing inputs (after, before, sort) as one value; missing ones are open."""
    after, before, sort = [*values, None, None, None][:3]
    return after or None, before or None, sort if sort in SORT_ORDERS else "score"


def deep_link_dates(params: dict[str, str]) -> list[Any]:
    """After, before and order from a page's link (`?after=2024-06-01&sort=newest`)."""
    sort = params.get("sort", "score")
    return [params.get("after", ""), params.get("before", ""), sort if sort in SORT_ORDERS else "score"]
