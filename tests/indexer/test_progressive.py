"""Progressive indexing: searchable at once with disc vectors, reasoning filled in behind.

The fill pass (`indexer.fill`) runs after the first pass, resumes after a kill without redoing
finished items, upgrades a disc collection in place, waits at the server's gate, and searches
say how many items still wait for their reasoning.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.cli import main
from app.search import SearchService
from app.search_request import SearchRequest
from indexer.catalog import schema
from indexer.catalog.collection import open_collection, stage_counts
from indexer.catalog.open import open_store
from indexer.catalog.store import CollectionInfo, Point
from indexer.catalog.widening import resume_widening, staging_name
from indexer.fill import KILL_AFTER_ENV
from indexer.gate import Gate
from indexer.run import index_folders
from tests.conftest import REPO
from tests.indexer.test_index_cli import index_args
from tests.indexer.test_indexer import (
    GOOD_IMAGES,
    ITEMS,
    config_for,
    items,
    make_library,
    run_index,
    write_image,
)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return make_library(tmp_path / "library", broken=False)


def store_items(tmp_path: Path) -> list[Any]:
    return items({"data_dir": tmp_path / "index"}, with_vectors=True)


def vectors_by_id(location: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    return {
        point_id: {name: np.asarray(vector) for name, vector in vectors.items()}
        for point_id, _, vectors in items(location, with_vectors=True)
    }


def test_items_answer_fast_searches_before_their_reasoning_is_written(library, encoder, tmp_path) -> None:
    seen: dict[str, Any] = {}
    with open_store(tmp_path / "index") as store:
        service = SearchService(store, "media", encoder)

        def on_stage(line: str) -> None:
            if line.startswith("adding reasoning"):  # the first pass is over, the second starts
                seen["stages"] = stage_counts(store, "media")
                seen["fast"] = service.search(SearchRequest(text="a photo", mode="fast", top_k=ITEMS))
                seen["reasoning"] = service.search(
                    SearchRequest(text="a photo", mode="reasoning", max_new_tokens=4)
                )

        config = config_for(library, Path(encoder.model_id), {"data_dir": tmp_path / "index"})
        summary = index_folders(config, encoder=encoder, store=store, progress=False, on_stage=on_stage)
        after = service.search(SearchRequest(text="a photo", mode="reasoning", top_k=ITEMS, max_new_tokens=4))

    assert seen["stages"].searchable == ITEMS and seen["stages"].with_reasoning == 0
    assert seen["stages"].pending == ITEMS
    assert len(seen["fast"].hits) == ITEMS  # every item answers fast searches already
    assert seen["reasoning"].hits == [] and seen["reasoning"].pending == ITEMS
    assert f"{ITEMS} matching items are still waiting" in seen["reasoning"].pending_notice()
    assert (summary.filled["gen"], summary.with_reasoning, summary.pending) == (ITEMS, ITEMS, 0)
    assert len(after.hits) == ITEMS and after.pending == 0 and after.pending_notice() is None
    assert {tuple(sorted(vectors)) for _, _, vectors in store_items(tmp_path)} == {("disc", "gen")}


def test_a_killed_second_pass_resumes_without_redoing_finished_items(
    library, tiny_model_dir, tmp_path
) -> None:
    data_dir = tmp_path / "index"
    args = index_args(library, tiny_model_dir, "--data-dir", str(data_dir))  # batches of 2
    env = os.environ | {KILL_AFTER_ENV: "2"}
    killed = subprocess.run([sys.executable, "-m", "app", *args], env=env, cwd=REPO, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    location = {"data_dir": data_dir}
    before = vectors_by_id(location)
    finished = {point_id for point_id, vectors in before.items() if "gen" in vectors}
    assert len(before) == ITEMS and len(finished) == 4  # two batches of two were written
    assert all("disc" in vectors for vectors in before.values())

    assert main(args) == 0
    after = vectors_by_id(location)
    assert set(after) == set(before)  # every item present once
    for point_id in finished:  # finished gen vectors kept as they were, not embedded again
        np.testing.assert_array_equal(after[point_id]["gen"], before[point_id]["gen"])
    assert all("gen" in vectors for vectors in after.values())


def test_a_disc_collection_gains_reasoning_in_place(library, encoder, tmp_path) -> None:
    location = {"data_dir": tmp_path / "index"}
    first = run_index(library, encoder, location, mode="disc")
    assert (first.embedded, first.with_reasoning, first.pending) == (ITEMS, 0, 0)
    disc_only = vectors_by_id(location)
    again = run_index(library, encoder, location, mode=None)  # the collection's own mode: disc
    assert encoder.encoded_items == 0 and again.filled == {"disc": 0}

    upgraded = run_index(library, encoder, location, mode="both")
    assert (upgraded.embedded, upgraded.filled["gen"], upgraded.with_reasoning) == (0, ITEMS, ITEMS)
    assert encoder.encoded_items == ITEMS  # one generation per item, no disc pass again
    after = vectors_by_id(location)
    for point_id, vectors in disc_only.items():
        np.testing.assert_array_equal(after[point_id]["disc"], vectors["disc"])

    write_image(library / "photos/new.png", seed=77)  # later runs keep the wider mode
    later = run_index(library, encoder, location, mode=None)
    assert (later.embedded, later.filled["gen"], later.pending) == (1, 1, 0)


def test_disc_mode_leaves_reasoning_pending_until_a_later_run(library, encoder, tmp_path, capsys) -> None:
    location = {"data_dir": tmp_path / "index"}
    run_index(library, encoder, location)
    write_image(library / "photos/new.png", seed=78)
    quick = run_index(library, encoder, location, mode="disc")
    assert (quick.embedded, quick.filled.get("gen", 0), quick.pending) == (1, 0, 1)
    assert main(["status", "--data-dir", str(tmp_path / "index")]) == 0
    assert f"{ITEMS + 1} items searchable, {ITEMS} with reasoning, 1 pending" in capsys.readouterr().out
    rest = run_index(library, encoder, location, mode=None)
    assert (rest.embedded, rest.filled["gen"], rest.pending) == (0, 1, 0)


def test_the_second_pass_waits_while_paused_and_resumes(library, encoder, tmp_path) -> None:
    gate = Gate()
    gate.pause()
    location = {"data_dir": tmp_path / "index"}
    config = config_for(library, Path(encoder.model_id), location)
    reached_fill = threading.Event()
    result: dict[str, Any] = {}
    with open_store(tmp_path / "index") as store:

        def index() -> None:
            def on_stage(line: str) -> None:
                if line.startswith("adding reasoning"):
                    reached_fill.set()

            result["summary"] = index_folders(
                config, encoder=encoder, store=store, progress=False, on_stage=on_stage, gate=gate
            )

        worker = threading.Thread(target=index)
        worker.start()
        assert reached_fill.wait(120)
        worker.join(1.0)
        assert worker.is_alive()  # held at the gate
        assert stage_counts(store, "media").with_reasoning == 0
        with gate.foreground():  # a search meanwhile answers from the first pass's vectors
            assert (
                len(SearchService(store, "media", encoder).search(SearchRequest(text="x", top_k=ITEMS)).hits)
                == ITEMS
            )
        gate.resume()
        worker.join(120)
    assert not worker.is_alive() and result["summary"].with_reasoning == ITEMS


def test_an_old_single_slot_collection_is_widened_keeping_its_points(library, encoder, tmp_path) -> None:
    location = {"data_dir": tmp_path / "index"}
    with open_store(tmp_path / "index") as store:  # as disc collections were made before
        info = CollectionInfo(str(Path(encoder.model_id).resolve()), encoder.hidden_size, 3, ("disc",))
        store.create_collection("media", info)
    run_index(library, encoder, location, mode=None)
    before = vectors_by_id(location)
    assert {tuple(v) for v in before.values()} == {("disc",)}
    upgraded = run_index(library, encoder, location, mode="both")
    assert (upgraded.embedded, upgraded.with_reasoning) == (0, ITEMS)
    with open_store(tmp_path / "index") as store:
        widened = open_collection(store, "media")
        assert widened is not None and widened.vectors == ("disc", "gen") and widened.mode == "both"
        assert store.collection_info(staging_name("media")) is None
    after = vectors_by_id(location)
    for point_id, vectors in before.items():
        np.testing.assert_array_equal(after[point_id]["disc"], vectors["disc"])


@pytest.mark.parametrize("cut_after", ["staging filled", "collection dropped", "half copied back"])
def test_a_killed_widening_loses_no_point(tmp_path, cut_after) -> None:
    narrow = CollectionInfo("m", 4, schema.SCHEMA_VERSION, ("disc",))
    wide = CollectionInfo("m", 4, schema.SCHEMA_VERSION, ("disc", "gen"))
    points = [
        Point(schema.item_id(f"/p{i}", 0), {"record": "item", "n": i}, {"disc": [1.0, i, 0, 0]})
        for i in range(5)
    ]
    with open_store(tmp_path / "index") as store:
        store.create_collection("media", narrow)
        store.upsert("media", points)
        store.create_collection(staging_name("media"), wide)  # what widen does, cut short
        store.upsert(staging_name("media"), points)
        if cut_after != "staging filled":
            store.drop_collection("media")
        if cut_after == "half copied back":
            store.create_collection("media", wide)
            store.upsert("media", points[:2])
    with open_store(tmp_path / "index") as store:
        resume_widening(store, "media")
        info = store.collection_info("media")
        assert info is not None and store.collection_info(staging_name("media")) is None
        assert store.count("media") == 5
        expected = ("disc",) if cut_after == "staging filled" else ("disc", "gen")
        assert info.vectors == expected  # undone before the copy finished, finished after


def test_a_moved_file_keeps_its_reasoning(library, encoder, tmp_path) -> None:
    location = {"data_dir": tmp_path / "index"}
    run_index(library, encoder, location)
    shutil.move(library / GOOD_IMAGES[0], library / f"moved{Path(GOOD_IMAGES[0]).suffix}")
    moved = run_index(library, encoder, location)
    assert (moved.reused, moved.embedded, moved.filled["gen"], moved.pending) == (1, 0, 0, 0)
