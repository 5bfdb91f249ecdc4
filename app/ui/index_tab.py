"""Index tab: the library (indexed folders with their counts and state, re-scan, remove), adding
a folder, the server's indexing jobs with progress and ETA, the search graph's background build,
and pausing background work.

Runs are jobs of the server's one job runner (`AppContext.jobs`, see `app.jobs`), which also
runs `ume index` handed over from a shell and the folder watcher's re-scans. The tab shows them
all the same way (`index_view`), and an open page keeps it current (`live`): a click queues a
job and waits for its end, while the jobs table and the progress bar above it follow it. Which
folders may be added is decided by the serving options (`IndexingPolicy`): indexing a folder
makes its files viewable, so a page reachable from other machines may only add folders under
the ones it was started with.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import ValidationError

from app.context import AppContext
from app.library import found_nothing, outcome_line
from app.ui import index_view
from app.ui.index_view import (
    FAILURE_HEADERS,
    FAILURE_WIDTHS,
    JOB_HEADERS,
    JOB_WIDTHS,
    LIBRARY_HEADERS,
    LIBRARY_WIDTHS,
)
from indexer.catalog.store import StoreError
from indexer.config import ConfigError, validation_message
from indexer.state import remove_root
from indexer.summary import RunSummary

JOB_WAITERS = 8  # page events that may wait for a queued job at once
EMBEDDING_CHOICES = [
    ("With reasoning (all search modes; slow)", "both"),
    ("Fast only (disc vectors)", "disc"),
]
RunOutputs = tuple[str, Any]


@dataclass
class IndexView:
    """The Index tab's parts an open page keeps current (see `live`)."""

    library: gr.Dataframe
    chosen: gr.Dropdown  # the indexed folder to re-scan or remove
    failures: gr.Dataframe
    jobs: gr.Dataframe
    background: gr.HTML


class IndexHandlers:
    """The Index tab's event functions, bound to one app context."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def folder_to_index(self, folder: str) -> Path:
        """The folder as an absolute path, once the serving policy allows it."""
        if not (folder or "").strip():
            raise gr.Error("type the path of a folder to index")
        path = Path(os.path.abspath(os.path.expanduser(folder.strip())))
        refusal = self.ctx.indexing.refusal_for(path)
        if refusal:
            raise gr.Error(refusal)
        if not path.is_dir():
            raise gr.Error(f"no such folder: {path}")
        return path

    def library_rows(self) -> list[list[Any]]:
        return index_view.library_rows(self.ctx)

    def job_rows(self) -> list[list[Any]]:
        return index_view.job_rows(self.ctx)

    def background_html(self) -> str:
        return index_view.background_html(self.ctx)

    def library(self) -> tuple[list[list[Any]], Any]:
        """The library table and the folder choices that go with it."""
        rows = self.library_rows()
        return rows, gr.update(choices=[row[0] for row in rows])

    def remove(self, folder: str) -> tuple[str, list[list[Any]], Any]:
        """Take an indexed folder out of the collection; its files on disk are left alone."""
        service = self.ctx.service
        if service is None or folder not in map(str, service.indexed_roots()):
            raise gr.Error("choose one of the indexed folders to remove")
        try:
            with self.ctx.jobs.between_jobs():  # not in the middle of a re-scan of it
                removed = remove_root(service.store, self.ctx.collection, folder)
        except StoreError as error:
            raise gr.Error(str(error)) from error
        if self.ctx.watcher is not None:
            self.ctx.watcher.roots_changed()
        done = (
            f"Removed {html.escape(folder)} from the index: {removed} files (nothing was deleted from disk)"
        )
        rows = self.library_rows()
        return (
            f'<div class="ume-run"><p>{done}</p></div>',
            rows,
            gr.update(choices=[row[0] for row in rows], value=None),
        )

    def rescan(self, folder: str, mode: str) -> Iterator[RunOutputs]:
        """Index an indexed folder again: only what changed is embedded, what is gone is removed."""
        if not folder:
            raise gr.Error("choose one of the indexed folders to re-scan")
        yield from self.run(folder, mode)

    def run(self, folder: str, mode: str) -> Iterator[RunOutputs]:
        """Queue one folder for indexing and wait for the job: first a line saying it is queued,
        then its summary and the library's failed files."""
        path = self.folder_to_index(folder)
        try:
            job = self.ctx.submit([path], "page", mode=mode)
        except (ConfigError, ValidationError) as error:
            raise gr.Error(validation_message(error)) from error
        queued = f"{job.id}: indexing {html.escape(str(path))}; its progress is shown above the jobs table"
        yield f'<div class="ume-run"><p>{queued}</p></div>', gr.skip()
        job.wait()
        if job.summary is None:
            yield f'<div class="ume-run ume-error">{html.escape(job.doing())}</div>', gr.skip()
            raise gr.Error(job.error or "the indexing job failed", print_exception=False)
        yield summary_html(job.summary, path), index_view.failure_rows(self.ctx)

    def pause(self) -> str:
        self.ctx.gate.pause()
        return self.background_html()

    def resume(self) -> str:
        self.ctx.gate.resume()
        return self.background_html()


