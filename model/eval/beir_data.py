"""Visual-document tasks of your own in BEIR layout: JSONL corpus and queries, TSV qrels.

- `corpus.jsonl`: `_id`, and `image` (a path relative to the image root) and/or `text`;
- `queries.jsonl`: `_id`, `text`;
- `qrels/<split>.tsv`: query-id, corpus-id, score (graded relevance), after a header line.

Every query ranks against the whole corpus. The released benchmark's BEIR datasets (parquet on
the hub, page images embedded) are read by `model.eval.released_visdoc_tasks`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from model.eval.mmeb_data import (
    MediaResolver,
    Query,
    RecordError,
    Side,
    Task,
    clean_text,
    finished,
    image_media,
    iter_json_records,
    make_side,
    require,
)
from model.eval.published import TaskSpec


def read_visdoc_task(
    task_dir: Path,
    spec: TaskSpec,
    *,
    image_root: Path | None = None,
    split: str = "test",
    query_instruction: str = "",
    document_instruction: str = "",
) -> Task:
    """A visual-document task in BEIR layout; every query ranks against the whole corpus.

    Page images are resolved against `image_root` (default: `task_dir`). Document queries take
    the raw question, so both instructions default to empty.
    """
    skipped = Counter[str]()
    corpus = _read_corpus(task_dir / "corpus.jsonl", image_root or task_dir, skipped)
    documents = [_with_instruction(side, document_instruction) for side in corpus.values()]
    pool_index = {corpus_id: index for index, corpus_id in enumerate(corpus)}
    texts = _read_queries(task_dir / "queries.jsonl", skipped)
    grades = _read_qrels(task_dir / "qrels" / f"{split}.tsv", texts, pool_index, skipped)
    queries = []
    for query_id, text in texts.items():
        relevance = grades.get(query_id, {})
        if not any(grade > 0 for grade in relevance.values()):
            skipped["query has no relevant document in qrels"] += 1
            continue
        queries.append(Query(query_id, Side(text, instruction=query_instruction), relevance))
    return finished(Task(spec, queries, documents, skipped))


def _with_instruction(side: Side, instruction: str) -> Side:
    return Side(side.text, side.image, side.video_frames, instruction)


def _read_corpus(path: Path, image_root: Path, skipped: Counter[str]) -> dict[str, Side]:
    """corpus id -> page (image and/or text), in file order; duplicates and gaps skipped."""
    corpus: dict[str, Side] = {}
    resolve = image_media(image_root, check_files=True)
    for _, record in iter_json_records(path):
        try:
            corpus_id, side = _corpus_entry(record, resolve)
            if corpus_id in corpus:
                raise RecordError("duplicate corpus id")
        except RecordError as reason:
            skipped[str(reason)] += 1
            continue
        corpus[corpus_id] = side
    return corpus


def _corpus_entry(record: dict[str, Any] | RecordError, resolve: MediaResolver) -> tuple[str, Side]:
    if isinstance(record, RecordError):
        raise record
    corpus_id = str(require(record, "_id"))
    side = make_side(clean_text(record.get("text"), "text"), "", resolve(record.get("image"), "image"))
    if not side.text and side.image is None:
        raise RecordError("corpus entry has neither image nor text")
    return corpus_id, side


def _read_queries(path: Path, skipped: Counter[str]) -> dict[str, str]:
    """query id -> question text, in file order."""
    queries: dict[str, str] = {}
    for _, record in iter_json_records(path):
        try:
            if isinstance(record, RecordError):
                raise record
            query_id = str(require(record, "_id"))
            text = clean_text(require(record, "text"), "text")
            if not text:
                raise RecordError("query text is empty")
        except RecordError as reason:
            skipped[str(reason)] += 1
            continue
        queries[query_id] = text
    return queries


def _read_qrels(
    path: Path, queries: dict[str, str], pool_index: dict[str, int], skipped: Counter[str]
) -> dict[str, dict[int, int]]:
    """query id -> {pool index: grade} from a BEIR qrels TSV with a header line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a BEIR task needs qrels/<split>.tsv")
    grades: dict[str, dict[int, int]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines[1:] if lines and lines[0].startswith("query-id") else lines:
        if not line.strip():
            continue
        try:
            query_id, corpus_id, grade = _qrels_row(line)
            if query_id not in queries or corpus_id not in pool_index:
                raise RecordError("qrels row names an unknown query or document")
        except RecordError as reason:
            skipped[str(reason)] += 1
            continue
        grades.setdefault(query_id, {})[pool_index[corpus_id]] = grade
    return grades


def _qrels_row(line: str) -> tuple[str, str, int]:
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 3:
        raise RecordError("malformed qrels line")
    try:
        return parts[0], parts[1], int(float(parts[2]))
    except ValueError:
        raise RecordError("malformed qrels line") from None
