"""How the embedded engine lays out collections for search at scale, and when it builds.

The figures behind each choice are in docs/large-collections.md and benchmarks/results/.

- HNSW uses Qdrant's defaults (`m=16`, `ef_construct=100`): on clustered vectors, as real
  embeddings lie, they find the exact top 10, and a costlier graph only helps uniformly random
  vectors, while builds are what people wait for on small machines.
- New points land in a segment of their own, so adding some never rebuilds the whole graph; a
  search visits every segment one after another, so the engine merges the smallest pieces to
  keep at most SEGMENTS.
- Segments below the indexing threshold are not indexed at all but scanned exactly, which is
  fast at that size: a run that adds a few items to a large collection starts no build.
- int8 keeps 1 byte per dimension in RAM (a quarter of float32) and builds faster; searches
  rescore the best candidates with the originals, kept on disk, so they find what full
  precision finds. Collections switch to it once they are large enough for it to matter.
- Searches leave one core to builds: the build child runs on idle cores only, and with every
  core searching, builds took several times as long while people searched.
"""

from __future__ import annotations

import os

HNSW_M = 16  # edges per node
HNSW_EF_CONSTRUCT = 100  # candidates while building
SEARCH_EF: int | None = 64  # the beam of a graph search (None: the engine's default, ef_construct)
SEGMENTS = 4
INDEXING_THRESHOLD_KB = 10_000  # Qdrant's default: smaller segments are scanned exactly
QUANTIZE_ABOVE_POINTS = 20_000  # items; full precision was chosen ("none") stays as it is
QUANTILE = 0.99  # int8 range: the outermost 1% of values are clipped
OVERSAMPLING = 2.0  # int8 searches rescore 2 x limit candidates with the original vectors
SEARCH_BATCH = 16  # searches queued while others run are answered together, at most this many
SEARCH_THREADS = max(1, (os.cpu_count() or 2) - 1)  # kept in each shard's configuration

# When the engine builds (see `edge_graph`): once writes have paused this long. Growing the graph
# while writes go on, every this many points written since the last build, is left off (0): a
# single build at the end of a run keeps searches during the run fast enough and costs the least.
QUIET_S = 10.0
GROW_EVERY_POINTS = 0

# One process serves an embedded collection up to about this many items well on a small
# machine; beyond it a Qdrant server (several processes, more machines) serves better.
SERVER_ABOVE_ITEMS = 100_000

BUILD_S_PER_VECTOR_DIM = 3.0e-6  # HNSW build cost on 2 cores, for the status's estimate
BUILD_S_PER_VECTOR_DIM_INT8 = 1.0e-6  # int8 distances build the graph faster


def build_estimate_s(vectors: int, dim: int, quantization: str = "") -> float:
    """Seconds an HNSW build of `vectors` new vectors of `dim` dimensions takes on 2 cores."""
    per = BUILD_S_PER_VECTOR_DIM_INT8 if quantized(quantization) else BUILD_S_PER_VECTOR_DIM
    return per * vectors * dim


def quantized(quantization: str) -> bool:
    """Whether a collection's recorded quantization keeps int8 vectors."""
    return quantization == "int8"