def summary_html(summary: RunSummary, folder: Path) -> str:
    """The end of a run from the page; a run that met no file ume reads says which ones it reads."""
    name = f'<div class="ume-detail-name">Indexed {html.escape(str(folder))}</div>'
    if found_nothing(summary):
        line = html.escape(outcome_line(summary, str(folder)))
        return f'<div class="ume-run">{name}<p class="ume-warning">{line}</p></div>'
    seconds = summary.seconds.get("total", 0.0)
    counts = (
        f"{summary.indexed} indexed, {summary.unchanged} unchanged, {summary.reused} reused, "
        f"{summary.removed} removed, {summary.failed} failed"
    )
    failed = " (listed under Failed files and why)" if summary.failed else ""
    return (
        f'<div class="ume-run">{name}'
        f"<p>{counts} files{failed} · {summary.embedded} items embedded · "
        f"{summary.points:,} items in the collection, {summary.with_reasoning:,} with reasoning, "
        f"{summary.pending:,} pending · {seconds:.1f} s</p></div>"
    )


def build_index_tab(ctx: AppContext) -> IndexView:
    """Lay out the Index tab and wire its clicks; returns the parts an open page keeps current."""
    handlers = IndexHandlers(ctx)
    if ctx.indexing.refusal:
        gr.HTML(f'<div class="ume-banner ume-problem">{html.escape(ctx.indexing.refusal)}</div>')
    with gr.Row(equal_height=True):
        folder = gr.Textbox(label="Folder to add", placeholder="/home/me/Pictures", scale=4, min_width=200)
        mode = gr.Radio(EMBEDDING_CHOICES, value="both", label="Embeddings", scale=3, min_width=200)
        start = gr.Button("Index", variant="primary", scale=1, min_width=120)
    gr.HTML(
        '<div class="ume-note">Re-indexing a folder embeds only what changed; files deleted from '
        "disk leave the index. A collection keeps the embeddings it was built with.</div>"
    )
    summary = gr.HTML(elem_id="ume-index-summary")
    background, jobs = build_jobs_panel(handlers)
    library = gr.Dataframe(
        headers=LIBRARY_HEADERS,
        interactive=False,
        wrap=True,
        column_widths=LIBRARY_WIDTHS,
        label="Library: the indexed folders",
        elem_id="ume-library",
    )
    with gr.Row(equal_height=True):
        chosen = gr.Dropdown([], label="Indexed folder", scale=4, min_width=200, elem_id="ume-chosen-folder")
        rescan = gr.Button("Re-scan", scale=1, min_width=120)
        remove = gr.Button("Remove from index", variant="stop", scale=1, min_width=160)
    failures = gr.Dataframe(
        headers=FAILURE_HEADERS,
        datatype="str",
        interactive=False,
        wrap=True,
        column_widths=FAILURE_WIDTHS,
        label="Failed files and why",
        elem_id="ume-failures",
    )
    view = IndexView(library, chosen, failures, jobs, background)
    wire_runs(handlers, folder, mode, start, summary, view, rescan, remove)
    return view


def build_jobs_panel(handlers: IndexHandlers) -> tuple[gr.HTML, gr.Dataframe]:
    """The background work with pause/resume, and the jobs table (kept current by `live`)."""
    with gr.Row(equal_height=True):
        with gr.Column(scale=4, min_width=240):
            background = gr.HTML(elem_id="ume-background")
        with gr.Column(scale=1, min_width=200):
            pause = gr.Button("Pause the reasoning pass", size="md")
            resume = gr.Button("Resume", size="md")
    jobs = gr.Dataframe(
        headers=JOB_HEADERS,
        interactive=False,
        wrap=True,
        column_widths=JOB_WIDTHS,
        label="Indexing jobs: running, queued and the latest finished",
        elem_id="ume-jobs",
    )
    pause.click(handlers.pause, None, background, api_name="pause_background", queue=False)
    resume.click(handlers.resume, None, background, api_name="resume_background", queue=False)
    return background, jobs


def wire_runs(handlers: IndexHandlers, folder: Any, mode: Any, start: Any, summary: Any, view: IndexView,
              rescan: Any, remove: Any) -> None:  # fmt: skip
    """Index, re-scan and remove. Runs queue in the job runner, which takes one at a time, so
    several pages may wait for theirs; a removal waits for the running job itself."""
    outputs = [summary, view.failures]
    start.click(
        handlers.run,
        [folder, mode],
        outputs,
        api_name="index_folder",
        concurrency_id="index",
        concurrency_limit=JOB_WAITERS,
        show_progress="hidden",  # the progress bar above the jobs table follows every job
    ).then(handlers.library, None, [view.library, view.chosen], api_name=False)
    rescan.click(
        handlers.rescan,
        [view.chosen, mode],
        outputs,
        api_name="rescan_folder",
        concurrency_id="index",
        concurrency_limit=JOB_WAITERS,
        show_progress="hidden",
    ).then(handlers.library, None, [view.library, view.chosen], api_name=False)
    removed = [summary, view.library, view.chosen]
    remove.click(handlers.remove, [view.chosen], removed, api_name="remove_folder")
