"""The 36 image tasks as released: one parquet per task, images under the unpacked media.

Records (`ziyjiang/MMEB_Test_Instruct`, config = task name, split `test`): `qry_inst, qry_text,
qry_img_path, tgt_inst, tgt_text[], tgt_img_path[]`; the positive is candidate 0 and every task
ranks each query among its own list. Image paths are relative to the unpacked
`image-tasks/mmeb_v1.tar.gz`: `image-tasks/MMEB/` as the archive unpacks, or `image-tasks/` once
its contents are moved up (the benchmark's download script does that); both are tried.

The authors' prompts, per reader (their loaders compose the text and the chat collator strips
it and removes the vision placeholder):
- `image_cls`, `image_i2t`: query = instruction, a space, the text; candidates are `tgt_text`
  alone (`tgt_inst` is not used), de-duplicated by that text.
- `image_qa`: the same, with the instruction stripped first.
- `image_t2i`: query = instruction, a space, the text (text only); candidates are the images
  with `tgt_inst`, plus a space and the caption where the first caption is not empty (WebQA,
  EDIS), de-duplicated by image path.
- `image_i2i_vg`: query as `image_qa`; candidates as `image_t2i`, de-duplicated by path and
  caption (RefCOCO-Matching has several targets per image).
In every composed text `" \\n"` becomes `"\\n"`, as theirs does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from model.eval.mmeb_data import CandidatePool, Query, RecordError, Side, Task, finished
from model.eval.published import TaskSpec
from model.eval.released_table import Loader

COLUMNS = ("qry_inst", "qry_text", "qry_img_path", "tgt_inst", "tgt_text", "tgt_img_path")
PLACEHOLDER = "<|image_1|>"
IMAGE_ROOTS = ("image-tasks/MMEB", "image-tasks/mmeb_v1", "image-tasks")
TEXT_TARGETS: frozenset[Loader] = frozenset({"image_cls", "image_qa", "image_i2t"})


def image_root(media_root: Path, first_image: str | None) -> Path:
    """The folder the task's image paths are relative to: the first that holds `first_image`."""
    roots = [media_root / sub for sub in IMAGE_ROOTS]
    for root in roots:
        if first_image and (root / first_image).is_file():
            return root
    existing = [root for root in roots if root.is_dir()]
    if not existing:
        raise FileNotFoundError(
            f"no image-tasks folder under {media_root}: unpack MMEB-V2's image-tasks/mmeb_v1.tar.gz "
            "there (--media-root is the folder that holds image-tasks/ and video-tasks/)"
        )
    return existing[0]


def _composed(text: str) -> str:
    return text.replace(" \n", "\n").strip()


def query_prompt(loader: Loader, instruction: str, text: str) -> str:
    """The authors' query text for one record."""
    if loader == "image_t2i":
        return (instruction.replace(PLACEHOLDER, "") + " " + text).strip()
    instruction = instruction.replace(PLACEHOLDER, "")
    if loader in ("image_qa", "image_i2i_vg"):
        instruction = "\n" + instruction.strip()
    return _composed(instruction + " " + text if text else instruction)


def target_prompts(instruction: str, captions: list[str]) -> list[str]:
    """The authors' candidate texts of an image-candidate record (`image_t2i`, `image_i2i_vg`)."""
    instruction = instruction.replace(PLACEHOLDER, "")
    if captions and captions[0].strip():
        return [_composed(instruction + " " + caption) for caption in captions]
    return [_composed(instruction)] * len(captions)


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"field {name!r} is not text")
    return value


def _strings(record: dict[str, Any], name: str) -> list[str]:
    value = record.get(name)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RecordError(f"field {name!r} is not a list of texts")
    return value


class _Images:
    """Image paths under the root, each checked once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._exists: dict[Path, bool] = {}

    def path(self, relative: str) -> Path | None:
        if not relative:
            return None
        path = self.root / relative
        if not self._exists.setdefault(path, path.is_file()):
            raise RecordError("image not found")
        return path


def _record(loader: Loader, record: dict[str, Any], images: _Images) -> tuple[Side, list[tuple[Side, str]]]:
    """The query side and (candidate side, de-duplication name) pairs of one record."""
    instruction, text = _text(record, "qry_inst"), _text(record, "qry_text")
    image = images.path(_text(record, "qry_img_path")) if loader != "image_t2i" else None
    query = Side(text, image, instruction=instruction, prompt=query_prompt(loader, instruction, text))
    targets = _strings(record, "tgt_text")
    if not targets:
        raise RecordError("candidate list is empty")
    if loader in TEXT_TARGETS:
        return query, [(Side(t, prompt=t.strip()), t) for t in targets]
    paths = _strings(record, "tgt_img_path")
    if len(paths) != len(targets):
        raise RecordError("tgt_text and tgt_img_path differ in length")
    target_instruction = _text(record, "tgt_inst")
    prompts = target_prompts(target_instruction, targets)
    candidates = []
    for path, caption, prompt in zip(paths, targets, prompts, strict=True):
        name = path if loader == "image_t2i" else f"{path}:{caption.strip(chr(34))}"
        side = Side(caption, images.path(path), instruction=target_instruction, prompt=prompt)
        candidates.append((side, name))
    return query, candidates


def read_image_task(spec: TaskSpec, loader: Loader, rows: Iterable[dict[str, Any]], root: Path) -> Task:
    """Build one image task from its released records; bad records are counted and skipped."""
    pool, queries, skipped = CandidatePool(), [], Counter[str]()
    images = _Images(root)
    for number, record in enumerate(rows):
        try:
            query, candidates = _record(loader, record, images)
        except RecordError as reason:
            skipped[str(reason)] += 1
            continue
        ids = tuple(pool.add(side, name) for side, name in candidates)
        queries.append(Query(f"row {number}", query, {ids[0]: 1}, ids))
    return finished(Task(spec, queries, pool.sides, skipped))
