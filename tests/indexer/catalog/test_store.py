"""The storage layer: every behaviour is checked on both engines, then the engines are compared.

The embedded engine (qdrant-edge) runs in a temporary directory; the server engine runs through
qdrant-client's local mode, which speaks the same API as a Qdrant server.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.catalog import edge_search
from indexer.catalog.edge import EdgeStore
from indexer.catalog.open import open_store
from indexer.catalog.store import CollectionInfo, Match, Point, Store, StoreError
from tests.qdrant_server import QDRANT_URL_ENV, drop_every_collection

DIM = 8
INFO = CollectionInfo(model_id="tiny-ume", dim=DIM, schema_version=1, vectors=("disc", "gen"))
ENGINES = ("edge", "server", "qdrant")  # qdrant: a real server, when UME_TEST_QDRANT_URL names one

# name, kind, folders, mtime, page, has_reasoning, disc angle, gen angle (radians from the query)
MEDIA = [
    ("beach.jpg", "image", ["/photos", "/photos/2024"], 100.0, None, True, 0.1, 0.9),
    ("cat.png", "image", ["/photos"], 200.0, None, False, 0.3, 0.7),
    ("report.pdf#1", "pdf_page", ["/docs"], 300.0, 1, True, 0.5, 0.5),
    ("report.pdf#2", "pdf_page", ["/docs"], 300.0, 2, True, 0.7, 0.3),
    ("clip.mp4#0", "video_segment", ["/videos"], 400.0, None, False, 0.9, 0.1),
]
RECORDS = ["beach.jpg", "cat.png", "report.pdf", "clip.mp4"]  # one vector-less record per file


def point_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def unit_at(angle: float, axis: int) -> np.ndarray:
    """A unit vector `angle` radians from basis vector `axis`: its cosine to it is cos(angle)."""
    vector = np.zeros(DIM, dtype=np.float32)
    vector[axis] = math.cos(angle)
    vector[axis + 1] = math.sin(angle)
    return vector


def basis(axis: int) -> np.ndarray:
    return unit_at(0.0, axis)


def media_points() -> list[Point]:
    points = []
    for name, kind, folders, mtime, page, reasoned, disc_angle, gen_angle in MEDIA:
        payload: dict[str, Any] = {"path": name, "kind": kind, "folders": folders}
        payload |= {"mtime": mtime, "has_reasoning": reasoned}
        if page is not None:
            payload["page"] = page
        vectors = {"disc": unit_at(disc_angle, 0), "gen": unit_at(gen_angle, 2).tolist()}
        points.append(Point(point_id(name), payload, vectors))
    return points


def record_points() -> list[Point]:
    return [
        Point(point_id(f"record:{path}"), {"kind": "file", "path": path, "fingerprint": f"fp-{i}"})
        for i, path in enumerate(RECORDS)
    ]


def open_engine(engine: str, path: Path) -> Store:
    if engine == "edge":
        return open_store(data_dir=path)
    if engine == "qdrant":
        return open_store(qdrant_url=os.environ[QDRANT_URL_ENV])
    return open_store(qdrant_url=f"local:{path}")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    if request.param == "qdrant":
        request.getfixturevalue("qdrant_url")  # skips without a server; empties it before and after
    return str(request.param)


@pytest.fixture
def store(engine: str, tmp_path: Path) -> Iterator[Store]:
    with open_engine(engine, tmp_path / "index") as opened:
        yield opened


@pytest.fixture
def filled(store: Store) -> Store:
    store.create_collection("media", INFO)
    store.upsert("media", media_points() + record_points())
    return store


def search_ids(store: Store, match: Match | None = None, vector: str = "disc") -> list[str]:
    query = basis(0) if vector == "disc" else basis(2)
    return [hit.payload["path"] for hit in store.search("media", vector, query, 10, match)]


def counted_paths(store: Store, match: Match | None = None) -> set[str]:
    return {payload["path"] for _, payload, _ in store.scroll("media", match)}


def test_collection_info_is_recorded_and_survives_reopen(engine: str, tmp_path: Path) -> None:
    with open_engine(engine, tmp_path / "index") as store:
        assert store.collection_info("media") is None
        store.create_collection("media", INFO)
        store.create_collection("other", CollectionInfo("m2", 4, 1, ("disc",)))
        assert store.collection_info("media") == INFO
    with open_engine(engine, tmp_path / "index") as store:
        assert store.list_collections() == ["media", "other"]
        assert store.collection_info("media") == INFO
        assert store.collection_info("other") == CollectionInfo("m2", 4, 1, ("disc",))


def test_create_is_idempotent_but_refuses_a_different_model(store: Store) -> None:
    store.create_collection("media", INFO)
    store.upsert("media", media_points())
    store.create_collection("media", INFO)
    assert store.count("media") == len(MEDIA)
    other_model = CollectionInfo("other-model", DIM, 1, ("disc", "gen"))
    with pytest.raises(StoreError, match="already exists for tiny-ume"):
        store.create_collection("media", other_model)


def test_drop_collection_forgets_it(store: Store) -> None:
    store.create_collection("media", INFO)
    store.upsert("media", media_points())
    store.drop_collection("media")
    assert store.list_collections() == []
    assert store.collection_info("media") is None
    store.create_collection("media", INFO)
    assert store.count("media") == 0


def test_a_closed_store_refuses_work_with_a_store_error(engine: str, tmp_path: Path) -> None:
    store = open_engine(engine, tmp_path / "index")
    store.create_collection("media", INFO)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="was closed: open it again"):
        store.count("media")


def test_missing_collection_and_bad_names_give_store_errors(store: Store) -> None:
    with pytest.raises(StoreError, match="no collection 'nope'"):
        store.count("nope")
    with pytest.raises(StoreError, match="no collection 'nope'"):
        store.search("nope", "disc", basis(0), 3)
    with pytest.raises(StoreError, match="invalid collection name"):
        store.create_collection("../escape", INFO)


def test_wrong_dimension_or_vector_name_is_refused(store: Store) -> None:
    store.create_collection("disc_only", CollectionInfo("tiny-ume", DIM, 1, ("disc",)))
    with pytest.raises(StoreError, match="holds 8-d vectors from tiny-ume, got 4-d"):
        store.upsert("disc_only", [Point(point_id("x"), {}, {"disc": [1.0, 0, 0, 0]})])
    with pytest.raises(StoreError, match="holds no 'gen' vectors"):
        store.search("disc_only", "gen", basis(0), 3)


def test_search_ranks_by_cosine_with_exact_scores(filled: Store) -> None:
    hits = filled.search("media", "disc", basis(0), 10)
    assert [h.payload["path"] for h in hits] == [m[0] for m in MEDIA]
    assert [h.score for h in hits] == pytest.approx([math.cos(m[6]) for m in MEDIA], abs=1e-5)
    assert hits[0].id == point_id("beach.jpg")
    assert search_ids(filled, vector="gen") == [m[0] for m in reversed(MEDIA)]
    assert len(filled.search("media", "disc", basis(0), 2)) == 2


def test_points_without_vectors_are_counted_but_never_found(filled: Store) -> None:
    assert filled.count("media") == len(MEDIA) + len(RECORDS)
    assert filled.count("media", Match({"kind": "file"})) == len(RECORDS)
    assert len(filled.search("media", "disc", basis(0), 100)) == len(MEDIA)
    assert filled.search("media", "gen", basis(2), 100, Match({"kind": "file"})) == []


def test_filters_narrow_search_and_count(filled: Store) -> None:
    assert search_ids(filled, Match({"kind": "image"})) == ["beach.jpg", "cat.png"]
    in_folders = Match({"folders": ["/photos/2024", "/videos"]})
    assert search_ids(filled, in_folders) == ["beach.jpg", "clip.mp4#0"]
    not_pdf = Match(not_fields={"kind": "pdf_page"})
    assert search_ids(filled, not_pdf) == ["beach.jpg", "cat.png", "clip.mp4#0"]
    assert search_ids(filled, Match(ranges={"mtime": (200.0, 300.0)})) == [
        "cat.png",
        "report.pdf#1",
        "report.pdf#2",
    ]
    assert search_ids(filled, Match(ranges={"mtime": (None, 150.0)})) == ["beach.jpg"]
    assert search_ids(filled, Match({"has_reasoning": True, "kind": ["image", "video_segment"]})) == [
        "beach.jpg"
    ]
    assert filled.count("media", Match({"kind": "pdf_page", "page": 2})) == 1
    assert filled.count("media", Match({"folders": []})) == 0


def test_delete_by_id_and_by_filter(filled: Store) -> None:
    filled.delete("media", [point_id("cat.png"), point_id("record:cat.png")])
    assert "cat.png" not in counted_paths(filled)
    filled.delete_where("media", Match({"path": ["report.pdf#1", "report.pdf#2", "report.pdf"]}))
    assert counted_paths(filled) == {"beach.jpg", "clip.mp4#0", "clip.mp4"}
    assert search_ids(filled) == ["beach.jpg", "clip.mp4#0"]
    filled.delete("media", [])
    assert filled.count("media") == 4  # two media points and their two file records


def test_upsert_with_the_same_id_replaces_the_point(filled: Store) -> None:
    moved = media_points()[0]
    moved.payload["folders"] = ["/archive"]
    filled.upsert("media", [moved])
    assert filled.count("media") == len(MEDIA) + len(RECORDS)
    assert search_ids(filled, Match({"folders": "/archive"})) == ["beach.jpg"]
    assert filled.count("media", Match({"folders": "/photos/2024"})) == 0


def test_scroll_pages_through_everything_with_or_without_vectors(filled: Store) -> None:
    plain = list(filled.scroll("media", batch=2))
    assert len(plain) == len(MEDIA) + len(RECORDS)
    assert all(vectors == {} for _, _, vectors in plain)
    with_vectors = {pid: vectors for pid, _, vectors in filled.scroll("media", with_vectors=True)}
    beach = with_vectors[point_id("beach.jpg")]
    assert set(beach) == {"disc", "gen"}
    assert beach["disc"] == pytest.approx(unit_at(0.1, 0).tolist(), abs=1e-6)
    assert with_vectors[point_id("record:beach.jpg")] == {}
    images = filled.scroll("media", Match({"kind": "image"}), with_vectors=True, batch=1)
    assert {payload["path"] for _, payload, _ in images} == {"beach.jpg", "cat.png"}


def test_retrieve_returns_requested_ids_in_order(filled: Store) -> None:
    wanted = [point_id("clip.mp4#0"), point_id("missing"), point_id("record:cat.png")]
    found = filled.retrieve("media", wanted)
    assert [pid for pid, _, _ in found] == [wanted[0], wanted[2]]
    assert found[1][1] == {"kind": "file", "path": "cat.png", "fingerprint": "fp-1"}
    assert set(filled.retrieve("media", wanted[:1], with_vectors=True)[0][2]) == {"disc", "gen"}


def test_everything_upserted_is_there_after_reopen(engine: str, tmp_path: Path) -> None:
    with open_engine(engine, tmp_path / "index") as store:
        store.create_collection("media", INFO)
        store.upsert("media", media_points() + record_points())
        store.wait_until_ready("media", poll_s=0.1)
    with open_engine(engine, tmp_path / "index") as store:
        assert store.count("media") == len(MEDIA) + len(RECORDS)
        assert search_ids(store) == [m[0] for m in MEDIA]


WRITE_AND_DIE = """
import os, sys, uuid
from indexer.catalog.open import open_store
from indexer.catalog.store import CollectionInfo, Point
path, engine = sys.argv[1], sys.argv[2]
if engine == "edge":
    store = open_store(data_dir=path)
