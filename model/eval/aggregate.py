"""From per-dataset scores to the paper's table, and our numbers beside the published ones.

Design decisions:
- Every level is a plain mean over DATASETS, exactly as MMEB-V2 and the UME-R1 paper average:
  a meta-task is the mean of its datasets, a modality the mean of its datasets (not of its
  meta-tasks), and "All" the mean of every dataset present. A level with no dataset present
  has no score, and each level says how many of its datasets it covers, so a partial run can
  never pass for a full one.
- Scores are percentages (0-100) like the published tables; rounding happens only on display.
- Missing numbers, ours or published, print as "—".
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from model.eval.published import (
    MODALITIES,
    OVERALL,
    datasets_by_meta_task,
    modality_display_name,
    published_scores,
    revision_note,
    task_catalogue,
    task_spec,
)

MISSING = "—"
Level = Literal["overall", "modality", "meta-task", "dataset"]


@dataclass(frozen=True)
class LevelScore:
    """One aggregate: its mean (None when no dataset is present) and its coverage."""

    score: float | None
    present: int
    total: int


@dataclass(frozen=True)
class Summary:
    """Per-dataset scores rolled up to meta-tasks, modalities and "all"."""

    dataset: dict[str, float]
    meta_task: dict[str, LevelScore]
    modality: dict[str, LevelScore]
    overall: LevelScore


class CompareRow(NamedTuple):
    """One line of the comparison: our score beside the published one."""

    level: Level
    name: str
    ours: float | None
    published: float | None
    coverage: str  # "present/total" datasets behind our number


def _mean_over(scores: Mapping[str, float], names: tuple[str, ...]) -> LevelScore:
    present = [scores[name] for name in names if name in scores]
    mean = sum(present) / len(present) if present else None
    return LevelScore(mean, len(present), len(names))


def _validated(scores: Mapping[str, float]) -> dict[str, float]:
    """Scores keyed by catalogue names; an unknown name or a non-number is the caller's error."""
    checked: dict[str, float] = {}
    for name, value in scores.items():
        task_spec(name)
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"score for {name!r} must be a finite percentage, got {value!r}")
        checked[name] = float(value)
    return checked


def summarise(scores: Mapping[str, float]) -> Summary:
    """Roll per-dataset percentages up to meta-task, modality and overall means."""
    checked = _validated(scores)
    catalogue = task_catalogue()
    by_modality = {
        modality: tuple(spec.name for spec in catalogue if spec.modality == modality)
        for modality in MODALITIES
    }
    by_meta_task = datasets_by_meta_task()
    return Summary(
        dataset=checked,
        meta_task={meta: _mean_over(checked, names) for meta, names in by_meta_task.items()},
        modality={modality: _mean_over(checked, names) for modality, names in by_modality.items()},
        overall=_mean_over(checked, tuple(spec.name for spec in catalogue)),
    )


def compare_table(ours: Mapping[str, float], published_model: str = "UME-R1-2B") -> list[CompareRow]:
    """Rows for All, each modality, each meta-task, then every dataset either side reports."""
    summary, published = summarise(ours), published_scores(published_model)
    rows = [_row("overall", OVERALL, summary.overall, published.headline.get(OVERALL))]
    rows += [
        _row("modality", modality, summary.modality[modality], published.headline.get(modality))
        for modality in MODALITIES
    ]
    rows += [
        _row("meta-task", meta, level, published.meta_task.get(meta))
        for meta, level in summary.meta_task.items()
    ]
    for spec in task_catalogue():
        ours_score, theirs = summary.dataset.get(spec.name), published.dataset.get(spec.name)
        if ours_score is not None or theirs is not None:
            coverage = "1/1" if ours_score is not None else "0/1"
            rows.append(CompareRow("dataset", spec.name, ours_score, theirs, coverage))
    return rows


def _row(level: Level, key: str, ours: LevelScore, published: float | None) -> CompareRow:
    name = modality_display_name(key) if level in ("overall", "modality") else key
    return CompareRow(level, name, ours.score, published, f"{ours.present}/{ours.total}")


def format_score(value: float | None) -> str:
    """One decimal, as the paper prints; "—" when there is no number."""
    return MISSING if value is None else f"{value:.1f}"


def to_markdown(rows: list[CompareRow], published_model: str = "UME-R1-2B") -> str:
    """A Markdown table: level, name, ours, published, difference, datasets covered."""
    header = f"| level | name | ours | {published_model} | Δ | datasets |"
    lines = [header, "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        delta = None if row.ours is None or row.published is None else row.ours - row.published
        delta_text = MISSING if delta is None else f"{delta:+.1f}"
        lines.append(
            f"| {row.level} | {row.name} | {format_score(row.ours)} | "
            f"{format_score(row.published)} | {delta_text} | {row.coverage} |"
        )
    return "\n".join(lines) + "\n"


def report(
    ours: Mapping[str, float], published_model: str = "UME-R1-2B", revision: str | None = None
) -> dict[str, Any]:
    """Everything a run should keep: scores, roll-ups, the comparison, the benchmark revision."""
    summary = summarise(ours)
    return {
        "benchmark": "MMEB-V2",
        "revision": revision,
        "revision_note": revision_note(),
        "published_model": published_model,
        "summary": asdict(summary),
        "rows": [row._asdict() for row in compare_table(ours, published_model)],
    }


def write_json_report(
    path: Path,
    ours: Mapping[str, float],
    published_model: str = "UME-R1-2B",
    revision: str | None = None,
) -> Path:
    """Write `report(...)` as JSON (missing numbers as null) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = report(ours, published_model, revision)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
