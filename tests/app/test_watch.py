"""`ume serve --watch`: changes under an indexed root become re-scans of that root; a root that
disappears keeps its items and is shown as unavailable until it is back."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from PIL import Image

from app.context import AppContext, make_context
from app.jobs import Job
from app.ui.index_tab import IndexHandlers
from app.watch import FolderWatcher
from indexer.catalog import schema
from indexer.catalog.open import open_store
from model.encoder import Encoder
from tests.app.fixture_index import COLLECTION, load_encoder

WAIT_S = 60.0
QUICK = {"debounce_s": 0.3, "check_s": 0.2}
T = TypeVar("T")


def picture(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> Encoder:
    return load_encoder(tiny_model_dir)


@pytest.fixture
def served(tiny: Encoder, tmp_path: Path) -> Iterator[tuple[AppContext, Path]]:
    """A context on a fresh store whose one root (two pictures) is indexed, fast vectors only."""
    root = tmp_path / "photos"
    picture(root / "red.png", (220, 20, 20))
    picture(root / "green.png", (20, 200, 40))
    with open_store(data_dir=tmp_path / "data") as store:
        settings = {"data_dir": tmp_path / "data", "max_new_tokens": 4}
        ctx = make_context(store, COLLECTION, tiny, index_settings=settings)
        assert ctx.submit([root], "page", mode="disc").wait(WAIT_S)
        ctx.refresh_roots()
        try:
            yield ctx, root
        finally:
            if ctx.watcher is not None:
                ctx.watcher.stop()
            ctx.jobs.close(wait_s=10)


class WatcherJobs:
    """The watcher's finished jobs, one at a time, as they come."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.seen: set[str] = set()

    def next(self) -> Job:
        found = poll(lambda: next(iter(self.fresh()), None))
        self.seen.add(found.id)
        assert found.exit_status == 0, found.error
        return found

    def fresh(self) -> list[Job]:
        finished = reversed(self.ctx.jobs.recent())
        return [job for job in finished if job.origin == "watcher" and job.id not in self.seen]


def poll(check: Callable[[], T | None], deadline_s: float = WAIT_S) -> T:
    """The first truthy answer of `check`, asked every 50 ms until the deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(0.05)
    raise AssertionError(f"nothing after {deadline_s} s")


def indexed(ctx: AppContext, path: Path) -> bool:
    assert ctx.service is not None
    return ctx.service.is_indexed(str(path))


def test_new_changed_moved_and_deleted_files_are_picked_up(served: tuple[AppContext, Path]) -> None:
    ctx, root = served
    jobs = WatcherJobs(ctx)
    watcher = ctx.watch(**QUICK)
    start = jobs.next()  # the catch-up re-scan at start: nothing changed
    assert start.config.roots == [root] and start.summary and start.summary.unchanged == 2

    picture(root / "nested" / "blue.png", (20, 20, 230))
    new = jobs.next()
    assert new.config.roots == [root]  # the root, never the sub-folder that changed
    assert new.summary and new.summary.indexed == 1 and indexed(ctx, root / "nested" / "blue.png")
    assert watcher.last is not None and "1 new" in watcher.last.what
    assert (
        watcher.last.describe()
        == f"1 new: re-scanned ({new.id}: 1 indexed, 2 unchanged files; 3 items in the collection)"
    )
    assert "queued" not in IndexHandlers(ctx).background_html()  # the job ended: not 'queued'

    picture(root / "red.png", (240, 240, 0), size=(72, 40))
    changed = jobs.next()
    assert changed.summary and changed.summary.indexed == 1 and changed.summary.unchanged == 2

    (root / "green.png").rename(root / "nested" / "green again.png")
    moved = jobs.next()
    assert moved.summary and (moved.summary.reused, moved.summary.removed) == (1, 1)
    assert indexed(ctx, root / "nested" / "green again.png") and not indexed(ctx, root / "green.png")

    (root / "nested" / "blue.png").unlink()
    deleted = jobs.next()
    assert deleted.summary and deleted.summary.removed == 1
    assert not indexed(ctx, root / "nested" / "blue.png")
    assert "1 deleted" in (watcher.last.what if watcher.last else "")


def test_changes_made_while_the_server_was_down_are_caught_up(served: tuple[AppContext, Path]) -> None:
    ctx, root = served
    jobs = WatcherJobs(ctx)
    ctx.watch(**QUICK)
    jobs.next()
    assert ctx.watcher is not None
    ctx.watcher.stop()  # the server stops ...
    picture(root / "later.png", (90, 90, 90))
    os.remove(root / "red.png")
    ctx.watch(**QUICK)  # ... and starts again
    caught_up = jobs.next()
    assert caught_up.summary and (caught_up.summary.indexed, caught_up.summary.removed) == (1, 1)
    assert indexed(ctx, root / "later.png") and not indexed(ctx, root / "red.png")


def test_a_root_that_disappears_keeps_its_items_until_it_is_back(served: tuple[AppContext, Path]) -> None:
    ctx, root = served
    assert ctx.service is not None
    handlers, jobs = IndexHandlers(ctx), WatcherJobs(ctx)
    watcher = ctx.watch(**QUICK)
    jobs.next()
    away = root.with_name("unplugged")
    root.rename(away)  # the disk is unmounted
    poll(lambda: str(root) in watcher.unavailable())
    time.sleep(QUICK["debounce_s"] * 3)  # time enough for a re-scan, if one were (wrongly) queued
    assert jobs.fresh() == [] and ctx.jobs.jobs() == []
    assert ctx.service.store.count(COLLECTION, schema.items(root=str(root))) == 2
    assert [row[-1] for row in handlers.library_rows()] == ["unavailable"]
    assert watcher.last is not None and "unavailable" in watcher.last.what

    away.rename(root)  # plugged in again
    back = jobs.next()
    assert back.summary and back.summary.unchanged == 2 and back.summary.removed == 0
    assert [row[-1] for row in handlers.library_rows()] == ["available"]
    assert str(root) not in watcher.unavailable()


def test_where_events_are_unavailable_a_polling_walk_finds_the_changes(
    served: tuple[AppContext, Path],
) -> None:
    ctx, root = served
    jobs = WatcherJobs(ctx)
    ctx.watcher = FolderWatcher(ctx.refresh_roots, lambda r: ctx.submit([r], "watcher"), polling=True,
                                poll_s=0.2, **QUICK)  # fmt: skip
    ctx.watcher.start()
    jobs.next()
    picture(root / "polled.png", (10, 120, 120))
    found = jobs.next()
    assert found.summary and found.summary.indexed == 1 and indexed(ctx, root / "polled.png")
