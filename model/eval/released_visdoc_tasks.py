"""The 24 visual-document tasks as released: BEIR datasets on the hub, page images embedded.

Three configs per dataset, one split (`test`, VisRAG's `train`): `queries` (`query-id`, `query`,
and `language` in ViDoRe v2), `qrels` (`query-id`, `corpus-id`, `score`), `corpus`
(`corpus-id`, `image` = {bytes, path}). Ids are strings or integers, as released; qrels may
grade relevance (ViDoRe v2) and come in any order.

The authors' protocol:
- ViDoRe, ViDoSeek, MMLongBench (`vidore`): the query is the raw question; a page is embedded
  with an EMPTY text (only the image, then `<disc_emb>` and the instruction);
- VisRAG (`visrag`): query "Find a document image that matches the given query: {question}",
  page "Understand the content of the provided document image.";
- relevance: qrels rows with a score above 0, the higher score where a pair repeats; every query
  ranks against the whole corpus; NDCG@5 with linear gain.

Pages are written once to `<pages folder>/<task>/` (the bytes as released, named by a hash of
the corpus id), so the encoder and the embedding cache address them by path like any image.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from model.eval.mmeb_data import Query, RecordError, Side, Task, finished
from model.eval.published import TaskSpec
from model.eval.released_table import ReleasedTask

Rows = Iterable[dict[str, Any]]


def page_path(folder: Path, corpus_id: object, image: dict[str, Any]) -> Path:
    """Where a corpus page's image is kept: a hash of its id, the released file's suffix."""
    suffix = Path(str(image.get("path") or "page.png")).suffix or ".png"
    digest = hashlib.sha1(repr(corpus_id).encode("utf-8")).hexdigest()[:20]
    return folder / f"{digest}{suffix}"


def write_pages(rows: Rows, folder: Path, skipped: Counter[str]) -> dict[object, Path]:
    """corpus id -> page image file, writing each page's bytes unless already there."""
    folder.mkdir(parents=True, exist_ok=True)
    pages: dict[object, Path] = {}
    for row in rows:
        corpus_id, image = row.get("corpus-id"), row.get("image")
        if corpus_id is None or corpus_id in pages:
            skipped["corpus row without id or repeated" if corpus_id is None else "duplicate corpus id"] += 1
            continue
        if not isinstance(image, dict) or not image.get("bytes"):
            skipped["corpus row without image bytes"] += 1
            continue
        path = page_path(folder, corpus_id, image)
        if not path.is_file() or path.stat().st_size != len(image["bytes"]):
            partial = path.with_name(f".{path.name}.partial")
            partial.write_bytes(image["bytes"])
            partial.replace(path)
        pages[corpus_id] = path
    return pages


def read_qrels(rows: Rows, skipped: Counter[str]) -> dict[object, dict[object, int]]:
    """query id -> {corpus id: grade} in row order, grades above 0 only, the higher one kept."""
    qrels: dict[object, dict[object, int]] = {}
    for row in rows:
        try:
            query_id, corpus_id, score = row["query-id"], row["corpus-id"], int(row["score"])
        except (KeyError, TypeError, ValueError):
            skipped["malformed qrels row"] += 1
            continue
        if score > 0:
            grades = qrels.setdefault(query_id, {})
            grades[corpus_id] = max(grades.get(corpus_id, 0), score)
    return qrels


def read_visdoc_task(
    spec: TaskSpec, released: ReleasedTask, queries: Rows, qrels: Rows, corpus: Rows, pages_folder: Path
) -> Task:
    """Build one visual-document task from its three released configs."""
    skipped = Counter[str]()
    pages = write_pages(corpus, pages_folder, skipped)
    pool_index = {corpus_id: index for index, corpus_id in enumerate(pages)}
    page_prompt = released.target_instruction  # "" for ViDoRe: an empty page text
    documents = [Side("", path, instruction=page_prompt, prompt=page_prompt) for path in pages.values()]
    grades = read_qrels(qrels, skipped)
    built = []
    for row in queries:
        try:
            built.append(_query(row, released, grades, pool_index, skipped))
        except RecordError as reason:
            skipped[str(reason)] += 1
    return finished(Task(spec, built, documents, skipped))


def _query(
    row: dict[str, Any],
    released: ReleasedTask,
    grades: dict[object, dict[object, int]],
    pool_index: dict[object, int],
    skipped: Counter[str],
) -> Query:
    if released.language is not None and row.get("language") != released.language:
        raise RecordError(f"query not in {released.language}")
    query_id, text = row.get("query-id"), row.get("query")
    if query_id is None or not isinstance(text, str) or not text.strip():
        raise RecordError("query without id or text")
    qrels = []
    for corpus_id, grade in grades.get(query_id, {}).items():
        if corpus_id not in pool_index:
            skipped["qrels row names a page not in the corpus"] += 1
            continue
        qrels.append((pool_index[corpus_id], corpus_id, grade))
    if not qrels:
        raise RecordError("query has no relevant page in qrels")
    prompt = f"{released.query_instruction} {text}".strip()
    side = Side(text, instruction=released.query_instruction, prompt=prompt)
    relevance = {index: grade for index, _, grade in qrels}
    return Query(str(query_id), side, relevance, None, tuple(qrels))
