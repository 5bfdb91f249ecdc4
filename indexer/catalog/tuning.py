"""How collections are laid out for search at scale: HNSW, segments, int8 quantization.

The numbers below were measured on 2 shared cores with qdrant-edge 0.9 (`benchmarks/store_memory.py`
and the README's "Large collections"):

- HNSW `m=16`, `ef_construct=100` (Qdrant's defaults). On 5,000 clustered 1536-d vectors (how
  real embeddings lie) every setting tried found the exact top 10 (recall@10 1.000). On
  uniformly random ones, HNSW's worst case: m=8/ef 64 0.50 (3.5 s), m=16/ef 100 0.83-0.86
  (5.6-11 s), m=16/ef 200 0.96 (11.5 s), m=32/ef 100 0.95 (11.5 s). Builds are what users wait
  for on 2 cores, so the cheaper setting that is exact on clustered data stays. Full precision
  builds cost ~1.5-4.4 µs per vector and dimension (179 s for 20k points x 2 x 1536-d); int8 ones
  0.65-0.85 µs, since the graph is built with int8 distances.
- Segments: with Qdrant's automatic segment count (the number of cores) adding 1,000 points to
  6,000 indexed ones merged them and rebuilt the whole graph (2.2-3.4 s); with more segments
  allowed only the new segment was indexed (0.4-0.5 s); see SEGMENTS for how many. Points below
  the indexing threshold (10 MB of vectors: ~1,700 1536-d ones) are not indexed at all but
  scanned exactly in their segment.
- int8 keeps 1 byte per dimension in RAM: per million points with 2 x 1536-d vectors 2.9 GiB
  instead of 11.4 GiB (the originals stay on disk, read to rescore the best `2 x limit`
  candidates); recall@10 matched full precision (1.000 clustered, 0.858 vs 0.850 uniform). Above
  20,000 points, where a full precision build takes minutes, int8 builds 1.6-7x faster at the
  same recall, so runs switch to it there; payloads stay on disk either way.
"""

from __future__ import annotations

import os

