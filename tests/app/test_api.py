"""The HTTP API's refusals, and the stated query limits on the API, the page and the command line.

The API's routes run in a FastAPI app of their own (the routes `ume serve` mounts) on a copy of
the tiny-model fixture index; requests are what a caller could send by mistake or on purpose.
Every refusal must be one line in the documented `{"error": ...}` form, naming the limit broken.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api import api_routes
from app.cli import main as ume
from app.context import AppContext, make_context
from app.limits import MAX_QUERY_CHARS, MAX_TOP_K
from app.ui.search_tab import SearchHandlers
from indexer.catalog.open import open_store
from tests.app.fixture_index import COLLECTION, MAX_NEW_TOKENS, FixtureIndex, load_encoder, shared_index
from tests.app.test_ui import png_claiming

LOGIN = ("reader", "s3cret")
LONG_QUERY = "a cat " * 20_000  # 120,000 characters


@pytest.fixture(scope="module")
def index(tiny_model_dir: Path, examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FixtureIndex:
    return shared_index(tiny_model_dir, examples_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def ctx(index: FixtureIndex, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppContext]:
    data_dir = tmp_path_factory.mktemp("api") / "data"
    shutil.copytree(index.data_dir, data_dir)
    with open_store(data_dir=data_dir) as store:
        yield make_context(store, COLLECTION, load_encoder(index.model_dir), max_new_tokens=MAX_NEW_TOKENS)


def client_for(ctx: AppContext, auth: tuple[str, str] | None = None) -> TestClient:
    return TestClient(FastAPI(routes=api_routes(ctx, auth)))


@pytest.fixture(scope="module")
def api(ctx: AppContext) -> TestClient:
    return client_for(ctx)


def search(api: TestClient, **fields: object) -> tuple[int, dict]:
    answer = api.post("/ume/search", json={"collection": COLLECTION, "text": "a cat"} | fields)
    return answer.status_code, answer.json()


def refusal(status: int, body: dict) -> str:
    """The one line of a 400 answer in the documented form."""
    assert status == 400 and list(body) == ["error"], body
    message = body["error"]
    assert isinstance(message, str) and "\n" not in message
    return message


@pytest.mark.parametrize("top_k", [0, -1, 100_000])
def test_top_k_out_of_range_is_refused_with_the_range(api: TestClient, top_k: int) -> None:
    message = refusal(*search(api, top_k=top_k))
    assert message == f"top_k must be a whole number from 1 to {MAX_TOP_K:,}, not {top_k}"


def test_top_k_at_its_limits_is_served(api: TestClient, index: FixtureIndex) -> None:
    status, found = search(api, top_k=1)
    assert status == 200 and len(found["hits"]) == 1
    status, found = search(api, top_k=MAX_TOP_K)
    assert status == 200 and len(found["hits"]) == index.items


@pytest.mark.parametrize("top_k", ["five", 2.5, [3], None])
def test_a_top_k_that_is_not_a_whole_number_gets_one_line_not_a_422(api: TestClient, top_k: object) -> None:
    message = refusal(*search(api, top_k=top_k))
    assert message.startswith(f"top_k must be a whole number from 1 to {MAX_TOP_K:,}, not ")


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"text=a cat", "the request body is not JSON"),
        (b"", "the request body is not JSON"),
        (b"\xff\xfe", "the request body is not JSON"),
        (b"[1, 2]", "the request body must be a JSON object, not list"),
        (b'{"text": "a cat"}', "collection is missing from the request body"),
        (b'{"collection": "media", "image": {"name": "x.png"}}', "image.data is missing"),
    ],
)
def test_a_body_that_cannot_be_used_gets_one_line(api: TestClient, body: bytes, said: str) -> None:
    answer = api.post("/ume/search", content=body, headers={"content-type": "application/json"})
    assert said in refusal(answer.status_code, answer.json())


def test_status_without_a_collection_gets_one_line(api: TestClient) -> None:
    answer = api.get("/ume/status")
    assert "give the collection" in refusal(answer.status_code, answer.json())


def test_a_query_over_the_length_limit_is_refused_in_one_line(api: TestClient) -> None:
    message = refusal(*search(api, text=LONG_QUERY))
    assert message == (
        f"the query is {len(LONG_QUERY):,} characters long; the most a query may have is "
        f"{MAX_QUERY_CHARS:,}: shorten it"
    )
    status, _ = search(api, text="x" * MAX_QUERY_CHARS)
    assert status == 200


def test_a_decompression_bomb_is_refused_in_plain_words(api: TestClient) -> None:
    bomb = {"name": "bomb.png", "data": base64.b64encode(png_claiming(30_000, 30_000)).decode("ascii")}
    message = refusal(*search(api, text=None, image=bomb))
    assert message.startswith("the example image: image is too large (more than ")
    assert message.endswith(" pixels): resize it")
    assert "DOS" not in message and "bomb" not in message and "/" not in message  # no Pillow text, no path


def test_without_a_login_the_answer_is_401_whatever_the_body(ctx: AppContext) -> None:
    guarded = client_for(ctx, LOGIN)
    for body in (b"not json", b'{"top_k": "five"}', b'{"collection": "media", "text": "a cat"}'):
        answer = guarded.post("/ume/search", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 401 and "requires a login" in answer.json()["error"]
    assert guarded.post("/ume/index", content=b"{").status_code == 401
    assert guarded.get("/ume/status").status_code == 401
    answer = guarded.post("/ume/search", content=b"not json", auth=LOGIN)
    assert "the request body is not JSON" in refusal(answer.status_code, answer.json())


def test_an_index_body_of_the_wrong_shape_gets_one_line(api: TestClient) -> None:
    answer = api.post("/ume/index", json={"roots": "not a list", "collection": COLLECTION})
    assert refusal(answer.status_code, answer.json()).startswith("roots: ")


def test_the_page_refuses_an_over_long_query_in_its_status_line(ctx: AppContext) -> None:
    _, _, status = SearchHandlers(ctx).fast(LONG_QUERY, None, None, "all", "", 5)
    assert "ume-error" in status and f"the most a query may have is {MAX_QUERY_CHARS:,}" in status


def test_the_cli_refuses_an_over_long_query_before_loading_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = ume(["search", LONG_QUERY, "--data-dir", str(tmp_path), "--model", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"the most a query may have is {MAX_QUERY_CHARS:,}" in err
    code = ume(["search", "a cat", "--top-k", "0", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and f"top_k must be a whole number from 1 to {MAX_TOP_K:,}, not 0" in err
