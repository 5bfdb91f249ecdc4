"""Between the store's types (`Point`, `Match`) and qdrant-edge's: points, filters, settings."""

from __future__ import annotations

from typing import Any

import numpy as np
from qdrant_edge import (
    EdgeShard,
    FieldCondition,
    Filter,
    FloatIndexParams,
    IntegerIndexParams,
    IsEmptyCondition,
    KeywordIndexParams,
    MatchAny,
    MatchValue,
    Memory,
    PayloadSchemaType,
    QuantizationSearchParams,
    RangeFloat,
    SearchParams,
    UpdateOperation,
)
from qdrant_edge import Point as EdgePoint

from indexer.catalog import tuning
from indexer.catalog.checks import as_float32
from indexer.catalog.store import FieldValue, Match, PayloadIndexKind, Point, StoredPoint

UPSERT_CHUNK = 512  # points per engine update: bounds the memory of one conversion
# Payload indexes live on disk, read through the page cache (Memory.Cold): held in RAM, the
# indexes of a real library (paths, every ancestor folder, fingerprints: twelve fields on an
# item and its file record) took several times the memory of an item's int8 vectors.
EDGE_INDEX_PARAMS: dict[PayloadIndexKind, Any] = {
    "keyword": KeywordIndexParams(memory=Memory.Cold),
    "float": FloatIndexParams(memory=Memory.Cold),
    "integer": IntegerIndexParams(lookup=True, range=True, memory=Memory.Cold),
}
KIND_OF_TYPE: dict[PayloadSchemaType, PayloadIndexKind] = {
    PayloadSchemaType.Keyword: "keyword",
    PayloadSchemaType.Float: "float",
    PayloadSchemaType.Integer: "integer",
}


def create_field_indexes(shard: EdgeShard, indexes: dict[str, PayloadIndexKind]) -> None:
    """Index these payload fields; Qdrant leaves an existing index as it is."""
    for field_name, kind in indexes.items():
        shard.update(UpdateOperation.create_field_index(field_name, EDGE_INDEX_PARAMS[kind]))


def move_field_indexes_to_disk(shard: EdgeShard) -> None:
    """Rebuild on disk the payload indexes held in RAM (collections made before they lived on
    disk); kinds of index ume never makes are left as they are."""
    for field_name, index in shard.info().payload_schema.items():
        kind = KIND_OF_TYPE.get(index.data_type)
        if kind is None or getattr(index.params, "memory", None) == Memory.Cold:
            continue
        shard.update(UpdateOperation.delete_field_index(field_name))
        create_field_indexes(shard, {field_name: kind})


def search_params(quantization: str) -> SearchParams:
    """The graph's beam width (`tuning.SEARCH_EF`); int8 searches rescore their best candidates
    with the original vectors."""
    rescore = None
    if tuning.quantized(quantization):
        rescore = QuantizationSearchParams(rescore=True, oversampling=tuning.OVERSAMPLING)
    return SearchParams(hnsw_ef=tuning.SEARCH_EF, quantization=rescore)


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
