"""Search tab: the query box, mode and filters, the result gallery and the detail pane.

Fast and generation searches are separate events so Gradio can give them separate concurrency
groups: many fast searches run side by side, while generation requests wait in their own queue
(with their position shown) and never hold up a fast search. All three search events (fast,
generation, the `/search` API) turn their inputs into one `SearchRequest`.

The streaming handler runs the search in a worker thread; the encoder's per-token callback
feeds a queue, and the handler yields the reasoning so far until the hits arrive.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import gradio as gr

from app.context import AppContext
from app.hits import SearchHit, SearchResult
from app.search import SearchService
from app.search_request import DEFAULT_TOP_K, SearchError, SearchRequest
from app.ui.assets import (
    CLOSE_DETAIL_ID,
    DISPATCH_SEARCH,
    EXAMPLE_SEARCH,
    FORGET_EXAMPLE_KIND,
    KEEP_CHOSEN_KIND,
    MODE_ID,
    RUN_FAST_ID,
    RUN_GENERATE_ID,
    SEARCH_BUTTON_ID,
    SHOW_DETAIL,
    SHOW_RESULTS,
    STATUS_ID,
)
from app.ui.controls import (
    ALL_FOLDERS,
    KIND_CHOICES,
    MAX_TOP_K,
    MODE_CHOICES,
    USER_ERRORS,
    none_if_all,
    status_html,
)
from app.ui.date_controls import NO_DATES, DateControls, DateValues, date_controls, date_values
from app.ui.detail import Detail, detail_pane, empty_detail, item_detail
from app.ui.display_media import tile
from app.ui.examples import example_queries
from app.ui.uploads import example_image

log = logging.getLogger(__name__)

FAST_CONCURRENCY = 8  # fast searches running at once; each is one forward pass
API_CONCURRENCY = 4
STREAM_INTERVAL = 0.1  # seconds between page updates while the query's reasoning streams
WAITING = "The model is reading your query…"
SELECT_HIT = "Select a result to see it here."

Gallery = list[tuple[Any, str]]
Hits = list[dict[str, Any]]


@dataclass
class SearchControls:
    """The Search tab's controls a page load fills in (from its deep link and the index)."""

    text: gr.Textbox
    mode: gr.Radio
    kind: gr.Dropdown
    folder: gr.Dropdown
    top_k: gr.Slider
    dates: DateControls
    mode_help: gr.HTML
    mode_reasons: gr.Textbox  # hidden: JSON {mode: why unavailable}, read by the page script

    @property
    def deep_link_outputs(self) -> list[Any]:
        return [self.text, self.mode, self.kind, self.folder, self.top_k, *self.dates.inputs]


def result_status(result: SearchResult) -> str:
    count = len(result.hits)
    found = f"{count} result{'s' if count != 1 else ''}" if count else "no results"
    line = f"{found} · {result.mode} mode · {result.seconds:.2f} s"
    notice = result.pending_notice()
    return status_html(f"{line} · {notice}" if notice else line)


def caption(hit: SearchHit) -> str:
    """Score and kind first (tiles are narrow); the page or time span when there is one; the
    date it was made (marked when it is only the file's date)."""
    where = f" · {hit.where}" if hit.where else ""
    return f"{hit.score:.3f} · {hit.kind}{where} · {hit.date}"


def mode_visibility(mode: str) -> tuple[Any, Any]:
    """The shortlist size matters only to re-rank; query reasoning only to generation modes."""
    return gr.update(visible=mode == "rerank"), gr.update(visible=mode != "fast")


