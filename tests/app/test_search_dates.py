"""Dates in search: hits say when they were made, a date range keeps only what was made in it,
and the best matches can be ordered by date, through the service, `ume search` and
`POST /ume/search`, on the fixture index (files dated by `FILE_DAYS`, the PDF by its own date).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api import api_routes
from app.cli import main as ume
from app.context import make_context
from app.search import SearchService
from app.search_dates import taken_range
from app.search_request import SearchError, SearchRequest
from indexer.catalog.open import open_store
from model.dates import wall_seconds
from tests.app.fixture_index import (
    COLLECTION,
    FILE_DAYS,
    PDF_DAY,
    FixtureIndex,
    load_encoder,
    shared_index,
)

CAT = "photos/tabby_cat_closeup.jpg"
PDF = "documents/cats_coffee_rockets_tomatoes.pdf"


@pytest.fixture(scope="module")
def index(tiny_model_dir: Path, examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FixtureIndex:
    return shared_index(tiny_model_dir, examples_dir, tmp_path_factory)


@pytest.fixture
def service(index: FixtureIndex) -> Iterator[SearchService]:
    with open_store(data_dir=index.data_dir) as store:
        yield SearchService(store, COLLECTION, load_encoder(index.model_dir))


def day_of(index: FixtureIndex, path: str) -> str:
    relative = str(Path(path).relative_to(index.root))
    return PDF_DAY if relative == PDF else FILE_DAYS[relative]


def test_hits_say_when_they_were_made_and_where_that_came_from(
    service: SearchService, index: FixtureIndex
) -> None:
    hits = {hit.path: hit for hit in service.search(SearchRequest(image=index.root / CAT, top_k=20)).hits}
    cat, pdf = hits[str(index.root / CAT)], next(h for p, h in hits.items() if p.endswith(".pdf"))
    assert (cat.taken, cat.taken_source) == ("2024-06-01T12:00:00", "mtime")
    assert (pdf.taken, pdf.taken_source) == ("2026-01-01T00:00:00", "pdf")
    assert cat.date == "2024-06-01 (file date)" and pdf.date == "2026-01-01"
    assert cat.to_json()["taken"] == "2024-06-01T12:00:00"
    assert all(hit.taken is not None and hit.taken[:10] == day_of(index, hit.path) for hit in hits.values())


@pytest.mark.parametrize("mode", ["fast", "reasoning", "rerank"])
def test_a_date_range_keeps_only_items_made_in_it(
    service: SearchService, index: FixtureIndex, mode: str
) -> None:
    hits = service.search(
        SearchRequest(text="a cat", mode=mode, top_k=20, after="2023-01-01", before="2024-06-01")
    ).hits
    assert sorted(Path(h.path).name for h in hits) == [
        "rocket_on_launch_pad_at_dusk.jpg",
        "tabby_cat_closeup.jpg",  # made at noon on the last day: the whole day counts
    ]
    year = service.search(SearchRequest(text="a cat", top_k=20, after="2025", before="2025")).hits
    assert {Path(h.path).name for h in year} == {"circle_square_hello.mp4"} and len(year) == 3
    since = service.search(SearchRequest(text="a cat", top_k=20, after="2025-06")).hits
    assert {h.kind for h in since} == {"document"}


def test_sorting_by_date_reorders_the_best_matches(service: SearchService, index: FixtureIndex) -> None:
    best = service.search(SearchRequest(image=index.root / CAT, top_k=6)).hits
    newest = service.search(SearchRequest(image=index.root / CAT, top_k=6, sort="newest")).hits
    oldest = service.search(SearchRequest(image=index.root / CAT, top_k=6, sort="oldest")).hits
    assert {h.id for h in newest} == {h.id for h in oldest} == {h.id for h in best}
    assert [h.taken for h in newest] == sorted((h.taken or "" for h in best), reverse=True)
    assert [h.taken for h in oldest] == sorted(h.taken or "" for h in best)
    assert [h.score for h in best] == sorted((h.score for h in best), reverse=True)


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        ({"after": "June 2024"}, "after 'June 2024' is not a date: use YYYY-MM-DD"),
        ({"before": "2024-13-01"}, "before '2024-13-01' is not a date"),
        ({"after": "2025-01-01", "before": "2024-01-01"}, "is later than before"),
        ({"sort": "size"}, "unknown sort 'size'"),
    ],
)
def test_dates_a_user_can_fix_get_a_one_line_reason(
    service: SearchService, dates: dict[str, str], message: str
) -> None:
    with pytest.raises(SearchError, match=message) as error:
        service.search(SearchRequest(text="a cat", **dates))  # type: ignore[arg-type]
    assert "\n" not in str(error.value)


def test_bounds_cover_their_whole_period() -> None:
    assert taken_range("2024-06", "2024-06") == (
        wall_seconds(datetime(2024, 6, 1)),
        wall_seconds(datetime(2024, 7, 1)) - 1,
    )
    assert taken_range("", None) is None
    assert taken_range(None, "2024-12-31T18:30") == (None, wall_seconds(datetime(2024, 12, 31, 18, 30, 59)))


def test_cli_search_filters_and_sorts_by_date(
    index: FixtureIndex, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--data-dir", str(index.data_dir), "--collection", COLLECTION]
    status = ume(["search", "a cat", "--after", "2020-01-01", "--before", "2023-12-31", "--sort", "oldest",
                  "--top-k", "20", "--json", *where])  # fmt: skip
    assert status == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [Path(hit["path"]).name for hit in hits] == [
        "astronaut_in_orange_spacesuit.jpg",
        "espresso_cup_on_saucer.jpg",
        "hubble_deep_field_galaxies.jpg",
        "rocket_on_launch_pad_at_dusk.jpg",
    ]
    assert {hit["taken_source"] for hit in hits} == {"mtime"} and hits[0]["taken"] == "2020-07-20T12:00:00"
    status = ume(["search", "tomatoes", "--kind", "document", "--top-k", "1", *where])
    assert status == 0 and capsys.readouterr().out.splitlines()[0].endswith("[2026-01-01]")
    status = ume(["search", "a cat", "--after", "2024-02-30", *where])
    error = capsys.readouterr().err.strip()
    assert status == 2 and error == (
        "ume: error: after '2024-02-30' is not a date: use YYYY-MM-DD (or YYYY-MM, YYYY, YYYY-MM-DDTHH:MM)"
    )


@pytest.fixture
def api(index: FixtureIndex) -> Iterator[TestClient]:
    with open_store(data_dir=index.data_dir) as store:
        ctx = make_context(store, COLLECTION, load_encoder(index.model_dir))
        with TestClient(FastAPI(routes=api_routes(ctx, None))) as client:
            yield client


def test_api_search_takes_dates_and_sort_and_returns_dated_hits(api: TestClient, index: FixtureIndex) -> None:
    body = {"collection": COLLECTION, "text": "a cat", "top_k": 20, "after": "2021-01-01"}
    answer = api.post("/ume/search", json=body | {"before": "2025-12-31", "sort": "newest"})
    assert answer.status_code == 200
    hits = answer.json()["hits"]
    assert [Path(hit["path"]).name for hit in hits] == [
        "circle_square_hello.mp4",
        "circle_square_hello.mp4",
        "circle_square_hello.mp4",
        "tabby_cat_closeup.jpg",
        "rocket_on_launch_pad_at_dusk.jpg",
        "hubble_deep_field_galaxies.jpg",
        "espresso_cup_on_saucer.jpg",
    ]
    assert all(set(hit) >= {"taken", "taken_source"} for hit in hits)
    refused = api.post("/ume/search", json=body | {"before": "2020"})
    assert refused.status_code == 400
    assert refused.json() == {"error": "after 2021-01-01 is later than before 2020: no date is in between"}
