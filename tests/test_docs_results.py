"""The recorded results and the pages that quote them stay in step.

Every results file the README or a docs page names exists, every file in benchmarks/results/ is
named by one of them (whoever records a result says on which page it belongs), and each says
what produced it: the commit, the machine and the command. Links between the pages resolve.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

RESULTS = REPO / "benchmarks" / "results"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RESULT_NAME = re.compile(r"benchmarks/results/([\w.\-/]+\.\w+)")
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
PROVENANCE = ("commit", "machine", "command")


def page_text() -> dict[Path, str]:
    return {page: page.read_text(encoding="utf-8") for page in PAGES}


def named_results() -> dict[str, list[str]]:
    """Each results file named on a page, with the pages naming it."""
    names: dict[str, list[str]] = {}
    for page, text in page_text().items():
        for name in RESULT_NAME.findall(text):
            names.setdefault(name.rstrip("."), []).append(page.name)
    return names


def recorded_results() -> list[str]:
    return sorted(str(path.relative_to(RESULTS)) for path in RESULTS.rglob("*") if path.is_file())


def test_the_docs_pages_the_readme_promises_exist() -> None:
    names = {page.name for page in PAGES}
    for page in ("search-and-indexing.md", "large-collections.md", "speed.md", "fidelity.md"):
        assert page in names
    for page in ("training.md", "evaluation.md", "findings.md", "architecture.md"):
        assert page in names


def test_every_results_file_a_page_names_exists() -> None:
    missing = {name: pages for name, pages in named_results().items() if not (RESULTS / name).is_file()}
    assert not missing, f"named but not in benchmarks/results/: {missing}"


def test_every_results_file_is_named_on_a_page() -> None:
    named = named_results()
    unnamed = [name for name in recorded_results() if name not in named]
    assert not unnamed, f"name these in README.md or the docs/ page they belong to: {unnamed}"


@pytest.mark.parametrize("name", [n for n in recorded_results() if n.endswith(".json")])
def test_each_results_file_says_what_produced_it(name: str) -> None:
    record = json.loads((RESULTS / name).read_text(encoding="utf-8"))
    assert isinstance(record, dict), name
    absent = [key for key in PROVENANCE if not str(record.get(key) or "").strip()]
    assert not absent, f"{name} lacks {absent}"


def test_links_between_pages_resolve() -> None:
    broken = []
    for page, text in page_text().items():
        for target in MARKDOWN_LINK.findall(text):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.name}: {target}")
    assert not broken, broken
