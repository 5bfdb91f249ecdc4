"""MMEB-V2 with a UME-R1 model: disc vs gen embeddings, and combinations the paper left out.

Data layout under the data root: one folder per dataset, named exactly as in the catalogue
(`model.eval.published.task_catalogue()`: `ImageNet-1K`, `MSR-VTT`, `ViDoRe_docvqa`, ...):

    DATA_ROOT/
      ImageNet-1K/           image task: records.jsonl (or records.json, a JSON list), one MMEB
        records.jsonl          record per query: qry_inst, qry_text, qry_img_path, tgt_inst,
        <images>               tgt_text[], tgt_img_path[]; the positive is candidate 0. Image
                               paths are relative to the task folder.
      MSR-VTT/               video task: the same records with qry_video_path / tgt_video_path[]
        records.jsonl          naming frame folders relative to the task folder (one folder of
        <frame folders>        frame images per video; 8 frames are sampled uniformly).
      ViDoRe_docvqa/         visual documents, BEIR layout: corpus.jsonl (_id, image or text),
        corpus.jsonl           queries.jsonl (_id, text), qrels/test.tsv (query-id, corpus-id,
        queries.jsonl          graded score; header line). Page images are relative to the
        qrels/test.tsv         task folder.

A dataset of your own in the same layout runs when named in --tasks, if its folder also holds
`task.json`: {"modality": "image", "meta_task": "I-RET", "metric": "hit@1", "scope": "global"}.
It is reported on its own line and never averaged into the MMEB-V2 roll-ups.

Each dataset is ranked as the catalogue (or its task.json) says: "local" datasets rank each
query among its own candidate list, "global" ones against the whole de-duplicated candidate
pool. Metrics: Hit@1 (image, video), NDCG@5 with linear gain (visual documents), as percentages.

Variants reported (names as they appear in the report):
- `Q-T`: query embeddings of mode Q against candidate embeddings of mode T, for every mode
  requested on each side; `gen-gen` is the paper's headline setting.
- `fused@A`: A * disc cosine + (1 - A) * gen cosine.
- `rerank@N`: the disc ranking's top N (of the query's own list for local datasets), re-ordered
  by gen cosine; past N the disc order stays. Costs one generation per query at search time.
- `oracle`: per query, the better of disc-disc and gen-gen. An upper bound, not a method.
The combinations need both modes on both sides (`--qry-mode both --tgt-mode both`, which costs
one generation per input, like gen alone).

Outputs under the output folder: `mmeb.json` and `mmeb.md`, rewritten after every dataset, and
`cache/<dataset>/<query|candidate>/<disc|gen>/`, the embeddings (see `model.eval.cache`): a
rerun, or a run after a crash, only encodes what is missing.

Task texts: each side's MMEB instruction and text, joined as MMEB does; a side with neither
(a bare page image, an image-only query) gets the project's default task text for its kind, the
one the indexer and the search service use. Visual-document queries are the raw question.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from model import prompts
from model.encoder import Encoder, Mode
from model.eval.aggregate import (
    compare_table,
    format_score,
    report,
    summarise,
    to_markdown,
)
from model.eval.cache import (
    MODES_OF,
    EncodeSettings,
    EvalDataError,
    EvalItem,
    VectorMode,
    embed_items,
)
from model.eval.metrics import normalise_rows, query_scores, rank_task, score_rankings
from model.eval.mmeb_data import (
    VIDEO_FRAMES_PER_INPUT,
    Side,
    Task,
    read_image_task,
    read_video_task,
    read_visdoc_task,
    sample_uniform,
)
from model.eval.published import (
    MODALITIES,
    TaskSpec,
    modality_display_name,
    task_catalogue,
    task_spec,
)
from model.inputs import EVALUATION_BUDGET, EmbedInput, Kind

logger = logging.getLogger(__name__)

RECORD_FILES = ("records.jsonl", "records.json")
DEFAULT_ALPHAS = (0.25, 0.5, 0.75)
DEFAULT_SHORTLIST = 50
DEFAULT_PUBLISHED_MODEL = "UME-R1-2B"
REPORT_JSON = "mmeb.json"
REPORT_MARKDOWN = "mmeb.md"
LOCAL_SPEC_FILE = "task.json"
ORACLE = "oracle"
Role = Literal["query", "candidate"]
Say = Callable[[str], None]
Vectors = Mapping[VectorMode, np.ndarray]


@dataclass(frozen=True)
class MmebConfig:
    """One evaluation run; `tasks` is a comma-separated list of dataset names, or "all"."""

    data_root: Path
    out_dir: Path
    tasks: str = "all"
    qry_mode: Mode = "both"
    tgt_mode: Mode = "both"
    batch_size: int = 8
    max_new_tokens: int = 8192  # the authors' inference setting; a lower cap changes gen scores
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    shortlist: int = DEFAULT_SHORTLIST
    published_model: str = DEFAULT_PUBLISHED_MODEL
    revision: str | None = None


@dataclass
class TaskResult:
    """One dataset's outcome: its size, what was skipped, and a score per variant."""

    name: str
    modality: str
    meta_task: str
    metric: str
    scope: str
    queries: int
    candidates: int
    skipped: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)  # empty when nothing was scorable
    encoded: int = 0  # inputs embedded by this run (the rest came from the cache)
    reused: int = 0


