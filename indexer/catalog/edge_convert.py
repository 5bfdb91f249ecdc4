"""Between the store's types (`Point`, `Match`) and qdrant-edge's: points, filters, settings."""

from __future__ import annotations

from typing import Any

import numpy as np
from qdrant_edge import (
    EdgeShard,
    FieldCondition,
    Filter,
    IsEmptyCondition,
    MatchAny,
    MatchValue,
    PayloadSchemaType,
    QuantizationSearchParams,
    RangeFloat,
    SearchParams,
    UpdateOperation,
)
from qdrant_edge import Point as EdgePoint

from indexer.catalog import tuning
from indexer.catalog.store import FieldValue, Match, PayloadIndexKind, Point, StoredPoint, as_float32

UPSERT_CHUNK = 512  # points per engine update: bounds the memory of one conversion
EDGE_INDEX_TYPES = {
    "keyword": PayloadSchemaType.Keyword,
    "float": PayloadSchemaType.Float,
    "integer": PayloadSchemaType.Integer,
}


def create_field_indexes(shard: EdgeShard, indexes: dict[str, PayloadIndexKind]) -> None:
    for field_name, kind in indexes.items():
        shard.update(UpdateOperation.create_field_index(field_name, EDGE_INDEX_TYPES[kind]))


def search_params(quantization: str) -> SearchParams | None:
    """int8 searches rescore their best candidates with the original vectors."""
    if not tuning.quantized(quantization):
        return None
    rescore = QuantizationSearchParams(rescore=True, oversampling=tuning.OVERSAMPLING)
    return SearchParams(quantization=rescore)


def to_edge_point(point: Point) -> EdgePoint:
    vectors = {name: as_float32(v) for name, v in point.vectors.items()}
    return EdgePoint(point.id, vectors, point.payload)  # type: ignore[arg-type]


def to_stored(record: Any) -> StoredPoint:
    vectors = record.vector if isinstance(record.vector, dict) else {}
    return str(record.id), dict(record.payload or {}), {k: list(v) for k, v in vectors.items()}


def to_edge_filter(match: Match | None) -> Filter | None:
    if match is None:
        return None
    must: list[FieldCondition | IsEmptyCondition] = [
        to_condition(key, value) for key, value in match.fields.items()
    ]
    must += [
        FieldCondition(key, range=RangeFloat(gte=low, lte=high)) for key, (low, high) in match.ranges.items()
    ]
    must += [IsEmptyCondition(key) for key in match.missing]
    must_not = [to_condition(key, value) for key, value in match.not_fields.items()]
    if not must and not must_not:
        return None
    return Filter(must=must or None, must_not=must_not or None)  # type: ignore[arg-type]


def to_condition(key: str, value: FieldValue) -> FieldCondition:
    if isinstance(value, list):
        return FieldCondition(key, match=MatchAny(list(value)))
    if isinstance(value, bool):
        # qdrant-edge 0.9.0 reads a Python bool as the integer 0/1, which never equals a boolean
        # payload; numpy's bool is not an int subclass and reaches the engine as a boolean.
        return FieldCondition(key, match=MatchValue(np.bool_(value)))  # type: ignore[arg-type]
    return FieldCondition(key, match=MatchValue(value))
