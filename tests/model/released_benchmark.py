"""Small MMEB-V2 tasks written exactly as the benchmark is released, for the evaluator's tests.

`write_released(root)` lays out, under `root/media` and `root/annotations`:
- image tasks: `ziyjiang/MMEB_Test_Instruct/<task>/test-00000-of-00001.parquet` and the images
  under `media/image-tasks/MMEB/` (as `mmeb_v1.tar.gz` unpacks);
- video tasks: one hub dataset per task (MSR-VTT with its `test_1k` config, HMDB51 with no
  config, Video-MME whose dataset card names its files), frames as
  `media/video-tasks/frames/<family>/<task>/[frames/]<video id>/frame_%04d.jpg`, 12 or 10 per
  video (more than the 8 sampled);
- moment retrieval: per video a `query/` frame folder beside one folder per clip (QVHighlight
  from the hub, Charades-STA from the media's JSONL under the `Charades_STA` spelling), and
  MomentSeeker's JSONL with clips given as one image (`frame_path`) or a frame folder;
- visual documents: BEIR configs `queries`, `qrels`, `corpus` with the page images embedded,
  integer ids and graded qrels out of order (ViDoRe), string ids (VisRAG, split `train`), a
  query with no relevant page.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
IMAGE_TASKS = ("ImageNet-1K", "MSCOCO_t2i")
VIDEO_TASKS = (
    "HMDB51",
    "Video-MME",
    "MSR-VTT",
    "QVHighlight",
    "Charades-STA",
    "MomentSeeker",
)  # catalogue order
VISDOC_TASKS = ("ViDoRe_docvqa", "VisRAG_ArxivQA")
ALL_TASKS = (*IMAGE_TASKS, *VIDEO_TASKS, *VISDOC_TASKS)
RET_FRAMES = 12  # MSR-VTT videos: frame_0001 … frame_0012
CLS_FRAMES = 10
VIDEO_MME_CARD = """---
configs:
- config_name: default
  data_files:
  - split: test
    path: videomme/test-*.parquet