# --- which datasets, read from where ------------------------------------------------------


def select_tasks(data_root: Path, selection: str) -> list[TaskSpec]:
    """The datasets to run: named ones (each must have its folder), or every folder present."""
    if not data_root.is_dir():
        raise EvalDataError(f"--data-root {data_root} is not a folder")
    names = [name.strip() for name in selection.split(",") if name.strip()]
    if names == ["all"]:
        found = [spec for spec in task_catalogue() if (data_root / spec.name).is_dir()]
        if not found:
            raise EvalDataError(
                f"no dataset folders under {data_root}: name each folder after its dataset "
                "(e.g. ImageNet-1K); see `ume eval mmeb --help` for the layout"
            )
        return found
    if not names:
        raise EvalDataError("--tasks is empty: give dataset names separated by commas, or all")
    return [_named_task(data_root, name) for name in names]


def _named_task(data_root: Path, name: str) -> TaskSpec:
    try:
        spec = task_spec(name)
    except KeyError:
        if (data_root / name / LOCAL_SPEC_FILE).is_file():
            return local_task_spec(data_root / name)
        known = [spec.name for spec in task_catalogue()]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}?" if close else "names are as in the paper's tables"
        raise EvalDataError(f"unknown MMEB-V2 dataset {name!r}: {hint}") from None
    if not (data_root / name).is_dir():
        raise EvalDataError(
            f"no folder {data_root / name}: put the {name} data there "
            "(see `ume eval mmeb --help` for the layout)"
        )
    return spec


def local_task_spec(folder: Path) -> TaskSpec:
    """The spec of a dataset of your own, from its folder's `task.json`; named after the folder."""
    path = folder / LOCAL_SPEC_FILE
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise EvalDataError(f"{path} is not readable JSON ({error})") from None
    allowed = {"modality": MODALITIES, "metric": ("hit@1", "ndcg@5"), "scope": ("local", "global")}
    if not isinstance(fields, dict) or not isinstance(fields.get("meta_task", ""), str):
        raise EvalDataError(f"{path} must be an object with modality, meta_task, metric and scope")
    for key, values in allowed.items():
        if fields.get(key) not in values:
            raise EvalDataError(f"{path}: {key} must be one of {', '.join(values)}")
    return TaskSpec(
        folder.name, fields["modality"], fields.get("meta_task", "own"), fields["metric"], fields["scope"]
    )


def in_catalogue(scores: Mapping[str, float]) -> dict[str, float]:
    """The MMEB-V2 datasets' scores only: datasets of your own are reported, never averaged in."""
    names = {spec.name for spec in task_catalogue()}
    return {name: score for name, score in scores.items() if name in names}


