"""Ranking metrics and cosine ranking for MMEB-style evaluation.

Design decisions:
- Per-query metrics take ids ranked best-first and say what is relevant: `hit_at_k` and `mrr`
  a set of relevant ids, `ndcg_at_k` graded relevance with LINEAR gain (gain = grade, discount
  1/log2(rank+1)), the variant MMEB-V2 reports as NDCG@5 for visual documents.
- Ranking is cosine similarity on L2-normalised vectors with a STABLE tie order: equal scores
  keep the candidates' own order. This matches the benchmark's argmax, which returns the first
  maximum; in local image tasks the positive is candidate 0, so an exact tie counts as a hit.
- Scores are computed in query blocks so a large corpus never needs a (Q, C) float64 matrix
  at once, and task scores are percentages like the published tables.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    from model.eval.mmeb_data import Task

QUERY_BLOCK = 256  # queries scored per matrix product; bounds memory on large corpora
NORM_FLOOR = 1e-12  # a zero vector stays zero instead of dividing by zero

Id = TypeVar("Id", bound=Hashable)


def hit_at_k(ranked_ids: Sequence[Hashable], relevant: Collection[Hashable], k: int = 1) -> float:
    """1.0 if any of the top-k ranked ids is relevant, else 0.0."""
    return 1.0 if any(item in relevant for item in ranked_ids[:k]) else 0.0


def mrr(ranked_ids: Sequence[Hashable], relevant: Collection[Hashable]) -> float:
    """Reciprocal rank of the first relevant id (1-based); 0.0 if none is ranked."""
    for rank, item in enumerate(ranked_ids, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked_ids: Sequence[Id], graded_relevance: Mapping[Id, int], k: int = 5) -> float:
    """NDCG@k with linear gain; 0.0 when nothing is relevant (there is no ideal ranking)."""
    gains = [graded_relevance.get(item, 0) for item in ranked_ids[:k]]
    dcg = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))
    ideal = sorted((grade for grade in graded_relevance.values() if grade > 0), reverse=True)
    idcg = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(ideal[:k], start=1))
    return dcg / idcg if idcg > 0 else 0.0


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise each row as float32; all-zero rows stay zero."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, NORM_FLOOR)


def rank_candidates(query_vecs: np.ndarray, cand_vecs: np.ndarray) -> np.ndarray:
    """Candidate indices best-first for every query by cosine similarity.

    query_vecs (Q, H), cand_vecs (C, H) -> (Q, C) int64; ties keep candidate order.
    """
    queries, candidates = normalise_rows(query_vecs), normalise_rows(cand_vecs)
    _check_shapes(queries, candidates)
    order = np.empty((queries.shape[0], candidates.shape[0]), dtype=np.int64)
    for start in range(0, queries.shape[0], QUERY_BLOCK):
        scores = queries[start : start + QUERY_BLOCK] @ candidates.T  # (block, C)
        order[start : start + QUERY_BLOCK] = np.argsort(-scores, axis=1, kind="stable")
    return order


def rank_local_candidates(
    query_vecs: np.ndarray, cand_vecs: np.ndarray, candidate_ids: Sequence[Sequence[int]]
) -> list[np.ndarray]:
    """Rank each query only among its own candidate list (MMEB "local" tasks).

    query_vecs (Q, H); cand_vecs (C, H) is the task's candidate pool; candidate_ids[q] lists the
    pool indices query q competes over, in the dataset's order. Returns, per query, those pool
    indices best-first; lists may differ in length and ties keep list order.
    """
    queries, candidates = normalise_rows(query_vecs), normalise_rows(cand_vecs)
    _check_shapes(queries, candidates)
    if len(candidate_ids) != queries.shape[0]:
        raise ValueError(f"{queries.shape[0]} query vectors but {len(candidate_ids)} lists")
    rankings: list[np.ndarray] = []
    for start in range(0, queries.shape[0], QUERY_BLOCK):
        block_ids = candidate_ids[start : start + QUERY_BLOCK]
        scores = queries[start : start + QUERY_BLOCK] @ candidates.T  # (block, C)
        rankings.extend(_rank_padded(scores, block_ids))
    return rankings


def _rank_padded(scores: np.ndarray, block_ids: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """Rank ragged candidate lists together: pad to the longest with -inf, sort, strip."""
    lengths = [len(ids) for ids in block_ids]
    width = max(lengths, default=0)
    padded = np.zeros((len(block_ids), width), dtype=np.int64)
    mask = np.zeros((len(block_ids), width), dtype=bool)
    for row, ids in enumerate(block_ids):
        padded[row, : len(ids)] = ids
        mask[row, : len(ids)] = True
    local_scores = np.where(mask, np.take_along_axis(scores, padded, axis=1), -np.inf)
    order = np.argsort(-local_scores, axis=1, kind="stable")
    ranked = np.take_along_axis(padded, order, axis=1)
    return [ranked[row, :length] for row, length in enumerate(lengths)]


def _check_shapes(queries: np.ndarray, candidates: np.ndarray) -> None:
    if queries.ndim != 2 or candidates.ndim != 2 or queries.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"expected (Q, H) and (C, H) arrays with the same H, got {queries.shape} and {candidates.shape}"
        )


def rank_task(task: Task, query_vecs: np.ndarray, cand_vecs: np.ndarray) -> list[np.ndarray]:
    """Per query, the task's candidate-pool indices best-first under its ranking scope.

    query_vecs (Q, H) in `task.queries` order; cand_vecs (C, H) in `task.candidates` order.
    """
    if task.spec.scope == "global":
        return list(rank_candidates(query_vecs, cand_vecs))
    lists = [query.candidate_ids or () for query in task.queries]
    return rank_local_candidates(query_vecs, cand_vecs, lists)


def query_scores(task: Task, rankings: Sequence[np.ndarray]) -> np.ndarray:
    """The task's metric for each query (0-1), in `task.queries` order.

    rankings[q] holds candidate-pool indices best-first, as `rank_task` returns them. Kept
    per query so that combinations (e.g. the best of two rankings per query) can be scored.
    """
    if len(rankings) != len(task.queries):
        raise ValueError(f"{len(task.queries)} queries but {len(rankings)} rankings")
    pairs = zip(rankings, task.queries, strict=True)
    if task.spec.metric == "ndcg@5":
        values = [ndcg_at_k(np.asarray(r)[:5].tolist(), q.relevance, k=5) for r, q in pairs]
    else:
        values = [hit_at_k(np.asarray(r)[:1].tolist(), q.relevant_ids, k=1) for r, q in pairs]
    return np.asarray(values, dtype=np.float64)


def score_rankings(task: Task, rankings: Sequence[np.ndarray]) -> float:
    """The task's metric averaged over its queries, as a percentage (0-100).

    rankings[q] holds candidate-pool indices best-first, as `rank_task` returns them.
    """
    values = query_scores(task, rankings)
    return 100.0 * float(values.mean()) if values.size else 0.0


def score_task(task: Task, query_vecs: np.ndarray, cand_vecs: np.ndarray) -> float:
    """Rank and score one task from its embeddings: the number that goes in the table."""
    return score_rankings(task, rank_task(task, query_vecs, cand_vecs))


def authors_ndcg_at_k(ranked: Sequence[int], qrels: Sequence[tuple[int, object, int]], k: int = 5) -> float:
    """NDCG@k as the authors' evaluation computes it, with its pairing error reproduced.

    `qrels` holds (pool index, corpus id as released, grade) in qrels order. Their evaluator
    de-duplicates the relevant ids with `list(set(ids))` and then zips that reordered list with
    the grades in the ORIGINAL order, so a graded query's grades land on the wrong pages. Set
    order depends on the ids' hashes: fixed for integer ids, but for string ids it changes with
    PYTHONHASHSEED, so this number varies from process to process; it equals `ndcg_at_k` when
    all grades are equal (binary relevance). Reported beside the correct one, never instead.
    """
    pool_of = {corpus_id: index for index, corpus_id, _ in qrels}
    labels = list(set(pool_of))
    grades = [grade for _, _, grade in qrels]
    paired = {pool_of[label]: grade for label, grade in zip(labels, grades, strict=False)}
    return ndcg_at_k(list(ranked), paired, k)


def authors_score_rankings(task: Task, rankings: Sequence[np.ndarray]) -> float | None:
    """The authors' NDCG@5 (see `authors_ndcg_at_k`) as a percentage; None for other tasks."""
    if task.spec.metric != "ndcg@5" or not task.queries or not all(q.qrels for q in task.queries):
        return None
    pairs = zip(rankings, task.queries, strict=True)
    values = [authors_ndcg_at_k(np.asarray(r)[:5].tolist(), q.qrels, k=5) for r, q in pairs]
    return 100.0 * float(np.mean(values))
