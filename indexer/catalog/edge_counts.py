"""Counts of a collection kept between writes.

Counting scans every point, under the lock that searches wait on, and status displays ask every
few seconds, so each count is kept until the next write to its collection.
"""

from __future__ import annotations

from collections.abc import Callable

from qdrant_edge import CountRequest, EdgeShard, Filter, HasVectorCondition

from indexer.catalog import schema
from indexer.catalog.edge_convert import to_edge_filter


class KeptCounts:
    def __init__(self) -> None:
        self._kept: dict[tuple[str, str], int] = {}

    def forget(self, name: str) -> None:
        """A write changed the collection."""
        for key in [k for k in self._kept if k[0] == name]:
            del self._kept[key]

    def vectors(self, name: str, shard: EdgeShard, vector_names: tuple[str, ...]) -> int:
        """Vectors stored, every name counted (vector-less records hold none)."""
        return self._kept_or(name, "vectors", lambda: sum(count_having(shard, v) for v in vector_names))

    def items(self, name: str, shard: EdgeShard) -> int:
        """Items stored (file records left out)."""
        request = CountRequest(exact=True, filter=to_edge_filter(schema.items()))
        return self._kept_or(name, "items", lambda: shard.count(request))

    def _kept_or(self, name: str, what: str, count: Callable[[], int]) -> int:
        if (name, what) not in self._kept:
            self._kept[(name, what)] = count()
        return self._kept[(name, what)]


def count_having(shard: EdgeShard, vector: str) -> int:
    return shard.count(CountRequest(exact=True, filter=Filter(must=[HasVectorCondition(vector)])))