class SearchHandlers:
    """The Search tab's event functions, bound to one app context."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def service(self) -> SearchService:
        if self.ctx.service is None:
            raise SearchError(self.ctx.problems[0] if self.ctx.problems else "no index is open")
        return self.ctx.service

    def request(
        self,
        text: str,
        image: str | None,
        video: str | None,
        mode: str,
        kind: str,
        folder: str,
        top_k: float,
        shortlist: float | None = None,
        dates: DateValues = NO_DATES,
    ) -> SearchRequest:
        """The page's values as one search; the shortlist defaults to the serving option."""
        after, before, sort = dates
        return SearchRequest(
            text=text,
            image=image,
            video=video,
            mode=mode,
            kind=none_if_all(kind),
            folder=folder or None,
            top_k=int(top_k),
            shortlist=self.ctx.shortlist if shortlist is None else int(shortlist),
            max_new_tokens=self.ctx.max_new_tokens,
            after=after or None,
            before=before or None,
            sort=sort or "score",
        )

    def gallery(self, hits: list[SearchHit]) -> Gallery:
        self.ctx.know_roots_of([hit.path for hit in hits])
        return [(tile(hit, self.ctx.files), caption(hit)) for hit in hits]

    def fast(
        self,
        text: str,
        image: str | None,
        video: str | None,
        kind: str,
        folder: str,
        top_k: float,
        after: str | None = None,
        before: str | None = None,
        sort: str = "score",
    ) -> tuple[Gallery, Hits, str]:
        """Fast mode: one forward pass for the query, then a vector search."""
        try:
            dates = date_values((after, before, sort))
            request = self.request(text, image, video, "fast", kind, folder, top_k, None, dates)
            result = self.service().search(request)
        except USER_ERRORS as error:
            return [], [], status_html(str(error), error=True)
        return self.gallery(result.hits), [asdict(h) for h in result.hits], result_status(result)

    def generate(
        self,
        text: str,
        image: str | None,
        video: str | None,
        mode: str,
        kind: str,
        folder: str,
        top_k: float,
        shortlist: float,
        after: str | None = None,
        before: str | None = None,
        sort: str = "score",
    ) -> Iterator[tuple[str, Any, Any, str]]:
        """Reasoning and re-rank modes: stream the query's reasoning, then show the hits."""
        dates = date_values((after, before, sort))
        request = self.request(text, image, video, mode, kind, folder, top_k, shortlist, dates)
        yield WAITING, [], [], status_html(f"{mode} mode: the model is reasoning about your query…")
        reasoning = ""
        for event, value in self._stream(request):
            if event == "text":
                reasoning = value
                yield reasoning or WAITING, gr.skip(), gr.skip(), gr.skip()
            elif event == "error":
                yield reasoning, [], [], status_html(str(value), error=True)
            else:
                final = value.query_reasoning or reasoning or "(the model wrote no reasoning)"
                hits = [asdict(h) for h in value.hits]
                yield final, self.gallery(value.hits), hits, result_status(value)

    def _stream(self, request: SearchRequest) -> Iterator[tuple[str, Any]]:
        """(kind, value) events: the latest text at most every STREAM_INTERVAL, then the end."""
        try:
            service = self.service()
        except SearchError as error:
            yield "error", error
            return
        updates: queue.Queue[tuple[str, Any]] = queue.Queue()

        def run() -> None:
            try:
                result = service.search(request, on_text=lambda t: updates.put(("text", t)))
                updates.put(("done", result))
            except USER_ERRORS as error:
                updates.put(("error", error))
            except Exception as error:  # handed to the page's thread, which re-raises it
                updates.put(("crash", error))

        threading.Thread(target=run, name="ume-query-generation", daemon=True).start()
        yield from _coalesced(updates)

    def api(
        self,
        text: str,
        image: str | None,
        video: str | None,
        mode: str,
        kind: str,
        folder: str,
        top_k: float,
        after: str | None = None,
        before: str | None = None,
        sort: str = "score",
    ) -> str:
        """The `/search` endpoint: the same JSON text as `ume search --json`.

        Text rather than a JSON value: Gradio's client takes any object with a "path" key for
        a file to download, which would replace every hit with a copy of its file.
        """
        try:
            dates = date_values((after, before, sort))
            request = self.request(text, image, video, mode, kind, folder, top_k, None, dates)
            result = self.service().search(request)
        except USER_ERRORS as error:
            log.info("search refused: %s", error)  # one line: the caller gets the reason, not a trace
            raise gr.Error(str(error), print_exception=False) from None
        return json.dumps(result.to_json(), ensure_ascii=False)

    def select(self, hits: Hits, event: gr.SelectData) -> tuple[Any, ...]:
        """Show the hit a user clicked in the gallery."""
        index = event.index if isinstance(event.index, int) else None
        if index is None or not 0 <= index < len(hits or []):
            return empty_detail(SELECT_HIT).as_outputs()
        return self.detail(hits[index]).as_outputs()

    def detail(self, hit: dict[str, Any]) -> Detail:
        return item_detail(self.ctx, SearchHit(**hit))


