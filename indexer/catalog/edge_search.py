"""The embedded engine's searches: queued together, answered as one batch of the engine."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from qdrant_edge import EdgeShard, Query, QueryBatchRequest, QueryRequest, ScoredPoint

from indexer.catalog.checks import check_vector
from indexer.catalog.edge_convert import search_params, to_edge_filter
from indexer.catalog.store import CollectionInfo, Hit, Match


@dataclass(frozen=True)
class QueuedSearch:
    """One `EdgeStore.search`, waiting in the engine's queue to run with the others beside it."""

    collection: str
    vector: str
    query: np.ndarray  # float32
    limit: int
    match: Match | None


def search_collection(
    shard: EdgeShard, name: str, info: CollectionInfo, requests: dict[int, QueuedSearch]
) -> dict[int, list[Hit] | Exception]:
    """The searches of one collection as one batch of the engine; a bad vector or filter fails
    its own search alone."""
    outcomes: dict[int, list[Hit] | Exception] = {}
    queries: dict[int, QueryRequest] = {}
    for i, request in requests.items():
        try:
            check_vector(name, info, request.vector, len(request.query))
            queries[i] = query_request(request, info.quantization)
        except Exception as error:
            outcomes[i] = error
    found = run_queries(shard, list(queries.values()))
    for i, points in zip(queries, found, strict=True):
        outcomes[i] = points if isinstance(points, Exception) else to_hits(points)
    return outcomes


def query_request(request: QueuedSearch, quantization: str) -> QueryRequest:
    return QueryRequest(
        limit=request.limit,
        query=Query.Nearest(request.query, using=request.vector),  # type: ignore[arg-type]
        filter=to_edge_filter(request.match),
        with_payload=True,
        params=search_params(quantization),
    )


def run_queries(shard: EdgeShard, queries: list[QueryRequest]) -> list[list[ScoredPoint] | Exception]:
    """The engine's answers, in order: several queries as one batch (one pass over the
    segments), or, when the engine refuses the batch, each alone, so that only the query at
    fault fails."""
    if len(queries) > 1:
        with contextlib.suppress(Exception):
            found: list[list[ScoredPoint] | Exception] = list(shard.query_batch(QueryBatchRequest(queries)))
            if len(found) == len(queries):
                return found
    return [query_alone(shard, query) for query in queries]


def query_alone(shard: EdgeShard, query: QueryRequest) -> list[ScoredPoint] | Exception:
    try:
        return shard.query(query)
    except Exception as error:  # the engine's own, raised in the thread that asked
        return error


def to_hits(points: Sequence[ScoredPoint]) -> list[Hit]:
    return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]
