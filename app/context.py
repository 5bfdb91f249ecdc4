"""What every part of the UI shares: the search service, the served files, what is wrong, and
the server's indexing jobs (`jobs`), with the gate that lets searches go ahead of them (`gate`).

The UI starts even when the store or the model cannot be opened, so a user sees one clear line
saying what to fix instead of a stack trace; `problems` holds those lines and every handler
checks `service` before using it.
"""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.files import ServedFiles
from app.jobs import Job, JobOrigin, JobRunner
from app.search import SearchService
from app.search_request import DEFAULT_QUERY_MAX_NEW_TOKENS, DEFAULT_SHORTLIST, SearchError
from indexer.catalog import schema
from indexer.catalog.collection import resolved_model_id
from indexer.catalog.store import Store, StoreError
from indexer.config import ConfigError, IndexConfig
from indexer.gate import Gate
from indexer.pipeline import ProgressCallback
from indexer.run import StageCallback, index_folders
from indexer.summary import RunSummary
from model.encoder import Encoder

if TYPE_CHECKING:
    from app.watch import FolderWatcher

log = logging.getLogger(__name__)

ROOTS_REFRESH_SECONDS = 10.0  # a hit outside the known roots re-reads them, at most this often
TEST_MODEL_NOTICE = (
    "Results come from a tiny offline model, not UME-R1: the reference model trained only on a "
    "synthetic world (coloured shapes, moving shapes, pages of two words: try the example "
    "queries), or an untrained one where that is missing. For real results run "
    "`ume demo --model zhibinlan/UME-R1-2B` (a GPU makes reasoning searches take seconds)."
)


@dataclass
class IndexingPolicy:
    """Which folders the Index tab may add; None in `under` means any folder on this machine."""

    under: list[Path] | None
    refusal: str | None = None  # why indexing from the browser is off, when it is

    def refusal_for(self, path: Path) -> str | None:
        """Why `path` (absolute) may not be indexed through this server, or None."""
        if self.refusal:
            return self.refusal
        if self.under is not None and not any(path.is_relative_to(d) for d in self.under):
            allowed = ", ".join(str(d) for d in self.under) or "none"
            return f"only folders under {allowed} may be indexed through this server"
        return None