HNSW_M = 16  # edges per node
HNSW_EF_CONSTRUCT = 100  # candidates while building
SEGMENTS = 4  # new points land in a segment of their own: adding some never rebuilds the graph
# A search visits every segment (one after another on the one search thread of 2 cores, see
# SEARCH_THREADS). Each build during a run adds a segment; past SEGMENTS the engine merges the
# smallest ones as the builds come: a build re-indexes its new points and the smallest of the
# older pieces, never the whole collection. Keeping 8 left a run's end with 8 segments to
# search and to merge. 100k items written at 100/s, 8 searchers from the first write to the end,
# both in one run (`python benchmarks/store.py --points 100000 --write-rate 100 --grow-every
# 5000 --write-searchers 8 --eight-segments`, `store-100000-write-100-searching-*.json`): kept 8,
# p50 / p95 while writing 9 / 41 ms, during the last build (a merge into 2) 32 / 50 ms, the
# graph ready 223 s after the last write, settled 8 / 9 ms; kept 4, 11 / 27 ms, 20 / 36 ms
# (nothing to merge), ready after 51 s, settled 13 / 14 ms. (Measured once before with 8 search
# threads and a catch-up that held searches, 4 was no faster during the last build:
# `store-100000-grow-5000-4-segments.json`.)
# A collection grown in more segments (runs kept 8 before) is merged at its next build: down to
# SEGMENTS during a run, to MERGED_SEGMENTS when that build is a run's end; 50k points in
# 8 segments searched in 7.8 ms, merged into 2 in 1.5 ms (`benchmarks/segments.py`), and merging
# took 73-145 s in the background, copy and swap included: ~0.94 us per vector and dimension.
MERGED_SEGMENTS = 2
MERGE_ABOVE_SEGMENTS = 4
INDEXING_THRESHOLD_KB = 10_000  # Qdrant's default: smaller segments are scanned exactly
QUANTIZE_ABOVE_POINTS = 20_000  # a run that ends above this switches to int8 unless told not to
# A run starts a background build each time it has written this many item points (or one more
# after the build under way), so the graph grows during ingestion: when the run ends, what came
# after the last build began is scanned exactly while the run's final build indexes it, instead
# of the whole collection (see indexer.writer).
# 0 turns it off.
GROW_EVERY_POINTS = 5_000  # see README "Large collections"
# Each build copies the whole collection first, so on large ones the step grows with them: at
# most ~60 builds take a run from 100k to 2M items, instead of one every 5,000 (measured: 100k).
GROW_FRACTION = 0.05
QUANTILE = 0.99  # int8 range: the outermost 1% of values are clipped
OVERSAMPLING = 2.0  # int8 searches rescore 2 x limit candidates with the original vectors
# The beam of a graph search (Qdrant's default is ef_construct, 100). 50k clustered points grown in
# 8 segments, then merged into 2, int8 with rescoring, the searches interleaved: beam 100 took
# 6.0 / 2.1 ms, 64 5.3 / 1.8 ms, 32 4.6 / 1.2 ms; recall@10 1.000, 1.000, 0.999 (`python
# benchmarks/segments.py --segments 8 --merge --ef 0 64 32`, `segments-50000-beam.json`). 64 keeps
# the margin.
SEARCH_EF: int | None = 64  # None: the engine's default (ef_construct)
# Searches queued while others run are answered as one batch of the engine of at most this many
# (`indexer.catalog.batches`). 8 searchers on 40k items in a graph plus 20k written since (a
# build's state while it runs), then all 60k in the graph (`python benchmarks/search_batches.py
# --limits 1 4 16`, `search_batches.json`): one at a time 124 and 1,076 searches/s, p95 79 and
# 11 ms; batches of up to 16: 238 and 1,640/s, p95 40 and 6.5 ms; batches of 4 in between. The
# same top 10 every time.
SEARCH_BATCH = 16
# Threads of a shard's search pool (qdrant-edge reads a query's segments in parallel on them;
# by default 8 on the 2-core machine measured). They took every core from the build's child,
# which runs on idle cores only: 100k items written at 100/s, the run's last build (a merge of 8
# segments) took 981 s among 8 searchers (`store-100000-write-100-give-way.json`); with one
# thread 208 s, the graph ready 285 s after the last write instead of 1,026 s, but searches
# during the build p50 / p95 35 / 54 ms instead of 23 / 31, and settled 14 / 15 ms instead of
# 8 / 10 (`store-100000-write-100-one-thread.json`, one run each). Merging 40k items grown in 8
# builds with 8 searchers throughout (`python benchmarks/search_threads.py --points 40000`,
# `search_threads.json`, twice each, alternating): graph ready in 86-88 s with 8 threads, 52 s
# with one; p95 18 against 28-29 ms meanwhile. So searches leave one core to builds. Kept in
# the shard's configuration when it is created or rebuilt (`edge_build.edge_config`).
SEARCH_THREADS = max(1, (os.cpu_count() or 2) - 1)
BUILD_S_PER_VECTOR_DIM = 3.0e-6  # measured HNSW build cost on 2 cores (see above)
BUILD_S_PER_VECTOR_DIM_INT8 = 1.0e-6  # int8 distances build the graph 1.6-7x faster
MERGE_S_PER_VECTOR_DIM = 0.94e-6  # merging segments (see MERGED_SEGMENTS above)

QUANTIZATIONS = ("int8", "none")  # what a collection may be switched to


def build_estimate_s(vectors: int, dim: int, quantization: str = "") -> float:
    """Seconds an HNSW build of `vectors` new vectors of `dim` dimensions takes on 2 cores."""
    per = BUILD_S_PER_VECTOR_DIM_INT8 if quantized(quantization) else BUILD_S_PER_VECTOR_DIM
    return per * vectors * dim


def merge_estimate_s(vectors: int, dim: int) -> float:
    """Seconds merging the segments that hold `vectors` vectors takes on 2 cores (an upper bound:
    the largest segment may stay as it is)."""
    return MERGE_S_PER_VECTOR_DIM * vectors * dim


def quantized(quantization: str) -> bool:
    """Whether a collection's recorded quantization keeps int8 vectors."""
    return quantization == "int8"
