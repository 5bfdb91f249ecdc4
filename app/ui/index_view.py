"""What the Index tab shows, as table rows and HTML: the library, the failed files, the jobs, and
the background work (the running job's progress, the reasoning pass, the search graph, the
folder watcher).

Everything is read through `app.library` and the job runner, so a job started from the command
line or by the watcher reads exactly as one started on the page.
"""

from __future__ import annotations

import html
import time
from typing import Any

from app.context import AppContext
from app.jobs import Job
from app.library import failed_files, folders, pending_reasoning, reasoning_line
from indexer.catalog.schema import ITEM_KINDS
from indexer.catalog.store import StoreError

FAILURE_HEADERS = ["file", "reason"]
FAILURE_WIDTHS: list[str | int] = ["45%", "55%"]
LIBRARY_HEADERS = [
    "folder",
    *(f"{kind}s" for kind in ITEM_KINDS),
    "files",
    "failed",
    "with reasoning",
    "pending",
    "state",
]
LIBRARY_WIDTHS: list[str | int] = ["28%", "8%", "8%", "10%", "7%", "7%", "12%", "8%", "12%"]
JOB_HEADERS = ["job", "from", "folder", "state", "progress", "ETA", "doing"]
JOB_WIDTHS: list[str | int] = ["7%", "8%", "20%", "8%", "12%", "7%", "38%"]
RECENT_JOBS = 5  # finished jobs listed under the running and queued ones


def library_rows(ctx: AppContext) -> list[list[Any]]:
    """One row per indexed folder: items per kind, files, failed files, stages, its state."""
    if ctx.service is None:
        return []
    return [
        [
            folder.counts.root,
            *(folder.counts.kinds[kind] for kind in ITEM_KINDS),
            folder.counts.files,
            folder.counts.failed,
            folder.counts.stages.with_reasoning,
            folder.counts.stages.pending,
            "available" if folder.available else "unavailable",
        ]
        for folder in folders(ctx.service.store, ctx.collection)
    ]


def failure_rows(ctx: AppContext) -> list[list[str]]:
    """Every file of the collection that failed, with the reason (the library's 'failed')."""
    if ctx.service is None:
        return []
    try:
        return [[failure.path, failure.reason] for failure in failed_files(ctx.service.store, ctx.collection)]
    except StoreError:
        return []  # no collection yet


def job_rows(ctx: AppContext) -> list[list[Any]]:
    """Running and queued jobs first, then the latest finished ones."""
    runner = ctx.jobs
    return [job_row(job) for job in [*runner.jobs(), *runner.recent()[:RECENT_JOBS]]]


def job_row(job: Job) -> list[Any]:
    eta = job.eta_seconds()
    left = "" if eta is None else f"{eta:.0f} s"
    return [job.id, job.origin, job.roots, job.state, progress_text(job), left, job.doing()]


def progress_text(job: Job) -> str:
    count = f"{job.done}/{job.total}" if job.total is not None else str(job.done)
    return f"{count} {job.unit}"


def background_html(ctx: AppContext) -> str:
    """The running job's progress, the reasoning pass, the search graph, the folder watcher."""
    running = ctx.jobs.jobs()
    pending = pending_reasoning(ctx.service.store, ctx.collection) if ctx.service is not None else 0
    state = reasoning_line(ctx.gate.paused, running[0].id if running else None, pending)
    lines = [*running_job_lines(running), f"<p>Reasoning pass: <b>{html.escape(state)}</b></p>"]
    lines += graph_lines(ctx)
    watcher = ctx.watcher
    if watcher is not None:
        note = watcher.last
        said = "watching the indexed folders, nothing changed yet"
        if note is not None:
            at = time.strftime("%H:%M:%S", time.localtime(note.at))
            said = f"{at} · {html.escape(note.root)} · {html.escape(note.describe())}"
        lines.append(f"<p>Folder watcher: {said}</p>")
    return f'<div class="ume-run ume-background">{"".join(lines)}</div>'


def running_job_lines(jobs: list[Job]) -> list[str]:
    """The running job with a progress bar, and how many wait behind it."""
    if not jobs:
        return []
    job, waiting = jobs[0], len(jobs) - 1
    eta = job.eta_seconds()
    words = [f"{job.id} ({job.origin})", job.roots, job.doing(), progress_text(job)]
    words += [f"about {eta:.0f} s left"] if eta is not None else []
    words += [f"{waiting} more queued"] if waiting else []
    bar = (
        f'<progress class="ume-progress" value="{job.done}" max="{job.total}"></progress>'
        if job.total
        else '<progress class="ume-progress"></progress>'
    )
    return [f'<p class="ume-now">Now: {html.escape(" · ".join(words))}</p>{bar}']


def graph_lines(ctx: AppContext) -> list[str]:
    """The search graph: building in the background (searches answer meanwhile), ready, or none
    yet (exact scan)."""
    service = ctx.service
    if service is None:
        return []
    try:
        line = service.store.graph_status(ctx.collection).describe()
    except StoreError:
        return []  # no collection yet
    return [f"<p>{html.escape(line[:1].upper() + line[1:])}</p>"]