def build_search_tab(ctx: AppContext) -> SearchControls:
    """Lay out the Search tab and wire its events; returns the controls a page load fills in."""
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
        kind = gr.Dropdown(KIND_CHOICES, value="all", label="Kind", scale=1, elem_id="ume-kind")
        folder = gr.Dropdown([ALL_FOLDERS], value="", label="Folder", allow_custom_value=True, scale=2)
        dates = date_controls()
        top_k = gr.Slider(1, MAX_TOP_K, value=DEFAULT_TOP_K, step=1, label="Results", scale=2)
        shortlist = gr.Slider(
            10, 500, value=ctx.shortlist, step=10, label="Re-rank shortlist N", visible=False, scale=2
        )
    mode_reasons = gr.Textbox("{}", visible="hidden")
    examples = example_queries(ctx, text, kind)
    example = "Search by example: an image or a video clip (combines with the words)"
    with gr.Accordion(example, open=False), gr.Row():
        image = example_image(
            type="filepath", label="Example image", sources=["upload", "clipboard"], height=220
        )
        video = gr.Video(label="Example clip", sources=["upload"], height=220)
    query_reasoning = gr.Textbox(
        label="The model's reasoning about your query",
        lines=4,
        max_lines=12,
        interactive=False,
        visible=False,
        elem_id="ume-query-reasoning",
    )
    status = gr.HTML(elem_id=STATUS_ID)
    with gr.Row(elem_id="ume-results-row"):
        with gr.Column(scale=3, min_width=280):
            gallery = gr.Gallery(
                show_label=False,
                columns=4,
                fit_columns=False,
                height="auto",
                object_fit="cover",
                allow_preview=False,
                elem_id="ume-results",
            )
        with gr.Column(scale=2, min_width=280, elem_id="ume-detail"):
            pane = detail_pane("ume-reasoning", SELECT_HIT)
            close_detail = gr.Button(visible="hidden", elem_id=CLOSE_DETAIL_ID)
    mode_help = gr.HTML(elem_id="ume-mode-help")
    hits = gr.State([])
    controls = SearchControls(text, mode, kind, folder, top_k, dates, mode_help, mode_reasons)

    run_fast = gr.Button(visible="hidden", elem_id=RUN_FAST_ID)
    run_generate = gr.Button(visible="hidden", elem_id=RUN_GENERATE_ID)
    api_trigger = gr.Button(visible="hidden")
    api_result = gr.Textbox(visible="hidden")
    dispatch_inputs = [text, mode, kind, folder, top_k, *dates.inputs]
    for submitted in (search_button.click, text.submit, dates.after.submit, dates.before.submit):
        submitted(None, dispatch_inputs, [kind], js=DISPATCH_SEARCH)
    if examples is not None:  # a click fills the words and the kind, then searches
        examples.load_input_event.then(None, dispatch_inputs, [kind], js=EXAMPLE_SEARCH)
    text.input(None, [kind], [kind], js=FORGET_EXAMPLE_KIND)  # typing a new query drops its kind
    kind.input(None, None, None, js=KEEP_CHOSEN_KIND)
    query = [text, image, video]
    run_fast.click(
        handlers.fast,
        [*query, kind, folder, top_k, *dates.inputs],
        [gallery, hits, status],
        api_name="search_fast",
        concurrency_id="fast",
        concurrency_limit=FAST_CONCURRENCY,
    ).then(None, None, None, js=SHOW_RESULTS)
    run_generate.click(
        handlers.generate,
        [*query, mode, kind, folder, top_k, shortlist, *dates.inputs],
        [query_reasoning, gallery, hits, status],
        api_name="search_reasoning",
        concurrency_id="generate",
        concurrency_limit=1,
    ).then(None, None, None, js=SHOW_RESULTS)
    api_trigger.click(
        handlers.api,
        [*query, mode, kind, folder, top_k, *dates.inputs],
        api_result,
        api_name="search",
        concurrency_id="api",
        concurrency_limit=API_CONCURRENCY,
    )
    gallery.select(handlers.select, [hits], pane.outputs, api_visibility="private", queue=False).then(
        None, None, None, js=SHOW_DETAIL
    )
    close_detail.click(lambda: empty_detail(SELECT_HIT).as_outputs(), None, pane.outputs,
                       api_visibility="private", queue=False)  # fmt: skip
    mode.change(mode_visibility, [mode], [shortlist, query_reasoning], api_visibility="private", queue=False)
    return controls


def _coalesced(updates: queue.Queue[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Drain the worker's queue, passing on only the newest text per interval."""
    latest_text: str | None = None
    last_sent = 0.0
    while True:
        event, value = updates.get()
        if event == "crash":
            raise value
        if event != "text":
            yield event, value
            return
        latest_text = value
        if time.monotonic() - last_sent >= STREAM_INTERVAL and updates.empty():
            last_sent = time.monotonic()
            yield "text", latest_text
