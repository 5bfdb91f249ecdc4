"""The search UI: Gradio Blocks with Search, Traces and Index tabs, and its launch.

The UI holds no search logic: handlers in `ui_search`, `ui_traces` and `ui_index` call the search
service and the indexer. This module lays out the components and wires the events.

Events and their queues:
- fast searches (`/search_fast`) share the "fast" group, many at a time;
- generation searches (`/search_reasoning`, streamed) share the "generate" group, one at a
  time, so a queued user sees their position and fast users never wait behind them;
- `/search` is the JSON API in its own group; its generation runs take the service's
  one-at-a-time generation lock;
- indexing from the browser runs in its own group, one run at a time.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from app.files import FileRouteGuard
from app.search import DEFAULT_TOP_K
from app.ui_assets import (
    CSS,
    DISPATCH_SEARCH,
    MARK_MODES,
    MODE_ID,
    RUN_DEEP_LINK,
    RUN_FAST_ID,
    RUN_GENERATE_ID,
    SEARCH_BUTTON_ID,
    theme,
)
from app.ui_context import AppContext
from app.ui_index import build_index_tab
from app.ui_layout import (
    ALL_FOLDERS,
    KIND_CHOICES,
    MAX_TOP_K,
    MODE_CHOICES,
    PageLoad,
    SearchControls,
    detail_pane,
    mode_visibility,
)
from app.ui_search import SELECT_HIT, SearchHandlers
from app.ui_traces import SELECT_ROW, TABLE_HEADERS, TABLE_WIDTHS, TracesHandlers

FAST_CONCURRENCY = 8  # fast searches running at once; each is one forward pass
API_CONCURRENCY = 4
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
                build_index_tab(ctx)
        loader = PageLoad(ctx)
        demo.load(
            loader.on_load,
            None,
            [
                banner,
                title,
                *controls.deep_link_outputs,
                controls.mode_reasons,
                controls.mode_help,
                traces_folder,
            ],
            api_visibility="private",
            queue=False,
        ).then(None, [controls.mode_reasons], None, js=MARK_MODES).then(None, None, None, js=RUN_DEEP_LINK)
    return demo


def build_search_tab(ctx: AppContext) -> SearchControls:
    handlers = SearchHandlers(ctx)
    with gr.Row(equal_height=True):
        text = gr.Textbox(
            placeholder="Describe what you are looking for, e.g. “a cat, close up”",
            show_label=False,
            scale=8,
            autofocus=True,
            elem_id="ume-query",
        )
        search_button = gr.Button(
            "Search", variant="primary", scale=1, min_width=120, elem_id=SEARCH_BUTTON_ID
        )
    with gr.Row():
        mode = gr.Radio(MODE_CHOICES, value="fast", label="Mode", elem_id=MODE_ID, scale=3)
        kind = gr.Dropdown(KIND_CHOICES, value="all", label="Kind", scale=1)
        folder = gr.Dropdown([ALL_FOLDERS], value="", label="Folder", allow_custom_value=True, scale=2)
        top_k = gr.Slider(1, MAX_TOP_K, value=DEFAULT_TOP_K, step=1, label="Results", scale=2)
        shortlist = gr.Slider(
            10, 500, value=ctx.shortlist, step=10, label="Re-rank shortlist N", visible=False, scale=2
        )
    mode_help = gr.HTML(elem_id="ume-mode-help")
    mode_reasons = gr.Textbox("{}", visible="hidden")
    example = "Search by example: an image or a video clip (combines with the words)"
    with gr.Accordion(example, open=False), gr.Row():
        image = gr.Image(type="filepath", label="Example image", sources=["upload", "clipboard"], height=220)
        video = gr.Video(label="Example clip", sources=["upload"], height=220)
    query_reasoning = gr.Textbox(
        label="The model's reasoning about your query",
        lines=4,
        max_lines=12,
        interactive=False,
        visible=False,
        elem_id="ume-query-reasoning",
    )
    status = gr.HTML()
    with gr.Row():
        with gr.Column(scale=3):
            gallery = gr.Gallery(
                show_label=False,
                columns=4,
                fit_columns=False,
                height="auto",
                object_fit="cover",
                allow_preview=False,
                elem_id="ume-results",
            )
        with gr.Column(scale=2, elem_id="ume-detail"):
            pane = detail_pane("ume-reasoning", SELECT_HIT)
    hits = gr.State([])
    controls = SearchControls(text, mode, kind, folder, top_k, mode_help, mode_reasons)

    run_fast = gr.Button(visible="hidden", elem_id=RUN_FAST_ID)
    run_generate = gr.Button(visible="hidden", elem_id=RUN_GENERATE_ID)
    api_trigger = gr.Button(visible="hidden")
    api_result = gr.Textbox(visible="hidden")
    dispatch_inputs = [text, mode, kind, folder, top_k]
    search_button.click(None, dispatch_inputs, None, js=DISPATCH_SEARCH)
    text.submit(None, dispatch_inputs, None, js=DISPATCH_SEARCH)
    query = [text, image, video]
    run_fast.click(
        handlers.fast,
        [*query, kind, folder, top_k],
        [gallery, hits, status],
        api_name="search_fast",
        concurrency_id="fast",
        concurrency_limit=FAST_CONCURRENCY,
    )
    run_generate.click(
        handlers.generate,
        [*query, mode, kind, folder, top_k, shortlist],
        [query_reasoning, gallery, hits, status],
        api_name="search_reasoning",
        concurrency_id="generate",
        concurrency_limit=1,
    )
    api_trigger.click(
        handlers.api,
        [*query, mode, kind, folder, top_k],
        api_result,
        api_name="search",
        concurrency_id="api",
        concurrency_limit=API_CONCURRENCY,
    )
    gallery.select(handlers.select, [hits], pane.outputs, api_visibility="private", queue=False)
    mode.change(mode_visibility, [mode], [shortlist, query_reasoning], api_visibility="private", queue=False)
    return controls


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


def launch(
    demo: gr.Blocks,
    ctx: AppContext,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    **launch_options: Any,
) -> gr.Blocks:
    """Serve the UI; only indexed files under the indexed roots can be fetched from it."""
    demo.queue(default_concurrency_limit=FAST_CONCURRENCY)
    demo.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        allowed_paths=[str(root) for root in ctx.files.roots],
        app_kwargs={"middleware": [Middleware(FileRouteGuard, files=ctx.files)]},
        theme=theme(),
        css=CSS,
        footer_links=["api"],
        **launch_options,
    )
    ctx.blocks = demo
    return demo
