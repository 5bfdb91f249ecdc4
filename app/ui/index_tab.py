"""Index tab: the library (indexed folders with their counts and state, re-scan, remove), adding
a folder, the server's indexing jobs with progress and ETA, the search graph's background build,
and pausing background work.

Runs are jobs of the server's one job runner (`AppContext.jobs`, see `app.jobs`), which also
runs `ume index` handed over from a shell and the folder watcher's re-scans; a click queues a job
and follows its events into the progress bar. Which folders may be added is decided by the
serving options (`IndexingPolicy`): indexing a folder makes its files viewable, so a page
reachable from other machines may only add folders under the ones it was started with.
"""

from __future__ import annotations

import html
import os
import time
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import ValidationError

from app.jobs import Job
from app.ui.context import AppContext
from app.watch import root_available
from indexer.catalog.collection import StageCounts, folder_counts
from indexer.catalog.schema import ITEM_KINDS
from indexer.catalog.store import StoreError
from indexer.config import ConfigError, validation_message
from indexer.state import remove_root
from indexer.summary import RunSummary

FAILURE_HEADERS = ["file", "reason"]
LIBRARY_HEADERS = [
    "folder",
    *(f"{kind}s" for kind in ITEM_KINDS),
    "files",
    "failed",
    "with reasoning",
    "pending",
    "state",
]
JOB_HEADERS = ["job", "from", "folder", "state", "progress", "ETA", "doing"]
PROGRESS = gr.Progress()  # Gradio fills in a tracker bound to the running event
REFRESH_S = 2.0  # how often an open page re-reads the jobs and the background state
RECENT_JOBS = 5  # finished jobs listed under the running and queued ones
JOB_WAITERS = 8  # page events that may follow a queued job at once
EMBEDDING_CHOICES = [
    ("With reasoning (all search modes; slow)", "both"),
    ("Fast only (disc vectors)", "disc"),
]


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
        """One row per indexed folder: items per kind, files, failed files, its state."""
        service = self.ctx.service
        if service is None:
            return []
        try:
            counts = folder_counts(service.store, self.ctx.collection)
        except StoreError:
            return []
        return [
            [
                c.root,
                *(c.kinds[kind] for kind in ITEM_KINDS),
                c.files,
                c.failed,
                *_stages(c.stages),
                root_state(c.root),
            ]
            for c in counts
        ]

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
        return f'<div class="ume-run"><p>{done}</p></div>', *self.library()

    def rescan(
        self, folder: str, mode: str, progress: gr.Progress = PROGRESS
    ) -> tuple[str, list[list[str]], list[list[Any]], Any]:
        """Index an indexed folder again: only what changed is embedded, what is gone is removed."""
        summary, failures = self.run(folder, mode, progress)
        return summary, failures, *self.library()

    def run(self, folder: str, mode: str, progress: gr.Progress = PROGRESS) -> tuple[str, list[list[str]]]:
        """Queue one folder for indexing and follow the job; returns the summary and the failures."""
        path = self.folder_to_index(folder)
        try:
            job = self.ctx.submit([path], "page", mode=mode)
        except (ConfigError, ValidationError) as error:
            raise gr.Error(validation_message(error)) from error
        follow(job, progress, path.name or str(path))
        if job.summary is None:
            raise gr.Error(job.error or "the indexing job failed")
        return summary_html(job.summary, path), failure_rows(job.summary)

    def job_rows(self) -> list[list[Any]]:
        """Running and queued jobs first, then the latest finished ones."""
        runner = self.ctx.jobs
        return [job_row(job) for job in [*runner.jobs(), *runner.recent()[:RECENT_JOBS]]]

    def background_html(self) -> str:
        """Whether background work is paused, and what the folder watcher did last."""
        paused = self.ctx.gate.paused
        state = (
            "paused: reasoning waits until you resume (new files still become searchable)"
            if paused
            else "running"
        )
        lines = [f"<p>Reasoning pass: <b>{state}</b></p>", *self.graph_lines()]
        watcher = self.ctx.watcher
        if watcher is not None:
            note = watcher.last
            said = "watching the indexed folders, nothing changed yet"
            if note is not None:
                at = time.strftime("%H:%M:%S", time.localtime(note.at))
                said = f"{at} · {html.escape(note.root)} · {html.escape(note.what)}"
            lines.append(f"<p>Folder watcher: {said}</p>")
        return f'<div class="ume-run ume-background">{"".join(lines)}</div>'

    def graph_lines(self) -> list[str]:
        """The search graph: building in the background (searches answer meanwhile), ready, or
        none yet (exact scan)."""
        service = self.ctx.service
        if service is None:
            return []
        try:
            line = service.store.graph_status(self.ctx.collection).describe()
        except StoreError:
            return []  # no collection yet
        return [f"<p>{html.escape(line[:1].upper() + line[1:])}</p>"]

    def pause(self) -> str:
        self.ctx.gate.pause()
        return self.background_html()

    def resume(self) -> str:
        self.ctx.gate.resume()
        return self.background_html()


def root_state(root: str) -> str:
    """A root that is gone (or left empty) keeps its items but is not re-scanned."""
    return "available" if root_available(Path(root)) else "unavailable"