def load_task(data_root: Path, spec: TaskSpec) -> Task:
    """Read one dataset from its folder with the reader its modality needs."""
    folder = data_root / spec.name
    try:
        if spec.modality == "visdoc":
            return read_visdoc_task(folder, spec)
        records = _records_file(folder)
        if spec.modality == "video":
            return read_video_task(records, folder, spec)
        return read_image_task(records, folder, spec)
    except (FileNotFoundError, ValueError) as error:
        raise EvalDataError(f"{spec.name}: {error}") from None


def _records_file(folder: Path) -> Path:
    for name in RECORD_FILES:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder} has no {' or '.join(RECORD_FILES)}")


# --- benchmark sides as encoder inputs ------------------------------------------------------


def side_items(task: Task, role: Role) -> list[EvalItem]:
    """The task's queries or candidates as inputs to embed, in the task's order."""
    image_kind: Kind = "document" if task.spec.modality == "visdoc" else "image"
    if role == "query":
        return [
            side_item(query.side, role, "image", f"{task.name} query {query.query_id}")
            for query in task.queries
        ]
    return [
        side_item(side, role, image_kind, f"{task.name} candidate {index}")
        for index, side in enumerate(task.candidates)
    ]


def side_item(side: Side, role: Role, image_kind: Kind, label: str) -> EvalItem:
    """One side as an input: its exact task text, its media, a label for error messages."""
    frames = side.video_frames
    sampled = sample_uniform(frames, VIDEO_FRAMES_PER_INPUT) if frames is not None else []
    identity = (str(side.image or ""), *map(str, sampled))
    where = side.image or (frames[0].parent if frames else None)
    return EvalItem(
        identity=identity,
        task_text=side.task_text or default_task_text(side, role, image_kind),
        load=partial(load_side, side, image_kind),
        label=f"{label} ({where})" if where else label,
    )


def default_task_text(side: Side, role: Role, image_kind: Kind) -> str:
    """The project's task text for a side with no instruction and no text of its own."""
    if role == "query":
        return prompts.QUERY_VIDEO_TASK if side.video_frames else prompts.QUERY_IMAGE_TASK
    return prompts.DOCUMENT_TASKS["video" if side.video_frames else image_kind]


def load_side(side: Side, image_kind: Kind) -> EmbedInput:
    """Decode a side's media (8 uniformly sampled frames for a video)."""
    frames, image = side.load_video_frames(), side.load_image()
    kind: Kind = "video" if frames is not None else image_kind if image is not None else "text"
    return EmbedInput(text=side.text or None, image=image, video_frames=frames, kind=kind)


# --- scoring: pairs of modes and their combinations -----------------------------------------


def fused_vectors(disc: np.ndarray, gen: np.ndarray, alpha: float) -> np.ndarray:
    """Rows whose dot products are alpha * disc cosine + (1 - alpha) * gen cosine.

    [sqrt(a) d, sqrt(1 - a) g] for unit d and g is itself a unit row, so the ordinary cosine
    ranking of these rows IS the fused ranking, local lists and ties included. (The encoder's
    rows are never zero; an all-zero part would leave its row shorter and be rescaled.)
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"fusion weight must be between 0 and 1, got {alpha}")
    return np.hstack([np.sqrt(alpha) * normalise_rows(disc), np.sqrt(1.0 - alpha) * normalise_rows(gen)])


def rerank_shortlists(
    disc_rankings: Sequence[np.ndarray], query_gen: np.ndarray, cand_gen: np.ndarray, size: int
) -> list[np.ndarray]:
    """Each disc ranking's first `size` entries re-ordered by gen cosine; the rest kept."""
    queries, candidates = normalise_rows(query_gen), normalise_rows(cand_gen)
    reranked = []
    for row, ranking in enumerate(disc_rankings):
        head = np.asarray(ranking[:size])
        order = np.argsort(-(candidates[head] @ queries[row]), kind="stable")
        reranked.append(np.concatenate([head[order], np.asarray(ranking[size:])]))
    return reranked


