"""Search tab handlers: fast search, streamed generation search, the JSON API, and hit details.

Fast and generation searches are separate events so Gradio can give them separate concurrency
groups: many fast searches run side by side, while generation requests wait in their own queue
(with their position shown) and never hold up a fast search.

The streaming handler runs the search in a worker thread; the encoder's per-token callback
feeds a queue, and the handler yields the reasoning so far until the hits arrive.
"""

from __future__ import annotations

import html
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import gradio as gr

from app.search import SearchError, SearchHit, SearchResult, SearchService
from app.ui_context import AppContext
from app.ui_detail import Detail, empty_detail, item_detail
from app.ui_media import tile
from indexer.catalog.store import StoreError
from model.encoder import ModelLoadError
from model.media import MediaError

USER_ERRORS = (SearchError, StoreError, MediaError, ModelLoadError)
STREAM_INTERVAL = 0.1  # seconds between page updates while the query's reasoning streams
WAITING = "The model is reading your query…"
SELECT_HIT = "Select a result to see it here."

Gallery = list[tuple[Any, str]]
Hits = list[dict[str, Any]]


def none_if_all(kind: str | None) -> str | None:
    return None if not kind or kind == "all" else kind


def status_html(message: str, error: bool = False) -> str:
    css = "ume-status ume-error" if error else "ume-status"
    return f'<div class="{css}">{html.escape(message)}</div>'


def result_status(result: SearchResult) -> str:
    count = len(result.hits)
    found = f"{count} result{'s' if count != 1 else ''}" if count else "no results"
    return status_html(f"{found} · {result.mode} mode · {result.seconds:.2f} s")


def caption(hit: SearchHit) -> str:
    """Score and kind first (tiles are narrow); the page or time span when there is one."""
    where = f" · {hit.where}" if hit.where else ""
    return f"{hit.score:.3f} · {hit.kind}{where}"


class SearchHandlers:
    """The Search tab's event functions, bound to one app context."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def service(self) -> SearchService:
        if self.ctx.service is None:
            raise SearchError(self.ctx.problems[0] if self.ctx.problems else "no index is open")
        return self.ctx.service

    def gallery(self, hits: list[SearchHit]) -> Gallery:
        self.ctx.know_roots_of([hit.path for hit in hits])
        return [(tile(hit, self.ctx.files), caption(hit)) for hit in hits]

    def fast(
        self, text: str, image: str | None, video: str | None, kind: str, folder: str, top_k: float
    ) -> tuple[Gallery, Hits, str]:
        """Fast mode: one forward pass for the query, then a vector search."""
        try:
            result = self.service().search(
                text, image, video, "fast", none_if_all(kind), folder or None, int(top_k)
            )
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
    ) -> Iterator[tuple[str, Any, Any, str]]:
        """Reasoning and re-rank modes: stream the query's reasoning, then show the hits."""
        arguments = dict(
            text=text,
            image=image,
            video=video,
            mode=mode,
            kind=none_if_all(kind),
            folder=folder or None,
            top_k=int(top_k),
            shortlist=int(shortlist),
            max_new_tokens=self.ctx.max_new_tokens,
        )
        yield WAITING, [], [], status_html(f"{mode} mode: the model is reasoning about your query…")
        reasoning = ""
        for event, value in self._stream(arguments):
            if event == "text":
                reasoning = value
                yield reasoning or WAITING, gr.skip(), gr.skip(), gr.skip()
            elif event == "error":
                yield reasoning, [], [], status_html(str(value), error=True)
            else:
                final = value.query_reasoning or reasoning or "(the model wrote no reasoning)"
                hits = [asdict(h) for h in value.hits]
                yield final, self.gallery(value.hits), hits, result_status(value)

    def _stream(self, arguments: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        """(kind, value) events: the latest text at most every STREAM_INTERVAL, then the end."""
        try:
            service = self.service()
        except SearchError as error:
            yield "error", error
            return
        updates: queue.Queue[tuple[str, Any]] = queue.Queue()

        def run() -> None:
            try:
                result = service.search(**arguments, on_text=lambda t: updates.put(("text", t)))
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
    ) -> str:
        """The `/search` endpoint: the same JSON text as `ume search --json`.

        Text rather than a JSON value: Gradio's client takes any object with a "path" key for
        a file to download, which would replace every hit with a copy of its file.
        """
        try:
            result = self.service().search(
                text,
                image,
                video,
                mode,
                none_if_all(kind),
                folder or None,
                int(top_k),
                shortlist=self.ctx.shortlist,
                max_new_tokens=self.ctx.max_new_tokens,
            )
        except USER_ERRORS as error:
            raise gr.Error(str(error)) from error
        return json.dumps(result.to_json(), ensure_ascii=False)

    def select(self, hits: Hits, event: gr.SelectData) -> tuple[Any, ...]:
        """Show the hit a user clicked in the gallery."""
        index = event.index if isinstance(event.index, int) else None
        if index is None or not 0 <= index < len(hits or []):
            return empty_detail(SELECT_HIT).as_outputs()
        return self.detail(hits[index]).as_outputs()

    def detail(self, hit: dict[str, Any]) -> Detail:
        return item_detail(self.ctx, SearchHit(**hit))


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
