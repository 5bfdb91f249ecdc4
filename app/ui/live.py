"""What an open page keeps current without a reload: the banners, the title's counts, the folder
choices, which modes the index can serve, and the Index tab (library, failed files, jobs and the
background work).

A page load fills every part; then a timer asks every `REFRESH_S`. The store's library is read
again only when `app.library.library_token` says something changed (a job from any source
queued, started or ended, a folder removed, a pause, the watcher's news) or while a job runs;
the jobs and the background lines are cheap and are looked at every time. Each page remembers
what it shows (its `seen` state), and only the parts that differ are sent.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.context import AppContext
from app.library import library_token
from app.search import MODE_DESCRIPTIONS
from app.search_request import SEARCH_MODES
from app.ui import index_view
from app.ui.controls import ALL_FOLDERS, MODE_CHOICES
from app.ui.index_tab import IndexView

REFRESH_S = 2.0  # how often an open page looks for news: jobs from any source show within this

Values = dict[Any, Any]  # component -> its new value (a missing component keeps its value)


@dataclass
class LiveParts:
    """The page's components that show the index's current state."""

    banner: gr.HTML
    title: gr.HTML
    search_folder: gr.Dropdown
    mode_reasons: gr.Textbox  # hidden: JSON {mode: why unavailable}, read by the page script
    mode_help: gr.HTML
    traces_folder: gr.Dropdown
    index: IndexView


def mode_help_html(reasons: dict[str, str | None]) -> str:
    """One line per mode; a mode the index cannot serve says why."""
    names = {value: label for label, value in MODE_CHOICES}
    lines = []
    for mode in SEARCH_MODES:
        why = reasons.get(mode)
        note = f' <span class="ume-error">Unavailable: {html.escape(why)}</span>' if why else ""
        lines.append(f"<p><b>{names[mode]}</b>: {html.escape(MODE_DESCRIPTIONS[mode])}{note}</p>")
    return "".join(lines)


def mode_reasons(ctx: AppContext) -> dict[str, str | None]:
    """Why each mode cannot be used now (None where it can)."""
    if ctx.service is None:
        return dict.fromkeys(SEARCH_MODES, "; ".join(ctx.problems) or "no index is open")
    return {mode: why for mode, why in ctx.service.available_modes().items()}


def title_html(ctx: AppContext) -> str:
    return f"<h1>UME search</h1><p>{html.escape(ctx.summary_line())}</p>"


class LivePage:
    """Fills the live parts of one page, on load and on every tick of its timer."""

    def __init__(self, ctx: AppContext, parts: LiveParts) -> None:
        self.ctx, self.parts = ctx, parts
        self.seen = gr.State({})  # per page: the token it saw, and a digest of each part it shows
        self.timer = gr.Timer(REFRESH_S)

    @property
    def outputs(self) -> list[Any]:
        p, index = self.parts, self.parts.index
        page = [p.banner, p.title, p.search_folder, p.mode_reasons, p.mode_help, p.traces_folder]
        return [*page, index.library, index.chosen, index.failures, index.jobs, index.background, self.seen]

    def library_values(self) -> Values:
        """Everything read from the store: banners, counts, folders, modes, library, failures."""
        p, index, ctx = self.parts, self.parts.index, self.ctx
        roots = ctx.refresh_roots()
        folders = [ALL_FOLDERS] + [(str(root), str(root)) for root in roots]
        reasons = mode_reasons(ctx)
        rows = index_view.library_rows(ctx)
        return {
            p.banner: ctx.banner_html(),
            p.title: title_html(ctx),
            p.search_folder: gr.update(choices=folders),
            p.mode_reasons: json.dumps(reasons),
            p.mode_help: mode_help_html(reasons),
            p.traces_folder: gr.update(choices=folders),
            index.library: rows,
            index.chosen: gr.update(choices=[row[0] for row in rows]),
            index.failures: index_view.failure_rows(self.ctx),
        }

    def activity_values(self) -> Values:
        """The jobs and the background work: held in memory, cheap to look at."""
        index, ctx = self.parts.index, self.ctx
        return {index.jobs: index_view.job_rows(ctx), index.background: index_view.background_html(ctx)}

    def on_load(self) -> Values:
        """Every part, and a fresh `seen` for this page."""
        return self.changed({}, self.token(), self.library_values() | self.activity_values())

    def tick(self, seen: dict[str, Any]) -> Values:
        """The parts that changed since this page last looked."""
        token = self.token()
        fresh = self.activity_values()
        if token != seen.get("token") or self.ctx.jobs.jobs():
            fresh |= self.library_values()
        return self.changed(seen, token, fresh)

    def token(self) -> str:
        return library_token(self.ctx.jobs, self.ctx.gate, self.ctx.watcher)

    def changed(self, seen: dict[str, Any], token: str, fresh: Values) -> Values:
        """`fresh` less what the page shows already, plus its new `seen`."""
        shown = dict(seen.get("shown", {}))
        updates: Values = {}
        for component, value in fresh.items():
            shown_as = json.dumps(value, default=str, sort_keys=True).encode()
            digest = hashlib.blake2b(shown_as, digest_size=16).hexdigest()
            if shown.get(str(component._id)) != digest:
                updates[component] = value
                shown[str(component._id)] = digest
        updates[self.seen] = {"token": token, "shown": shown}
        return updates
