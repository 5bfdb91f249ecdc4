"""Datasets laid out one folder per dataset under a data root: your own, or MMEB-V2 converted.

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
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from model.eval.beir_data import read_visdoc_task
from model.eval.cache import EvalDataError
from model.eval.mmeb_data import Task, read_image_task, read_video_task
from model.eval.published import MODALITIES, TaskSpec, task_catalogue, task_spec

RECORD_FILES = ("records.jsonl", "records.json")
LOCAL_SPEC_FILE = "task.json"


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
