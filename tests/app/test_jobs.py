"""The server's job runner: one job at a time, events for every listener, standalone exit statuses;
and the Index tab's runs going through it."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app.context import make_context
from app.jobs import JobRunner
from app.library import reasoning_line
from app.ui.index_tab import IndexHandlers
from indexer.catalog.open import open_store
from indexer.config import ConfigError, IndexConfig
from indexer.pipeline import ProgressCallback
from indexer.run import StageCallback
from indexer.summary import Failure, RunSummary
from tests.app.fixture_index import COLLECTION, FixtureIndex, load_encoder, shared_index

WAIT_S = 30.0


class Scripted:
    """An `execute` that reports three files and waits for the test's word before it ends."""

    def __init__(self) -> None:
        self.release: dict[str, threading.Event] = {}
        self.started: list[str] = []
        self.running = threading.Semaphore(0)

    def __call__(self, config: IndexConfig, on_progress: ProgressCallback, on_stage: StageCallback) -> Any:
        name = config.roots[0].name
        self.started.append(name)
        self.running.release()
        on_stage(f"looking at {name}")
        for done in range(3):
            on_progress(done, 3)
        if name == "mistake":
            raise ConfigError(f"no such file or folder: {name}")
        self.release.setdefault(name, threading.Event()).wait(WAIT_S)
        on_progress(3, 3)
        failures = [Failure("x.jpg", "damaged")] if name == "some-fail" else []
        return RunSummary(indexed=3 - len(failures), failed=len(failures), failures=failures)

    def let_end(self, name: str) -> None:
        self.release.setdefault(name, threading.Event()).set()


def config(name: str) -> IndexConfig:
    return IndexConfig(roots=[Path("/library") / name])


def test_a_job_submitted_while_another_runs_waits_then_runs() -> None:
    work = Scripted()
    runner = JobRunner(work)
    try:
        first = runner.submit(config("first"), "page")
        assert work.running.acquire(timeout=WAIT_S)
        second = runner.submit(config("second"), "cli")
        assert [job.state for job in runner.jobs()] == ["running", "queued"]
        assert not second.wait(0.2) and work.started == ["first"]  # it waits for the first
        work.let_end("first")
        assert first.wait(WAIT_S) and first.state == "done" and first.exit_status == 0
        assert work.running.acquire(timeout=WAIT_S) and work.started == ["first", "second"]
        work.let_end("second")
        assert second.wait(WAIT_S) and second.exit_status == 0
        assert [job.id for job in runner.recent()] == [second.id, first.id]
    finally:
        runner.close(wait_s=5)


def test_every_listener_hears_the_whole_job_and_its_standalone_exit_status() -> None:
    work = Scripted()
    runner = JobRunner(work)
    try:
        job = runner.submit(config("some-fail"), "cli")
        heard: list[list[dict[str, Any]]] = [[], []]
        listeners = [threading.Thread(target=lambda got=got: got.extend(job.events())) for got in heard]
        for listener in listeners:
            listener.start()
        work.let_end("some-fail")
        for listener in listeners:
            listener.join(WAIT_S)
        late = list(job.events())  # a listener arriving after the end hears it all too
        assert heard[0] == heard[1] == late
        kinds = [event["event"] for event in late]
        assert kinds[:3] == ["queued", "running", "stage"] and kinds[-1] == "done"
        assert late[2]["line"] == "looking at some-fail"
        assert [e["done"] for e in late if e["event"] == "progress"][-1] == 3
        assert late[-1]["exit_status"] == 1 and late[-1]["summary"]["failures"][0]["reason"] == "damaged"
    finally:
        runner.close(wait_s=5)


def test_a_mistake_fails_its_job_with_one_line_and_status_2_and_the_next_one_runs() -> None:
    work = Scripted()
    runner = JobRunner(work)
    try:
        bad = runner.submit(config("mistake"), "cli")
        good = runner.submit(config("after"), "watcher")
        assert bad.wait(WAIT_S) and bad.state == "failed" and bad.exit_status == 2
        assert bad.error == "no such file or folder: mistake"
        work.let_end("after")
        assert good.wait(WAIT_S) and good.state == "done"
    finally:
        runner.close(wait_s=5)


