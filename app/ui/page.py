"""The search UI's page: Gradio Blocks with Search, Traces and Index tabs, and its launch.

The page holds no search logic: each tab's module (`search_tab`, `traces_tab`, `index_tab`)
lays out its controls and wires its handlers, which call the search service and the indexer.
This module puts the tabs together, fills them on page load (`page_load`), keeps them current
while the page is open (`live`) and serves the page.

Events and their queues:
- fast searches (`/search_fast`) share the "fast" group, many at a time;
- generation searches (`/search_reasoning`, streamed) share the "generate" group, one at a
  time, so a queued user sees their position and fast users never wait behind them;
- `/search` is the JSON API in its own group; its generation runs take the service's
  one-at-a-time generation lock;
- indexing from the browser queues jobs in the server's job runner (`app.jobs`), one run at a
  time, beside the jobs `ume index` hands over through the HTTP API (`app.api`, under /ume).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from app.api import api_routes
from app.context import AppContext
from app.files import FileRouteGuard
from app.ui.assets import CSS, KEYBOARD, MARK_MODES, RUN_DEEP_LINK, theme
from app.ui.index_tab import build_index_tab
from app.ui.live import LivePage, LiveParts
from app.ui.page_load import PageLoad
from app.ui.search_tab import FAST_CONCURRENCY, build_search_tab
from app.ui.traces_tab import build_traces_tab
from app.ui.uploads import MAX_UPLOAD

DEFAULT_HOST = "127.0.0.1"


def build_ui(ctx: AppContext) -> gr.Blocks:
    """The whole page for one app context (not launched)."""
    with gr.Blocks(title="UME search") as demo:
        banner = gr.HTML(ctx.banner_html())
        title = gr.HTML(elem_id="ume-title")
        with gr.Tabs():
            with gr.Tab("Search", id="search"):
                controls = build_search_tab(ctx)
            with gr.Tab("Traces", id="traces") as traces_tab:
                traces_folder = build_traces_tab(ctx, traces_tab)
            with gr.Tab("Index", id="index"):
                index = build_index_tab(ctx)
        parts = LiveParts(banner, title, controls.folder, controls.mode_reasons, controls.mode_help,
                          traces_folder, index)  # fmt: skip
        live = LivePage(ctx, parts)
        loader = PageLoad(live, controls.deep_link_outputs)
        hidden: dict[str, Any] = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}
        demo.load(loader.on_load, None, loader.outputs, **hidden).then(
            None, [controls.mode_reasons], None, js=MARK_MODES
        ).then(None, None, None, js=RUN_DEEP_LINK)
        live.timer.tick(live.tick, [live.seen], live.outputs, **hidden).then(
            None, [controls.mode_reasons], None, js=MARK_MODES
        )
    return demo


def launch(
    demo: gr.Blocks,
    ctx: AppContext,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    **launch_options: Any,
) -> gr.Blocks:
    """Serve the UI and the HTTP API; only indexed files under the indexed roots can be fetched."""
    demo.queue(default_concurrency_limit=FAST_CONCURRENCY)
    demo.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        allowed_paths=[str(root) for root in ctx.files.roots],
        app_kwargs={
            "middleware": [Middleware(FileRouteGuard, files=ctx.files)],
            "routes": api_routes(ctx, auth),  # ahead of Gradio's own, which are added later
        },
        theme=theme(),
        css=CSS,
        footer_links=["api"],
        js=KEYBOARD,
        max_file_size=MAX_UPLOAD,
        **launch_options,
    )
    ctx.blocks = demo
    return demo
