"""MMEB-V2 as released: the task table, the readers of each family, fetching, the authors' NDCG.

No model here: these tests read the synthetic tasks of `released_benchmark` (exactly the
released layouts) and check what a researcher would compare against the authors' loaders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.cli import main as ume
from model.eval.cache import EvalDataError
from model.eval.metrics import authors_ndcg_at_k, ndcg_at_k
from model.eval.mmeb_data import VIDEO_FRAMES_PER_INPUT, list_frames, sample_uniform
from model.eval.published import task_catalogue, task_spec
from model.eval.released_annotations import AnnotationsMissing, download, files_to_fetch
from model.eval.released_load import ReleasedPaths, load_released, missing_annotations
from model.eval.released_table import (
    IMAGE_REPO,
    VIDEO_TARGET,
    VISRAG_QUERY,
    VISRAG_TARGET,
    HubSource,
    released_task,
    released_tasks,
    video_class_labels,
)
from model.eval.runner import select_run, side_items
from model.eval.settings import MmebConfig
from tests.model.released_benchmark import ALL_TASKS, CLS_FRAMES, RET_FRAMES, png, write_released

FAMILY_LOADERS = {
    "I-CLS": {"image_cls"}, "I-QA": {"image_qa"}, "I-RET": {"image_i2t", "image_t2i", "image_i2i_vg"},
    "I-GD": {"image_i2i_vg"}, "V-CLS": {"video_cls", "video_mc"}, "V-QA": {"video_qa"},
    "V-RET": {"video_ret"}, "V-MRET": {"moment"}, "VDRv1": {"vidore"}, "VDRv2": {"vidore"},
    "VisRAG": {"visrag"}, "OOD": {"vidore"},
}  # fmt: skip


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> ReleasedPaths:
    root = tmp_path_factory.mktemp("released")
    media, annotations = write_released(root)
    return ReleasedPaths(media, annotations, root / "out")


@pytest.fixture(autouse=True)
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own hub cache must not decide what these tests find."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))


# --- the table ---------------------------------------------------------------------------


def test_every_catalogue_task_is_mapped_to_a_reader_of_its_family() -> None:
    table = released_tasks()
    assert list(table) == [spec.name for spec in task_catalogue()] and len(table) == 78
    for spec in task_catalogue():
        row = table[spec.name]
        assert row.loader in FAMILY_LOADERS[spec.meta_task], spec.name
        assert row.source is not None or row.media_file, spec.name
        if spec.modality == "video":
            assert row.frames.startswith("video-tasks/frames/"), spec.name


def test_image_family_reads_the_instruct_parquet_of_each_task() -> None:
    for name in ("ImageNet-1K", "OK-VQA", "MSCOCO_i2t", "VisDial", "CIRR", "Visual7W-Pointing"):
        assert released_task(name).source == HubSource(IMAGE_REPO, (name,), "test")


def test_video_family_names_the_authors_hub_datasets_prompts_and_pools() -> None:
    assert released_task("MSR-VTT").source == HubSource("friedrichor/MSR-VTT", ("test_1k",), "test")
    assert released_task("YouCook2").source == HubSource("lmms-lab/YouCook2", (None,), "val")
    k700 = released_task("K700")
    assert k700.source == HubSource("VLM2Vec/Kinetics-700", (None,), "test")
    assert k700.query_instruction == "Recognize the category of the video content."
    assert len(video_class_labels("K700")) == 700 and len(video_class_labels("SmthSmthV2")) == 174
    assert [len(video_class_labels(n)) for n in ("UCF101", "HMDB51", "Breakfast")] == [101, 51, 10]
    assert released_task("SmthSmthV2").limit == 1000 and task_spec("SmthSmthV2").scope == "local"
    assert len(released_task("MVBench").source.configs) == 20  # type: ignore[union-attr]
    assert released_task("ActivityNetQA").media_file == "video-tasks/data/activitynetqa.jsonl"


def test_visdoc_family_reads_beir_configs_with_the_authors_prompts() -> None:
    vidore = released_task("ViDoRe_docvqa")
    assert vidore.source == HubSource(
        "vidore/docvqa_test_subsampled_beir", ("queries", "qrels", "corpus"), "test"
    )
    assert (vidore.query_instruction, vidore.target_instruction) == ("", "")
    visrag = released_task("VisRAG_PlotQA")
    assert visrag.source is not None and visrag.source.split == "train"
    assert (visrag.query_instruction, visrag.target_instruction) == (VISRAG_QUERY, VISRAG_TARGET)


# --- the readers ----------------------------------------------------------------------------


def test_image_classification_candidates_are_the_labels_alone(released: ReleasedPaths) -> None:
    task = load_released(task_spec("ImageNet-1K"), released)
    assert len(task.queries) == 3 and [c.prompt for c in task.candidates] == ["red", "green", "blue"]
    query = task.queries[1]
    assert query.side.prompt == "Represent the given image for classification"
    assert query.side.image == released.media_root / "image-tasks/MMEB/ImageNet-1K/green.png"
    assert query.candidate_ids is not None and query.relevant_ids == {query.candidate_ids[0]}
    assert task.candidates[query.candidate_ids[0]].text == "green"


def test_text_to_image_candidates_carry_the_target_instruction(released: ReleasedPaths) -> None:
    task = load_released(task_spec("MSCOCO_t2i"), released)
    query = task.queries[0]
    assert query.side.image is None
    assert query.side.prompt == "Find me an everyday image that matches the given caption: a red square"
    assert len(task.candidates) == 3  # the same image in two lists is one candidate
    assert {c.prompt for c in task.candidates} == {"Represent the given image."}
    assert all(c.image is not None and c.image.is_file() for c in task.candidates)


def test_video_retrieval_samples_8_frames_by_linspace_from_the_frames_folder(released: ReleasedPaths) -> None:
    task = load_released(task_spec("MSR-VTT"), released)
    assert len(task.queries) == 3 and len(task.candidates) == 3
    assert (
        task.queries[0].side.prompt == "Find a video that contains the following visual content: a red clip"
    )
    video = task.candidates[0]
    assert video.prompt == VIDEO_TARGET and video.video_frames is not None
    assert len(video.video_frames) == RET_FRAMES
    assert video.video_frames[0].parent.parent.name == "frames"
    picked = [int(p.stem.split("_")[1]) for p in sample_uniform(video.video_frames, VIDEO_FRAMES_PER_INPUT)]
    assert picked == [1, 2, 4, 5, 7, 8, 10, 12]  # np.linspace(0, 11, 8, dtype=int) + 1


def test_video_classification_ranks_against_the_full_label_list(released: ReleasedPaths) -> None:
    task = load_released(task_spec("HMDB51"), released)
    labels = [c.text for c in task.candidates]
    assert labels[:3] == ["brush_hair", "wave", "clap"]  # labels seen in the rows come first
    assert sorted(labels) == sorted(video_class_labels("HMDB51"))
    assert (
        task.queries[0].side.prompt
        == "What actions or objects interactions are the person in the video doing?"
    )
    assert len(task.queries[0].side.video_frames or []) == CLS_FRAMES
    assert task.queries[1].relevant_ids == {labels.index("wave")}


def test_video_qa_files_named_by_the_dataset_card_and_options_as_the_authors_strip_them(
    released: ReleasedPaths,
) -> None:
    task = load_released(task_spec("Video-MME"), released)
    query = task.queries[0]
    assert query.side.prompt == (
        "Given a video and a question, select the most accurate answer from the provided candidates. "
        "Return only the exact text of your chosen answer. Question:  What colour fills the screen?\n"
        "A. Blue.\nB. Red.\nC. Green.\nD. Black."
    )
    assert query.candidate_ids is not None
    assert [task.candidates[i].prompt for i in query.candidate_ids] == ["Blue", "Red", "Green", "Black"]
    assert query.relevant_ids == {query.candidate_ids[1]}


@pytest.mark.parametrize("name", ["QVHighlight", "Charades-STA"])
def test_moment_retrieval_ranks_each_querys_own_clips(released: ReleasedPaths, name: str) -> None:
    task = load_released(task_spec(name), released)
    query = task.queries[1]
    assert query.side.prompt == (
        "Find the clip that corresponds to the described scene in the given video: the screen turns blue"
    )
    assert query.side.video_frames is not None and query.side.video_frames[0].parent.name == "query"
    assert query.candidate_ids is not None and len(query.candidate_ids) == 3
    clips = [task.candidates[i] for i in query.candidate_ids]
    assert {clip.prompt for clip in clips} == {"Understand the content of the provided video."}
    (positive,) = query.relevant_ids
    assert task.candidates[positive].video_frames[0].parent.name == "positive_0"  # type: ignore[index]


def test_momentseeker_queries_by_text_or_image_and_clips_as_images_or_frames(released: ReleasedPaths) -> None:
    task = load_released(task_spec("MomentSeeker"), released)
    text_only, with_image = task.queries
    assert text_only.side.prompt == "Find the clip that corresponds to the given text: the red moment"
    assert text_only.side.image is None and text_only.side.video_frames is None
    assert (
        with_image.side.prompt
        == "Select the video clip that aligns with the given text and image: like this picture"
    )
    assert with_image.side.image is not None and with_image.side.image.name == "q1.jpg"
    assert with_image.candidate_ids is not None and len(with_image.relevant_ids) == 2
    lengths = [len(task.candidates[i].video_frames or []) for i in with_image.candidate_ids]
    assert lengths == [3, 1, 1]  # a frame folder, then clips given as one image
    assert {c.prompt for c in task.candidates} == {"Understand the content of the provided video clip."}


def test_vidore_pages_have_an_empty_text_and_graded_int_ids(released: ReleasedPaths) -> None:
    task = load_released(task_spec("ViDoRe_docvqa"), released)
    assert [page.prompt for page in task.candidates] == ["", "", "", ""]
    assert [item.task_text for item in side_items(task, "candidate")] == ["", "", "", ""]
    assert task.candidates[0].image is not None and task.candidates[0].image.read_bytes() == png(
        "red", (48, 64)
    )
    first, second = task.queries
    assert first.side.prompt == "the red page"
    assert first.qrels == ((3, 12, 1), (0, 10, 2))  # qrels order, pool index of each page
    assert second.relevance == {2: 1, 1: 3}  # grade 0 is not relevant


def test_visrag_string_ids_prompts_and_unjudged_queries(released: ReleasedPaths) -> None:
    task = load_released(task_spec("VisRAG_ArxivQA"), released)
    assert [q.query_id for q in task.queries] == ["q-a", "q-b"]
    assert task.skipped == {"query has no relevant page in qrels": 1}
    assert task.queries[1].side.prompt == f"{VISRAG_QUERY} Which figure is blue?"
    assert task.queries[1].qrels == ((2, "arxiv_0003.png", 1),)
    assert {page.prompt for page in task.candidates} == {VISRAG_TARGET}


# --- finding and fetching the annotations ---------------------------------------------------


def test_missing_annotations_say_how_to_get_them(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    lines = missing_annotations(["ImageNet-1K", "HMDB51"], tmp_path / "empty")
    assert len(lines) == 2 and all("ume eval mmeb download" in line for line in lines)
    config = MmebConfig(None, tmp_path / "out", tasks="ImageNet-1K", media_root=tmp_path / "media")
    with pytest.raises(EvalDataError, match="huggingface-cli download ziyjiang/MMEB_Test_Instruct"):
        select_run(config, say=lambda line: None)


def test_all_runs_the_tasks_whose_annotations_are_here(released: ReleasedPaths) -> None:
    said: list[str] = []
    config = MmebConfig(
        None, Path("unused"), media_root=released.media_root, annotations=released.annotations
    )
    names = [spec.name for spec in select_run(config, said.append)]
    assert names == list(ALL_TASKS)  # in catalogue order
    assert "annotation source(s) not on this machine" in said[0]


def test_download_fetches_exactly_the_files_of_the_chosen_configs(tmp_path: Path) -> None:
    repo_files = [
        "README.md", "ImageNet-1K/test-00000-of-00001.parquet", "N24News/test-00000-of-00001.parquet",
        "ImageNet-1K/test-00000-of-00002.parquet", "corpus/test-00000-of-00003.parquet",
        "corpus/test-00001-of-00003.parquet", "queries/test-00000-of-00001.parquet", "qrels/test-0.parquet",
    ]  # fmt: skip
    image = HubSource(IMAGE_REPO, ("ImageNet-1K",), "test")
    assert files_to_fetch(repo_files, None, image) == [
        "ImageNet-1K/test-00000-of-00001.parquet", "ImageNet-1K/test-00000-of-00002.parquet",
    ]  # fmt: skip
    beir = HubSource("vidore/x", ("queries", "qrels", "corpus"), "test")
    assert len(files_to_fetch(repo_files, None, beir)) == 4
    card = tmp_path / "README.md"
    card.write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: test\n    path: N24News/*\n---\n"
    )
    assert files_to_fetch(repo_files, card, HubSource("a/b", (None,), "test")) == [
        "N24News/test-00000-of-00001.parquet"
    ]


def test_download_offline_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(AnnotationsMissing, match="cannot fetch ziyjiang/MMEB_Test_Instruct from the hub"):
        download(HubSource(IMAGE_REPO, ("ImageNet-1K",), "test"), tmp_path, say=lambda line: None)


def test_cli_names_what_is_missing_before_loading_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "media").mkdir()
    args = ["eval", "mmeb", "--media-root", str(tmp_path / "media"), "--tasks", "EDIS", "--model", "nowhere"]
    assert ume(args) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "ume eval mmeb download" in error
    assert ume(["eval", "mmeb", "--media-root", str(tmp_path / "media"), "--tasks", "MomentSeeker"]) == 2
    assert "momentseeker.jsonl not found" in capsys.readouterr().err


# --- the authors' NDCG@5 --------------------------------------------------------------------


def test_authors_ndcg_pairs_grades_with_set_reordered_ids() -> None:
    # list(set([5, 1])) is [1, 5]: their grades (1 then 3) land on ids 1 and 5, the wrong way round.
    qrels = ((0, 5, 1), (1, 1, 3))
    ranked = [1, 0]  # id 1 (grade 3) first: the ideal order
    assert ndcg_at_k(ranked, {0: 1, 1: 3}) == pytest.approx(1.0)
    swapped = (1 + 3 / np.log2(3)) / (3 + 1 / np.log2(3))
    assert authors_ndcg_at_k(ranked, qrels) == pytest.approx(swapped)
    assert authors_ndcg_at_k(ranked, ((0, 5, 1), (1, 1, 1))) == pytest.approx(ndcg_at_k(ranked, {0: 1, 1: 1}))


def test_frames_sort_as_the_benchmark_lists_them(tmp_path: Path) -> None:
    for name in ("Frame_10.jpg", "frame_2.jpg", "frame_1.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_frames(tmp_path)] == ["frame_1.jpg", "frame_2.jpg", "Frame_10.jpg"]


def test_cli_prints_the_task_table_and_fails_to_download_offline_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ume(["eval", "mmeb", "tasks"]) == 0
    table = capsys.readouterr().out
    assert len([line for line in table.splitlines() if line.startswith("| ") and "---" not in line]) == 79
    assert "| MSR-VTT | V-RET | video_ret | `friedrichor/MSR-VTT` [test_1k] split test |" in table
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert ume(["eval", "mmeb", "download", "--tasks", "ImageNet-1K", "--annotations", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert "cannot fetch ziyjiang/MMEB_Test_Instruct from the hub" in error[-1]
