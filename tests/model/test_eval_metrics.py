"""MMEB-V2 evaluation without an encoder: metrics, ranking, roll-ups and the data readers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.eval.aggregate import compare_table, summarise, to_markdown, write_json_report
from model.eval.beir_data import read_visdoc_task
from model.eval.metrics import (
    hit_at_k,
    mrr,
    ndcg_at_k,
    rank_candidates,
    rank_local_candidates,
    score_task,
)
from model.eval.mmeb_data import (
    Side,
    read_image_task,
    read_video_task,
    sample_uniform,
)
from model.eval.published import (
    datasets_by_meta_task,
    published_models,
    published_scores,
    task_catalogue,
    task_spec,
)

# --- metrics ------------------------------------------------------------------------------


def test_hit_at_k_counts_only_the_top_k() -> None:
    assert hit_at_k(["a", "b", "c"], {"a"}) == 1.0
    assert hit_at_k(["b", "a", "c"], {"a"}) == 0.0
    assert hit_at_k(["b", "a", "c"], {"a"}, k=2) == 1.0
    assert hit_at_k([], {"a"}) == 0.0


def test_mrr_is_reciprocal_rank_of_first_relevant() -> None:
    assert mrr(["x", "y", "a", "b"], {"a", "b"}) == pytest.approx(1 / 3)
    assert mrr(["x", "y"], {"a"}) == 0.0


def test_ndcg_at_5_uses_linear_gain_on_graded_relevance() -> None:
    # ranked a b c d e f; grades b=2, c=0, d=1, f=2 (rank 6, beyond the cut), x=2 (not ranked)
    # DCG@5  = 2/log2(3) + 0/log2(4) + 1/log2(5)          = 1.26186 + 0.43068        = 1.69254
    # ideal  = grades sorted 2,2,2,1 -> top 5: 2,2,2,1
    # IDCG@5 = 2/log2(2) + 2/log2(3) + 2/log2(4) + 1/log2(5) = 2 + 1.26186 + 1 + 0.43068 = 4.69254
    # NDCG@5 = 1.69254 / 4.69254 = 0.36069   (exponential gain 2^g-1 would give 0.3405)
    grades = {"b": 2, "c": 0, "d": 1, "f": 2, "x": 2}
    value = ndcg_at_k(["a", "b", "c", "d", "e", "f"], grades, k=5)
    expected = (2 / math.log2(3) + 1 / math.log2(5)) / (
        2 + 2 / math.log2(3) + 2 / math.log2(4) + 1 / math.log2(5)
    )
    assert value == pytest.approx(expected)
    assert value == pytest.approx(0.36069, abs=1e-5)


def test_ndcg_is_one_for_the_ideal_order_and_zero_without_relevant_documents() -> None:
    # ideal order 2, 1 -> DCG = IDCG = 2 + 1/log2(3)
    assert ndcg_at_k(["p", "q", "r"], {"p": 2, "q": 1}) == pytest.approx(1.0)
    assert ndcg_at_k(["p", "q"], {"p": 0, "q": 0}) == 0.0


def test_rank_candidates_uses_cosine_not_raw_dot_product() -> None:
    query = np.array([[1.0, 0.0]])
    candidates = np.array([[6.0, 8.0], [0.1, 0.0]])  # long but off-angle vs short and aligned
    assert rank_candidates(query, candidates).tolist() == [[1, 0]]


def test_rank_candidates_keeps_candidate_order_on_ties() -> None:
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    candidates = np.array([[0.0, 2.0], [3.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert rank_candidates(queries, candidates).tolist() == [[1, 3, 0, 2], [0, 2, 1, 3]]


def test_rank_local_candidates_ranks_only_each_querys_own_list() -> None:
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    pool = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    rankings = rank_local_candidates(queries, pool, [[2, 1], [0, 2, 1]])
    # query 0 never sees pool item 0, its best match overall
    assert [r.tolist() for r in rankings] == [[2, 1], [1, 2, 0]]


def test_rank_candidates_rejects_mismatched_widths() -> None:
    with pytest.raises(ValueError, match="same H"):
        rank_candidates(np.ones((2, 3)), np.ones((4, 5)))


# --- catalogue and aggregation ---------------------------------------------------------------


def test_catalogue_has_the_78_datasets_with_the_papers_counts() -> None:
    counts = {meta: len(names) for meta, names in datasets_by_meta_task().items()}
    assert counts == {
        "I-CLS": 10, "I-QA": 10, "I-RET": 12, "I-GD": 4,
        "V-CLS": 5, "V-QA": 5, "V-RET": 5, "V-MRET": 3,
        "VDRv1": 10, "VDRv2": 4, "VisRAG": 6, "OOD": 4,
    }  # fmt: skip
    names = [spec.name for spec in task_catalogue()]
    assert len(names) == len(set(names)) == 78
    assert {spec.metric for spec in task_catalogue() if spec.modality == "visdoc"} == {"ndcg@5"}
    assert {spec.metric for spec in task_catalogue() if spec.modality != "visdoc"} == {"hit@1"}
    assert task_spec("ImageNet-1K").scope == "local"
    assert task_spec("MSR-VTT").scope == "global"
    assert task_spec("ViDoRe_docvqa").scope == "global"


def test_unknown_dataset_name_says_where_to_look() -> None:
    with pytest.raises(KeyError, match="task_catalogue"):
        task_spec("ImageNet-2K")


def test_aggregation_reproduces_the_published_2b_image_scores() -> None:
    published = published_scores("UME-R1-2B")
    summary = summarise(published.dataset)
    levels = summary.meta_task.items()
    rounded = {meta: round(level.score, 1) for meta, level in levels if level.score is not None}
    assert rounded == {"I-CLS": 64.8, "I-QA": 62.8, "I-RET": 67.6, "I-GD": 77.2}
    assert summary.modality["image"].score == pytest.approx(66.6, abs=0.05)
    assert (summary.modality["image"].present, summary.modality["image"].total) == (36, 36)
    assert rounded == {meta: published.meta_task[meta] for meta in rounded}
    assert round(summary.modality["image"].score or 0, 1) == published.headline["image"]


def test_modality_and_all_are_means_over_datasets_not_over_meta_tasks() -> None:
    # I-CLS has one dataset at 90, I-GD one at 30: mean over datasets = 60 for Image and All
    summary = summarise({"ImageNet-1K": 90.0, "MSCOCO": 30.0, "RefCOCO": 30.0})
    assert summary.meta_task["I-CLS"].score == 90.0
    assert summary.meta_task["I-GD"].score == 30.0
    assert summary.modality["image"].score == pytest.approx(50.0)  # (90+30+30)/3, not 60
    assert summary.modality["video"].score is None
    assert summary.overall.score == pytest.approx(50.0)
    assert (summary.overall.present, summary.overall.total) == (3, 78)


def test_compare_table_prints_ours_beside_published_with_dashes_for_gaps() -> None:
    rows = compare_table({"ImageNet-1K": 70.0, "MSR-VTT": 30.0}, "UME-R1-2B")
    by_name = {row.name: row for row in rows}
    assert by_name["All"].published == 60.1
    assert by_name["VisDoc"].ours is None
    assert by_name["ImageNet-1K"].published == 75.3
    assert by_name["MSR-VTT"].published is None  # no per-dataset video table was published
    table = to_markdown(rows, "UME-R1-2B")
    assert "| dataset | ImageNet-1K | 70.0 | 75.3 | -5.3 | 1/1 |" in table
    assert "| modality | VisDoc | — | 63.9 | — | 0/24 |" in table
    assert "| dataset | MSR-VTT | 30.0 | — | — | 1/1 |" in table


def test_every_published_model_has_a_headline_row() -> None:
    assert {"UME-R1-2B", "UME-R1-7B", "VLM2Vec-V2-2B", "GME-2B", "GME-7B"} <= set(published_models())
    for model in published_models():
        assert set(published_scores(model).headline) == {"image", "video", "visdoc", "all"}
    assert published_scores("UME-R1-7B").meta_task["I-GD"] == 84.9


def test_json_report_records_revision_and_missing_numbers_as_null(tmp_path: Path) -> None:
    path = write_json_report(tmp_path / "out" / "mmeb.json", {"ImageNet-1K": 70.0}, revision="v2.1")
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert payload["revision"] == "v2.1"
    video_row = next(row for row in payload["rows"] if row["name"] == "Video")
    assert video_row["ours"] is None and video_row["published"] == 42.2


def test_summarise_rejects_unknown_names_and_non_numbers() -> None:
    with pytest.raises(KeyError):
        summarise({"NotADataset": 1.0})
    with pytest.raises(ValueError, match="finite"):
        summarise({"ImageNet-1K": float("nan")})


# --- readers on fixtures in the published formats ----------------------------------------------


def _write_image(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cls_record(image: str, labels: list[str]) -> dict[str, object]:
    return {
        "qry_inst": "<|image_1|>\nRepresent the given image for classification",
        "qry_text": "",
        "qry_img_path": image,
        "tgt_inst": "",
        "tgt_text": labels,
        "tgt_img_path": [""] * len(labels),
    }


def test_local_image_classification_reader(tmp_path: Path) -> None:
    root = tmp_path / "images"
    _write_image(root / "ImageNet-1K" / "cat.jpg")
    _write_image(root / "ImageNet-1K" / "dog.jpg")
    records = _write_jsonl(
        tmp_path / "ImageNet-1K.jsonl",
        [
            _cls_record("ImageNet-1K/cat.jpg", ["cat", "dog", "fox"]),
            _cls_record("ImageNet-1K/dog.jpg", ["dog", "fox", "cat"]),
        ],
    )
    task = read_image_task(records, root, task_spec("ImageNet-1K"))
    assert len(task.queries) == 2 and not task.skipped
    first = task.queries[0]
    assert first.side.image == root / "ImageNet-1K" / "cat.jpg"
    # the <|image_1|> placeholder is gone: the image travels in side.image
    assert first.side.instruction == "Represent the given image for classification"
    # labels shared across records are embedded once; each query keeps its own ordered list
    assert [side.text for side in task.candidates] == ["cat", "dog", "fox"]
    assert first.side.task_text == "Represent the given image for classification"
    assert first.side.load_image() is not None and task.candidates[0].load_image() is None
    assert first.candidate_ids == (0, 1, 2) and task.queries[1].candidate_ids == (1, 2, 0)
    assert first.relevant_ids == {0} and task.queries[1].relevant_ids == {1}

    # query 0 looks like "dog", query 1 like "dog": only query 1 is right
    cand_vecs = np.eye(3)
    query_vecs = np.array([[0.1, 1.0, 0.0], [0.0, 1.0, 0.2]])
    assert score_task(task, query_vecs, cand_vecs) == pytest.approx(50.0)


def test_global_retrieval_pools_deduplicated_candidates(tmp_path: Path) -> None:
    root = tmp_path / "images"
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        _write_image(root / name)

    def record(caption: str, images: list[str]) -> dict[str, object]:
        return {
            "qry_inst": "Find me an everyday image that matches the given caption:",
            "qry_text": caption,
            "qry_img_path": "",
            "tgt_inst": "Represent the given image.",
            "tgt_text": ["<|image_1|>"] * len(images),
            "tgt_img_path": images,
        }

    records = _write_jsonl(
        tmp_path / "MSR-like.jsonl",
        [record("first", ["a.jpg", "b.jpg"]), record("second", ["b.jpg", "c.jpg"])],
    )
    task = read_image_task(records, root, task_spec("MSR-VTT"))  # a global-scope dataset
    pooled = [side.image for side in task.candidates]
    assert pooled == [root / "a.jpg", root / "b.jpg", root / "c.jpg"]
    assert all(query.candidate_ids is None for query in task.queries)
    assert [query.relevant_ids for query in task.queries] == [{0}, {1}]
    second = task.queries[1].side
    assert second.image is None
    assert second.task_text == "Find me an everyday image that matches the given caption: second"

    # every query ranks all three pooled images: query 0 finds a.jpg (its positive),
    # query 1 prefers c.jpg over its positive b.jpg and misses
    query_vecs = np.array([[1.0, 0.0, 0.0], [0.0, 0.4, 1.0]])
    assert score_task(task, query_vecs, np.eye(3)) == pytest.approx(50.0)


def test_video_frame_folders_are_read_in_natural_order(tmp_path: Path) -> None:
    frame_root = tmp_path / "frames"
    for index in (1, 2, 10, 11):
        _write_image(frame_root / "vid1" / f"frame_{index}.jpg", (index * 20, 0, 0))
    (frame_root / "vid1" / "notes.txt").write_text("not a frame", encoding="utf-8")
    (frame_root / "empty").mkdir()
    record = {
        "qry_inst": "Find a video that contains the following visual content:",
        "qry_text": "a red fade",
        "qry_video_path": "",
        "tgt_inst": "Understand the content of the provided video.",
        "tgt_text": [""],
        "tgt_video_path": ["vid1"],
    }
    broken = {**record, "tgt_video_path": ["empty"]}
    task = read_video_task(
        _write_jsonl(tmp_path / "v.jsonl", [record, broken]), frame_root, task_spec("MSR-VTT")
    )
    frames = task.candidates[0].video_frames
    assert frames is not None
    names = [path.name for path in frames]
    assert names == ["frame_1.jpg", "frame_2.jpg", "frame_10.jpg", "frame_11.jpg"]
    assert task.skipped == {"video frame folder missing or empty": 1}
    loaded = task.candidates[0].load_video_frames(count=2)
    assert loaded is not None
    reds = [int(np.asarray(image)[0, 0, 0]) for image in loaded]  # frame_1 is 20, frame_11 220
    assert reds == pytest.approx([20, 220], abs=3)
    assert Side("text only").load_video_frames() is None


def test_uniform_frame_sampling_spans_first_to_last() -> None:
    frames = [Path(f"{i}.jpg") for i in range(64)]
    picked = sample_uniform(frames, 8)
    assert picked[0].name == "0.jpg" and picked[-1].name == "63.jpg" and len(picked) == 8
    assert sample_uniform(frames[:3], 8) == frames[:3]


def _write_visdoc(task_dir: Path) -> None:
    for name in ("p1.png", "p2.png", "p3.png"):
        _write_image(task_dir / "pages" / name)
    _write_jsonl(
        task_dir / "corpus.jsonl",
        [
            {"_id": "d1", "image": "pages/p1.png"},
            {"_id": "d2", "image": "pages/p2.png"},
            {"_id": "d3", "image": "pages/p3.png"},
            {"_id": "d4", "text": "a text-only page"},
            {"_id": "d5", "image": "pages/missing.png"},
            {"_id": "d1", "image": "pages/p2.png"},
        ],
    )
    _write_jsonl(
        task_dir / "queries.jsonl",
        [
            {"_id": "q1", "text": "What was revenue in 2023?"},
            {"_id": "q2", "text": "Which figure shows emissions?"},
            {"_id": "q3", "text": "Only judged irrelevant"},
        ],
    )
    (task_dir / "qrels").mkdir()
    (task_dir / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        "q1\td2\t2\nq1\td3\t1\nq1\td1\t0\n"
        "q2\td4\t1\n"
        "q3\td1\t0\n"
        "q2\td5\t2\n"  # d5's page image is missing
        "q1 d1 broken\n",
        encoding="utf-8",
    )


def test_visdoc_reader_keeps_graded_relevance_and_scores_ndcg(tmp_path: Path) -> None:
    task_dir = tmp_path / "ViDoRe_docvqa"
    _write_visdoc(task_dir)
    task = read_visdoc_task(task_dir, task_spec("ViDoRe_docvqa"))
    assert [side.image.name if side.image else side.text for side in task.candidates] == [
        "p1.png", "p2.png", "p3.png", "a text-only page",
    ]  # fmt: skip
    assert [query.query_id for query in task.queries] == ["q1", "q2"]
    assert task.queries[0].relevance == {1: 2, 2: 1, 0: 0}
    assert task.queries[0].side.instruction == ""  # documents take the raw question
    assert task.skipped == {
        "image not found": 1,
        "duplicate corpus id": 1,
        "qrels row names an unknown query or document": 1,
        "malformed qrels line": 1,
        "query has no relevant document in qrels": 1,
    }
    # q1 ranks d3 (grade 1), d1 (0), d2 (2): DCG = 1 + 2/log2(4) = 2;
    #   IDCG = 2 + 1/log2(3) = 2.63093 -> 0.76019.  q2 ranks d4 first -> 1.0.  Mean 88.0095%.
    cand_vecs = np.eye(4)
    query_vecs = np.array([[0.5, 0.2, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    expected = 100 * (2 / (2 + 1 / math.log2(3)) + 1.0) / 2
    assert score_task(task, query_vecs, cand_vecs) == pytest.approx(expected)


def test_bad_image_records_are_skipped_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "images"
    _write_image(root / "ok.jpg")
    good = _cls_record("ok.jpg", ["cat", "dog"])
    records = _write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            good,
            "{not json",
            [1, 2, 3],
            {key: value for key, value in good.items() if key != "tgt_text"},
            _cls_record("gone.jpg", ["cat", "dog"]),
            {**good, "tgt_img_path": [""]},
            {**good, "tgt_text": []},
            {**good, "qry_text": 7},
            {**good, "qry_inst": "<|image_1|>", "qry_img_path": ""},
        ],
    )
    task = read_image_task(records, root, task_spec("ImageNet-1K"))
    assert len(task.queries) == 1
    assert task.skipped == {
        "invalid JSON": 1,
        "record is not a JSON object": 1,
        "missing field 'tgt_text'": 1,
        "image not found": 1,
        "tgt_text and candidate media lists differ in length": 1,
        "candidate lists are missing or empty": 1,
        "field 'qry_text' is not text": 1,
        "query has no text and no media": 1,
    }
    assert task.skip_summary().startswith("ImageNet-1K: skipped 8 (")


def test_missing_records_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        read_image_task(tmp_path / "absent.jsonl", tmp_path, task_spec("ImageNet-1K"))
    not_a_list = tmp_path / "records.json"
    not_a_list.write_text('{"qry_text": "x"}', encoding="utf-8")
    with pytest.raises(ValueError, match="no list of records"):
        read_image_task(not_a_list, tmp_path, task_spec("ImageNet-1K"))


def test_records_may_be_a_json_list(tmp_path: Path) -> None:
    records = tmp_path / "records.json"
    records.write_text(json.dumps([_cls_record("", ["cat", "dog"]), "junk"]), encoding="utf-8")
    task = read_image_task(records, tmp_path, task_spec("ImageNet-1K"))
    assert [query.query_id for query in task.queries] == ["item 0"]
    assert task.skipped == {"record is not a JSON object": 1}
