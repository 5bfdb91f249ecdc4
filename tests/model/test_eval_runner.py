"""`ume eval mmeb` and `ume eval collection` with the tiny model, on data in the published formats.

The tiny model is random, so scores are only checked for shape and range; the numbers a user
relies on (fused, re-ranked and oracle variants, resume after a crash, judging collection hits)
are checked against values computed by hand.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from app.cli import main as ume
from app.search_eval import ExpectedItem, credit_hits, query_metrics, read_queries
from model.encoder import Encoder
from model.eval.cache import ChunkCache, EvalDataError, VectorMode
from model.eval.folder_tasks import select_tasks
from model.eval.mmeb_data import Query, Side, Task
from model.eval.published import task_spec
from model.eval.runner import run_mmeb
from model.eval.settings import MmebConfig
from model.eval.variants import fused_vectors, rerank_shortlists, score_variants

MAX_NEW_TOKENS = 4
BATCH = 3
TASKS = ("ImageNet-1K", "K700", "MSR-VTT", "ViDoRe_docvqa")
CAT = "photos/tabby_cat_closeup.jpg"
CLIP = "videos/circle_square_hello.mp4"
PDF = "documents/cats_coffee_rockets_tomatoes.pdf"
PAIRS = {"disc-disc", "disc-gen", "gen-disc", "gen-gen"}
COMBINED = {"fused@0.25", "fused@0.5", "fused@0.75", "rerank@50", "oracle"}


# --- fixtures in the published formats -------------------------------------------------------


def _image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (32, 32)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _image_classification(folder: Path) -> None:
    """Local: each query ranks its own three labels; the positive is first."""
    labels = ["red", "green", "blue"]
    rows = []
    for index, colour in enumerate([(220, 0, 0), (0, 220, 0), (0, 0, 220)]):
        _image(folder / "val" / f"{index}.jpg", colour)
        own = labels[index:] + labels[:index]
        rows.append({
            "qry_inst": "<|image_1|>\nRepresent the given image for classification", "qry_text": "",
            "qry_img_path": f"val/{index}.jpg", "tgt_inst": "", "tgt_text": own,
            "tgt_img_path": [""] * 3,
        })  # fmt: skip
    _jsonl(folder / "records.jsonl", rows)


def _frames(folder: Path, colour: tuple[int, int, int]) -> None:
    for index in range(4):
        _image(folder / f"frame_{index}.jpg", tuple(min(255, c + 10 * index) for c in colour))  # type: ignore[arg-type]


def _video_classification(folder: Path) -> None:
    """Global: video queries rank every label of the task."""
    _frames(folder / "frames" / "v1", (200, 50, 0))
    _frames(folder / "frames" / "v2", (0, 50, 200))
    rows = [
        {"qry_inst": "Recognise the action.", "qry_text": "", "qry_video_path": f"frames/{vid}",
         "tgt_inst": "", "tgt_text": labels, "tgt_video_path": ["", ""]}
        for vid, labels in (("v1", ["archery", "bowling"]), ("v2", ["bowling", "cooking"]))
    ]  # fmt: skip
    _jsonl(folder / "records.jsonl", rows)


def _video_retrieval(folder: Path) -> None:
    """Global: captions rank every video (frame folders) of the task."""
    _frames(folder / "frames" / "a", (250, 250, 0))
    _frames(folder / "frames" / "b", (0, 250, 250))
    rows = [
        {"qry_inst": "Find a video that contains the following visual content:", "qry_text": caption,
         "qry_video_path": "", "tgt_inst": "Understand the content of the provided video.",
         "tgt_text": [""], "tgt_video_path": [f"frames/{vid}"]}
        for caption, vid in (("a yellow screen", "a"), ("a cyan screen", "b"))
    ]  # fmt: skip
    _jsonl(folder / "records.jsonl", rows)


def _visual_documents(folder: Path) -> None:
    """BEIR layout with graded relevance."""
    for name, colour in (("p1", (250, 250, 250)), ("p2", (240, 240, 200)), ("p3", (200, 240, 240))):
        _image(folder / "pages" / f"{name}.png", colour, (40, 56))
    _jsonl(folder / "corpus.jsonl", [{"_id": n, "image": f"pages/{n}.png"} for n in ("p1", "p2", "p3")])
    _jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "revenue 2023?"}, {"_id": "q2", "text": "CO2?"}])
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\tp2\t2\nq1\tp3\t1\nq2\tp1\t1\n", encoding="utf-8"
    )


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mmeb")
    _image_classification(root / "ImageNet-1K")
    _video_classification(root / "K700")
    _video_retrieval(root / "MSR-VTT")
    _visual_documents(root / "ViDoRe_docvqa")
    (root / "not-a-dataset").mkdir()
    return root


def _mmeb_args(data_root: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "eval", "mmeb", "--data-root", str(data_root), "--model", str(model), "--out", str(out),
        "--batch-size", str(BATCH), "--max-new-tokens", str(MAX_NEW_TOKENS), *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(data_root: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted `ume eval mmeb --tasks all` run (both modes on both sides)."""
    out = tmp_path_factory.mktemp("mmeb-out")
    assert ume(_mmeb_args(data_root, tiny_model_dir, out, "--tasks", "all", "--revision", "test")) == 0
    return out


