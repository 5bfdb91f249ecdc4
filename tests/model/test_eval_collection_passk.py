"""`ume eval collection --samples K`: pass@k of sampled query reasoning on an indexed collection."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from app.cli import main as ume
from tests.model.test_eval_runner import CAT, CLIP, PDF, _jsonl, small_index

__all__ = ["small_index"]  # the indexed collection fixture, shared with the collection tests


def _run(small_index: Path, model: Path, out: Path, temperature: str) -> dict:
    queries = small_index / "passk-queries.jsonl"
    rows = [
        {"image": str(small_index / "media" / CAT), "expected": [{"path": CAT}]},
        {"query": "a circle, then a square", "expected": [{"path": CLIP}]},
        {"query": "tomatoes", "expected": [{"path": Path(PDF).name, "page": 1}]},
    ]
    _jsonl(queries, rows)
    args = [
        "eval", "collection", "--data-dir", str(small_index / "data"), "--queries", str(queries),
        "--model", str(model), "--max-new-tokens", "6", "--modes", "fast,reasoning,rerank",
        "--samples", "3", "--temperature", temperature, "--out", str(out),
    ]  # fmt: skip
    assert ume(args) == 0
    payload = json.loads((out / "collection-media.json").read_text(encoding="utf-8"))
    return {mode["mode"]: mode for mode in payload["modes"]}


def test_pass_at_k_at_temperature_0_is_the_greedy_hit_at_1(
    small_index: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    modes = _run(small_index, tiny_model_dir, tmp_path, "0")
    assert modes["fast"]["pass_at_k"] == []  # nothing is generated in the fast mode
    for mode in ("reasoning", "rerank"):
        assert modes[mode]["pass_at_k"] == pytest.approx([modes[mode]["metrics"]["hit@1"]] * 3)
    assert "pass@k of Hit@1" in (tmp_path / "collection-media.md").read_text(encoding="utf-8")


def test_sampled_pass_at_k_is_monotone(small_index: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    modes = _run(small_index, tiny_model_dir, tmp_path, "1.5")
    for mode in ("reasoning", "rerank"):
        curve = modes[mode]["pass_at_k"]
        assert len(curve) == 3 and all(0.0 <= value <= 1.0 for value in curve)
        assert all(a <= b + 1e-9 for a, b in itertools.pairwise(curve))
