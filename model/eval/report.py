"""The score report of an MMEB-V2 run, as JSON and Markdown, rewritten after every dataset.

Markdown sections:
- the paper's table: one row for this run and one per released checkpoint with published
  numbers, columns I-CLS, I-QA, I-RET, I-GD, Image, V-CLS, V-QA, V-RET, V-MRET, Video, VDRv1,
  VDRv2, VisRAG, OOD, VisDoc, All (each a mean over the datasets present, with coverage);
- our headline variant beside one published model, level by level and dataset by dataset;
- every variant side by side; the authors' NDCG@5 where it differs; pass@k; dataset sizes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.eval.aggregate import Summary, compare_table, format_score, report, summarise, to_markdown
from model.eval.published import (
    MODALITIES,
    meta_task_names,
    modality_display_name,
    published_models,
    published_scores,
    task_catalogue,
    task_spec,
)
from model.eval.settings import MmebConfig, TaskResult, primary_variant

REPORT_JSON = "mmeb.json"
REPORT_MARKDOWN = "mmeb.md"
META_BY_MODALITY = {
    "image": ("I-CLS", "I-QA", "I-RET", "I-GD"),
    "video": ("V-CLS", "V-QA", "V-RET", "V-MRET"),
    "visdoc": ("VDRv1", "VDRv2", "VisRAG", "OOD"),
}


@dataclass
class MmebRun:
    """What a run produced: per-dataset results, the reports, and where they were written."""

    results: list[TaskResult]
    report: dict[str, Any]
    markdown: str
    json_path: Path
    markdown_path: Path

    @property
    def failed(self) -> list[TaskResult]:
        """Datasets that could not be evaluated, each with its reason."""
        return [result for result in self.results if result.error]


def in_catalogue(scores: Mapping[str, float]) -> dict[str, float]:
    """The MMEB-V2 datasets' scores only: datasets of your own are reported, never averaged in."""
    names = {spec.name for spec in task_catalogue()}
    return {name: score for name, score in scores.items() if name in names}


def scores_by_variant(results: Sequence[TaskResult]) -> dict[str, dict[str, float]]:
    """variant -> dataset -> score, variants in the order the first dataset reported them."""
    by_variant: dict[str, dict[str, float]] = {}
    for result in results:
        for variant, score in result.scores.items():
            by_variant.setdefault(variant, {})[result.name] = score
    return by_variant


def pass_at_k_by_side(results: Sequence[TaskResult]) -> dict[str, dict[str, list[float]]]:
    """side -> dataset -> [pass@1, …]."""
    by_side: dict[str, dict[str, list[float]]] = {}
    for result in results:
        for side, curve in result.pass_at_k.items():
            by_side.setdefault(side, {})[result.name] = curve
    return by_side


def _settings(config: MmebConfig) -> dict[str, Any]:
    return {
        "data_root": str(config.data_root) if config.data_root else None,
        "media_root": str(config.media_root) if config.media_root else None,
        "annotations": str(config.annotations) if config.annotations else None,
        "batch_size": config.batch_size,
        "max_new_tokens": config.max_new_tokens,
        "gen_stop": config.gen_stop,
        "alphas": list(config.alphas),
        "shortlist": config.shortlist,
        "samples": config.samples,
        "temperature": config.temperature,
        "sample_sides": config.sample_sides,
        "seed": config.seed,
        "pythonhashseed": os.environ.get("PYTHONHASHSEED"),
    }


def mmeb_report(config: MmebConfig, model_id: str, results: Sequence[TaskResult]) -> dict[str, Any]:
    """The JSON report: settings, per-dataset results, every variant's roll-up, the comparison."""
    variants = scores_by_variant(results)
    primary = primary_variant(config.qry_mode, config.tgt_mode)
    ours = in_catalogue(variants.get(primary, {}))
    return {
        "benchmark": "MMEB-V2",
        "model": model_id,
        "qry_mode": config.qry_mode,
        "tgt_mode": config.tgt_mode,
        "primary_variant": primary,
        "settings": _settings(config),
        "tasks": {result.name: result.as_dict() for result in results},
        "variants": {name: _summary_dict(summarise(in_catalogue(s))) for name, s in variants.items()},
        "paper_table": paper_table(ours),
        "comparison": report(ours, config.published_model, config.revision),
        "pass_at_k": pass_at_k_by_side(results),
    }