def score_variants(
    task: Task,
    query_vecs: Vectors,
    cand_vecs: Vectors,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    shortlist: int = DEFAULT_SHORTLIST,
) -> dict[str, float]:
    """Every variant's score (0-100) for one task; see the module docstring for the names."""
    rankings = {
        f"{q}-{t}": rank_task(task, query_vecs[q], cand_vecs[t])
        for q in sorted(query_vecs)
        for t in sorted(cand_vecs)
    }
    scores = {name: score_rankings(task, ranked) for name, ranked in rankings.items()}
    if "disc-disc" not in rankings or "gen-gen" not in rankings:
        return scores
    qd, qg, cd, cg = query_vecs["disc"], query_vecs["gen"], cand_vecs["disc"], cand_vecs["gen"]
    for alpha in alphas:
        fused = rank_task(task, fused_vectors(qd, qg, alpha), fused_vectors(cd, cg, alpha))
        scores[f"fused@{alpha:g}"] = score_rankings(task, fused)
    reranked = rerank_shortlists(rankings["disc-disc"], qg, cg, shortlist)
    scores[f"rerank@{shortlist}"] = score_rankings(task, reranked)
    best = np.maximum(query_scores(task, rankings["disc-disc"]), query_scores(task, rankings["gen-gen"]))
    scores[ORACLE] = 100.0 * float(best.mean()) if best.size else 0.0
    return scores


# --- running ---------------------------------------------------------------------------------


def evaluate_task(encoder: Encoder, spec: TaskSpec, config: MmebConfig, say: Say) -> TaskResult:
    """Read, embed (through the cache) and score one dataset."""
    task = load_task(config.data_root, spec)
    result = TaskResult(
        spec.name, spec.modality, spec.meta_task, spec.metric, spec.scope,
        queries=len(task.queries), candidates=len(task.candidates), skipped=dict(task.skipped),
    )  # fmt: skip
    if not task.queries or not task.candidates:
        say(f"{spec.name}: nothing to score ({task.skip_summary() or 'no records'}); left out")
        return result
    settings = EncodeSettings(config.batch_size, config.max_new_tokens)
    cache = config.out_dir / "cache" / spec.name
    say(f"{spec.name}: {len(task.queries)} queries, {len(task.candidates)} candidates")
    roles: tuple[tuple[Role, Mode], ...] = (("query", config.qry_mode), ("candidate", config.tgt_mode))
    sides = []
    for role, mode in roles:
        progress = partial(_log_progress, f"{spec.name} {role}s")
        sides.append(embed_items(encoder, side_items(task, role), mode, cache / role, settings, progress))
    result.scores = score_variants(task, sides[0].vectors, sides[1].vectors, config.alphas, config.shortlist)
    result.encoded = sum(side.encoded for side in sides)
    result.reused = sum(side.reused for side in sides)
    return result


def _log_progress(what: str, done: int, total: int) -> None:
    logger.info("%s: encoded %d/%d", what, done, total)


@dataclass
class MmebRun:
    """What a run produced: per-dataset results, the reports, and where they were written."""

    results: list[TaskResult]
    report: dict[str, Any]
    markdown: str
    json_path: Path
    markdown_path: Path


def run_mmeb(config: MmebConfig, encoder: Encoder, say: Say = print) -> MmebRun:
    """Evaluate every selected dataset, rewriting the JSON and Markdown reports after each."""
    if config.batch_size < 1 or config.max_new_tokens < 1 or config.shortlist < 1:
        raise EvalDataError("--batch-size, --max-new-tokens and --shortlist must be at least 1")
    specs = select_tasks(config.data_root, config.tasks)
    # The released weights were evaluated with the authors' pixel limits, not the indexing ones.
    encoder = encoder.with_budget(EVALUATION_BUDGET)
    results: list[TaskResult] = []
    run = write_reports(config, encoder.model_id, results)
    for spec in specs:
        result = evaluate_task(encoder, spec, config, say)
        results.append(result)
        run = write_reports(config, encoder.model_id, results)
        if result.scores:
            say(_task_line(result, primary_variant(config.qry_mode, config.tgt_mode)))
    return run


