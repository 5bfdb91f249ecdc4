"""Scores of one dataset's embeddings: every pair of modes, and combinations the paper left out.

Variants (names as they appear in the report):
- `Q-T`: query embeddings of mode Q against candidate embeddings of mode T, for every mode
  requested on each side; `gen-gen` is the paper's headline setting.
- `fused@A`: A * disc cosine + (1 - A) * gen cosine.
- `rerank@N`: the disc ranking's top N (of the query's own list for local datasets), re-ordered
  by gen cosine; past N the disc order stays. Costs one generation per query at search time.
- `oracle`: per query, the better of disc-disc and gen-gen. An upper bound, not a method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from model.eval.cache import VectorMode
from model.eval.metrics import (
    authors_score_rankings,
    normalise_rows,
    query_scores,
    rank_task,
    score_rankings,
)
from model.eval.mmeb_data import Task
from model.eval.settings import DEFAULT_ALPHAS, DEFAULT_SHORTLIST

ORACLE = "oracle"
Vectors = Mapping[VectorMode, np.ndarray]


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


def authors_variant_scores(task: Task, query_vecs: Vectors, cand_vecs: Vectors) -> dict[str, float]:
    """The authors' NDCG@5 of each mode pair, only where it differs from the correct one."""
    differing: dict[str, float] = {}
    for q in sorted(query_vecs):
        for t in sorted(cand_vecs):
            rankings = rank_task(task, query_vecs[q], cand_vecs[t])
            theirs = authors_score_rankings(task, rankings)
            if theirs is not None and abs(theirs - score_rankings(task, rankings)) > 1e-9:
                differing[f"{q}-{t}"] = theirs
    return differing
