"""Synthetic vectors shaped like an embedding collection: clusters within topics, on the sphere.

Uniform random 1536-d vectors are a worst case no real collection resembles: every pair is at
cosine ~0, so nothing is a near neighbour and an HNSW graph has no structure to exploit. Real
embeddings of photos, videos and pages come in groups (one trip, one event, one document) that
themselves gather into themes. This models that, with every unit vector drawn as
`normalize(mean + spread * g)`, where g is a standard normal vector scaled to norm ~1:

- TOPICS directions, uniform on the unit sphere;
- CLUSTERS cluster centres, each `normalize(topic + 1.0 g)` around a topic chosen uniformly
  (cosine to its topic ~0.71, between two centres of a topic ~0.5, across topics ~0);
- each point belongs to a cluster chosen with a log-normal(0, 1) weight (a few large groups,
  many small ones) and is `normalize(centre + s g)` with s drawn per cluster from
  U(SPREAD_LOW, SPREAD_HIGH) (cosine to its centre 0.71-0.86, to a point of its cluster ~0.6);
- a query is `normalize(x + QUERY_SPREAD g)` around a data point x picked at random (cosine ~0.89
  to x): a query near the data, as a search for something the collection holds.

`gen` vectors are drawn the same way around the same cluster (a second view of the item).
Batches are generated from (seed, batch number), so any batch can be drawn again on its own:
no benchmark needs to hold the whole collection in memory.
"""

from __future__ import annotations

import numpy as np

TOPICS = 64
CLUSTERS = 4096
CENTRE_SPREAD = 1.0
SPREAD_LOW, SPREAD_HIGH = 0.6, 1.0
QUERY_SPREAD = 0.5


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def noise(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    """Standard normal rows scaled to norm ~1 (the sum of `dim` squares is ~dim)."""
    return rng.standard_normal((rows, dim), dtype=np.float32) / np.sqrt(dim, dtype=np.float32)


class ClusteredCollection:
    """The distribution above for one seed; `batch(i, rows)` is always the same rows."""

    def __init__(self, dim: int, seed: int, batch_size: int) -> None:
        self.dim, self.seed, self.batch_size = dim, seed, batch_size
        rng = np.random.default_rng([seed, 0])
        topics = unit(rng.standard_normal((TOPICS, dim), dtype=np.float32))
        parents = rng.integers(TOPICS, size=CLUSTERS)
        self.centres = unit(topics[parents] + CENTRE_SPREAD * noise(rng, CLUSTERS, dim))  # (C, dim)
        self.spreads = rng.uniform(SPREAD_LOW, SPREAD_HIGH, size=CLUSTERS).astype(np.float32)
        weights = rng.lognormal(0.0, 1.0, size=CLUSTERS)
        self.weights = weights / weights.sum()

    def batch(self, number: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The `disc` and `gen` vectors of batch `number`: two (rows, dim) float32 arrays."""
        rng = np.random.default_rng([self.seed, 1, number])
        members = rng.choice(CLUSTERS, size=rows, p=self.weights)
        centres, spreads = self.centres[members], self.spreads[members, None]
        disc = unit(centres + spreads * noise(rng, rows, self.dim))
        gen = unit(centres + spreads * noise(rng, rows, self.dim))
        return disc, gen

    def queries(self, count: int, points: int) -> np.ndarray:
        """`count` queries, each near a data point among the first `points`: (count, dim)."""
        rng = np.random.default_rng([self.seed, 2])
        anchors = np.sort(rng.choice(points, size=count, replace=False))
        near = np.empty((count, self.dim), dtype=np.float32)
        for row, index in enumerate(anchors):
            number, offset = divmod(int(index), self.batch_size)
            rows = min(self.batch_size, points - number * self.batch_size)
            near[row] = self.batch(number, rows)[0][offset]
        return unit(near + QUERY_SPREAD * noise(rng, count, self.dim))

    def describe(self) -> dict[str, object]:
        return {
            "name": "clusters within topics on the unit sphere (benchmarks/synthetic.py)",
            "topics": TOPICS,
            "clusters": CLUSTERS,
            "cluster_weights": "log-normal(0, 1), normalised",
            "centre": f"normalize(topic + {CENTRE_SPREAD} g), g ~ N(0, I/dim)",
            "point": f"normalize(centre + s g), s ~ U({SPREAD_LOW}, {SPREAD_HIGH}) per cluster",
            "query": f"normalize(x + {QUERY_SPREAD} g) around a random data point x",
            "dim": self.dim,
            "seed": self.seed,
        }