---
# Video-MME
"""


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def png(colour: str, size: tuple[int, int] = (40, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, COLOURS[colour]).save(buffer, format="PNG")
    return buffer.getvalue()


def save_image(path: Path, colour: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png(colour))


def frames(folder: Path, count: int, colour: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(1, count + 1):
        shade = tuple(min(255, c + 3 * number) for c in COLOURS[colour])
        Image.new("RGB", (32, 32), shade).save(folder / f"frame_{number:04d}.jpg")


def _image_tasks(media: Path, annotations: Path) -> None:
    images = media / "image-tasks" / "MMEB"
    for colour in COLOURS:
        save_image(images / "ImageNet-1K" / f"{colour}.png", colour)
        save_image(images / "MSCOCO_t2i" / f"{colour}.jpg", colour)
    labels = list(COLOURS)
    classification = [
        {
            "qry_inst": "<|image_1|> Represent the given image for classification\n",
            "qry_text": "",
            "qry_img_path": f"ImageNet-1K/{colour}.png",
            "tgt_inst": "Represent the class label: ",
            "tgt_text": [colour, *[label for label in labels if label != colour]],
            "tgt_img_path": ["", "", ""],
        }
        for colour in labels
    ]
    repo = annotations / "ziyjiang" / "MMEB_Test_Instruct"
    write_parquet(repo / "ImageNet-1K" / "test-00000-of-00001.parquet", classification)
    retrieval = [
        {
            "qry_inst": "Find me an everyday image that matches the given caption:",
            "qry_text": f"a {colour} square",
            "qry_img_path": "",
            "tgt_inst": "<|image_1|>\nRepresent the given image.\n",
            "tgt_text": ["", ""],
            "tgt_img_path": [f"MSCOCO_t2i/{colour}.jpg", f"MSCOCO_t2i/{other}.jpg"],
        }
        for colour, other in zip(labels, labels[1:] + labels[:1], strict=True)
    ]
    write_parquet(repo / "MSCOCO_t2i" / "test-00000-of-00001.parquet", retrieval)


def _video_tasks(media: Path, annotations: Path) -> None:
    frame_root = media / "video-tasks" / "frames"
    videos = {"video7020": "red", "video7021": "green", "video7022": "blue"}
    for video_id, colour in videos.items():
        frames(frame_root / "video_ret" / "MSR-VTT" / "frames" / video_id, RET_FRAMES, colour)
    rows = [{"video_id": v, "video": f"{v}.mp4", "caption": f"a {c} clip"} for v, c in videos.items()]
    write_parquet(annotations / "friedrichor" / "MSR-VTT" / "test_1k" / "test-00000-of-00001.parquet", rows)
    actions = {"brush_hair_1": "brush_hair", "wave_3": "wave", "clap_2": "clap"}
    for (video_id, _), colour in zip(actions.items(), COLOURS, strict=True):
        frames(frame_root / "video_cls" / "HMDB51" / video_id, CLS_FRAMES, colour)
    rows = [{"video_id": video_id, "pos_text": label} for video_id, label in actions.items()]
    write_parquet(annotations / "VLM2Vec" / "HMDB51" / "data" / "test-00000-of-00001.parquet", rows)
    for video_id, colour in (("abc123", "red"), ("def456", "blue")):
        frames(frame_root / "video_qa" / "Video-MME" / video_id, CLS_FRAMES, colour)
    qa_rows: list[dict[str, Any]] = [
        {"question": "What colour fills the screen?", "videoID": "abc123", "answer": "B",
         "options": ["A. Blue.", "B. Red.", "C. Green.", "D. Black."]},
        {"question": "Which colour is shown?", "videoID": "def456", "answer": "A",
         "options": ["A. Blue.", "B. Red.", "C. Green.", "D. White."]},
    ]  # fmt: skip
    video_mme = annotations / "lmms-lab" / "Video-MME"
    write_parquet(video_mme / "videomme" / "test-00000-of-00001.parquet", qa_rows)
    (video_mme / "README.md").write_text(VIDEO_MME_CARD, encoding="utf-8")


def _moment_tasks(media: Path, annotations: Path) -> None:
    mret = media / "video-tasks" / "frames" / "video_mret"
    rows = [{"query": "a red ball rolls", "video_path": "videos/vid_a.mp4"},
            {"query": "the screen turns blue", "video_path": "videos/vid_b.mp4"}]  # fmt: skip
    for folder in ("QVHighlight", "Charades_STA"):
        for row, positive in zip(rows, ("red", "blue"), strict=True):
            video = mret / folder / Path(row["video_path"]).stem
            frames(video / "query", CLS_FRAMES, positive)
            frames(video / "positive_0", 4, positive)
            for number, colour in enumerate(c for c in COLOURS if c != positive):
                frames(video / f"negative_{number}", 4, colour)
    write_parquet(annotations / "VLM2Vec" / "QVHighlight" / "data" / "test-00000-of-00001.parquet", rows)
    data = media / "video-tasks" / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "charades_sta.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    seeker = mret / "MomentSeeker"
    for colour in COLOURS:
        save_image(seeker / "clips" / f"{colour}.jpg", colour)
        frames(seeker / "video_frames" / f"movies_{colour}_clip", 3, colour)
    save_image(seeker / "query_images" / "q1.jpg", "green")
    seeker_rows = [
        {"query": "the red moment", "input_frames": "",
         "positive_frames": [{"frame_path": "clips/red.jpg"}],
         "negative_frames": [{"frame_path": "clips/green.jpg"}, {"output_path": "movies/blue_clip.mp4"}]},
        {"query": "like this picture", "input_frames": "images/q1.jpg",
         "positive_frames": [{"output_path": "movies/green_clip.mp4"}, {"frame_path": "clips/green.jpg"}],
         "negative_frames": [{"frame_path": "clips/red.jpg"}]},
    ]  # fmt: skip
    (data / "momentseeker.jsonl").write_text("\n".join(json.dumps(row) for row in seeker_rows) + "\n")


def _beir(repo: Path, split: str, queries: list[dict], qrels: list[dict], corpus: list[dict]) -> None:
    for config, rows in (("queries", queries), ("qrels", qrels), ("corpus", corpus)):
        write_parquet(repo / config / f"{split}-00000-of-00001.parquet", rows)


def _visdoc_tasks(annotations: Path) -> None:
    pages = [(10, "red"), (3, "green"), (7, "blue"), (12, "red")]
    corpus = [{"corpus-id": i, "image": {"bytes": png(c, (48, 64)), "path": f"{i}.png"}} for i, c in pages]
    queries: list[dict[str, Any]] = [
        {"query-id": 1, "query": "the red page"},
        {"query-id": 2, "query": "the green page"},
    ]
    qrels: list[dict[str, Any]] = [  # graded, neither sorted by grade nor by id
        {"query-id": 1, "corpus-id": 12, "score": 1},
        {"query-id": 1, "corpus-id": 10, "score": 2},
        {"query-id": 2, "corpus-id": 7, "score": 1},
        {"query-id": 2, "corpus-id": 3, "score": 3},
        {"query-id": 2, "corpus-id": 10, "score": 0},
    ]
    _beir(annotations / "vidore" / "docvqa_test_subsampled_beir", "test", queries, qrels, corpus)
    names = ["arxiv_0001.png", "arxiv_0002.png", "arxiv_0003.png"]
    corpus = [
        {"corpus-id": n, "image": {"bytes": png(c, (64, 48)), "path": n}}
        for n, c in zip(names, COLOURS, strict=True)
    ]
    queries = [
        {"query-id": "q-a", "query": "Which figure is red?"},
        {"query-id": "q-b", "query": "Which figure is blue?"},
        {"query-id": "q-none", "query": "A question nobody judged"},
    ]
    judged: list[dict[str, Any]] = [
        {"query-id": "q-a", "corpus-id": names[0], "score": 1},
        {"query-id": "q-b", "corpus-id": names[2], "score": 1},
    ]
    _beir(annotations / "openbmb" / "VisRAG-Ret-Test-ArxivQA", "train", queries, judged, corpus)


def write_released(root: Path) -> tuple[Path, Path]:
    """Write every synthetic task; returns (media root, annotations folder)."""
    media, annotations = root / "media", root / "annotations"
    _image_tasks(media, annotations)
    _video_tasks(media, annotations)
    _moment_tasks(media, annotations)
    _visdoc_tasks(annotations)
    return media, annotations
