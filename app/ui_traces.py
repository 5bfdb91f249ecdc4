"""Traces tab: browse indexed items by kind, folder and words, and read their stored reasoning."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import gradio as gr

from app.search import IndexedItem
from app.ui_context import AppContext
from app.ui_detail import empty_detail, item_detail
from app.ui_search import USER_ERRORS, none_if_all, status_html

BROWSE_LIMIT = 500  # rows shown at once; narrow the filters to see others
PREVIEW_CHARACTERS = 90
TABLE_HEADERS = ["file", "kind", "where", "summary", "reasoning (start)"]
TABLE_WIDTHS: list[str | int] = ["26%", "11%", "11%", "20%", "32%"]
SELECT_ROW = "Select a row to read its reasoning."


def preview(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= PREVIEW_CHARACTERS else flat[: PREVIEW_CHARACTERS - 1] + "…"


def table_row(item: IndexedItem) -> list[str]:
    return [item.name, item.kind, item.where, preview(item.summary), preview(item.reasoning)]


class TracesHandlers:
    """The Traces tab's event functions, bound to one app context."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def browse(
        self, kind: str, folder: str, contains: str
    ) -> tuple[list[list[str]], list[dict[str, Any]], str]:
        """Items matching the filters, in path order, as table rows and as state."""
        if self.ctx.service is None:
            return (
                [],
                [],
                status_html("; ".join(self.ctx.problems) or "no index is open", error=True),
            )
        try:
            items = self.ctx.service.browse(
                none_if_all(kind), folder or None, contains, limit=BROWSE_LIMIT + 1
            )
        except USER_ERRORS as error:
            return [], [], status_html(str(error), error=True)
        shown = items[:BROWSE_LIMIT]
        more = " (narrow the filters to see the rest)" if len(items) > BROWSE_LIMIT else ""
        message = f"{len(shown)} item{'s' if len(shown) != 1 else ''}{more}"
        return [table_row(i) for i in shown], [asdict(i) for i in shown], status_html(message)

    def select(self, items: list[dict[str, Any]], event: gr.SelectData) -> tuple[Any, ...]:
        """Show the row a user clicked."""
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        if not isinstance(row, int) or not 0 <= row < len(items or []):
            return empty_detail(SELECT_ROW).as_outputs()
        return item_detail(self.ctx, IndexedItem(**items[row])).as_outputs()
