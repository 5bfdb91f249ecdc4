"""Retrieval quality on your own indexed collection, so you can pick a search mode on your data.

Queries come from a JSONL file, one object per line:

    {"query": "a cat on a sofa", "image": "examples/cat.jpg",
     "expected": [{"path": "photos/cat.jpg"},
                  {"path": "/data/report.pdf", "page": 3},
                  {"path": "videos/talk.mp4", "start": 60, "end": 75}]}

- `query` (words) and/or `image` (or `video`) (an example to search by); a relative media path
  is read relative to the JSONL file's folder.
- `expected` lists what a right answer is. An absolute `path` must equal the indexed path; a
  relative one matches any indexed path that ends with those folders and name. `page` must
  match exactly; a time span `start`/`end` (seconds; either may be left out) matches a video
  segment that overlaps it.

Design decisions:
- Search is a callable handed in (the app wires the search service), so this module only reads
  queries, judges hits and computes metrics; it imports no index and no UI.
- Each expected entry is credited once: the first hit that matches it counts, later hits that
  match it again (another segment of the same clip, the same page twice) count as misses. That
  keeps NDCG at most 1 and stops one long video from filling the top of the list.
- Metrics are in [0, 1]: Hit@k, MRR (over the retrieved list), NDCG@k with binary gain; each
  mode's numbers are means over queries. pass@k (a generating mode searched K times per query
  with sampled reasoning; a query counts when one of k searches puts a right item first) uses
  the unbiased estimator of `model.eval.passk`. A query the search cannot run (it raises
  `QueryFailed`) counts as a miss and keeps its message.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from model.eval.metrics import hit_at_k, mrr, ndcg_at_k
from model.eval.passk import pass_at_k

DEFAULT_KS = (1, 5, 10)


class QueryFileError(ValueError):
    """A queries file that cannot be used; the message names the line and what to fix."""


class QueryFailed(Exception):
    """Raised by a search callable for a query it cannot run; the query counts as a miss."""


class HitLike(Protocol):
    """What a search hit must tell us to be judged."""

    @property
    def path(self) -> str: ...
    @property
    def page(self) -> int | None: ...
    @property
    def start(self) -> float | None: ...
    @property
    def end(self) -> float | None: ...
    @property
    def score(self) -> float: ...


@dataclass(frozen=True)
class ExpectedItem:
    """One right answer: a file, optionally a page of it or a time span in it."""

    path: str
    page: int | None = None
    start: float | None = None
    end: float | None = None

    def matches(self, hit: HitLike) -> bool:
        if not _same_file(self.path, hit.path):
            return False
        if self.page is not None and hit.page != self.page:
            return False
        if self.start is None and self.end is None:
            return True
        return _spans_overlap(self.start, self.end, hit.start, hit.end)

    def to_json(self) -> dict[str, Any]:
        fields = {"page": self.page, "start": self.start, "end": self.end}
        return {"path": self.path, **{k: v for k, v in fields.items() if v is not None}}


def _same_file(expected: str, found: str) -> bool:
    wanted = Path(os.path.expanduser(expected))
    if wanted.is_absolute():
        return os.path.normpath(wanted) == os.path.normpath(found)
    parts = Path(os.path.normpath(wanted)).parts
    return Path(found).parts[-len(parts) :] == parts


def _spans_overlap(
    start: float | None, end: float | None, hit_start: float | None, hit_end: float | None
) -> bool:
    """Whether a hit's [start, end] shares time with the expected span (a moment: contains it)."""
    if hit_start is None or hit_end is None:
        return False
    low, high = start if start is not None else -math.inf, end if end is not None else math.inf
    if low == high:
        return hit_start <= low <= hit_end
    return max(low, hit_start) < min(high, hit_end)


@dataclass(frozen=True)
class CollectionQuery:
    """One line of the queries file."""

    line: int
    text: str | None
    image: Path | None
    video: Path | None
    expected: tuple[ExpectedItem, ...]

    def describe(self) -> str:
        media = self.image or self.video
        parts = [repr(self.text) if self.text else None, f"[{media.name}]" if media else None]
        return " + ".join(part for part in parts if part)