@dataclass
class AppContext:
    collection: str
    service: SearchService | None  # None when the store could not be opened
    files: ServedFiles
    problems: list[str] = field(default_factory=list)  # startup failures, one line each
    test_model: bool = False  # results come from the untrained offline model
    max_new_tokens: int = DEFAULT_QUERY_MAX_NEW_TOKENS
    shortlist: int = DEFAULT_SHORTLIST
    indexing: IndexingPolicy = field(default_factory=lambda: IndexingPolicy(under=None))
    index_settings: dict[str, Any] = field(default_factory=dict)  # extra IndexConfig fields
    blocks: Any = None  # the launched gr.Blocks, whose allowed_paths grow with new roots
    gate: Gate = field(default_factory=Gate)  # searches first; the Index tab pauses the rest
    watcher: FolderWatcher | None = None  # `ume serve --watch`
    _roots_read_at: float = field(default=0.0, init=False)
    _jobs: JobRunner | None = field(default=None, init=False)

    @property
    def jobs(self) -> JobRunner:
        """The server's one queue of indexing jobs (its thread starts with the first job)."""
        if self._jobs is None:
            self._jobs = JobRunner(self._execute, on_finished=self._after_job)
        return self._jobs

    def submit(self, roots: list[Path], origin: JobOrigin, **fields: Any) -> Job:
        """Queue an indexing job of `roots` into the served collection."""
        return self.jobs.submit(self.index_config(roots, **fields), origin)

    def index_config(self, roots: list[Path], **fields: Any) -> IndexConfig:
        """A run of the served collection with the loaded model; the serving options win."""
        encoder = self.service.encoder if self.service is not None else None
        requested = fields.pop("model", None)
        if (
            encoder is not None
            and requested
            and resolved_model_id(requested) != resolved_model_id(encoder.model_id)
        ):
            raise ConfigError(
                f"this server indexes with {encoder.model_id}, not {requested}: "
                "leave out --model, or stop ume serve first"
            )
        model = encoder.model_id if encoder is not None else requested
        values = {**fields, "roots": roots, "collection": self.collection, "model": model}
        return IndexConfig.model_validate(values | self.index_settings)

    def _execute(
        self, config: IndexConfig, on_progress: ProgressCallback, on_stage: StageCallback
    ) -> RunSummary:
        service = self.service
        if service is None or service.encoder is None:
            raise ConfigError("; ".join(self.problems) or "no model is loaded, so indexing is off")
        return index_folders(
            config,
            encoder=service.encoder,
            store=service.store,
            progress=False,
            on_progress=on_progress,
            on_stage=on_stage,
            gate=self.gate,
        )

    def watch(self, **options: Any) -> FolderWatcher:
        """Keep the indexed roots current (`ume serve --watch`); see `app.watch`."""
        from app.watch import FolderWatcher

        rescan = lambda root: self.submit([root], "watcher")  # noqa: E731 - the root, never a sub-path
        self.watcher = FolderWatcher(self.refresh_roots, rescan, **options)
        self.watcher.start()
        return self.watcher

    def close(self) -> None:
        """Stop watching and running jobs, then close the store (unless a job still writes)."""
        if self.watcher is not None:
            self.watcher.stop()
        idle = self._jobs.close() if self._jobs is not None else True
        if idle and self.service is not None:
            self.service.store.close()

    def _after_job(self, job: Job) -> None:
        if job.state == "done":
            for root in job.config.roots:
                self.allow_root(root)
        if self.watcher is not None:
            self.watcher.roots_changed()

    def allow_root(self, root: str | Path) -> None:
        """Serve files under a newly indexed root, in our checks and in Gradio's."""
        folder = str(self.files.add_root(root))
        if self.blocks is not None and folder not in self.blocks.allowed_paths:
            self.blocks.allowed_paths.append(folder)

    def refresh_roots(self) -> list[Path]:
        """Re-read the indexed roots from the store (after an indexing run)."""
        if self.service is None:
            return []
        try:
            roots = self.service.indexed_roots()
        except StoreError as error:
            log.warning("cannot list indexed folders: %s", error)
            return self.files.roots
        for root in roots:
            self.allow_root(root)
        return roots

    def know_roots_of(self, paths: list[str]) -> None:
        """Folders indexed by another process since the last look: re-read them, at most so often."""
        unknown = any(self.files.root_of(path) is None for path in paths)
        if unknown and time.monotonic() - self._roots_read_at > ROOTS_REFRESH_SECONDS:
            self._roots_read_at = time.monotonic()
            self.refresh_roots()

    def is_indexed(self, path: str) -> bool:
        """For `ServedFiles`: a store that cannot answer serves nothing."""
        if self.service is None:
            return False
        try:
            return self.service.is_indexed(path)
        except StoreError:
            return False

    def current_problems(self) -> list[str]:
        """Startup problems, and what stops searching right now (re-checked on every page load)."""
        live = readiness_problems(self.service) if self.service is not None else []
        return self.problems + live

    def banner_html(self) -> str:
        problems = self.current_problems()
        lines = [f'<div class="ume-banner ume-problem">{html.escape(p)}</div>' for p in problems]
        if self.test_model:
            lines.append(f'<div class="ume-banner ume-test-model">{html.escape(TEST_MODEL_NOTICE)}</div>')
        return "".join(lines)

    def summary_line(self) -> str:
        """`collection media · 1,234 items · model X`, or what is missing."""
        if self.service is None:
            return "no index open"
        try:
            info = self.service.collection_info()
            items = self.service.store.count(self.collection, schema.items())
        except StoreError as error:
            return str(error)
        model = short_model_name(self.service.encoder.model_id) if self.service.encoder else None
        searching = model or "no model (search is off)"
        return (
            f"collection {self.collection} · {items:,} items · indexed with "
            f"{short_model_name(info.model_id)} · searching with {searching}"
        )


def short_model_name(model_id: str) -> str:
    """A hub name as is; a local checkpoint directory by its folder name."""
    path = Path(model_id)
    return path.name if path.is_absolute() else model_id


def make_context(
    store: Store | None,
    collection: str,
    encoder: Encoder | None,
    problems: list[str] | None = None,
    **options: Any,
) -> AppContext:
    """An app context whose served files are the collection's indexed files and roots."""
    ctx = AppContext(collection, None, ServedFiles(), list(problems or []), **options)
    if store is not None:  # every search of the page and the API goes ahead of background work
        ctx.service = SearchService(store, collection, encoder, ctx.gate)
    ctx.files = ServedFiles(is_indexed=ctx.is_indexed)
    ctx.refresh_roots()
    return ctx


def readiness_problems(service: SearchService) -> list[str]:
    """What stops searching right now (no collection yet, a model that does not match it)."""
    try:
        service.collection_info()
    except StoreError as error:
        return [f"{error} (use the Index tab or `ume index`)"]
    if service.encoder is None:
        return []
    try:
        service.ready_encoder()
        notice = service.outdated_notice()
    except (SearchError, StoreError) as error:
        return [str(error)]
    return [notice] if notice else []
