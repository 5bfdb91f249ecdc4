"""pass@k of the gen embedding: how often one of k sampled reasoning rollouts retrieves right.

The paper's figure on sampling diversity: with K rollouts sampled per input, a query counts at k
when one of k rollouts ranks its positive first. Two sides:
- `query`: K sampled rollouts per query, against the candidates' greedy gen embeddings;
- `candidate`: K sampled rollouts per candidate (sample s of every candidate forms pool s),
  against the queries' greedy gen embeddings.

Design decisions:
- pass@k is the unbiased estimator over the K samples (the expected best of k drawn without
  replacement from K, Chen et al. 2021), not "the first k samples": lower variance, the same
  expectation, and monotone in k by construction. For 0/1 metrics (Hit@1) it is exactly
  1 - C(K - c, k) / C(K, k); for NDCG@5 it is the expected best NDCG of k rollouts.
- Temperature 0 is greedy decoding: every sample is the greedy rollout (and is read from the
  greedy run's cache), so pass@k equals the greedy gen score for every k.
- Sample s uses seed `seed + 1000 * s` (batches within it add their number), so a rerun with the
  same settings draws the same rollouts and is served from the embedding cache.
"""

from __future__ import annotations

from collections.abc import Callable
from math import comb
from typing import Literal

import numpy as np

from model.eval.metrics import query_scores, rank_task
from model.eval.mmeb_data import Task

SampleSide = Literal["query", "candidate"]
SEED_STRIDE = 1000
# (side, sample index) -> that side's gen vectors for the sample, in task order
SampledVectors = Callable[[SampleSide, int], np.ndarray]


def expected_best_of_k(values: np.ndarray, k: int) -> float:
    """E[max of k values drawn without replacement from `values`] (n >= k >= 1)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = ordered.size
    if not 1 <= k <= n:
        raise ValueError(f"k must lie between 1 and {n}, got {k}")
    # The i-th smallest (1-based) is the maximum of C(i - 1, k - 1) of the C(n, k) subsets.
    weights = np.array([comb(i - 1, k - 1) for i in range(1, n + 1)], dtype=np.float64) / comb(n, k)
    return float(ordered @ weights)


def pass_at_k(per_sample: np.ndarray) -> list[float]:
    """(queries, K) per-query metric values of each sample -> [pass@1, …, pass@K] in percent."""
    matrix = np.asarray(per_sample, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"expected a (queries, samples) array, got shape {matrix.shape}")
    if matrix.shape[0] == 0:
        return [0.0] * matrix.shape[1]
    return [
        100.0 * float(np.mean([expected_best_of_k(row, k) for row in matrix]))
        for k in range(1, matrix.shape[1] + 1)
    ]


def side_curve(
    task: Task,
    side: SampleSide,
    samples: int,
    sampled: SampledVectors,
    greedy_query: np.ndarray,
    greedy_candidate: np.ndarray,
) -> list[float]:
    """pass@1..samples for one side: that side sampled, the other greedy."""
    columns = []
    for index in range(samples):
        vectors = sampled(side, index)
        queries, candidates = (vectors, greedy_candidate) if side == "query" else (greedy_query, vectors)
        columns.append(query_scores(task, rank_task(task, queries, candidates)))
    return pass_at_k(np.stack(columns, axis=1))