def read_queries(path: Path) -> list[CollectionQuery]:
    """Every query of a JSONL file; any bad line is an error naming the line."""
    if not path.is_file():
        raise QueryFileError(f"{path} not found: give a JSONL file of queries (--queries)")
    queries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                queries.append(_query(json.loads(line), number, path.parent))
            except (json.JSONDecodeError, TypeError, ValueError) as error:
                message = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
                raise QueryFileError(f"{path} line {number}: {message}") from None
    if not queries:
        raise QueryFileError(f"{path} holds no queries")
    return queries


def _query(record: object, number: int, folder: Path) -> CollectionQuery:
    if not isinstance(record, dict):
        raise ValueError("each line must be a JSON object")
    text = record.get("query")
    if text is not None and not isinstance(text, str):
        raise ValueError("'query' must be text")
    image, video = _media(record, "image", folder), _media(record, "video", folder)
    if image is not None and video is not None:
        raise ValueError("give an 'image' or a 'video' to search by, not both")
    if not (text or "").strip() and image is None and video is None:
        raise ValueError("give 'query' words, an 'image' or a 'video'")
    expected = record.get("expected")
    if not isinstance(expected, list) or not expected:
        raise ValueError("'expected' must be a non-empty list of {\"path\": ...} objects")
    items = tuple(_expected(entry) for entry in expected)
    return CollectionQuery(number, (text or "").strip() or None, image, video, items)


def _media(record: Mapping[str, Any], key: str, folder: Path) -> Path | None:
    value = record.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a path")
    path = Path(os.path.expanduser(value))
    path = path if path.is_absolute() else folder / path
    if not path.is_file():
        raise ValueError(f"{key} {path} not found")
    return path


def _expected(entry: object) -> ExpectedItem:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
        raise ValueError("each expected entry needs a 'path'")
    page = entry.get("page")
    if page is not None and (not isinstance(page, int) or isinstance(page, bool)):
        raise ValueError("'page' must be a whole number (1 is the first page)")
    start, end = _seconds(entry, "start"), _seconds(entry, "end")
    if start is not None and end is not None and end < start:
        raise ValueError("'end' comes before 'start'")
    return ExpectedItem(entry["path"], page, start, end)


def _seconds(entry: Mapping[str, Any], key: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"'{key}' must be a number of seconds")
    return float(value)


# --- judging and metrics -----------------------------------------------------------------


def credit_hits(hits: Sequence[HitLike], expected: Sequence[ExpectedItem]) -> list[int | None]:
    """Per hit, the index of the expected entry it is the first to match; None for a miss."""
    credited: set[int] = set()
    matched: list[int | None] = []
    for hit in hits:
        found = next((i for i, item in enumerate(expected) if i not in credited and item.matches(hit)), None)
        if found is not None:
            credited.add(found)
        matched.append(found)
    return matched


def metric_names(ks: Sequence[int]) -> list[str]:
    return [f"hit@{k}" for k in ks] + ["mrr"] + [f"ndcg@{k}" for k in ks]


def query_metrics(matched: Sequence[int | None], expected: int, ks: Sequence[int]) -> dict[str, float]:
    """Hit@k, MRR and NDCG@k for one ranked list judged by `credit_hits`."""
    # a miss gets a negative id of its own: never relevant, never equal to another miss
    ranked = [m if m is not None else -1 - rank for rank, m in enumerate(matched)]
    relevant = set(range(expected))
    gains = dict.fromkeys(relevant, 1)
    values = {f"hit@{k}": hit_at_k(ranked, relevant, k) for k in ks}
    values["mrr"] = mrr(ranked, relevant)
    values.update({f"ndcg@{k}": ndcg_at_k(ranked, gains, k) for k in ks})
    return values


# --- running every query in every mode ---------------------------------------------------


@dataclass(frozen=True)
class SearchOutcome:
    hits: Sequence[HitLike]
    seconds: float


SearchFn = Callable[[CollectionQuery, str], SearchOutcome]
SampledSearchFn = Callable[[CollectionQuery, str, int], SearchOutcome]  # (query, mode, sample index)


