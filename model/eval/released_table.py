"""Every MMEB-V2 task as released: where its annotations live, which reader builds it, its prompts.

A task's scores need three things the catalogue (`model.eval.published`) does not say: where the
records come from (a hub dataset, or a file inside the unpacked media), which reader turns them
into queries and candidates, and the exact instruction texts of the authors' evaluation. This
table holds them as data; the readers (`image_tasks`, `video_tasks`, `visdoc_tasks`) hold the
per-layout logic.

Design decisions:
- Instructions are the authors' strings verbatim (their loaders write them in code, per task);
  a trailing space or a doubled one is kept where their string composition produces it.
- Image tasks take their instructions from the records (`qry_inst`, `tgt_inst`), so their rows
  here name only the reader. Which side uses `tgt_inst` is the reader's rule (see `image_tasks`).
- Hub ids are those of the authors' evaluation (`src/data/dataset_hf_path.py` and the dataset
  loaders of their fork of VLM2Vec). The benchmark's own repository later re-published some of
  them (ViDoSeek-page and MMLongBench-page with fixed page labels): record the revision you ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from model.eval.published import task_catalogue

Loader = Literal[
    "image_cls",  # image -> label text; candidates are the labels alone
    "image_qa",  # image + question -> answer text
    "image_i2t",  # image -> caption
    "image_t2i",  # text -> image (candidates with tgt_inst, and a caption where there is one)
    "image_i2i_vg",  # image (+ text) -> image (+ text): composed retrieval and grounding
    "video_ret",  # caption -> video, one hub row per video
    "video_cls",  # video -> label, the full label list is the pool
    "video_mc",  # video -> one of the row's own label choices (SmthSmthV2)
    "video_qa",  # video + question -> one of the row's answer options
    "moment",  # query (+ video or image) -> one of its own clips
    "vidore",  # BEIR page retrieval, no instructions, empty page text
    "visrag",  # BEIR page retrieval with VisRAG's instructions
]

IMAGE_REPO = "ziyjiang/MMEB_Test_Instruct"
VIDEO_TARGET = "Understand the content of the provided video."
VIDEO_QA_PROMPT = (
    "Given a video and a question, select the most accurate answer from the provided candidates. "
    "Return only the exact text of your chosen answer. Question: "
)
VISRAG_QUERY = "Find a document image that matches the given query:"
VISRAG_TARGET = "Understand the content of the provided document image."
VIDEO_LABELS_JSON = Path(__file__).with_name("released_video_labels.json")


@dataclass(frozen=True)
class HubSource:
    """A hub dataset: one config (or several, concatenated in order) and one split."""

    repo: str
    configs: tuple[str | None, ...]
    split: str


@dataclass(frozen=True)
class ReleasedTask:
    """How one MMEB-V2 task is read in its released layout."""

    name: str
    loader: Loader
    source: HubSource | None  # None: the records ship inside the media (`media_file`)
    media_file: str = ""  # records inside the media root (ActivityNetQA, moment tasks)
    frames: str = ""  # video: frame folders under the media root, one per video
    query_instruction: str = ""
    target_instruction: str = ""
    language: str | None = None  # ViDoRe v2 English subsets keep only queries in this language
    limit: int | None = None  # the evaluation keeps only the first N rows (SmthSmthV2: 1000)


def _image(name: str, loader: Loader) -> ReleasedTask:
    return ReleasedTask(name, loader, HubSource(IMAGE_REPO, (name,), "test"))


IMAGE_LOADERS: dict[Loader, tuple[str, ...]] = {
    "image_cls": (
        "ImageNet-1K", "N24News", "HatefulMemes", "VOC2007", "SUN397", "Place365", "ImageNet-A",
        "ImageNet-R", "ObjectNet", "Country211",
    ),
    "image_qa": (
        "OK-VQA", "A-OKVQA", "DocVQA", "InfographicsVQA", "ChartQA", "Visual7W", "ScienceQA",
        "VizWiz", "GQA", "TextVQA",
    ),
    "image_i2t": ("MSCOCO_i2t", "VisualNews_i2t"),
    "image_t2i": ("VisDial", "MSCOCO_t2i", "VisualNews_t2i", "WebQA", "EDIS", "Wiki-SS-NQ"),
    "image_i2i_vg": (
        "CIRR", "NIGHTS", "OVEN", "FashionIQ", "MSCOCO", "RefCOCO", "RefCOCO-Matching",
        "Visual7W-Pointing",
    ),
}  # fmt: skip


def _video_ret(name: str, repo: str, config: str | None, split: str, query: str) -> ReleasedTask:
    source = HubSource(repo, (config,), split)
    frames = f"video-tasks/frames/video_ret/{name}"
    return ReleasedTask(name, "video_ret", source, frames=frames, query_instruction=query,
                        target_instruction=VIDEO_TARGET)  # fmt: skip


def _video_cls(name: str, hub_name: str, folder: str, loader: Loader = "video_cls") -> ReleasedTask:
    source = HubSource(f"VLM2Vec/{hub_name}", (None,), "test")
    instruction = video_class_instruction(name)
    limit = 1000 if loader == "video_mc" else None
    return ReleasedTask(name, loader, source, frames=f"video-tasks/frames/video_cls/{folder}",
                        query_instruction=instruction, limit=limit)  # fmt: skip


def _video_qa(name: str, source: HubSource | None, media_file: str = "") -> ReleasedTask:
    frames = f"video-tasks/frames/video_qa/{name}"
    return ReleasedTask(
        name, "video_qa", source, media_file=media_file, frames=frames, query_instruction=VIDEO_QA_PROMPT
    )


MVBENCH_SUBSETS = (
    "episodic_reasoning", "action_sequence", "action_prediction", "action_antonym",
    "fine_grained_action", "unexpected_action", "object_existence", "object_interaction",
    "object_shuffle", "moving_direction", "action_localization", "scene_transition", "action_count",
    "moving_count", "moving_attribute", "state_change", "fine_grained_pose", "character_order",
    "egocentric_navigation", "counterfactual_inference",
)  # fmt: skip


def _moment(name: str, source: HubSource | None, media_file: str) -> ReleasedTask:
    frames = f"video-tasks/frames/video_mret/{name}"
    return ReleasedTask(name, "moment", source, media_file=media_file, frames=frames)


def _video_tasks() -> list[ReleasedTask]:
    return [
        _video_cls("K700", "Kinetics-700", "K700"),
        _video_cls("SmthSmthV2", "SmthSmthV2", "SSv2", loader="video_mc"),
        _video_cls("HMDB51", "HMDB51", "HMDB51"),
        _video_cls("UCF101", "UCF101", "UCF101"),
        _video_cls("Breakfast", "Breakfast", "Breakfast"),
        _video_qa("MVBench", HubSource("OpenGVLab/MVBench", MVBENCH_SUBSETS, "train")),
        _video_qa("Video-MME", HubSource("lmms-lab/Video-MME", (None,), "test")),
        _video_qa("NExTQA", HubSource("lmms-lab/NExTQA", ("MC",), "test")),
        _video_qa("EgoSchema", HubSource("lmms-lab/egoschema", ("Subset",), "test")),
        _video_qa("ActivityNetQA", None, media_file="video-tasks/data/activitynetqa.jsonl"),
        _video_ret("DiDeMo", "friedrichor/DiDeMo", None, "test",
                   "Find a video that includes the following described scenes:"),
        _video_ret("MSR-VTT", "friedrichor/MSR-VTT", "test_1k", "test",
                   "Find a video that contains the following visual content:"),
        _video_ret("MSVD", "friedrichor/MSVD", None, "test",
                   "Find the video snippet that corresponds to the given summary:"),
        _video_ret("VATEX", "lmms-lab/VATEX", None, "test",
                   "Select a video that fits the description provided:"),
        _video_ret("YouCook2", "lmms-lab/YouCook2", None, "val",
                   "Find a video that demonstrates the following action while making a recipe:"),
        _moment("QVHighlight", HubSource("VLM2Vec/QVHighlight", (None,), "test"), ""),
        _moment("Charades-STA", None, "video-tasks/data/charades_sta.jsonl"),
        _moment("MomentSeeker", None, "video-tasks/data/momentseeker.jsonl"),
    ]  # fmt: skip


VISDOC_REPOS = {
    "ViDoRe_arxivqa": ("vidore/arxivqa_test_subsampled_beir", None, "test"),
    "ViDoRe_docvqa": ("vidore/docvqa_test_subsampled_beir", None, "test"),
    "ViDoRe_infovqa": ("vidore/infovqa_test_subsampled_beir", None, "test"),
    "ViDoRe_tabfquad": ("vidore/tabfquad_test_subsampled_beir", None, "test"),
    "ViDoRe_tatdqa": ("vidore/tatdqa_test_beir", None, "test"),
    "ViDoRe_shiftproject": ("vidore/shiftproject_test_beir", None, "test"),
    "ViDoRe_syntheticDocQA_artificial_intelligence": (
        "vidore/syntheticDocQA_artificial_intelligence_test_beir", None, "test"),
    "ViDoRe_syntheticDocQA_energy": ("vidore/syntheticDocQA_energy_test_beir", None, "test"),
    "ViDoRe_syntheticDocQA_government_reports": (
        "vidore/syntheticDocQA_government_reports_test_beir", None, "test"),
    "ViDoRe_syntheticDocQA_healthcare_industry": (
        "vidore/syntheticDocQA_healthcare_industry_test_beir", None, "test"),
    "ViDoRe_esg_reports_human_labeled_v2": ("vidore/esg_reports_human_labeled_v2", None, "test"),
    "ViDoRe_biomedical_lectures_v2_multilingual": ("vidore/biomedical_lectures_v2", None, "test"),
    "ViDoRe_economics_reports_v2_multilingual": ("vidore/economics_reports_v2", None, "test"),
    "ViDoRe_esg_reports_v2_multilingual": ("vidore/esg_reports_v2", None, "test"),
    "VisRAG_ArxivQA": ("openbmb/VisRAG-Ret-Test-ArxivQA", None, "train"),
    "VisRAG_ChartQA": ("openbmb/VisRAG-Ret-Test-ChartQA", None, "train"),
    "VisRAG_MP-DocVQA": ("openbmb/VisRAG-Ret-Test-MP-DocVQA", None, "train"),
    "VisRAG_SlideVQA": ("openbmb/VisRAG-Ret-Test-SlideVQA", None, "train"),
    "VisRAG_InfoVQA": ("openbmb/VisRAG-Ret-Test-InfoVQA", None, "train"),
    "VisRAG_PlotQA": ("openbmb/VisRAG-Ret-Test-PlotQA", None, "train"),
    "ViDoSeek-page": ("VLM2Vec/ViDoSeek-page", None, "test"),
    "ViDoSeek-doc": ("VLM2Vec/ViDoSeek", None, "test"),
    "MMLongBench-page": ("VLM2Vec/MMLongBench", None, "test"),
    "MMLongBench-doc": ("VLM2Vec/MMLongBench-doc", None, "test"),
}  # fmt: skip


def _visdoc(name: str, repo: str, language: str | None, split: str) -> ReleasedTask:
    # A BEIR dataset's records are three configs; `configs` is filled in by the reader.
    source = HubSource(repo, ("queries", "qrels", "corpus"), split)
    if name.startswith("VisRAG_"):
        return ReleasedTask(name, "visrag", source, query_instruction=VISRAG_QUERY,
                            target_instruction=VISRAG_TARGET)  # fmt: skip
    return ReleasedTask(name, "vidore", source, language=language)


@cache
def released_tasks() -> dict[str, ReleasedTask]:
    """Every catalogue task's released layout, keyed by its catalogue name, in catalogue order."""
    rows = [_image(name, loader) for loader, names in IMAGE_LOADERS.items() for name in names]
    rows += _video_tasks()
    rows += [_visdoc(name, *entry) for name, entry in VISDOC_REPOS.items()]
    by_name = {row.name: row for row in rows}
    return {spec.name: by_name[spec.name] for spec in task_catalogue()}


def released_task(name: str) -> ReleasedTask:
    """One task's released layout; a name outside the catalogue is a KeyError."""
    try:
        return released_tasks()[name]
    except KeyError:
        raise KeyError(f"{name!r} is not an MMEB-V2 task: only catalogue tasks are released") from None


@cache
def _video_labels() -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads(VIDEO_LABELS_JSON.read_text(encoding="utf-8"))
    return data


def video_class_labels(name: str) -> tuple[str, ...]:
    """The full label list of a video classification task, in the benchmark's order."""
    labels = _video_labels()["labels"][name]
    assert isinstance(labels, list)
    return tuple(labels)


def video_class_instruction(name: str) -> str:
    """The query instruction of a video classification task, verbatim."""
    instruction = _video_labels()["instructions"][name]
    assert isinstance(instruction, str)
    return instruction