def test_a_watcher_rescan_already_waiting_is_not_queued_twice() -> None:
    work = Scripted()
    runner = JobRunner(work)
    try:
        runner.submit(config("busy"), "page")
        assert work.running.acquire(timeout=WAIT_S)
        first = runner.submit(config("photos"), "watcher")
        assert runner.submit(config("photos"), "watcher") is first
        assert runner.submit(config("photos"), "page") is not first  # a person's click always runs
        work.let_end("busy")
        work.let_end("photos")
    finally:
        runner.close(wait_s=5)


def test_eta_comes_from_the_rate_so_far() -> None:
    work = Scripted()
    runner = JobRunner(work)
    try:
        job = runner.submit(config("slow"), "page")
        assert work.running.acquire(timeout=WAIT_S)
        for _ in job.events(timeout=0.5):
            if job.done == 2:
                break
        eta = job.eta_seconds()
        assert eta is not None and eta >= 0 and job.to_json()["total"] == 3
        work.let_end("slow")
        assert job.wait(WAIT_S) and job.eta_seconds() is None
    finally:
        runner.close(wait_s=5)


@pytest.fixture(scope="module")
def index(tiny_model_dir: Path, examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FixtureIndex:
    return shared_index(tiny_model_dir, examples_dir, tmp_path_factory)


def test_the_index_tab_runs_through_the_job_runner(index: FixtureIndex, tmp_path: Path) -> None:
    folder = tmp_path / "new"
    folder.mkdir()
    Image.new("RGB", (80, 60), (10, 90, 200)).save(folder / "blue.png")
    shutil.copytree(index.data_dir, tmp_path / "data")
    with open_store(data_dir=tmp_path / "data") as store:
        settings = {"data_dir": tmp_path / "data", "max_new_tokens": 4}
        ctx = make_context(store, COLLECTION, load_encoder(index.model_dir), index_settings=settings)
        handlers = IndexHandlers(ctx)
        (queued, _), (summary, failures) = handlers.run(str(folder), "both")
        ((job,),) = [ctx.jobs.recent()]
        assert queued.startswith(f'<div class="ume-run"><p>{job.id}: indexing')
        assert (job.origin, job.state, job.exit_status) == ("page", "done", 0)
        assert "1 indexed" in summary and failures == []
        rows = handlers.job_rows()
        assert "adding reasoning to 1 items" in job.stages
        assert rows[0][:5] == [job.id, "page", str(folder), "done", "1/1 items"]  # the fill's count
        assert job.summary is not None  # how it ended, not its last step ("building the search index")
        assert rows[0][6] == f"1 indexed files; {job.summary.points:,} items in the collection"
        assert str(folder) in {row[0] for row in handlers.library_rows()}
        ctx.gate.pause()
        assert "paused" in handlers.background_html()
        assert "Search graph: none, exact scan over" in handlers.background_html()  # a tiny index
        assert (
            "Reasoning pass: <b>idle: nothing waits for its reasoning" in handlers.resume()
        )  # not 'running'
        assert ctx.jobs.close()


def test_a_folder_with_nothing_ume_reads_says_which_files_it_reads(
    index: FixtureIndex, tmp_path: Path
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "hosts").write_text("127.0.0.1 localhost\n")
    (folder / "notes.txt").write_text("not media")
    shutil.copytree(index.data_dir, tmp_path / "data")
    with open_store(data_dir=tmp_path / "data") as store:
        ctx = make_context(
            store, COLLECTION, load_encoder(index.model_dir), index_settings={"data_dir": tmp_path / "data"}
        )
        *_, (summary, failures) = IndexHandlers(ctx).run(str(folder), "both")
        said = f"found no files ume reads in {folder}; it reads images (.bmp"
        assert said in summary and "0 indexed" not in summary and failures == []
        ((job,),) = [ctx.jobs.recent()]
        assert job.doing().startswith(said) and "documents (.pdf)" in job.doing()
        assert ctx.jobs.close()


def test_the_reasoning_pass_is_running_only_while_a_job_has_items_to_reason_about() -> None:
    assert reasoning_line(paused=False, running_job="job-2", pending=3).startswith("running (job-2): 3 items")
    assert (
        reasoning_line(paused=False, running_job="job-2", pending=0)
        == "idle: nothing waits for its reasoning"
    )
    assert (
        reasoning_line(paused=False, running_job=None, pending=0) == "idle: nothing waits for its reasoning"
    )
    assert reasoning_line(paused=False, running_job=None, pending=1).startswith(
        "idle: 1 item has no reasoning"
    )
    assert reasoning_line(paused=True, running_job="job-2", pending=4).startswith("paused: 4 items wait")