@dataclass
class ModeResult:
    """One search mode over all queries: mean metrics and each query's hits."""

    mode: str
    unavailable: str | None = None  # why the mode could not run on this collection
    metrics: dict[str, float] = field(default_factory=dict)
    seconds_per_query: float | None = None
    queries: list[dict[str, Any]] = field(default_factory=list)
    pass_at_k: list[float] = field(default_factory=list)  # [pass@1, …] of Hit@1, when sampled


def evaluate_mode(
    queries: Sequence[CollectionQuery], mode: str, search: SearchFn, ks: Sequence[int]
) -> ModeResult:
    """Search every query in one mode, judge the hits, and average the metrics."""
    result = ModeResult(mode)
    seconds = 0.0
    for query in queries:
        record = _evaluate_query(query, mode, search, ks)
        seconds += record["seconds"]
        result.queries.append(record)
    for name in metric_names(ks):
        result.metrics[name] = sum(r["metrics"][name] for r in result.queries) / len(queries)
    result.seconds_per_query = seconds / len(queries)
    return result


def pass_at_k_mode(
    queries: Sequence[CollectionQuery], mode: str, search: SampledSearchFn, samples: int
) -> list[float]:
    """pass@1..samples of Hit@1 in one generating mode: `samples` sampled searches per query."""
    firsts = np.zeros((len(queries), samples))
    for row, query in enumerate(queries):
        for index in range(samples):
            try:
                outcome = search(query, mode, index)
            except QueryFailed:
                continue  # a failed search is a miss
            matched = credit_hits(outcome.hits[:1], query.expected)
            firsts[row, index] = float(bool(matched) and matched[0] is not None)
    return [value / 100.0 for value in pass_at_k(firsts)]


def _evaluate_query(query: CollectionQuery, mode: str, search: SearchFn, ks: Sequence[int]) -> dict[str, Any]:
    record: dict[str, Any] = {"line": query.line, "query": query.describe(), "error": None}
    record["expected"] = [item.to_json() for item in query.expected]
    try:
        outcome = search(query, mode)
    except QueryFailed as error:
        record.update(seconds=0.0, hits=[], metrics=query_metrics([], len(query.expected), ks))
        record["error"] = str(error)
        return record
    matched = credit_hits(outcome.hits, query.expected)
    record["seconds"] = outcome.seconds
    record["metrics"] = query_metrics(matched, len(query.expected), ks)
    record["hits"] = [_hit_json(hit, match) for hit, match in zip(outcome.hits, matched, strict=True)]
    return record


def _hit_json(hit: HitLike, match: int | None) -> dict[str, Any]:
    return {
        "path": hit.path,
        "page": hit.page,
        "start": hit.start,
        "end": hit.end,
        "score": round(float(hit.score), 6),
        "expected": match,  # index into the query's expected list, None for a miss
    }


def collection_markdown(collection: str, results: Sequence[ModeResult], ks: Sequence[int]) -> str:
    """One row per mode: the mean metrics and the time per query, or why the mode was skipped."""
    names = metric_names(ks)
    lines = [
        f"# Search quality on collection {collection}",
        "",
        "| mode | " + " | ".join(names) + " | s/query |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for result in results:
        if result.unavailable is not None:
            lines.append(f"| {result.mode} | unavailable: {result.unavailable} |")
            continue
        cells = [f"{result.metrics[name]:.3f}" for name in names]
        lines.append(f"| {result.mode} | " + " | ".join(cells) + f" | {result.seconds_per_query:.2f} |")
    sampled = [r for r in results if r.pass_at_k]
    if sampled:
        ks = range(1, len(sampled[0].pass_at_k) + 1)
        lines += ["", "pass@k of Hit@1 with sampled query reasoning:", ""]
        lines += ["| mode | " + " | ".join(f"pass@{k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
        lines += [f"| {r.mode} | " + " | ".join(f"{v:.3f}" for v in r.pass_at_k) + " |" for r in sampled]
    failures = [(r.mode, q) for r in results for q in r.queries if q["error"]]
    if failures:
        lines += ["", "Queries that failed (counted as misses):", ""]
        lines += [f"- {mode}, line {q['line']}: {q['error']}" for mode, q in failures]
    return "\n".join(lines) + "\n"
