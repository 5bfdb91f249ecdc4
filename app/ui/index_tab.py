"""Index tab: the library (indexed folders with their counts, re-scan, remove), adding a folder
with a progress bar, and the run summary and failures.

The run uses the indexer itself (`indexer.run.index_folders`) with the UI's open store and
loaded model, and its progress callback drives the bar. Which folders may be added is decided
by the serving options (`IndexingPolicy`): indexing a folder makes its files viewable, so a
page reachable from other machines may only add folders under the ones it was started with.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import ValidationError

from app.ui.context import AppContext
from indexer.catalog.collection import CollectionMismatch, StageCounts, folder_counts
from indexer.catalog.schema import ITEM_KINDS
from indexer.catalog.store import StoreError
from indexer.config import ConfigError, IndexConfig, validation_message
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
]
PROGRESS = gr.Progress()  # Gradio fills in a tracker bound to the running event
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
        policy = self.ctx.indexing
        if policy.refusal:
            raise gr.Error(policy.refusal)
        if policy.under is not None and not any(path.is_relative_to(d) for d in policy.under):
            allowed = ", ".join(str(d) for d in policy.under) or "none"
            raise gr.Error(f"only folders under {allowed} may be indexed from this page")
        if not path.is_dir():
            raise gr.Error(f"no such folder: {path}")
        return path

    def library_rows(self) -> list[list[Any]]:
        """One row per indexed folder: items per kind, files, failed files."""
        service = self.ctx.service
        if service is None:
            return []
        try:
            counts = folder_counts(service.store, self.ctx.collection)
        except StoreError:
            return []
        return [
            [c.root, *(c.kinds[kind] for kind in ITEM_KINDS), c.files, c.failed, *_stages(c.stages)]
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
            removed = remove_root(service.store, self.ctx.collection, folder)
        except StoreError as error:
            raise gr.Error(str(error)) from error
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

    def config(self, folder: Path, mode: str, model_id: str) -> IndexConfig:
        """The run's settings: the served collection and model, plus the serving options."""
        settings = {"roots": [folder], "collection": self.ctx.collection, "model": model_id}
        return IndexConfig.model_validate({**settings, "mode": mode, **self.ctx.index_settings})

    def run(self, folder: str, mode: str, progress: gr.Progress = PROGRESS) -> tuple[str, list[list[str]]]:
        """Index one folder into the served collection; returns the summary and the failures."""
        path = self.folder_to_index(folder)
        service = self.ctx.service
        if service is None or service.encoder is None:
            raise gr.Error("; ".join(self.ctx.problems) or "no model is loaded, so indexing is off")
        progress(0, desc=f"indexing {path}")

        def on_progress(done: int, total: int | None) -> None:
            progress((done, total), desc=f"indexing {path.name or path}", unit="files")

        def on_stage(line: str) -> None:
            progress(None, desc=line)

        from indexer.run import index_folders

        try:
            summary = index_folders(
                self.config(path, mode, service.encoder.model_id),
                encoder=service.encoder,
                progress=False,
                store=service.store,
                on_progress=on_progress,
                on_stage=on_stage,
            )
        except (ConfigError, CollectionMismatch, StoreError, ValidationError) as error:
            raise gr.Error(validation_message(error)) from error
        self.ctx.allow_root(path)
        return summary_html(summary, path), failure_rows(summary)


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
    outputs: list[Any] = [summary, failures]
    start.click(
        handlers.run,
        [folder, mode],
        outputs,
        api_name="index_folder",
        concurrency_id="index",
        concurrency_limit=1,
    ).then(handlers.library, None, [library, chosen], api_name=False)
    # Re-scans and removals wait for a running index job (one writer at a time).
    rescan.click(
        handlers.rescan,
        [chosen, mode],
        [summary, failures, library, chosen],
        api_name="rescan_folder",
        concurrency_id="index",
        concurrency_limit=1,
    )
    remove.click(
        handlers.remove,
        [chosen],
        [summary, library, chosen],
        api_name="remove_folder",
        concurrency_id="index",
        concurrency_limit=1,
    )
