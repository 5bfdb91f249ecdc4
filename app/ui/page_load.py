"""What a page load fills in: every live part (`live`), and the controls from its deep link.

A page load reads its deep link (`?q=…&mode=…&kind=…&folder=…&k=…&after=…&before=…&sort=…`) into
the controls; the browser then runs the linked search, so a shared link shows the same results.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import gradio as gr

from app.search_request import DEFAULT_TOP_K, SEARCH_MODES, SearchMode
from app.ui.controls import MAX_TOP_K
from app.ui.date_controls import deep_link_dates
from app.ui.live import LivePage
from indexer.catalog.schema import ITEM_KINDS


def deep_link(params: Mapping[str, str], reasons: Mapping[str, str | None]) -> list[Any]:
    """Control values from a URL query; anything unknown falls back to the default."""
    mode: SearchMode = "fast"
    wanted = params.get("mode", "fast")
    if wanted in SEARCH_MODES and reasons.get(wanted) is None:
        mode = wanted  # type: ignore[assignment]
    kind = params.get("kind", "all")
    try:
        top_k = min(max(int(params.get("k", DEFAULT_TOP_K)), 1), MAX_TOP_K)
    except ValueError:
        top_k = DEFAULT_TOP_K
    return [
        params.get("q", ""),
        mode,
        kind if kind in ITEM_KINDS else "all",
        params.get("folder", ""),
        top_k,
        *deep_link_dates(dict(params)),
    ]


class PageLoad:
    """A fresh page: every live part, then the controls its deep link names."""

    def __init__(self, live: LivePage, deep_link_outputs: list[Any]) -> None:
        self.live = live
        self.deep_link_outputs = deep_link_outputs  # text, mode, kind, folder, top_k, after, before, sort

    @property
    def outputs(self) -> list[Any]:
        """The live parts, then the deep link's controls (its folder filter is a live part)."""
        text, mode, kind, _, top_k, *dates = self.deep_link_outputs
        return [*self.live.outputs, text, mode, kind, top_k, *dates]

    def on_load(self, request: gr.Request) -> dict[Any, Any]:
        values = self.live.on_load()
        reasons = json.loads(values[self.live.parts.mode_reasons])
        linked = deep_link(dict(request.query_params), reasons)
        text, mode, kind, folder, top_k, *dates = self.deep_link_outputs
        folders = values[self.live.parts.search_folder]["choices"]
        values |= {text: linked[0], mode: linked[1], kind: linked[2], top_k: linked[4]}
        values |= dict(zip(dates, linked[5:], strict=True))
        values[folder] = gr.update(choices=folders, value=linked[3])
        return values
