"""The search service and `ume search`, on a tiny-model index of the example media.

The tiny model is random, so tests never assert what a text query means; they assert what a
user relies on whatever the model: an example image finds itself first in every mode, filters
hold, scores come sorted, modes the index cannot serve say why, and the command line prints
the documented JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.cli import main as ume
from app.search import SearchService
from app.search_request import SearchError, SearchRequest, query_input
from indexer.catalog.collection import collection_info, resolved_model_id
from indexer.catalog.open import open_store
from indexer.catalog.schema import item_id
from indexer.catalog.store import Match, Point
from model.encoder import Encoder
from tests.app.fixture_index import (
    COLLECTION,
    MAX_NEW_TOKENS,
    FixtureIndex,
    load_encoder,
    reasoning_for,
    shared_index,
)

CAT = "photos/tabby_cat_closeup.jpg"
CLIP = "videos/circle_square_hello.mp4"
HIT_FIELDS = {"path", "kind", "page", "start", "end", "score", "summary", "reasoning"}
HIT_FIELDS |= {"taken", "taken_source"}  # when it was made (ISO), and where that was read


@pytest.fixture(scope="module")
def index(tiny_model_dir: Path, examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FixtureIndex:
    return shared_index(tiny_model_dir, examples_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def encoder(index: FixtureIndex) -> Encoder:
    return load_encoder(index.model_dir)


@pytest.fixture
def service(index: FixtureIndex, encoder: Encoder) -> Iterator[SearchService]:
    with open_store(data_dir=index.data_dir) as store:
        yield SearchService(store, COLLECTION, encoder)


@pytest.mark.parametrize("mode", ["fast", "reasoning", "rerank"])
def test_an_example_image_finds_itself_first_in_every_mode(
    service: SearchService, index: FixtureIndex, mode: str
) -> None:
    cat = index.root / CAT
    result = service.search(SearchRequest(image=cat, mode=mode, top_k=3, max_new_tokens=MAX_NEW_TOKENS))
    assert result.mode == mode
    assert result.hits[0].path == str(cat)
    assert result.hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert result.hits[0].reasoning == reasoning_for(cat)
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)


def test_text_search_returns_top_k_sorted_hits_with_their_stored_text(
    service: SearchService,
) -> None:
    result = service.search(SearchRequest(text="a cat sitting on a sofa", top_k=5))
    assert len(result.hits) == 5
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    for hit in result.hits:
        assert set(hit.to_json()) == HIT_FIELDS
        assert hit.reasoning == reasoning_for(Path(hit.path))
    assert result.query_reasoning is None  # fast mode generates nothing


def test_kind_filter_returns_document_pages_with_page_numbers(service: SearchService) -> None:
    hits = service.search(SearchRequest(text="tomatoes", kind="document", top_k=10)).hits
    assert {h.kind for h in hits} == {"document"}
    assert sorted(h.page or 0 for h in hits) == [1, 2, 3, 4]
    assert all(h.where == f"page {h.page}" for h in hits)


def test_video_hits_carry_their_time_span(service: SearchService) -> None:
    hits = service.search(SearchRequest(text="a red circle", kind="video", top_k=10)).hits
    spans = sorted((h.start, h.end) for h in hits)
    assert [start for start, _ in spans] == [0.0, 4.0, 8.0]
    assert all(s is not None and e is not None and e > s for s, e in spans)


def test_folder_filter_keeps_only_items_under_that_folder(
    service: SearchService, index: FixtureIndex
) -> None:
    photos = index.root / "photos"
    hits = service.search(SearchRequest(text="coffee", folder=photos, top_k=50)).hits
    assert len(hits) == 6  # five photos plus the one in "café & friends"
    assert all(h.path.startswith(str(photos) + "/") for h in hits)
    nested = service.search(
        SearchRequest(text="coffee", folder=str(photos / "café & friends") + "/", top_k=50)
    ).hits
    assert [Path(h.path).name for h in nested] == ["espresso_cup_on_saucer.jpg"]


def test_rerank_orders_the_disc_shortlist_by_stored_gen_similarity(
    service: SearchService, encoder: Encoder
) -> None:
    words = "rockets at night"
    shortlist = service.search(SearchRequest(text=words, top_k=4)).hits
    result = service.search(
        SearchRequest(text=words, mode="rerank", top_k=4, shortlist=4, max_new_tokens=MAX_NEW_TOKENS)
    )
    assert {h.id for h in result.hits} == {h.id for h in shortlist}
    query = encoder.encode_query([words], mode="gen", max_new_tokens=MAX_NEW_TOKENS).gen
    assert query is not None
    stored = service.store.retrieve(COLLECTION, [h.id for h in shortlist], with_vectors=True)
    gen = {point_id: vectors["gen"] for point_id, _, vectors in stored}
    for hit in result.hits:
        assert hit.score == pytest.approx(float(np.dot(query[0], gen[hit.id])), abs=1e-4)
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)


def test_generation_modes_stream_the_query_text_token_by_token(service: SearchService) -> None:
    seen: list[str] = []
    service.search(
        SearchRequest(text="a galaxy", mode="reasoning", top_k=2, max_new_tokens=MAX_NEW_TOKENS),
        on_text=seen.append,
    )
    assert len(seen) == MAX_NEW_TOKENS  # the random model never stops early


def test_a_video_clip_can_be_the_query(service: SearchService, index: FixtureIndex) -> None:
    hits = service.search(SearchRequest(video=index.root / CLIP, kind="video", top_k=3)).hits
    assert {Path(h.path).name for h in hits} == {"circle_square_hello.mp4"}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "nothing to search for"),
        ({"text": "   "}, "nothing to search for"),
        ({"image": "IMAGE", "video": "VIDEO"}, "not both"),
        ({"text": "cat", "kind": "audio"}, "unknown kind 'audio'"),
        ({"text": "cat", "mode": "psychic"}, "unknown mode 'psychic'"),
    ],
)
def test_queries_a_user_can_fix_get_a_one_line_reason(
    service: SearchService, index: FixtureIndex, arguments: dict, message: str
) -> None:
    arguments = {
        key: index.root / (CAT if value == "IMAGE" else CLIP) if value in ("IMAGE", "VIDEO") else value
        for key, value in arguments.items()
    }
    with pytest.raises(SearchError, match=message):
        service.search(SearchRequest(**arguments))


def test_query_input_combines_words_with_an_example_image(index: FixtureIndex) -> None:
    query = query_input("but in winter", index.root / CAT)
    assert query.image is not None and query.text == "but in winter" and query.kind == "image"


@pytest.fixture
def disc_only(tmp_path: Path, encoder: Encoder) -> Iterator[SearchService]:
    """A collection indexed with disc vectors only (one point is enough)."""
    info = collection_info(resolved_model_id(encoder.model_id), encoder.hidden_size, "disc")
    vector = encoder.encode_document(["a note"], mode="disc").disc
    assert vector is not None
    point = Point(item_id("/x.jpg", 0), {"record": "item", "path": "/x.jpg", "kind": "image"})
    point.vectors["disc"] = vector[0]
    with open_store(data_dir=tmp_path / "disc-only") as store:
        store.create_collection(COLLECTION, info)
        store.upsert(COLLECTION, [point])
        yield SearchService(store, COLLECTION, encoder)


def test_modes_needing_gen_vectors_are_unavailable_with_the_reason(
    disc_only: SearchService,
) -> None:
    modes = disc_only.available_modes()
    reasoning, rerank = modes["reasoning"] or "", modes["rerank"] or ""
    assert modes["fast"] is None
    assert "gen" in reasoning and "ume index --mode both" in reasoning
    assert "ume index --mode both" in rerank
    with pytest.raises(SearchError, match="--mode both"):
        disc_only.search(SearchRequest(text="a note", mode="reasoning"))
    assert disc_only.search(SearchRequest(text="a note")).hits[0].path == "/x.jpg"


def test_an_index_built_by_another_model_is_refused(tmp_path: Path, encoder: Encoder) -> None:
    with open_store(data_dir=tmp_path / "other") as store:
        info = collection_info("someone/other-model", encoder.hidden_size, "disc")
        store.create_collection(COLLECTION, info)
        with pytest.raises(SearchError, match="--model someone/other-model"):
            SearchService(store, COLLECTION, encoder).search(SearchRequest(text="cat"))


def test_an_index_of_weights_since_replaced_is_refused(tmp_path: Path) -> None:
    """`ume serve` after a checkpoint was retrained in place must not search the old vectors."""
    from model.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "model", seed=0)
    dim = Encoder.from_pretrained(model_dir, device="cpu").hidden_size
    with open_store(data_dir=tmp_path / "index") as store:
        store.create_collection(COLLECTION, collection_info(resolved_model_id(str(model_dir)), dim, "disc"))
        build_tiny_model(model_dir, seed=1)  # retrained in place
        retrained = Encoder.from_pretrained(model_dir, device="cpu")
        with pytest.raises(SearchError, match="other weights"):
            SearchService(store, COLLECTION, retrained).search(SearchRequest(text="cat"))


def test_a_missing_collection_disables_every_mode(tmp_path: Path, encoder: Encoder) -> None:
    with open_store(data_dir=tmp_path / "empty") as store:
        modes = SearchService(store, "nothing", encoder).available_modes()
    assert all("no collection 'nothing'" in (why or "") for why in modes.values())


def test_browse_filters_items_by_words_in_their_reasoning(service: SearchService) -> None:
    items = service.browse(contains="HUBBLE_deep")
    assert [Path(i.path).name for i in items] == ["hubble_deep_field_galaxies.jpg"]
    assert {i.kind for i in service.browse(kind="video")} == {"video"}


def test_indexed_roots_and_indexed_files(service: SearchService, index: FixtureIndex) -> None:
    assert service.indexed_roots() == [index.root]
    assert service.is_indexed(str(index.root / CAT))
    assert not service.is_indexed(str(index.root / "photos"))
    assert service.store.count(COLLECTION, Match(fields={"record": "item"})) == index.items


def test_cli_search_prints_the_documented_json(
    index: FixtureIndex, capsys: pytest.CaptureFixture[str]
) -> None:
    status = ume(
        [
            "search",
            "--image",
            str(index.root / CAT),
            "--top-k",
            "3",
            "--json",
            "--data-dir",
            str(index.data_dir),
            "--collection",
            COLLECTION,
        ]
    )
    assert status == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 3 and all(set(hit) == HIT_FIELDS for hit in hits)
    assert hits[0]["path"] == str(index.root / CAT) and hits[0]["kind"] == "image"


def test_cli_search_reads_like_a_list_for_people(
    index: FixtureIndex, capsys: pytest.CaptureFixture[str]
) -> None:
    status = ume(
        [
            "search",
            "tomatoes",
            "--kind",
            "document",
            "--top-k",
            "2",
            "--data-dir",
            str(index.data_dir),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0].startswith("  1. ") and "document" in lines[0] and "(page " in lines[0]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["search"], "nothing to search for"),
        (["search", "cat", "--collection", "nope"], "no collection 'nope'"),
    ],
)
def test_cli_search_mistakes_print_one_line(
    index: FixtureIndex, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    status = ume([*arguments, "--data-dir", str(index.data_dir)])
    error = capsys.readouterr().err.strip()
    assert status == 2
    assert error.startswith("ume: error:") and message in error and "\n" not in error