def _summary_dict(summary: Summary) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(summary)


def _paper_row(summary: Summary) -> dict[str, float | None]:
    row: dict[str, float | None] = {}
    for modality in MODALITIES:
        for meta in META_BY_MODALITY[modality]:
            row[meta] = summary.meta_task[meta].score
        row[modality_display_name(modality)] = summary.modality[modality].score
    row["All"] = summary.overall.score
    return row


def paper_table(ours: Mapping[str, float]) -> dict[str, dict[str, float | None]]:
    """Rows of the paper's table: this run, then every model with published numbers."""
    rows = {"this run": _paper_row(summarise(ours))}
    for model in published_models():
        published = published_scores(model)
        row: dict[str, float | None] = {meta: published.meta_task.get(meta) for meta in meta_task_names()}
        for modality in MODALITIES:
            row[modality_display_name(modality)] = published.headline.get(modality)
        row["All"] = published.headline.get("all")
        rows[model] = {column: row.get(column) for column in rows["this run"]}
    return rows


def paper_table_markdown(ours: Mapping[str, float]) -> str:
    """The paper's layout; this run's cells say how many of their datasets were scored."""
    summary = summarise(ours)
    rows = paper_table(ours)
    columns = list(rows["this run"])
    coverage = {meta: summary.meta_task[meta] for meta in meta_task_names()}
    coverage |= {modality_display_name(m): summary.modality[m] for m in MODALITIES}
    coverage["All"] = summary.overall
    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    ours_cells = [
        f"{format_score(coverage[c].score)} ({coverage[c].present}/{coverage[c].total})" for c in columns
    ]
    lines.append("| this run | " + " | ".join(ours_cells) + " |")
    for model, row in rows.items():
        if model != "this run":
            lines.append(f"| {model} | " + " | ".join(format_score(row[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def mmeb_markdown(config: MmebConfig, model_id: str, results: Sequence[TaskResult]) -> str:
    """The Markdown report (see the module docstring for its sections)."""
    primary = primary_variant(config.qry_mode, config.tgt_mode)
    variants = scores_by_variant(results)
    ours = in_catalogue(variants.get(primary, {}))
    revision = config.revision or "not recorded (pass --revision)"
    stop = "to the end, last <gen_emb>" if config.gen_stop == "end" else "at the first <gen_emb>"
    lines = [
        f"# MMEB-V2: {model_id}",
        "",
        f"Query mode {config.qry_mode}, candidate mode {config.tgt_mode}; max new tokens "
        f"{config.max_new_tokens}; generation stops {stop}; benchmark revision: {revision}.",
        "",
        f"## {primary} in the paper's table",
        "",
        paper_table_markdown(ours),
        f"## {primary} beside {config.published_model}",
        "",
        to_markdown(compare_table(ours, config.published_model), config.published_model),
        "## All variants",
        "",
        variants_markdown(variants),
    ]
    lines += authors_markdown(results) + pass_at_k_markdown(results, config)
    lines += ["## Datasets", "", datasets_markdown(results)]
    return "\n".join(lines)


def authors_markdown(results: Sequence[TaskResult]) -> list[str]:
    """The authors' graded NDCG@5 beside ours, for the datasets where the two differ."""
    rows = [(r, v, s) for r in results for v, s in r.authors_scores.items()]
    if not rows:
        return []
    lines = [
        "## NDCG@5 as the authors' evaluation computes it",
        "",
        "Their evaluator pairs the relevant pages, reordered by `set()`, with the grades in qrels "
        "order: on graded qrels the grades land on the wrong pages. Our number is the correct "
        "one; theirs varies with PYTHONHASHSEED for string ids.",
        "",
        "| dataset | variant | ours | authors' |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {r.name} | {v} | {format_score(r.scores.get(v))} | {format_score(s)} |" for r, v, s in rows]
    return [*lines, ""]


def pass_at_k_markdown(results: Sequence[TaskResult], config: MmebConfig) -> list[str]:
    """pass@1..K per side and dataset, with the mean over datasets."""
    by_side = pass_at_k_by_side(results)
    if not by_side:
        return []
    ks = list(range(1, config.samples + 1))
    lines = [f"## pass@k of gen ({config.samples} samples, temperature {config.temperature:g})", ""]
    for side, curves in by_side.items():
        other = "candidates" if side == "query" else "queries"
        lines += [f"{side} side sampled, {other} greedy:", ""]
        lines += ["| dataset | " + " | ".join(f"pass@{k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
        for name, curve in curves.items():
            lines.append(f"| {name} | " + " | ".join(map(format_score, curve)) + " |")
        means = [sum(c[k - 1] for c in curves.values()) / len(curves) for k in ks]
        lines += ["| mean | " + " | ".join(map(format_score, means)) + " |", ""]
    return lines


def variants_markdown(variants: Mapping[str, Mapping[str, float]]) -> str:
    """One column per variant; rows for All, each modality and meta-task, then each dataset."""
    names = list(variants)
    summaries = {name: summarise(in_catalogue(scores)) for name, scores in variants.items()}
    datasets = sorted({d for scores in variants.values() for d in scores}, key=_catalogue_order)
    mmeb = in_catalogue(dict.fromkeys(datasets, 0.0))
    rows: list[tuple[str, str, list[float | None]]] = [
        ("overall", "All", [summaries[n].overall.score for n in names])
    ]
    for modality in MODALITIES:
        cells = [summaries[n].modality[modality].score for n in names]
        rows.append(("modality", modality_display_name(modality), cells))
    metas = {task_spec(dataset).meta_task for dataset in mmeb}
    for meta in (m for m in meta_task_names() if m in metas):
        rows.append(("meta-task", meta, [summaries[n].meta_task[meta].score for n in names]))
    rows += [
        ("dataset" if d in mmeb else "own dataset", d, [variants[n].get(d) for n in names]) for d in datasets
    ]
    lines = ["| level | name | " + " | ".join(names) + " |"]
    lines.append("|---|---|" + "---:|" * len(names))
    for level, name, cells in rows:
        lines.append(f"| {level} | {name} | " + " | ".join(map(format_score, cells)) + " |")
    return "\n".join(lines) + "\n"


def datasets_markdown(results: Sequence[TaskResult]) -> str:
    lines = ["| dataset | metric | scope | queries | candidates | read from | skipped records |"]
    lines.append("|---|---|---|---:|---:|---|---|")
    for r in results:
        skipped = ", ".join(f"{count} {reason}" for reason, count in r.skipped.items()) or "none"
        if r.error:
            skipped = f"not evaluated: {r.error}"
        elif not r.scores:
            skipped += " (nothing scorable: left out)"
        source = r.source or "—"
        lines.append(
            f"| {r.name} | {r.metric} | {r.scope} | {r.queries} | {r.candidates} | {source} | {skipped} |"
        )
    return "\n".join(lines) + "\n"


def _catalogue_order(name: str) -> tuple[int, str]:
    """Catalogue datasets in the paper's order, then datasets of your own by name."""
    names = [spec.name for spec in task_catalogue()]
    return (names.index(name), "") if name in names else (len(names), name)


def write_reports(config: MmebConfig, model_id: str, results: list[TaskResult]) -> MmebRun:
    """Write mmeb.json and mmeb.md into the output folder, each atomically."""
    config.out_dir.mkdir(parents=True, exist_ok=True)
    payload = mmeb_report(config, model_id, results)
    markdown = mmeb_markdown(config, model_id, results)
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    json_path = _replace_text(config.out_dir / REPORT_JSON, text)
    markdown_path = _replace_text(config.out_dir / REPORT_MARKDOWN, markdown)
    return MmebRun(results, payload, markdown, json_path, markdown_path)


def _replace_text(path: Path, text: str) -> Path:
    partial_path = path.with_name(f".{path.name}.partial")
    partial_path.write_text(text, encoding="utf-8")
    os.replace(partial_path, path)
    return path