def follow(job: Job, progress: gr.Progress, name: str) -> None:
    """Drive the page's progress bar from a job's events until it ends."""
    for event in job.events():
        kind = event["event"]
        if kind == "queued" and event["position"]:
            progress(0, desc=f"waiting: {event['position']} job(s) ahead")
        elif kind == "running":
            progress(0, desc=f"indexing {name}")
        elif kind == "stage":
            progress(None, desc=event["line"])
        elif kind == "progress":
            progress((event["done"], event["total"]), desc=f"indexing {name}", unit=event["unit"])


def job_row(job: Job) -> list[Any]:
    eta = job.eta_seconds()
    count = f"{job.done}/{job.total}" if job.total is not None else str(job.done)
    files = f"{count} {job.unit}"
    doing = job.error if job.error else (job.stages[-1] if job.stages else "")
    return [job.id, job.origin, job.roots, job.state, files, "" if eta is None else f"{eta:.0f} s", doing]


def _stages(stages: StageCounts) -> list[int]:
    """The library's per-stage columns: items with their reasoning, items still waiting."""
    return [stages.with_reasoning, stages.pending]


def summary_html(summary: RunSummary, folder: Path) -> str:
    seconds = summary.seconds.get("total", 0.0)
    counts = (
        f"{summary.indexed} indexed, {summary.unchanged} unchanged, {summary.reused} reused, "
        f"{summary.removed} removed, {summary.failed} failed"
    )
    return (
        '<div class="ume-run">'
        f'<div class="ume-detail-name">Indexed {html.escape(str(folder))}</div>'
        f"<p>{counts} files · {summary.embedded} items embedded · "
        f"{summary.points:,} items in the collection, {summary.with_reasoning:,} with reasoning, "
        f"{summary.pending:,} pending · {seconds:.1f} s</p></div>"
    )


def failure_rows(summary: RunSummary) -> list[list[str]]:
    return [[failure.path, failure.reason] for failure in summary.failures]


def build_index_tab(ctx: AppContext) -> None:
    handlers = IndexHandlers(ctx)
    if ctx.indexing.refusal:
        gr.HTML(f'<div class="ume-banner ume-problem">{html.escape(ctx.indexing.refusal)}</div>')
    with gr.Row(equal_height=True):
        folder = gr.Textbox(label="Folder to add", placeholder="/home/me/Pictures", scale=4)
        mode = gr.Radio(EMBEDDING_CHOICES, value="both", label="Embeddings", scale=3)
        start = gr.Button("Index", variant="primary", scale=1, min_width=120)
    gr.HTML(
        '<div class="ume-note">Re-indexing a folder embeds only what changed; files deleted from '
        "disk leave the index. A collection keeps the embeddings it was built with.</div>"
    )
    summary = gr.HTML()
    build_jobs_panel(handlers)
    library = gr.Dataframe(
        value=handlers.library_rows,  # read again on every page load
        headers=LIBRARY_HEADERS,
        interactive=False,
        wrap=True,
        label="Library: the indexed folders",
    )
    with gr.Row(equal_height=True):
        chosen = gr.Dropdown([row[0] for row in handlers.library_rows()], label="Indexed folder", scale=4)
        rescan = gr.Button("Re-scan", scale=1, min_width=120)
        remove = gr.Button("Remove from index", variant="stop", scale=1, min_width=120)
    failures = gr.Dataframe(
        headers=FAILURE_HEADERS,
        datatype="str",
        interactive=False,
        wrap=True,
        label="Failed files and why",
    )
    wire_runs(handlers, folder, mode, start, summary, failures, library, chosen, rescan, remove)


def build_jobs_panel(handlers: IndexHandlers) -> None:
    """The jobs table and the pause/resume controls, re-read every few seconds."""
    with gr.Row(equal_height=True):
        background = gr.HTML(handlers.background_html)
        pause = gr.Button("Pause the reasoning pass", scale=0, min_width=200)
        resume = gr.Button("Resume", scale=0, min_width=120)
    jobs = gr.Dataframe(
        value=handlers.job_rows,
        headers=JOB_HEADERS,
        interactive=False,
        wrap=True,
        label="Indexing jobs: running, queued and the latest finished",
    )
    pause.click(handlers.pause, None, background, api_name="pause_background", queue=False)
    resume.click(handlers.resume, None, background, api_name="resume_background", queue=False)
    timer = gr.Timer(REFRESH_S)
    timer.tick(
        lambda: (handlers.job_rows(), handlers.background_html()),
        None,
        [jobs, background],
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )


def wire_runs(handlers: IndexHandlers, folder: Any, mode: Any, start: Any, summary: Any, failures: Any,
              library: Any, chosen: Any, rescan: Any, remove: Any) -> None:  # fmt: skip
    """Index, re-scan and remove. Runs queue in the job runner, which takes one at a time, so
    several pages may wait for theirs; a removal waits for the running job itself."""
    start.click(
        handlers.run,
        [folder, mode],
        [summary, failures],
        api_name="index_folder",
        concurrency_id="index",
        concurrency_limit=JOB_WAITERS,
    ).then(handlers.library, None, [library, chosen], api_name=False)
    rescan.click(
        handlers.rescan,
        [chosen, mode],
        [summary, failures, library, chosen],
        api_name="rescan_folder",
        concurrency_id="index",
        concurrency_limit=JOB_WAITERS,
    )
    remove.click(handlers.remove, [chosen], [summary, library, chosen], api_name="remove_folder")
