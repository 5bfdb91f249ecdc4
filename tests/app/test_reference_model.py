"""The shipped reference model, end to end through the CLI on a gallery it has never seen.

A gallery written from the tiny world (images, clips cut into segments, PDF pages; the renders
are not the training ones) is indexed with `ume index` in both modes, then every item's query is
run with `ume search --json` in each mode: the right image, segment or page must come first for
at least `MIN_HIT1` of the queries of each kind, and `ume eval collection` must report the same.

The shipped model meets 0.9 in fast mode (disc) for every kind. Its gen embeddings, trained for
800 SFT + 40 GRPO steps only, do not: on this gallery reasoning and re-rank found 6/6 images,
4/6 segments and 5/6 pages (README, "The reference model"), so those modes are held to 0.5.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.cli import main as ume
from app.search_eval import ExpectedItem
from model.world import REFERENCE_MODEL
from model.world.gallery import GalleryQuery, plan_gallery, write_gallery, write_queries

COLLECTION = "world"
MODES = ("fast", "reasoning", "rerank")
KINDS = ("image", "video", "document")
MIN_HIT1 = {"fast": 0.9, "reasoning": 0.5, "rerank": 0.5}  # see the module docstring
TOKENS = ["--max-new-tokens", "48"]  # a well-formed completion of the reference model is ~25 tokens
PLAN = plan_gallery(images=6, clips=3, documents=2, pages_per_document=3)


@dataclass(frozen=True)
class IndexedGallery:
    data_dir: Path
    queries: list[GalleryQuery]
    reported: dict[tuple[str, str], float]  # (kind, mode) -> Hit@1 from `ume eval collection`


def location(data_dir: Path) -> list[str]:
    return ["--collection", COLLECTION, "--data-dir", str(data_dir)]


def eval_collection(folder: Path, data_dir: Path, kind: str, queries: list[GalleryQuery]) -> dict[str, float]:
    """Hit@1 per mode that `ume eval collection` reports for one kind's queries."""
    path = write_queries(folder / f"queries-{kind}.jsonl", [q for q in queries if q.kind == kind])
    out = folder / f"eval-{kind}"
    flags = ["--queries", str(path), "--kind", kind, "--k", "1", "--out", str(out)]
    assert ume(["eval", "collection", *flags, *TOKENS, *location(data_dir)]) == 0
    report = json.loads((out / f"collection-{COLLECTION}.json").read_text())
    return {mode["mode"]: mode["metrics"]["hit@1"] for mode in report["modes"]}


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> IndexedGallery:
    folder = tmp_path_factory.mktemp("reference")
    queries = write_gallery(folder / "gallery", PLAN)
    data_dir = folder / "data"
    model = ["--model", str(REFERENCE_MODEL), "--mode", "both", *TOKENS]
    assert ume(["index", str(folder / "gallery"), *model, "--no-progress", *location(data_dir)]) == 0
    reported = {
        (kind, mode): hit1
        for kind in KINDS
        for mode, hit1 in eval_collection(folder, data_dir, kind, queries).items()
    }
    return IndexedGallery(data_dir, queries, reported)


def first_hit(query: GalleryQuery, mode: str, data_dir: Path, output: Callable[[], str]) -> dict:
    flags = ["--mode", mode, "--kind", query.kind, "--top-k", "1", "--json"]
    assert ume(["search", query.text, *flags, *TOKENS, *location(data_dir)]) == 0
    return json.loads(output())["hits"][0]


@pytest.mark.parametrize("mode", MODES)
def test_the_reference_model_finds_held_out_items_of_every_kind(
    gallery: IndexedGallery, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    right: dict[str, list[bool]] = {kind: [] for kind in KINDS}
    for query in gallery.queries:
        hit = first_hit(query, mode, gallery.data_dir, lambda: capsys.readouterr().out)
        expected = ExpectedItem(**query.expected)
        right[query.kind].append(expected.matches(_Hit(**hit)))
    hit1 = {kind: sum(found) / len(found) for kind, found in right.items()}
    assert hit1 == {kind: gallery.reported[(kind, mode)] for kind in KINDS}  # eval says the same
    assert all(value >= MIN_HIT1[mode] for value in hit1.values()), (mode, hit1)


@dataclass(frozen=True)
class _Hit:
    """A `ume search --json` hit, as `ExpectedItem.matches` reads it."""

    path: str
    kind: str
    page: int | None
    start: float | None
    end: float | None
    score: float
    summary: str | None
    reasoning: str | None
