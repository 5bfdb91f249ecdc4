"""The catalog: typed records round-trip through payloads, and older collections are upgraded in
place on both engines, also when the upgrade is killed half-way."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from indexer.catalog import migrations, schema
from indexer.catalog.collection import describe, open_collection
from indexer.catalog.open import open_store
from indexer.catalog.schema import OK, FileFacts, FileRecord, FileSettings, ItemPlace, ItemRecord
from indexer.catalog.store import CollectionInfo, Store, StoreError
from tests.conftest import REPO

DIM = 4
V1 = CollectionInfo("tiny-ume", DIM, 1, ("disc", "gen"))
PATHS = [f"/photos/{index}.jpg" for index in range(5)]


def facts(path: str) -> FileFacts:
    return FileFacts(path, "/photos", "image", 1234, 1.5e9, f"fp-{path}", "tiny-ume")


def write_v1_collection(store: Store) -> None:
    """What ume wrote before schema 2: items without a vector list, records without a recipe."""
    store.create_collection("media", V1)
    points = []
    for index, path in enumerate(PATHS):
        vector = np.eye(DIM, dtype=np.float32)[index % DIM]
        item = ItemRecord(facts(path), ItemPlace(0), "reasoning", "summary").to_point(
            {"disc": vector, "gen": vector}
        )
        del item.payload["vectors"]
        record = FileRecord(facts(path), OK, points=1).to_point()
        for key in ("recipe", "recipe_version", "settings"):
            del record.payload[key]
        points += [item, record]
    store.upsert("media", points)


def location(engine: str, tmp_path: Path) -> dict[str, object]:
    return {"data_dir": tmp_path / "edge"} if engine == "edge" else {"qdrant_url": f"local:{tmp_path / 'q'}"}


def assert_upgraded(store: Store) -> None:
    info = store.collection_info("media")
    assert info is not None and info.schema_version == schema.SCHEMA_VERSION
    assert store.count("media", schema.items()) == len(PATHS)
    assert store.count("media", schema.items(vector="gen")) == len(PATHS)
    assert store.count("media", schema.items_without_vector_list()) == 0
    status = describe(store, "media")
    assert (status.points, status.files, status.stale) == (len(PATHS), len(PATHS), len(PATHS))
    hits = store.search("media", "disc", np.eye(DIM, dtype=np.float32)[1], 1)
    assert ItemRecord.from_payload(hits[0].payload).facts.path == PATHS[1]


def test_records_round_trip_through_their_payloads() -> None:
    settings = FileSettings("pdf_dpi=110", "recipe=2;image_px=3136..2359296", 2)
    record = FileRecord(facts("/docs/a.pdf"), OK, points=3, settings=settings)
    assert FileRecord.from_payload(record.to_point().payload) == record
    assert record.item_ids() == [schema.item_id("/docs/a.pdf", page) for page in range(3)]
    item = ItemRecord(facts("/docs/a.pdf"), ItemPlace(2, page=3), "why", "what")
    point = item.to_point({"disc": [0.0] * DIM})
    assert ItemRecord.from_payload(point.payload) == ItemRecord(
        item.facts, item.place, "why", "what", ("disc",)
    )
    assert (
        point.id == item.id
        and schema.is_item(point.payload)
        and not schema.is_item(record.to_point().payload)
    )
    assert item.facts.folders == ["/", "/docs"]


@pytest.mark.parametrize("engine", ["edge", "server"])
def test_a_version_1_collection_is_upgraded_when_opened(engine: str, tmp_path: Path) -> None:
    with open_store(**location(engine, tmp_path)) as store:  # type: ignore[arg-type]
        write_v1_collection(store)
    with open_store(**location(engine, tmp_path)) as store:  # type: ignore[arg-type]
        info = open_collection(store, "media")
        assert info is not None and info.schema_version == schema.SCHEMA_VERSION
        assert_upgraded(store)
        assert open_collection(store, "media") == info  # a second open changes nothing


@pytest.mark.parametrize("crash_at", ["ensure_payload_indexes", "set_payload_where", "record_info"])
@pytest.mark.parametrize("engine", ["edge", "server"])
def test_an_interrupted_upgrade_leaves_a_collection_that_opens_and_finishes(
    engine: str, crash_at: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(**location(engine, tmp_path)) as store:  # type: ignore[arg-type]
        write_v1_collection(store)
        real = getattr(type(store), crash_at)

        def crash(self: Store, *args: object) -> None:
            if crash_at != "record_info":
                real(self, *args)  # the step's work is done; the process dies right after it
            raise KeyboardInterrupt("killed")

        monkeypatch.setattr(type(store), crash_at, crash)
        with pytest.raises(KeyboardInterrupt):
            open_collection(store, "media")
        monkeypatch.undo()
    with open_store(**location(engine, tmp_path)) as store:  # type: ignore[arg-type]
        assert store.count("media", schema.items()) == len(PATHS)  # nothing was lost
        open_collection(store, "media")
        assert_upgraded(store)


def test_a_sigkill_during_the_upgrade_is_finished_by_the_next_open(tmp_path: Path) -> None:
    with open_store(data_dir=tmp_path / "edge") as store:
        write_v1_collection(store)
    script = textwrap.dedent(
        f"""
        import os, signal
        from indexer.catalog import migrations
        from indexer.catalog.collection import open_collection
        from indexer.catalog.edge import EdgeStore
        from indexer.catalog.open import open_store

        def killed(self, name, info):
            os.kill(os.getpid(), signal.SIGKILL)  # the step is done, its version not yet recorded

        EdgeStore.record_info = killed
        open_collection(open_store(data_dir={str(tmp_path / "edge")!r}), "media")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    with open_store(data_dir=tmp_path / "edge") as store:
        info = store.collection_info("media")
        assert info is not None and info.schema_version == 1  # still says 1: the step is redone
        open_collection(store, "media")
        assert_upgraded(store)
    assert migrations.STEPS  # every older version has a step


def test_a_newer_schema_is_refused_in_one_line(tmp_path: Path) -> None:
    with open_store(data_dir=tmp_path / "edge") as store:
        store.create_collection(
            "media", CollectionInfo("tiny-ume", DIM, schema.SCHEMA_VERSION + 1, ("disc",))
        )
        with pytest.raises(StoreError, match="newer than this ume understands") as error:
            open_collection(store, "media")
        assert "\n" not in str(error.value)