# --- MMEB end to end ----------------------------------------------------------------------------


def test_mmeb_run_reports_every_variant_beside_the_published_scores(reference: Path) -> None:
    payload = json.loads((reference / "mmeb.json").read_text(encoding="utf-8"))
    assert payload["primary_variant"] == "gen-gen"  # the paper's headline setting
    assert list(payload["tasks"]) == list(TASKS)  # every dataset folder, none of the others
    for name, task in payload["tasks"].items():
        assert set(task["scores"]) == PAIRS | COMBINED, name
        assert all(0.0 <= score <= 100.0 for score in task["scores"].values())
        best = max(task["scores"]["disc-disc"], task["scores"]["gen-gen"])
        assert task["scores"]["oracle"] >= best
    assert payload["tasks"]["ImageNet-1K"]["scope"] == "local"
    assert payload["tasks"]["ViDoRe_docvqa"]["metric"] == "ndcg@5"
    assert (payload["tasks"]["K700"]["queries"], payload["tasks"]["K700"]["candidates"]) == (2, 3)

    comparison = payload["comparison"]
    assert comparison["revision"] == "test" and comparison["published_model"] == "UME-R1-2B"
    overall = next(row for row in comparison["rows"] if row["name"] == "All")
    assert overall["published"] == 60.1 and overall["coverage"] == "4/78"
    mean = sum(task["scores"]["gen-gen"] for task in payload["tasks"].values()) / 4
    assert overall["ours"] == pytest.approx(mean)
    assert payload["variants"]["oracle"]["overall"]["present"] == 4

    markdown = (reference / "mmeb.md").read_text(encoding="utf-8")
    assert "## gen-gen beside UME-R1-2B" in markdown
    assert "| dataset | ImageNet-1K |" in markdown and "| 75.3 |" in markdown  # published number
    assert "| level | name | disc-disc | disc-gen | gen-disc | gen-gen | fused@0.25" in markdown


