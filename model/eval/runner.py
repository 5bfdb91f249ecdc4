"""MMEB-V2 with a UME-R1 model: disc vs gen embeddings, pass@k, and combinations the paper left out.

Where the data comes from:
- `--media-root DIR` (with `--annotations DIR`, or huggingface_hub's cache): MMEB-V2 as
  released. DIR holds the media as unpacked: `image-tasks/` (mmeb_v1.tar.gz) and
  `video-tasks/frames/...` (the frame archives); the records are the hub annotation datasets
  (`ziyjiang/MMEB_Test_Instruct` for images, one dataset per video task, the BEIR datasets of
  the visual-document tasks, page images inside). `ume eval mmeb download --tasks ...` fetches
  exactly the files the chosen tasks need. Every task is read with the authors' prompts and
  candidate pools (see `model.eval.released_table` and its readers).
- `--data-root DIR`: one folder per dataset (your own datasets, or MMEB-V2 converted to JSONL);
  see `model.eval.folder_tasks` for that layout.

Each dataset is ranked as the catalogue says: "local" datasets rank each query among its own
candidate list, "global" ones against the whole de-duplicated candidate pool. Metrics: Hit@1
(image, video), NDCG@5 with linear gain and graded relevance (visual documents), in percent.
Where the authors' evaluation computes graded NDCG@5 differently (it pairs grades with
relevant pages reordered by `set()`), their number is reported beside ours.

Generation: by default it runs on as the authors' does, to `<|im_end|>` or `<|endoftext|>`,
and gen is read at the LAST `<gen_emb>` (`--gen-stop end`); `--gen-stop gen_emb` stops at the
first one, as search does.

Variants: `Q-T` for every pair of modes computed, `fused@A`, `rerank@N` and `oracle` when both
modes are on both sides (see `model.eval.variants`). pass@k (`--samples K --temperature T`):
see `model.eval.passk`.

Outputs under the output folder: `mmeb.json` and `mmeb.md` (`model.eval.report`), rewritten
after every dataset; `cache/<dataset>/<query|candidate>/<disc|gen>/`, the embeddings (see
`model.eval.cache`): a rerun, or a run after a crash, only encodes what is missing;
`pages/<dataset>/`, the page images of the released visual-document tasks.

Task texts: the released tasks' sides carry the authors' exact texts (an empty one for ViDoRe
pages); a side of a dataset of your own is its instruction and text joined as MMEB does, or, with
neither, the project's default task text for its kind (the one the indexer and search use).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np

from model import prompts
from model.encoder import Encoder, Mode
from model.eval.aggregate import format_score
from model.eval.cache import EncodeSettings, EvalDataError, EvalItem, embed_items
from model.eval.folder_tasks import load_task, select_tasks
from model.eval.mmeb_data import VIDEO_FRAMES_PER_INPUT, Side, Task, sample_uniform
from model.eval.passk import SEED_STRIDE, SampleSide, side_curve
from model.eval.published import TaskSpec, task_catalogue, task_spec
from model.eval.released_load import (
    AnnotationsMissing,
    ReleasedPaths,
    fetch_annotations,
    load_released,
    missing_annotations,
)
from model.eval.report import MmebRun, write_reports
from model.eval.settings import MmebConfig, TaskResult, primary_variant
from model.eval.variants import authors_variant_scores, score_variants
from model.inputs import EVALUATION_BUDGET, EmbedInput, Kind

logger = logging.getLogger(__name__)

Role = Literal["query", "candidate"]
Say = Callable[[str], None]


# --- which datasets, read from where ------------------------------------------------------


def released_names(config: MmebConfig) -> list[str]:
    """Catalogue datasets named in --tasks (all: every one with a reader), in catalogue order."""
    names = [name.strip() for name in config.tasks.split(",") if name.strip()]
    if names == ["all"]:
        return [spec.name for spec in task_catalogue()]
    known = {spec.name for spec in task_catalogue()}
    return [name for name in names if name in known]


def select_run(config: MmebConfig, say: Say = print) -> list[TaskSpec]:
    """The datasets this run scores; a bad selection or a missing input fails here, in one line."""
    if config.media_root is None:
        if config.data_root is None:
            raise EvalDataError(
                "give --media-root (MMEB-V2 as released) or --data-root (a folder per dataset)"
            )
        return select_tasks(config.data_root, config.tasks)
    if not config.media_root.is_dir():
        raise EvalDataError(f"--media-root {config.media_root} is not a folder")
    specs = _released_specs(config, say)
    own = [name.strip() for name in config.tasks.split(",") if name.strip() and name.strip() != "all"]
    own = [name for name in own if name not in {spec.name for spec in task_catalogue()}]
    if own:
        if config.data_root is None:
            raise EvalDataError(f"{own[0]!r} is not an MMEB-V2 dataset: your own datasets need --data-root")
        specs += select_tasks(config.data_root, ",".join(own))
    return specs


def _released_specs(config: MmebConfig, say: Say) -> list[TaskSpec]:
    names = released_names(config)
    missing = missing_annotations(names, config.annotations, config.media_root)
    if config.tasks.strip() == "all":
        absent = {line.split(": ", 1)[0] for line in missing}
        names = [n for n in names if not any(n in group.split(", ") for group in absent)]
        if missing:
            say(f"{len(missing)} annotation source(s) not on this machine, their tasks left out: "
                "`ume eval mmeb download --tasks all` fetches those on the hub")  # fmt: skip
        if not names:
            raise EvalDataError(missing[0] if missing else "no MMEB-V2 task can be read")
    elif missing:
        raise EvalDataError(missing[0])
    return [task_spec(name) for name in names]


def read_task(spec: TaskSpec, config: MmebConfig) -> tuple[Task, str]:
    """One dataset and where it was read from: the released layout, or its folder."""
    catalogue = {s.name for s in task_catalogue()}
    if config.media_root is not None and spec.name in catalogue:
        paths = ReleasedPaths(config.media_root, config.annotations, config.out_dir)
        try:
            return load_released(spec, paths), "released"
        except (FileNotFoundError, ValueError, AnnotationsMissing) as error:
            raise EvalDataError(f"{spec.name}: {error}") from None
    assert config.data_root is not None
    return load_task(config.data_root, spec), str(config.data_root / spec.name)


def download(config: MmebConfig, say: Say = print) -> list[Path]:
    """Fetch the annotation files of the selected catalogue tasks (needs the network)."""
    names = released_names(config)
    if not names:
        raise EvalDataError("--tasks names no MMEB-V2 dataset: give catalogue names or all")
    try:
        return fetch_annotations(names, config.annotations, say)
    except AnnotationsMissing as error:
        raise EvalDataError(str(error)) from None


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
    text = side.prompt
    if text is None:
        text = side.task_text or default_task_text(side, role, image_kind)
    return EvalItem(
        identity=identity,
        task_text=text,
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


# --- running ---------------------------------------------------------------------------------


def encode_settings(config: MmebConfig) -> EncodeSettings:
    stop_at_gen_emb = config.gen_stop == "gen_emb"
    return EncodeSettings(config.batch_size, config.max_new_tokens, stop_at_gen_emb=stop_at_gen_emb)


def evaluate_task(encoder: Encoder, spec: TaskSpec, config: MmebConfig, say: Say) -> TaskResult:
    """Read, embed (through the cache) and score one dataset."""
    task, source = read_task(spec, config)
    result = TaskResult(
        spec.name, spec.modality, spec.meta_task, spec.metric, spec.scope,
        queries=len(task.queries), candidates=len(task.candidates), skipped=dict(task.skipped), source=source,
    )  # fmt: skip
    if not task.queries or not task.candidates:
        say(f"{spec.name}: nothing to score ({task.skip_summary() or 'no records'}); left out")
        return result
    settings = encode_settings(config)
    cache = config.out_dir / "cache" / spec.name
    say(f"{spec.name}: {len(task.queries)} queries, {len(task.candidates)} candidates")
    roles: tuple[tuple[Role, Mode], ...] = (("query", config.qry_mode), ("candidate", config.tgt_mode))
    sides = []
    for role, mode in roles:
        progress = partial(_log_progress, f"{spec.name} {role}s")
        sides.append(embed_items(encoder, side_items(task, role), mode, cache / role, settings, progress))
    query_vecs, cand_vecs = sides[0].vectors, sides[1].vectors
    result.scores = score_variants(task, query_vecs, cand_vecs, config.alphas, config.shortlist)
    result.authors_scores = authors_variant_scores(task, query_vecs, cand_vecs)
    result.encoded = sum(side.encoded for side in sides)
    result.reused = sum(side.reused for side in sides)
    if config.samples > 0:
        result.pass_at_k = pass_at_k_curves(encoder, task, config, cache)
    return result


def pass_at_k_curves(encoder: Encoder, task: Task, config: MmebConfig, cache: Path) -> dict[str, list[float]]:
    """pass@1..K of gen for each sampled side (the other side greedy), through the cache."""
    greedy = encode_settings(config)
    items = {role: side_items(task, role) for role in ("query", "candidate")}

    def vectors(role: Role, settings: EncodeSettings) -> np.ndarray:
        return embed_items(encoder, items[role], "gen", cache / role, settings).vectors["gen"]

    def sampled(side: SampleSide, index: int) -> np.ndarray:
        if config.temperature <= 0:
            return vectors(side, greedy)  # temperature 0 is greedy decoding
        settings = replace(greedy, temperature=config.temperature, seed=config.seed + SEED_STRIDE * index)
        return vectors(side, settings)

    query_greedy, cand_greedy = vectors("query", greedy), vectors("candidate", greedy)
    both: list[SampleSide] = ["query", "candidate"]
    sides = both if config.sample_sides == "both" else [config.sample_sides]
    curve = partial(side_curve, task, samples=config.samples, sampled=sampled)
    return {side: curve(side=side, greedy_query=query_greedy, greedy_candidate=cand_greedy) for side in sides}


def _log_progress(what: str, done: int, total: int) -> None:
    logger.info("%s: encoded %d/%d", what, done, total)


def check_config(config: MmebConfig) -> None:
    if config.batch_size < 1 or config.max_new_tokens < 1 or config.shortlist < 1:
        raise EvalDataError("--batch-size, --max-new-tokens and --shortlist must be at least 1")
    if config.samples < 0 or config.temperature < 0:
        raise EvalDataError("--samples and --temperature cannot be negative")


def run_mmeb(config: MmebConfig, encoder: Encoder, say: Say = print) -> MmebRun:
    """Evaluate every selected dataset, rewriting the JSON and Markdown reports after each."""
    check_config(config)
    specs = select_run(config, say)
    # The released weights were evaluated with the authors' pixel limits, not the indexing ones.
    encoder = encoder.with_budget(EVALUATION_BUDGET)
    results: list[TaskResult] = []
    run = write_reports(config, encoder.model_id, results)
    for spec in specs:
        try:
            result = evaluate_task(encoder, spec, config, say)
        except EvalDataError as error:
            # One unreadable dataset (frames not unpacked, a broken image) must not cost the others.
            say(f"{spec.name}: left out: {error}")
            result = TaskResult(spec.name, spec.modality, spec.meta_task, spec.metric, spec.scope, 0, 0)
            result.error = str(error)
        results.append(result)
        run = write_reports(config, encoder.model_id, results)
        if result.scores:
            say(_task_line(result, primary_variant(config.qry_mode, config.tgt_mode)))
    return run


def _task_line(result: TaskResult, primary: str) -> str:
    cached = f", {result.reused} from cache" if result.reused else ""
    score = format_score(result.scores.get(primary))
    return f"{result.name}: {primary} {result.metric} {score} ({result.encoded} encoded{cached})"