else:
    url = os.environ.get("UME_TEST_QDRANT_URL") if engine == "qdrant" else "local:" + path
    store = open_store(qdrant_url=url)
store.create_collection("media", CollectionInfo("tiny-ume", 8, 1, ("disc",)))
store.upsert("media", [Point(str(uuid.uuid4()), {"i": i}, {"disc": [1.0] * 8}) for i in range(7)])
os._exit(0)  # no close(): whatever upsert returned must already be on disk
"""


def test_upsert_is_durable_when_the_process_dies_without_close(engine: str, tmp_path: Path) -> None:
    index = tmp_path / "index"
    subprocess.run([sys.executable, "-c", WRITE_AND_DIE, str(index), engine], check=True)
    with open_engine(engine, index) as store:
        assert store.count("media") == 7


def test_a_second_open_of_the_same_index_is_refused_clearly(engine: str, tmp_path: Path) -> None:
    if engine == "qdrant":
        pytest.skip("a server serves every client that connects")
    with open_engine(engine, tmp_path / "index") as store:
        store.create_collection("media", INFO)
        with pytest.raises(StoreError) as refused:
            open_engine(engine, tmp_path / "index")
    message = str(refused.value)
    assert "in use by another ume process" in message and "\n" not in message
    with open_engine(engine, tmp_path / "index") as reopened:  # free again after close()
        assert reopened.collection_info("media") == INFO


def test_edge_search_works_before_and_after_hnsw_is_built(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((400, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    points = [Point(str(uuid.UUID(int=i + 1)), {"i": i}, {"disc": v}) for i, v in enumerate(vectors)]
    queries = vectors[:5] + 0.1 * rng.standard_normal((5, 32)).astype(np.float32)
    info = CollectionInfo("tiny-ume", 32, 1, ("disc",))
    with EdgeStore(tmp_path / "index", indexing_threshold_kb=1) as store:
        store.create_collection("media", info)
        store.upsert("media", points)
        before = [[h.id for h in store.search("media", "disc", q, 5)] for q in queries]
        assert store.indexed_vector_count("media") == 0
        assert store.wait_until_ready("media", poll_s=0.1).state == "ready"
        assert store.indexed_vector_count("media") == len(points)
        after = [[h.id for h in store.search("media", "disc", q, 5)] for q in queries]
    assert after == before
    assert [ids[0] for ids in before] == [str(uuid.UUID(int=i + 1)) for i in range(5)]


def test_both_engines_give_the_same_ids_and_scores(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    kinds = ["image", "pdf_page", "video_segment"]
    points = []
    for i in range(60):
        disc, gen = rng.standard_normal((2, DIM)).astype(np.float32)
        payload = {"kind": kinds[i % 3], "folders": [f"/f{i % 4}"], "mtime": float(i)}
        vectors = {"disc": disc / np.linalg.norm(disc), "gen": gen / np.linalg.norm(gen)}
        points.append(Point(str(uuid.uuid5(uuid.NAMESPACE_OID, str(i))), payload, vectors))
    matches = [
        None,
        Match({"kind": "image"}),
        Match({"folders": ["/f1", "/f3"]}, not_fields={"kind": "pdf_page"}),
        Match(ranges={"mtime": (10.0, 40.0)}),
    ]
    queries = rng.standard_normal((3, DIM)).astype(np.float32)
    searches, counts, scrolled = {}, {}, {}
    for engine in ("edge", "server", "qdrant") if os.environ.get(QDRANT_URL_ENV) else ("edge", "server"):
        if engine == "qdrant":
            drop_every_collection(os.environ[QDRANT_URL_ENV])
        with open_engine(engine, tmp_path / engine) as store:
            store.create_collection("media", INFO)
            store.upsert("media", points)
            store.delete("media", [points[0].id])
            store.delete_where("media", Match({"folders": "/f2"}, ranges={"mtime": (0.0, 20.0)}))
            store.wait_until_ready("media", poll_s=0.1)
            searches[engine] = [
                store.search("media", vector, query, 8, match)
                for vector in ("disc", "gen")
                for query in queries
                for match in matches
            ]
            counts[engine] = [store.count("media", match) for match in matches]
            scrolled[engine] = [pid for pid, _, _ in store.scroll("media", batch=7)]
    for other in [e for e in counts if e != "edge"]:
        assert counts["edge"] == counts[other] == [54, 17, 20, 28]
        assert scrolled["edge"] == scrolled[other]
        for edge_hits, other_hits in zip(searches["edge"], searches[other], strict=True):
            assert [h.id for h in edge_hits] == [h.id for h in other_hits]
            assert [h.payload for h in edge_hits] == [h.payload for h in other_hits]
            edge_scores = [h.score for h in edge_hits]
            assert edge_scores == pytest.approx([h.score for h in other_hits], abs=1e-5)


def test_open_store_defaults_to_the_data_dir_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UME_DATA_DIR", str(tmp_path / "deep" / "ume"))
    with open_store() as store:
        assert isinstance(store, EdgeStore)
        assert store.data_dir == tmp_path / "deep" / "ume"
        store.create_collection("media", INFO)
    assert (tmp_path / "deep" / "ume" / "collections" / "media").is_dir()


def test_unreachable_server_and_bad_urls_give_one_line_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    with pytest.raises(StoreError, match=r"Qdrant server at http://127.0.0.1:9 is unreachable"):
        open_store(qdrant_url="http://127.0.0.1:9")
    with pytest.raises(StoreError, match="--qdrant-url must be"):
        open_store(qdrant_url="ftp://example")


def test_edge_searches_made_together_are_answered_as_each_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Searches queued behind a running one go to the engine as one batch (`catalog.batches`):
    each still gets its own answer, and a bad one fails alone."""
    store = open_engine("edge", tmp_path / "index")
    store.create_collection("media", INFO)
    store.upsert("media", media_points() + record_points())
    asks: list[tuple[str, Match | None, str]] = [
        ("disc", None, "media"),
        ("gen", None, "media"),
        ("disc", Match({"kind": "image"}), "media"),
        ("gen", Match(not_fields={"kind": "pdf_page"}), "media"),
        ("disc", Match({"folders": ["/docs"]}), "media"),
        ("sparkle", None, "media"),  # no such vector
        ("disc", None, "elsewhere"),  # no such collection
        ("disc", Match({"mtime": 1.5}), "media"),  # a filter value the engine cannot match on
    ]

    def ask(vector: str, match: Match | None, name: str) -> list[str] | str:
        try:
            query = basis(0) if vector == "disc" else basis(2)
            return [hit.payload["path"] for hit in store.search(name, vector, query, 10, match)]
        except Exception as error:
            return f"{type(error).__name__}: {error}"

    alone = [ask(*question) for question in asks]
    sizes, running, release = [], threading.Event(), threading.Event()
    engine_queries = edge_search.run_queries

    def held_first(shard: Any, queries: list[Any]) -> list[Any]:
        if not sizes:
            running.set()
            release.wait(10)
        sizes.append(len(queries))
        return engine_queries(shard, queries)

    monkeypatch.setattr(edge_search, "run_queries", held_first)
    together: dict[int, list[str] | str] = {}
    first = threading.Thread(target=lambda: together.update({-1: ask("disc", None, "media")}))
    first.start()
    assert running.wait(10)
    threads = [
        threading.Thread(target=lambda i=i, q=q: together.update({i: ask(*q)})) for i, q in enumerate(asks)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while store._searches.waiting() < len(asks) and time.monotonic() < deadline:  # all queued
        time.sleep(0.001)
    release.set()
    for thread in [first, *threads]:
        thread.join(10)
    store.close()
    assert sizes == [1, len(asks) - 3]  # the held one; the rest, less the three refused, at once
    assert [together[i] for i in range(len(asks))] == alone
    assert "holds no 'sparkle' vectors" in str(alone[5]) and "no collection 'elsewhere'" in str(alone[6])
    assert alone[2] == ["beach.jpg", "cat.png"]
    assert "Error" in str(alone[7]) and isinstance(alone[0], list)
