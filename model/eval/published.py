"""MMEB-V2 as data: the 78-dataset task catalogue and the published UME-R1 tables.

Design decisions:
- The numbers live in `published.json` beside this file, not in code, so a table can be checked
  against the paper line by line and a new model's row is a data change, not a code change.
- Scores are percentages with one decimal, exactly as printed. Modality keys are `image`,
  `video`, `visdoc`; the overall key is `all`.
- Each catalogue entry says how the dataset is ranked: `local` (each query only among its own
  candidate list) or `global` (against the whole de-duplicated candidate corpus), and which
  metric it reports (`hit@1` or `ndcg@5`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

Modality = Literal["image", "video", "visdoc"]
Metric = Literal["hit@1", "ndcg@5"]
Scope = Literal["local", "global"]

MODALITIES: tuple[Modality, ...] = ("image", "video", "visdoc")
OVERALL = "all"
PUBLISHED_JSON = Path(__file__).with_name("published.json")


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark dataset: where it counts (modality, meta-task) and how it is scored."""

    name: str
    modality: Modality
    meta_task: str
    metric: Metric
    scope: Scope


@dataclass(frozen=True)
class PublishedScores:
    """One model's published numbers; a table the paper does not print for it is empty."""

    model: str
    headline: dict[str, float] = field(default_factory=dict)  # modality or "all" -> score
    meta_task: dict[str, float] = field(default_factory=dict)
    dataset: dict[str, float] = field(default_factory=dict)


@cache
def _published() -> dict[str, Any]:
    with PUBLISHED_JSON.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


@cache
def task_catalogue() -> tuple[TaskSpec, ...]:
    """All 78 MMEB-V2 datasets, grouped by meta-task in the paper's column order."""
    return tuple(TaskSpec(**entry) for entry in _published()["tasks"])


def task_spec(name: str) -> TaskSpec:
    """The catalogue entry for one dataset name, spelt as in the benchmark's score reports."""
    for spec in task_catalogue():
        if spec.name == name:
            return spec
    raise KeyError(f"unknown MMEB-V2 dataset {name!r}; see task_catalogue() for the 78 names")


def meta_task_names() -> tuple[str, ...]:
    """Meta-task names in the paper's column order (I-CLS … OOD)."""
    return tuple(_published()["meta_tasks"])


def datasets_by_meta_task() -> dict[str, tuple[str, ...]]:
    """Meta-task -> its dataset names, in catalogue order."""
    return {
        meta: tuple(spec.name for spec in task_catalogue() if spec.meta_task == meta)
        for meta in meta_task_names()
    }


def modality_display_name(key: str) -> str:
    """`image` -> `Image`, `visdoc` -> `VisDoc`, `all` -> `All`, as the paper labels columns."""
    names: dict[str, str] = _published()["modality_names"]
    return names.get(key, key.capitalize())


def published_models() -> tuple[str, ...]:
    """Every model with at least a headline row in the published tables."""
    return tuple(_published()["models"])


def published_scores(model: str) -> PublishedScores:
    """The published headline, meta-task and per-dataset scores of one model."""
    models: dict[str, dict[str, dict[str, float]]] = _published()["models"]
    if model not in models:
        known = ", ".join(models)
        raise KeyError(f"no published scores for {model!r}; known models: {known}")
    tables = models[model]
    return PublishedScores(
        model=model,
        headline=dict(tables.get("headline", {})),
        meta_task=dict(tables.get("meta_task", {})),
        dataset=dict(tables.get("dataset", {})),
    )


def revision_note() -> str:
    """Why a number must name the benchmark revision it was measured on."""
    note: str = _published()["revision_note"]
    return note
