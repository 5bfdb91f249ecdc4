"""The page as a person meets it, in Debian's Chromium driven by Playwright: results and messages
in view after every search at a desktop's and a laptop's size, example queries that search,
dates that narrow and order the results (and go into the link),
a phone's width without sideways scrolling in light and dark, the keyboard on the results, and
the Index tab following a job that `ume index` handed over from a shell, without a reload.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image

from app.context import AppContext, make_context
from app.server_file import RunningServer, announce
from app.ui import examples
from app.ui.page import build_ui, launch
from indexer.catalog.open import open_store
from tests.app.conftest import WAIT_MS, needs_chromium, screenshot
from tests.app.fixture_index import COLLECTION, MAX_NEW_TOKENS, FixtureIndex, load_encoder, shared_index
from tests.conftest import REPO

pytestmark = needs_chromium

DESKTOP = {"width": 1400, "height": 1000}
LAPTOP = {"width": 1280, "height": 720}
PHONE = {"width": 400, "height": 900}
EXAMPLES = [("a cat, close up", "image"), ("pages about tomatoes", "document")]
TOMATOES = "pages about tomatoes (documents)"
CLI_S = 300  # starting `ume` (torch, transformers) on a busy 2-core machine

# Whether the element is wholly inside the window (no scrolling needed to see it).
IN_VIEW = """(selector) => {
  const element = document.querySelector(selector);
  if (!element) return false;
  const box = element.getBoundingClientRect();
  return box.height > 0 && box.top >= 0 && box.bottom <= window.innerHeight;
}"""
# WCAG contrast of an element's text against the first opaque background behind it.
CONTRAST = """(selector) => {
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const element = document.querySelector(selector);
  let holder = element, back = rgb(getComputedStyle(holder).backgroundColor);
  while (back.length === 4 && back[3] === 0 && holder.parentElement) {
    holder = holder.parentElement;
    back = rgb(getComputedStyle(holder).backgroundColor);
  }
  const light = ([r, g, b]) => [r, g, b].map((c) => {
    c /= 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  }).reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  const [a, b] = [light(rgb(getComputedStyle(element).color)), light(back)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""

# Table headers drawn on more than one line (a narrow column breaks "ETA" into letters).
WRAPPED_HEADERS = """(table) => [...document.querySelectorAll(table + " thead th")]
  .filter((th) => th.offsetParent !== null)
  .filter((th) => {
    const words = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    const tops = new Set();
    while (words.nextNode()) {
      if (!words.currentNode.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(words.currentNode);
      for (const box of range.getClientRects()) tops.add(Math.round(box.top));
    }
    return tops.size > 1;
  })
  .map((th) => th.innerText.trim())"""


@pytest.fixture(scope="module")
def index(tiny_model_dir: Path, examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FixtureIndex:
    return shared_index(tiny_model_dir, examples_dir, tmp_path_factory)


@contextmanager
def served(ctx: AppContext) -> Iterator[str]:
    demo = build_ui(ctx)
    launch(demo, ctx, prevent_thread_lock=True, quiet=True)
    assert demo.local_url is not None
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def page_url(index: FixtureIndex) -> Iterator[str]:
    """The page over the fixture index, with the offline-model banner and example queries: the
    demo's page, whose top is the tallest."""
    with pytest.MonkeyPatch.context() as patch, open_store(data_dir=index.data_dir) as store:
        patch.setattr(examples, "read_example_queries", lambda model_id: EXAMPLES)
        encoder = load_encoder(index.model_dir)
        ctx = make_context(store, COLLECTION, encoder, max_new_tokens=MAX_NEW_TOKENS, test_model=True)
        with served(ctx) as url:
            yield url


def open_page(browser, url: str, size: dict[str, int] = DESKTOP, scheme: str = "light"):
    page = browser.new_page()
    page.set_viewport_size(size)
    page.emulate_media(color_scheme=scheme)
    page.goto(url)
    page.locator("#ume-mode-help p").first.wait_for(timeout=WAIT_MS)  # the page load has run
    return page


def search(page, words: str) -> None:
    query = page.locator("#ume-query textarea")
    query.fill(words)
    query.press("Enter")


def linked(page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


@pytest.mark.parametrize("size", [DESKTOP, LAPTOP], ids=["1400x1000", "1280x720"])
def test_results_and_messages_are_in_view_after_every_search(browser, page_url: str, size) -> None:
    page = open_page(browser, page_url, size)
    search(page, "a cat, close up")
    page.wait_for_function(IN_VIEW, arg="#ume-results .thumbnail-item", timeout=WAIT_MS)
    assert page.evaluate(IN_VIEW, "#ume-status")  # how many, in which mode
    screenshot(page, f"results_in_view_{size['width']}.png")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    search(page, "")
    page.locator("#ume-status .ume-error", has_text="nothing to search for").wait_for(timeout=WAIT_MS)
    page.wait_for_function(IN_VIEW, arg="#ume-status .ume-error", timeout=WAIT_MS)
    page.close()


def test_an_example_query_searches_and_its_kind_goes_with_the_next_typed_query(
    browser, page_url: str
) -> None:
    page = open_page(browser, page_url)
    page.locator("#ume-examples button", has_text=TOMATOES).click()
    page.wait_for_function("() => new URLSearchParams(location.search).get('kind') === 'document'")
    page.locator("#ume-status", has_text="results").wait_for(timeout=WAIT_MS)
    assert linked(page)["q"] == ["pages about tomatoes"]
    captions = page.locator("#ume-results .caption-label").all_inner_texts()
    assert captions and all("document" in caption for caption in captions)
    assert page.locator("#ume-kind input").input_value() == "Documents"

    search(page, "a cat, close up")  # typed: the example's kind no longer applies
    page.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'a cat, close up'")
    page.locator("#ume-results .caption-label", has_text="image").first.wait_for(timeout=WAIT_MS)
    assert "kind" not in linked(page) and page.locator("#ume-kind input").input_value() == "All kinds"
    page.close()


def test_a_kind_the_person_chose_stays_for_the_next_query(browser, page_url: str) -> None:
    page = open_page(browser, page_url)
    page.locator("#ume-examples button", has_text=TOMATOES).click()
    page.locator("#ume-status", has_text="results").wait_for(timeout=WAIT_MS)
    kind = page.locator("#ume-kind input")
    kind.click()
    page.get_by_role("option", name="Images").click()
    search(page, "a cat, close up")
    page.wait_for_function("() => new URLSearchParams(location.search).get('q') === 'a cat, close up'")
    assert linked(page)["kind"] == ["image"] and kind.input_value() == "Images"
    page.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_phone_screen_has_no_sideways_scroll_and_readable_tiles(
    browser, page_url: str, scheme: str
) -> None:
    page = open_page(browser, f"{page_url}?q=a+cat", PHONE, scheme)
    tiles = page.locator("#ume-results .thumbnail-item")
    tiles.first.wait_for(timeout=WAIT_MS)
    assert page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
    for tile in tiles.all():  # each caption under its picture, not over it
        picture, caption = tile.locator("img").bounding_box(), tile.locator(".caption-label").bounding_box()
        assert picture and caption and caption["y"] >= picture["y"] + picture["height"] - 1
    tiles.first.click()
    page.locator(".ume-detail-header .ume-badge").nth(1).wait_for(timeout=WAIT_MS)
    page.wait_for_function(IN_VIEW, arg=".ume-detail-header", timeout=WAIT_MS)  # shown below the tiles
    for badge in (".ume-badge.ume-score", ".ume-badge:not(.ume-score)"):  # score and kind pills
        assert page.evaluate(CONTRAST, f".ume-detail-header {badge}") >= 4.5
    screenshot(page, f"phone_{scheme}.png")
    page.get_by_role("tab", name="Index").click()
    page.locator("#ume-library", has_text="media").wait_for(timeout=WAIT_MS)
    assert (
        page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
    )  # tables scroll in their box
    assert page.evaluate(WRAPPED_HEADERS, "#ume-library") == []
    screenshot(page, f"phone_index_{scheme}.png")
    page.close()


def test_arrow_keys_move_between_results_and_escape_closes_the_detail(browser, page_url: str) -> None:
    page = open_page(browser, page_url)
    search(page, "a cat, close up")
    tiles = page.locator("#ume-results .thumbnail-item")
    tiles.nth(5).wait_for(timeout=WAIT_MS)
    path = page.locator(".ume-detail-header .ume-path")
    tiles.first.click()
    path.wait_for(timeout=WAIT_MS)
    first = path.inner_text()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "(p) => document.querySelector('.ume-detail-header .ume-path')?.innerText !== p", arg=first
    )
    assert "selected" in (tiles.nth(1).get_attribute("class") or "")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(
        "(p) => document.querySelector('.ume-detail-header .ume-path')?.innerText === p", arg=first
    )
    page.keyboard.press("Escape")
    page.locator("#ume-detail .ume-detail-empty", has_text="Select a result").wait_for(timeout=WAIT_MS)
    assert path.count() == 0
    page.close()


def days_shown(page) -> list[str]:
    """The date on each result tile, in order ("2021-03-05 (file date)")."""
    return [
        caption.rsplit(" · ", 1)[1]
        for caption in page.locator("#ume-results .caption-label").all_inner_texts()
    ]


def test_a_date_range_and_an_order_narrow_and_sort_the_results_and_go_into_the_link(
    browser, page_url: str
) -> None:
    page = open_page(browser, page_url)
    page.locator("#ume-after input").fill("2021-01-01")
    page.locator("#ume-before input").fill("2023-12-31")
    page.locator("#ume-sort input").click()
    page.get_by_role("option", name="Oldest first").click()
    search(page, "a cat, close up")
    page.locator("#ume-status", has_text="3 results").wait_for(timeout=WAIT_MS)
    shown = ["2021-03-05 (file date)", "2022-11-30 (file date)", "2023-06-15 (file date)"]
    assert days_shown(page) == shown  # only those made in the range, oldest first, marked as file dates
    assert {key: linked(page)[key] for key in ("after", "before", "sort")} == {
        "after": ["2021-01-01"],
        "before": ["2023-12-31"],
        "sort": ["oldest"],
    }
    page.locator("#ume-results .thumbnail-item").first.click()
    page.locator(".ume-detail-header .ume-date", has_text=shown[0]).wait_for(timeout=WAIT_MS)
    screenshot(page, "dates_oldest_first.png")

    shared = open_page(browser, page.url)  # the link gives the same results
    shared.locator("#ume-status", has_text="3 results").wait_for(timeout=WAIT_MS)
    assert days_shown(shared) == shown and shared.locator("#ume-after input").input_value() == "2021-01-01"
    assert shared.locator("#ume-sort input").input_value() == "Oldest first"
    page.close()
    shared.close()


def test_a_date_from_the_file_itself_is_shown_unmarked_and_a_bad_date_is_marked(
    browser, page_url: str
) -> None:
    page = open_page(browser, f"{page_url}?q=tomatoes&after=2025-12&sort=newest")
    page.locator("#ume-status", has_text="results").wait_for(timeout=WAIT_MS)
    assert set(days_shown(page)) == {"2026-01-01"}  # the PDF's own creation date, unmarked
    page.locator("#ume-before input").fill("next week")
    search(page, "tomatoes")
    page.locator("#ume-before input.invalid").wait_for(timeout=WAIT_MS)  # drawn as a mistake
    page.close()


@dataclass
class Server:
    url: str
    data_dir: Path


@pytest.fixture
def fresh_server(index: FixtureIndex, tmp_path: Path) -> Iterator[Server]:
    """`ume serve` on a data dir with no collection yet, announced so `ume index` hands over."""
    data_dir = tmp_path / "data"
    with open_store(data_dir=data_dir) as store:
        settings = {"data_dir": data_dir, "max_new_tokens": MAX_NEW_TOKENS}
        ctx = make_context(store, "mine", load_encoder(index.model_dir), index_settings=settings)
        with served(ctx) as url:
            announce(data_dir, RunningServer(url, os.getpid(), "mine", login=False))
            try:
                yield Server(url, data_dir)
            finally:
                ctx.close()


def test_a_job_handed_over_by_ume_index_shows_on_an_open_page(
    browser, fresh_server: Server, tmp_path: Path
) -> None:
    library = tmp_path / "library"
    library.mkdir()
    for name, colour in (("red.png", (220, 30, 30)), ("blue.png", (20, 40, 220))):
        Image.new("RGB", (64, 48), colour).save(library / name)
    (library / "broken.jpg").write_bytes(b"not a picture")
    page = open_page(browser, fresh_server.url)
    page.get_by_role("tab", name="Index").click()
    assert "no collection 'mine'" in page.locator(".ume-banner").first.inner_text()

    command = ["index", str(library), "--data-dir", str(fresh_server.data_dir), "--collection", "mine"]
    shell = subprocess.run(  # another process, as from a shell: it hands the job to the page's server
        [sys.executable, "-m", "app", *command, "--mode", "disc", "--no-progress"],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=CLI_S,
    )
    assert shell.returncode == 1, shell.stderr  # one file failed

    jobs = page.locator("#ume-jobs")
    jobs.filter(has_text="2 indexed, 1 failed files").wait_for(timeout=WAIT_MS)  # without a reload
    said = jobs.inner_text().split()
    assert said[said.index("job-1") :][:4] == ["job-1", "cli", str(library), "done"]
    assert "building the search index" not in jobs.inner_text()
    assert page.evaluate(WRAPPED_HEADERS, "#ume-jobs") == [] == page.evaluate(WRAPPED_HEADERS, "#ume-library")
    page.locator("#ume-failures", has_text="broken.jpg").wait_for(timeout=WAIT_MS)
    page.locator("#ume-library", has_text=str(library)).wait_for(timeout=WAIT_MS)
    page.locator("#ume-title", has_text="2 items").wait_for(timeout=WAIT_MS)
    assert page.locator(".ume-banner", has_text="no collection").count() == 0
    assert "Reasoning pass: idle" in page.locator("#ume-background").inner_text()
    page.locator("#ume-chosen-folder input").click()
    page.get_by_role("option", name=str(library)).wait_for(timeout=WAIT_MS)  # Re-scan and Remove can use it
    screenshot(page, "index_tab_after_cli_job.png")
    page.close()


# Whether the element on top at the middle of the button is the button itself (nothing drawn over it).
ON_TOP = """(name) => {
  const button = [...document.querySelectorAll("button")].find((b) => b.innerText.trim() === name);
  const box = button.getBoundingClientRect();
  const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return button.contains(top);
}"""


def test_a_job_from_the_page_shows_its_progress_above_the_jobs_and_over_no_button(
    browser, fresh_server: Server, tmp_path: Path
) -> None:
    library = tmp_path / "photos"
    library.mkdir()
    Image.new("RGB", (64, 48), (200, 120, 30)).save(library / "orange.png")
    page = open_page(browser, fresh_server.url)
    page.get_by_role("tab", name="Index").click()
    page.get_by_role("button", name="Pause the reasoning pass").click()  # the job waits in its reasoning
    page.get_by_label("Folder to add").fill(str(library))
    page.get_by_role("button", name="Index", exact=True).click()
    page.locator("#ume-background .ume-now", has_text="job-1 (page)").wait_for(timeout=WAIT_MS)
    page.locator("#ume-background", has_text="paused: 1 item waits").wait_for(timeout=WAIT_MS)
    assert page.locator("#ume-background progress.ume-progress").count() == 1
    assert page.evaluate(ON_TOP, "Pause the reasoning pass") and page.evaluate(ON_TOP, "Resume")
    screenshot(page, "index_tab_job_running.png")
    page.get_by_role("button", name="Resume").click()
    page.locator("#ume-index-summary", has_text="1 indexed").wait_for(timeout=WAIT_MS)
    page.locator("#ume-background", has_text="idle: nothing waits").wait_for(timeout=WAIT_MS)
    assert page.locator("#ume-background .ume-now").count() == 0
    page.close()
