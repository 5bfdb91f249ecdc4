"""The search page in a real browser: Debian's Chromium driven by Playwright.

A person types a query, gets tiles, opens one and reads the model's reasoning with its tags
shown as text; a shared link reruns its search; modes the index cannot serve are greyed out
with the reason. Screenshots land in artifacts/ for a look at the page.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from app.context import make_context
from app.ui.page import build_ui, launch
from indexer.catalog.collection import collection_info, resolved_model_id
from indexer.catalog.open import open_store
from indexer.catalog.schema import item_id
from indexer.catalog.store import Point
from tests.app.conftest import WAIT_MS, needs_chromium, screenshot
from tests.app.fixture_index import (
    COLLECTION,
    MAX_NEW_TOKENS,
    FixtureIndex,
    load_encoder,
    reasoning_for,
    shared_index,
)

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def index(tiny_model_dir: Path, examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FixtureIndex:
    return shared_index(tiny_model_dir, examples_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def page_url(index: FixtureIndex) -> Iterator[str]:
    with open_store(data_dir=index.data_dir) as store:
        ctx = make_context(
            store,
            COLLECTION,
            load_encoder(index.model_dir),
            max_new_tokens=MAX_NEW_TOKENS,
            test_model=True,
        )
        demo = build_ui(ctx)
        launch(demo, ctx, prevent_thread_lock=True, quiet=True)
        assert demo.local_url is not None
        try:
            yield demo.local_url
        finally:
            demo.close()


def test_type_a_query_open_a_hit_and_read_its_reasoning(browser, page_url: str) -> None:
    page = browser.new_page()
    page.goto(page_url)
    page.locator("#ume-mode-help p").first.wait_for(timeout=WAIT_MS)  # the page load has run
    query = page.locator("#ume-query textarea")
    query.fill("a cat, close up")
    query.press("Enter")
    tiles = page.locator("#ume-results img")
    tiles.first.wait_for(timeout=WAIT_MS)
    assert parse_qs(urlparse(page.url).query)["q"] == ["a cat, close up"]
    assert "10 results" in page.locator(".ume-status").inner_text()
    tiles.first.click()
    header = page.locator(".ume-detail-header").first
    header.wait_for(timeout=WAIT_MS)
    path = header.locator(".ume-path").inner_text()
    reasoning = page.locator("#ume-reasoning textarea")
    page.wait_for_function("() => document.querySelector('#ume-reasoning textarea').value.length > 0")
    assert reasoning.input_value() == reasoning_for(Path(path))  # tags shown as text, not eaten
    assert "<think>" in reasoning.input_value()
    assert "The model's reasoning" in page.content() and "why it matched" not in page.content()
    screenshot(page, "search_ui.png")
    page.close()


def test_a_deep_link_reruns_its_search_with_its_mode_and_filters(browser, page_url: str) -> None:
    page = browser.new_page()
    page.goto(f"{page_url}?q=pages+about+tomatoes&mode=rerank&kind=document&k=2")
    page.locator("#ume-results img").nth(1).wait_for(timeout=WAIT_MS)
    assert page.locator("#ume-results img").count() == 2
    assert page.locator("#ume-query textarea").input_value() == "pages about tomatoes"
    assert page.locator("#ume-mode input[value=rerank]").is_checked()
    assert page.locator("#ume-query-reasoning").is_visible()  # the query's reasoning is shown
    assert "rerank mode" in page.locator(".ume-status").inner_text()
    captions = page.locator("#ume-results").inner_text()
    assert captions.count("document") == 2
    screenshot(page, "deep_link_rerank.png")
    page.close()


def test_a_hit_on_a_pdf_page_shows_the_rendered_page(browser, page_url: str) -> None:
    page = browser.new_page()
    page.goto(f"{page_url}?q=tomatoes&kind=document&k=1")
    page.locator("#ume-results img").first.click(timeout=WAIT_MS)
    page.locator(".ume-detail-header .ume-badge", has_text="page ").first.wait_for(timeout=WAIT_MS)
    page.locator("#ume-detail img").first.wait_for(timeout=WAIT_MS)
    link = page.locator(".ume-detail-header a.ume-open").first.get_attribute("href") or ""
    assert link.startswith("gradio_api/file=") and "#page=" in link
    page.close()


@pytest.fixture
def disc_only_url(index: FixtureIndex, tmp_path: Path) -> Iterator[str]:
    """A page over a collection indexed without gen vectors."""
    encoder = load_encoder(index.model_dir)
    photo = tmp_path / "photos" / "cat.jpg"
    photo.parent.mkdir()
    shutil.copy(index.root / "photos" / "tabby_cat_closeup.jpg", photo)
    vector = encoder.encode_document([str(photo)], mode="disc").disc
    assert vector is not None
    payload = {"record": "item", "path": str(photo), "root": str(photo.parent), "kind": "image"}
    with open_store(data_dir=tmp_path / "data") as store:
        info = collection_info(resolved_model_id(encoder.model_id), encoder.hidden_size, "disc")
        store.create_collection(COLLECTION, info)
        store.upsert(COLLECTION, [Point(item_id(str(photo), 0), payload, {"disc": vector[0]})])
        ctx = make_context(store, COLLECTION, encoder)
        demo = build_ui(ctx)
        launch(demo, ctx, prevent_thread_lock=True, quiet=True)
        assert demo.local_url is not None
        try:
            yield demo.local_url
        finally:
            demo.close()


def test_modes_the_index_cannot_serve_are_disabled_with_the_reason(browser, disc_only_url: str) -> None:
    page = browser.new_page()
    page.goto(disc_only_url)
    reasoning = page.locator("#ume-mode input[value=reasoning]")
    page.wait_for_function(
        "() => document.querySelector('#ume-mode input[value=reasoning]')?.disabled === true",
        timeout=WAIT_MS,
    )
    assert reasoning.is_disabled() and not page.locator("#ume-mode input[value=fast]").is_disabled()
    title = (
        page.locator("#ume-mode label", has=page.locator("input[value=reasoning]")).get_attribute("title")
        or ""
    )
    assert "gen" in title and "ume index --mode both" in title
    assert "Unavailable" in page.locator("#ume-mode-help").inner_text()
    screenshot(page, "disc_only_modes.png")
    page.close()
