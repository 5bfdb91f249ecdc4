"""What a page load fills in: banners, the index summary, folders, mode help and the deep link.

A page load reads its deep link (`?q=…&mode=…&kind=…&folder=…&k=…`) into the controls, lists
the indexed folders, and says which modes the index can serve; the browser then runs the linked
search, so a shared link shows the same results.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

import gradio as gr

from app.search import DEFAULT_TOP_K, ITEM_KINDS, MODE_DESCRIPTIONS, SEARCH_MODES, SearchMode
from app.ui.context import AppContext
from app.ui.controls import ALL_FOLDERS, MAX_TOP_K, MODE_CHOICES


def mode_help_html(reasons: Mapping[str, str | None]) -> str:
    """One line per mode; a mode the index cannot serve says why."""
    lines = []
    for mode in SEARCH_MODES:
        why = reasons.get(mode)
        note = f' <span class="ume-error">Unavailable: {html.escape(why)}</span>' if why else ""
        name = dict((value, label) for label, value in MODE_CHOICES)[mode]
        lines.append(f"<p><b>{name}</b>: {html.escape(MODE_DESCRIPTIONS[mode])}{note}</p>")
    return "".join(lines)


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
    ]


class PageLoad:
    """What a fresh page shows: banners, the index summary, folders, modes, the deep link."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def reasons(self) -> dict[str, str | None]:
        if self.ctx.service is None:
            problem = "; ".join(self.ctx.problems) or "no index is open"
            return dict.fromkeys(SEARCH_MODES, problem)
        return {mode: why for mode, why in self.ctx.service.available_modes().items()}

    def on_load(self, request: gr.Request) -> tuple[Any, ...]:
        roots = self.ctx.refresh_roots()
        folders = [ALL_FOLDERS] + [(str(root), str(root)) for root in roots]
        reasons = self.reasons()
        text, mode, kind, folder, top_k = deep_link(dict(request.query_params), reasons)
        return (
            self.ctx.banner_html(),
            title_html(self.ctx),
            text,
            mode,
            kind,
            gr.update(choices=folders, value=folder),
            top_k,
            json.dumps(reasons),
            mode_help_html(reasons),
            gr.update(choices=folders),
        )


def title_html(ctx: AppContext) -> str:
    return f"<h1>UME search</h1><p>{html.escape(ctx.summary_line())}</p>"