def test_rerun_reuses_the_cache_and_encodes_nothing(
    reference: Path, data_root: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = shutil.copytree(reference, tmp_path / "out")
    before = json.loads((out / "mmeb.json").read_text(encoding="utf-8"))
    assert ume(_mmeb_args(data_root, tiny_model_dir, out, "--tasks", "K700,MSR-VTT")) == 0
    captured = capsys.readouterr()
    assert "| overall | All |" in captured.out  # the table is printed, not only written
    after = json.loads((out / "mmeb.json").read_text(encoding="utf-8"))
    for name in ("K700", "MSR-VTT"):
        assert after["tasks"][name]["encoded"] == 0
        assert after["tasks"][name]["reused"] == before["tasks"][name]["encoded"]
        assert after["tasks"][name]["scores"] == before["tasks"][name]["scores"]


def test_an_interrupted_run_resumes_with_only_the_missing_items(
    reference: Path, data_root: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder = Encoder.from_pretrained(tiny_model_dir)
    calls: list[int] = []
    real_encode = encoder.encode_prepared

    def crashing_after_first_batch(prepared: Any, **kwargs: Any) -> Any:
        if calls:
            raise RuntimeError("simulated crash")
        calls.append(len(prepared))
        return real_encode(prepared, **kwargs)

    config = MmebConfig(data_root, tmp_path, batch_size=BATCH, max_new_tokens=MAX_NEW_TOKENS)
    monkeypatch.setattr(encoder, "encode_prepared", crashing_after_first_batch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_mmeb(config, encoder, say=lambda _: None)
    assert calls == [BATCH]

    encoded: list[int] = []

    def counting(prepared: Any, **kwargs: Any) -> Any:
        encoded.append(len(prepared))
        return real_encode(prepared, **kwargs)

    monkeypatch.setattr(encoder, "encode_prepared", counting)
    resumed = run_mmeb(config, encoder, say=lambda _: None).report
    expected = json.loads((reference / "mmeb.json").read_text(encoding="utf-8"))
    everything = sum(task["encoded"] for task in expected["tasks"].values())
    assert sum(encoded) == everything - BATCH
    assert resumed["tasks"]["ImageNet-1K"]["reused"] == BATCH
    for name in TASKS:
        assert resumed["tasks"][name]["scores"] == expected["tasks"][name]["scores"]


def test_a_chunk_without_its_key_list_does_not_count(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path / "gen")
    cache.add(["a", "b"], np.eye(2, dtype=np.float32))
    cache.add(["c"], np.ones((1, 2), dtype=np.float32))
    (tmp_path / "gen" / "chunk-000001.json").unlink()  # killed between the two writes
    (tmp_path / "gen" / "chunk-000005.json").write_text("{trunc", encoding="utf-8")
    assert set(cache.load()) == {"a", "b"}
    cache.add(["c"], np.full((1, 2), 2, dtype=np.float32))
    assert cache.load()["c"].tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ("ImageNet1K", "did you mean ImageNet-1K"),
        ("SUN397", "no folder"),
        (" , ", "--tasks is empty"),
    ],
)
def test_task_selection_errors_say_what_to_fix(data_root: Path, tasks: str, message: str) -> None:
    with pytest.raises(EvalDataError, match=message):
        select_tasks(data_root, tasks)


def test_cli_reports_a_bad_data_root_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ume(["eval", "mmeb", "--data-root", str(tmp_path), "--model", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith("ume: error: no dataset folders under")


# --- combinations, computed by hand ------------------------------------------------------


def _columns(*cosines: tuple[float, float]) -> np.ndarray:
    """Unit candidate rows whose cosine with query e0 / e1 is the given pair (third axis pads)."""
    return np.array([[a, b, math.sqrt(1 - a * a - b * b)] for a, b in cosines])


def _global_task() -> Task:
    """Two queries over three pooled candidates: q0's positive is c0, q1's is c1."""
    queries = [Query("q0", Side("q0"), {0: 1}), Query("q1", Side("q1"), {1: 1})]
    return Task(task_spec("MSR-VTT"), queries, [Side("c0"), Side("c1"), Side("c2")])


QUERIES: dict[VectorMode, np.ndarray] = {"disc": np.eye(3)[:2], "gen": np.eye(3)[:2]}
CANDIDATES: dict[VectorMode, np.ndarray] = {
    # cosines (with q0, with q1): disc puts c1 first for both; gen puts c0 first for both
    "disc": _columns((0.6, 0.1), (0.7, 0.7), (0.0, 0.3)),
    "gen": _columns((0.9, 0.4), (0.2, 0.1), (0.5, 0.3)),
}


def test_fused_rerank_and_oracle_match_hand_computed_scores() -> None:
    alphas = (0.25, 0.5, 0.75, 0.0, 1.0)
    scores = score_variants(_global_task(), QUERIES, CANDIDATES, alphas=alphas, shortlist=2)
    assert scores["disc-disc"] == 50.0  # q0 misses (c1 .7 > c0 .6), q1 hits
    assert scores["gen-gen"] == 50.0  # q0 hits (c0 .9), q1 misses (c0 .4 > c1 .1)
    assert scores["oracle"] == 100.0  # q0 through gen, q1 through disc
    # 0.5: q0 c0 .75 vs c1 .45 hit; q1 c1 .40 vs c2 .30 vs c0 .25 hit
    assert scores["fused@0.5"] == 100.0
    # 0.25: q0 c0 .825 hit; q1 c0 .325 > c2 .30 > c1 .25 miss
    assert scores["fused@0.25"] == 50.0
    # 0.75: q0 c0 .675 > c1 .575 hit; q1 c1 .55 hit
    assert scores["fused@0.75"] == 100.0
    assert scores["fused@0"] == scores["gen-gen"] and scores["fused@1"] == scores["disc-disc"]
    # disc top 2, re-ordered by gen: q0 [c1, c0] -> c0 first (hit); q1 [c1, c2] -> c2 (miss)
    assert scores["rerank@2"] == 50.0
    assert set(scores) >= {"disc-gen", "gen-disc"}


def test_rerank_reorders_only_the_shortlist() -> None:
    disc = [np.array([1, 0, 2]), np.array([1, 2, 0])]
    reranked = rerank_shortlists(disc, QUERIES["gen"], CANDIDATES["gen"], size=2)
    assert [r.tolist() for r in reranked] == [[0, 1, 2], [2, 1, 0]]


def test_fused_rows_give_the_weighted_cosine_as_a_dot_product() -> None:
    rng = np.random.default_rng(0)
    qd, qg, cd, cg = (rng.normal(size=(3, 5)) for _ in range(4))
    unit = [row / np.linalg.norm(row, axis=1, keepdims=True) for row in (qd, qg, cd, cg)]
    expected = 0.3 * unit[0] @ unit[2].T + 0.7 * unit[1] @ unit[3].T
    assert fused_vectors(qd, qg, 0.3) @ fused_vectors(cd, cg, 0.3).T == pytest.approx(expected)
    with pytest.raises(ValueError, match="between 0 and 1"):
        fused_vectors(qd, qg, 1.5)


def test_local_tasks_rerank_within_each_querys_own_list() -> None:
    query = Query("q0", Side("q0"), {2: 1}, candidate_ids=(2, 1))
    task = Task(task_spec("ImageNet-1K"), [query], [Side("c0"), Side("c1"), Side("c2")])
    only_q0: dict[VectorMode, np.ndarray] = {mode: vectors[:1] for mode, vectors in QUERIES.items()}
    scores = score_variants(task, only_q0, CANDIDATES, alphas=(), shortlist=2)
    # c0 is the best match in both modes but not in q0's list: c2 (.5 gen) beats c1 (.2)
    assert scores["gen-gen"] == 100.0 and scores["rerank@2"] == 100.0
    assert scores["disc-disc"] == 0.0 and scores["oracle"] == 100.0


# --- your own collection -----------------------------------------------------------------


@dataclass
class _Hit:
    path: str
    page: int | None = None
    start: float | None = None
    end: float | None = None
    score: float = 0.5


def test_expected_items_match_paths_pages_and_overlapping_spans() -> None:
    clip = _Hit("/media/videos/talk.mp4", start=10.0, end=20.0)
    assert ExpectedItem("videos/talk.mp4").matches(clip)  # relative: trailing folders and name
    assert not ExpectedItem("talks/talk.mp4").matches(clip)
    assert ExpectedItem("/media/videos/talk.mp4", start=15, end=30).matches(clip)
    assert not ExpectedItem("talk.mp4", start=20, end=30).matches(clip)  # touching is not overlap
    assert ExpectedItem("talk.mp4", start=12, end=12).matches(clip)  # a moment inside the segment
    assert ExpectedItem("talk.mp4", end=11).matches(clip)
    assert not ExpectedItem("talk.mp4", start=1, end=2).matches(_Hit("/media/videos/talk.mp4"))
    page = _Hit("/docs/report.pdf", page=3)
    assert ExpectedItem("report.pdf", page=3).matches(page)
    assert not ExpectedItem("report.pdf", page=2).matches(page)


def test_each_expected_item_is_credited_once_and_metrics_follow() -> None:
    expected = [ExpectedItem("a.jpg"), ExpectedItem("clip.mp4", start=0, end=10)]
    hits = [
        _Hit("/x/b.jpg"),
        _Hit("/x/clip.mp4", start=0, end=5),
        _Hit("/x/clip.mp4", start=5, end=10),  # the same expected span again: no credit
        _Hit("/x/a.jpg"),
    ]
    matched = credit_hits(hits, expected)
    assert matched == [None, 1, None, 0]
    values = query_metrics(matched, len(expected), ks=(1, 5))
    # relevant at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5); IDCG = 1 + 1/log2(3)
    ndcg = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert values == pytest.approx({"hit@1": 0.0, "hit@5": 1.0, "mrr": 0.5, "ndcg@1": 0.0, "ndcg@5": ndcg})


def test_bad_query_lines_are_reported_with_their_line_number(tmp_path: Path) -> None:
    queries = tmp_path / "q.jsonl"
    _jsonl(queries, [{"query": "cat", "expected": [{"path": "a.jpg"}]}, {"query": "dog"}])
    with pytest.raises(ValueError, match="line 2: 'expected' must be"):
        read_queries(queries)
    _jsonl(queries, [{"image": "missing.jpg", "expected": [{"path": "a.jpg"}]}])
    with pytest.raises(ValueError, match=r"line 1: image .*missing\.jpg not found"):
        read_queries(queries)
    _image(tmp_path / "a.jpg", (1, 2, 3))
    _jsonl(queries, [{"image": "a.jpg", "video": "a.jpg", "expected": [{"path": "a.jpg"}]}])
    with pytest.raises(ValueError, match="line 1: give an 'image' or a 'video'"):
        read_queries(queries)


@pytest.fixture(scope="module")
def small_index(tiny_model_dir: Path, examples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two photos, the example clip (three 4 s segments) and the PDF, indexed in both modes."""
    from indexer.catalog.open import open_store
    from tests.app.fixture_index import fill_store

    base = tmp_path_factory.mktemp("collection")
    for relative in (CAT, "photos/rocket_on_launch_pad_at_dusk.jpg", CLIP, PDF):
        (base / "media" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(examples_dir / relative, base / "media" / relative)
    with open_store(data_dir=base / "data") as store:
        fill_store(store, Encoder.from_pretrained(tiny_model_dir), (base / "media").resolve())
    return base


def test_collection_eval_scores_every_mode_with_per_query_hits(
    small_index: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = small_index / "media" / CAT
    queries = small_index / "queries.jsonl"
    rows = [
        {"image": str(cat), "expected": [{"path": CAT}]},
        {"query": "a circle, then a square", "expected": [{"path": CLIP, "start": 5, "end": 6}]},
        {"query": "tomatoes", "expected": [{"path": Path(PDF).name, "page": 1}]},
    ]
    _jsonl(queries, rows)
    out = small_index / "out"
    args = [
        "eval", "collection", "--data-dir", str(small_index / "data"), "--queries", str(queries),
        "--model", str(tiny_model_dir), "--max-new-tokens", "8", "--k", "1,3", "--out", str(out),
    ]  # fmt: skip
    assert ume(args) == 0
    assert "| fast |" in capsys.readouterr().out
    payload = json.loads((out / "collection-media.json").read_text(encoding="utf-8"))
    modes = {mode["mode"]: mode for mode in payload["modes"]}
    assert list(modes) == ["fast", "reasoning", "rerank"]
    for mode in modes.values():
        assert mode["unavailable"] is None
        assert set(mode["metrics"]) == {"hit@1", "hit@3", "mrr", "ndcg@1", "ndcg@3"}
        assert all(0.0 <= value <= 1.0 for value in mode["metrics"].values())
        by_example = mode["queries"][0]
        assert by_example["metrics"]["hit@1"] == 1.0  # an example image finds itself first
        assert by_example["hits"][0]["expected"] == 0 and len(by_example["hits"]) == 3
        clip = mode["queries"][1]
        spans = [(h["start"], h["end"]) for h in clip["hits"] if h["expected"] is not None]
        assert all(start < 6 and end > 5 for start, end in spans)  # only the overlapping segment
    assert (out / "collection-media.md").read_text(encoding="utf-8").startswith("# Search quality")
