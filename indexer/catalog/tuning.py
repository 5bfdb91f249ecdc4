"""How collections are laid out for search at scale: HNSW, segments, int8 quantization.

The numbers below were measured on 2 cores with qdrant-edge 0.9 (see the README's "Large
collections" section and `benchmarks/store_memory.py`):

- HNSW `m=16`, `ef_construct=100` (Qdrant's defaults): building costs ~3.0 µs per vector and
  dimension (179 s for 20k points x 2 x 1536-d, 372 s for 40k); a smaller graph did not build
  enough faster to pay for its lower recall on 1536-d vectors.
- Segments: with Qdrant's automatic segment count (the number of cores) adding 1,000 points to
  6,000 indexed ones merged them and rebuilt the whole graph (2.2-3.4 s); with 8 segments only
  the new segment was indexed (0.4-0.5 s). Small additions (below the indexing threshold) are
  never indexed at all: they are scanned exactly in their small segment.
- int8 scalar quantization keeps one byte per dimension in RAM (1536-d: 1.5 KiB per vector
  instead of 6 KiB) and rescores the best `oversampling x limit` candidates with the originals,
  which stay on disk; with rescoring the top 10 matched full precision on every query measured.
"""

from __future__ import annotations

HNSW_M = 16  # edges per node
HNSW_EF_CONSTRUCT = 100  # candidates while building
SEGMENTS = 8  # new points land in their own segment: adding some never rebuilds the graph
INDEXING_THRESHOLD_KB = 10_000  # Qdrant's default: smaller segments are scanned exactly
QUANTIZE_ABOVE_POINTS = 100_000  # a run that ends above this switches to int8 unless told not to
QUANTILE = 0.99  # int8 range: the outermost 1% of values are clipped
OVERSAMPLING = 2.0  # int8 searches rescore 2 x limit candidates with the original vectors
BUILD_S_PER_VECTOR_DIM = 3.0e-6  # measured HNSW build cost on 2 cores (see above)

QUANTIZATIONS = ("int8", "none")  # what a collection may be switched to


def build_estimate_s(vectors: int, dim: int) -> float:
    """Seconds an HNSW build of `vectors` new vectors of `dim` dimensions takes on 2 cores."""
    return BUILD_S_PER_VECTOR_DIM * vectors * dim


def quantized(quantization: str) -> bool:
    """Whether a collection's recorded quantization keeps int8 vectors."""
    return quantization == "int8"