def _task_line(result: TaskResult, primary: str) -> str:
    cached = f", {result.reused} from cache" if result.reused else ""
    score = format_score(result.scores.get(primary))
    return f"{result.name}: {primary} {result.metric} {score} ({result.encoded} encoded{cached})"


# --- reports ---------------------------------------------------------------------------------


def primary_variant(qry_mode: Mode, tgt_mode: Mode) -> str:
    """The variant compared with the published tables: gen wherever it was computed."""

    def headline(mode: Mode) -> VectorMode:
        return "gen" if "gen" in MODES_OF[mode] else "disc"

    return f"{headline(qry_mode)}-{headline(tgt_mode)}"


def scores_by_variant(results: Sequence[TaskResult]) -> dict[str, dict[str, float]]:
    """variant -> dataset -> score, variants in the order the first dataset reported them."""
    by_variant: dict[str, dict[str, float]] = {}
    for result in results:
        for variant, score in result.scores.items():
            by_variant.setdefault(variant, {})[result.name] = score
    return by_variant


def mmeb_report(config: MmebConfig, model_id: str, results: Sequence[TaskResult]) -> dict[str, Any]:
    """The JSON report: settings, per-dataset results, every variant's roll-up, the comparison."""
    variants = scores_by_variant(results)
    primary = primary_variant(config.qry_mode, config.tgt_mode)
    return {
        "benchmark": "MMEB-V2",
        "model": model_id,
        "qry_mode": config.qry_mode,
        "tgt_mode": config.tgt_mode,
        "primary_variant": primary,
        "settings": {
            "data_root": str(config.data_root),
            "batch_size": config.batch_size,
            "max_new_tokens": config.max_new_tokens,
            "alphas": list(config.alphas),
            "shortlist": config.shortlist,
        },
        "tasks": {result.name: asdict(result) for result in results},
        "variants": {name: asdict(summarise(in_catalogue(scores))) for name, scores in variants.items()},
        "comparison": report(
            in_catalogue(variants.get(primary, {})), config.published_model, config.revision
        ),
    }


def mmeb_markdown(config: MmebConfig, model_id: str, results: Sequence[TaskResult]) -> str:
    """Our headline variant beside the published numbers, then every variant side by side."""
    primary = primary_variant(config.qry_mode, config.tgt_mode)
    variants = scores_by_variant(results)
    revision = config.revision or "not recorded (pass --revision)"
    lines = [
        f"# MMEB-V2: {model_id}",
        "",
        f"Query mode {config.qry_mode}, candidate mode {config.tgt_mode}; "
        f"max new tokens {config.max_new_tokens}; benchmark revision: {revision}.",
        "",
        f"## {primary} beside {config.published_model}",
        "",
        to_markdown(compare_table(in_catalogue(variants.get(primary, {})), config.published_model),
                    config.published_model),
        "## All variants",
        "",
        variants_markdown(variants),
        "## Datasets",
        "",
        datasets_markdown(results),
    ]  # fmt: skip
    return "\n".join(lines)


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
    for meta in (m for m in _meta_order() if m in metas):
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
    lines = ["| dataset | metric | scope | queries | candidates | skipped records |"]
    lines.append("|---|---|---|---:|---:|---|")
    for r in results:
        skipped = ", ".join(f"{count} {reason}" for reason, count in r.skipped.items()) or "none"
        if not r.scores:
            skipped += " (nothing scorable: left out)"
        lines.append(f"| {r.name} | {r.metric} | {r.scope} | {r.queries} | {r.candidates} | {skipped} |")
    return "\n".join(lines) + "\n"


def _catalogue_order(name: str) -> tuple[int, str]:
    """Catalogue datasets in the paper's order, then datasets of your own by name."""
    names = [spec.name for spec in task_catalogue()]
    return (names.index(name), "") if name in names else (len(names), name)


def _meta_order() -> list[str]:
    return list(dict.fromkeys(spec.meta_task for spec in task_catalogue()))


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
