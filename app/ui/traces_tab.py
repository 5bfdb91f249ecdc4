"""Traces tab: browse indexed items by kind, folder and words, and read their stored reasoning."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import gradio as gr

from app.context import AppContext
from app.hits import IndexedItem
from app.ui.controls import ALL_FOLDERS, KIND_CHOICES, USER_ERRORS, none_if_all, status_html
from app.ui.detail import detail_pane, empty_detail, item_detail

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


def build_traces_tab(ctx: AppContext, tab: gr.Tab) -> gr.Dropdown:
    """Browse indexed items and their reasoning; returns the folder filter (filled on load)."""
    handlers = TracesHandlers(ctx)
    with gr.Row(equal_height=True):
        kind = gr.Dropdown(KIND_CHOICES, value="all", label="Kind", scale=1)
        folder = gr.Dropdown([ALL_FOLDERS], value="", label="Folder", allow_custom_value=True, scale=2)
        contains = gr.Textbox(label="Words in the reasoning, summary or path", scale=2)
        show = gr.Button("Show", variant="primary", scale=0, min_width=100)
    status = gr.HTML()
    with gr.Row():
        with gr.Column(scale=3):
            table = gr.Dataframe(
                headers=TABLE_HEADERS,
                datatype="str",
                interactive=False,
                wrap=True,
                max_height=640,
                elem_id="ume-traces",
                column_widths=TABLE_WIDTHS,
            )
        with gr.Column(scale=2):
            pane = detail_pane("ume-trace-reasoning", SELECT_ROW)
    items = gr.State([])
    filters = [kind, folder, contains]
    outputs: list[Any] = [table, items, status]
    show.click(handlers.browse, filters, outputs, api_name="browse_traces")
    contains.submit(handlers.browse, filters, outputs, api_visibility="private")
    tab.select(handlers.browse, filters, outputs, api_visibility="private")
    table.select(handlers.select, [items], pane.outputs, api_visibility="private", queue=False)
    return folder
