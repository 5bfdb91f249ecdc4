"""The house has no way back up: imports between packages and sub-packages go one way.

The floors, lowest first: `model`, `indexer`, `app`, and on top the page (`app.ui`), which only
the command line (`app.cli` and `python -m app`, the doors that launch it) may import. Within a
package, its root modules and each sub-package are units, and no chain of imports between units
leads back to where it started. Every import counts, also those inside functions and those made
only for type checking: each is a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("model", "indexer", "app")
FLOOR = {"model": 0, "indexer": 1, "app": 2}
PAGE = "app.ui"
DOORS = "app.cli"  # the command line: it launches the page
ENTRY_MODULES = {"app.__main__": DOORS}  # `python -m app` is the command line too

# Imports that break the rules today, each to be removed with the change its name gives; the
# test fails once one of them is gone, so the list cannot outlive its entries.
KNOWN_EDGES: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def unit_of(module: str) -> str:
    """The package or sub-package whose root module `module` is (a package is its own unit)."""
    if module in ENTRY_MODULES:
        return ENTRY_MODULES[module]
    parent = module if is_package(module) else module.rpartition(".")[0]
    return parent


def imported(module: str) -> Iterator[str]:
    """Every project module that `module` imports, wherever in the file the import is."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    package = module if is_package(module) else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            while name and name not in MODULES:  # `import a.b.c` depends on a.b.c, or its package
                name = name.rpartition(".")[0]
            if name:
                yield name


def edges() -> dict[tuple[str, str], str]:
    """(importing module, imported module) for every import between two units."""
    found = {}
    for module in MODULES:
        for target in imported(module):
            if unit_of(module) != unit_of(target):
                found[(module, target)] = f"{unit_of(module)} -> {unit_of(target)}"
    return found


def rule_breaking(module: str, target: str) -> str | None:
    """Why importing `target` from `module` goes up a floor, or None."""
    source_unit, target_unit = unit_of(module), unit_of(target)
    source_floor, target_floor = FLOOR[source_unit.split(".")[0]], FLOOR[target_unit.split(".")[0]]
    if target_floor > source_floor:
        return f"{source_unit} is below {target_unit}"
    in_page = target_unit == PAGE or target_unit.startswith(PAGE + ".")
    if in_page and source_unit != DOORS and not source_unit.startswith(PAGE):
        return f"the page ({PAGE}) is the top floor: only {DOORS} may import it"
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one unit (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_goes_up_a_floor() -> None:
    upward = {
        f"{module} imports {target}: {why}"
        for (module, target) in edges()
        if (why := rule_breaking(module, target)) and (module, target) not in KNOWN_EDGES
    }
    assert not upward, sorted(upward)


def test_no_import_cycle_between_packages_or_sub_packages() -> None:
    graph: dict[str, set[str]] = {}
    for module, target in edges():
        if (module, target) not in KNOWN_EDGES:
            graph.setdefault(unit_of(module), set()).add(unit_of(target))
    assert not cycles(graph)


@pytest.mark.parametrize(("module", "target"), sorted(KNOWN_EDGES))
def test_each_known_edge_is_still_there(module: str, target: str) -> None:
    """A known edge that has been removed must leave the list, so the rule covers it again."""
    assert (module, target) in edges(), f"{module} no longer imports {target}: drop it from KNOWN_EDGES"


def test_the_rules_catch_an_upward_import_and_a_cycle() -> None:
    assert rule_breaking("model.encoder", "indexer.scan")
    assert rule_breaking("indexer.run", "app.search")
    assert rule_breaking("app.search", "app.ui.page")
    assert rule_breaking("app.cli.serve_cmd", "app.ui.page") is None
    assert rule_breaking("app.ui.page", "app.api") is None
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
