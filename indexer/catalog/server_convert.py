"""Between the store's types (`Point`, `Match`) and qdrant-client's: points, filters, settings."""

from __future__ import annotations

from typing import Any

from qdrant_client import models

from indexer.catalog import tuning
from indexer.catalog.checks import as_float32
from indexer.catalog.store import FieldValue, Match, Point, StoredPoint


def hnsw_config() -> models.HnswConfigDiff:
    return models.HnswConfigDiff(m=tuning.HNSW_M, ef_construct=tuning.HNSW_EF_CONSTRUCT)


def quantization_config(quantization: str) -> models.ScalarQuantization | None:
    """int8 kept in RAM, originals on disk (the vectors' `on_disk`) for rescoring."""
    if not tuning.quantized(quantization):
        return None
    scalar = models.ScalarQuantizationConfig(
        type=models.ScalarType.INT8, quantile=tuning.QUANTILE, always_ram=True
    )
    return models.ScalarQuantization(scalar=scalar)


def search_params(quantization: str) -> models.SearchParams:
    """The graph's beam width (`tuning.SEARCH_EF`); int8 searches rescore their best candidates
    with the original vectors."""
    rescore = None
    if tuning.quantized(quantization):
        rescore = models.QuantizationSearchParams(rescore=True, oversampling=tuning.OVERSAMPLING)
    return models.SearchParams(hnsw_ef=tuning.SEARCH_EF, quantization=rescore)


def to_point_struct(point: Point) -> models.PointStruct:
    vectors = {name: as_float32(v).tolist() for name, v in point.vectors.items()}
    return models.PointStruct(id=point.id, vector=vectors, payload=point.payload)


def to_stored(record: Any) -> StoredPoint:
    vectors = record.vector if isinstance(record.vector, dict) else {}
    return str(record.id), dict(record.payload or {}), {k: list(v) for k, v in vectors.items()}


def to_filter(match: Match | None) -> models.Filter | None:
    if match is None:
        return None
    must: list[models.Condition] = [to_condition(k, v) for k, v in match.fields.items()]
    must += [
        models.FieldCondition(key=key, range=models.Range(gte=low, lte=high))
        for key, (low, high) in match.ranges.items()
    ]
    must += [models.IsEmptyCondition(is_empty=models.PayloadField(key=key)) for key in match.missing]
    must_not: list[models.Condition] = [to_condition(k, v) for k, v in match.not_fields.items()]
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


def to_condition(key: str, value: FieldValue) -> models.FieldCondition:
    if isinstance(value, list):
        return models.FieldCondition(key=key, match=models.MatchAny(any=list(value)))
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))
