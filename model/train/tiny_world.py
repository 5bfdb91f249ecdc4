"""The tiny world (model/world) as training data, in the released SFT and RL formats.

Why: the method's claims (both embeddings retrieve, generations keep the format) need a
training set whose answers we know. Three datasets, each a real kind of file `ume index` reads:
- `tiny_shapes`: PNG and JPEG images of shape scenes, queried by caption; the held-out split is
  200 distinct scenes rendered afresh, so retrieval among them is a 200-way choice;
- `tiny_videos`: MP4 clips of moving shapes, one motion per indexer segment, queried by caption;
- `tiny_pages`: PDF documents of word pages, queried by a question about their words.
Clips and PDFs are read back through the indexer's loaders (`model.world.files`) and what the
model would see (the sampled frames, the rendered pages) is saved as PNG beside them: the
records point at those, so the trainer's format (frame lists, page images) stays as released
while its pixels are the indexer's. Targets are templated reasoning and a short summary in the
`<think>…</think><answer>…<gen_emb>` shape; queries get their own templated reasoning; text-only
queries keep the `<image>` tag with no image, which readers must strip.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from model.prompts import DOCUMENT_TASKS, INSTRUCTION, QUERY_TASKS, QUERY_VIDEO_TASK, render_completion
from model.world.files import SEGMENTS_PER_CLIP, clip_segments, pdf_pages, write_clip, write_image, write_pdf
from model.world.scenes import ALL_MOTIONS, ALL_PAGES, ALL_SCENES, Motion, Page, Scene, distinct_pages, words

HELD_OUT = 200
HELD_OUT_MOTIONS = 48
HELD_OUT_PAGES = 40
PAGES_PER_DOCUMENT = 4
Record = dict[str, Any]


def human_turn(task: str, media_tag: str) -> str:
    return f"{media_tag}\n{task}\n<disc_emb>\n{INSTRUCTION}"


def side(task: str, completion: str, media_tag: str = "<image>", **media: Any) -> Record:
    turns = [{"from": "human", "value": human_turn(task, media_tag)}, {"from": "gpt", "value": completion}]
    return {"conversations": turns, **media}


def query_side(kind: str, caption: str, summary: str, reasoning: str) -> Record:
    task = QUERY_TASKS[kind].replace("{text}", caption)
    return side(task, render_completion(reasoning, summary))


def shape_record(scene: Scene, image_path: str) -> Record:
    target = render_completion(f"i see {scene.caption}", scene.summary)
    return {
        "dataset_name": "tiny_shapes",
        "qry": query_side("image", scene.caption, scene.summary, f"the caption asks for {scene.caption}"),
        "pos": side(DOCUMENT_TASKS["image"], target, image=image_path),
    }


def video_record(motion: Motion, frame_paths: list[str]) -> Record:
    target = render_completion(f"i see {motion.caption}", motion.summary)
    return {
        "dataset_name": "tiny_videos",
        "qry": query_side("video", motion.caption, motion.summary, f"the caption asks for {motion.caption}"),
        "pos": side(QUERY_VIDEO_TASK, target, media_tag="<video>", video=frame_paths),
    }


def page_record(page: Page, image_path: str) -> Record:
    both = f"{page.first} and {page.second}"
    target = render_completion(f"i read the words {both}", page.summary)
    return {
        "dataset_name": "tiny_pages",
        "qry": query_side("document", page.caption, page.summary, f"the question asks for the words {both}"),
        "pos": side(DOCUMENT_TASKS["document"], target, image=image_path),
    }


def write_jsonl(path: Path, records: list[Record]) -> None:
    with path.open("w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")


def shape_records(root: Path, scenes: list[Scene], prefix: str, rng: random.Random) -> list[Record]:
    """One image file per scene, PNG and JPEG in turn (the indexer reads both)."""
    records = []
    for index, scene in enumerate(scenes):
        name = f"images/{prefix}-{index:05d}.{'jpg' if index % 2 else 'png'}"
        write_image(root / name, scene, rng)
        records.append(shape_record(scene, name))
    return records


def video_records(root: Path, motions: list[Motion], prefix: str, rng: random.Random) -> list[Record]:
    """MP4 clips of `SEGMENTS_PER_CLIP` motions each; records point at the sampled frames."""
    records = []
    for start in range(0, len(motions), SEGMENTS_PER_CLIP):
        clip = f"videos/{prefix}-{start // SEGMENTS_PER_CLIP:04d}"
        shown = motions[start : start + SEGMENTS_PER_CLIP]
        segments = clip_segments(write_clip(root / f"{clip}.mp4", shown, rng))
        for number, (motion, segment) in enumerate(zip(shown, segments, strict=True)):
            names = [f"{clip}/segment-{number}/frame-{i}.png" for i in range(len(segment.video_frames or []))]
            (root / names[0]).parent.mkdir(parents=True, exist_ok=True)
            for name, frame in zip(names, segment.video_frames or [], strict=True):
                frame.save(root / name)
            records.append(video_record(motion, names))
    return records


def page_records(root: Path, pages: list[Page], prefix: str, rng: random.Random) -> list[Record]:
    """PDFs of `PAGES_PER_DOCUMENT` pages; records point at each page as pdfium renders it."""
    records = []
    for start in range(0, len(pages), PAGES_PER_DOCUMENT):
        document = f"pages/{prefix}-{start // PAGES_PER_DOCUMENT:04d}"
        shown = pages[start : start + PAGES_PER_DOCUMENT]
        rendered = pdf_pages(write_pdf(root / f"{document}.pdf", shown, rng))
        (root / document).mkdir(parents=True, exist_ok=True)
        for page, item in zip(shown, rendered, strict=True):
            name = f"{document}/page-{item.page}.png"
            assert item.image is not None
            item.image.save(root / name)
            records.append(page_record(page, name))
    return records


def write_tiny_world(
    root: Path,
    train_shapes: int = 3000,
    videos: int = 24,
    pages: int = 48,
    held_out: int = HELD_OUT,
    seed: int = 0,
    held_out_motions: int = 0,
    held_out_pages: int = 0,
) -> tuple[Path, Path]:
    """Write `train.jsonl` and `heldout.jsonl` under `root`; return their paths.

    Training has `train_shapes` images, `videos` video segments and `pages` PDF pages; the
    held-out file has `held_out` distinct scenes, `held_out_motions` distinct motions and
    `held_out_pages` pages with distinct word pairs, all rendered afresh.
    """
    rng = random.Random(seed)
    train = shape_records(root, [rng.choice(ALL_SCENES) for _ in range(train_shapes)], "train", rng)
    train += video_records(root, [rng.choice(ALL_MOTIONS) for _ in range(videos)], "train", rng)
    train += page_records(root, [rng.choice(ALL_PAGES) for _ in range(pages)], "train", rng)
    heldout = shape_records(root, rng.sample(ALL_SCENES, held_out), "heldout", rng)
    heldout += video_records(root, rng.sample(ALL_MOTIONS, held_out_motions), "heldout", rng)
    heldout += page_records(root, distinct_pages(rng, held_out_pages), "heldout", rng)
    write_jsonl(root / "train.jsonl", train)
    write_jsonl(root / "heldout.jsonl", heldout)
    return root / "train.jsonl", root / "heldout.jsonl"


def write_fresh_renders(root: Path, videos: int, pages: int, seed: int) -> list[Record]:
    """Training records for `videos` more video segments and `pages` more PDF pages, rendered
    afresh under `root` (prefix `fresh`).

    Why: with 600 segments of 96 motions (5,376 distinct renders) a tiny model learns each
    training clip's direction by heart and names held-out clips' directions at chance; more
    renders of the same motions make it read the direction from the frames.
    """
    rng = random.Random(seed)
    records = video_records(root, [rng.choice(ALL_MOTIONS) for _ in range(videos)], "fresh", rng)
    records += page_records(root, [rng.choice(ALL_PAGES) for _ in range(pages)], "fresh", rng)
    return records


def write_clip_gallery(root: Path, seed: int, prefix: str, motions: int = HELD_OUT_MOTIONS) -> Path:
    """`{prefix}.jsonl` under `root`: a held-out gallery of `motions` distinct motions rendered
    afresh, like the held-out file's clips (distinct, so that each clip has one right answer).

    Why: one clip is 1/48 of a 48-way Hit@1; a few galleries of the same size measure a change
    of a few hundredths without making retrieval harder than the held-out file's.
    """
    rng = random.Random(seed)
    path = root / f"{prefix}.jsonl"
    write_jsonl(path, video_records(root, rng.sample(ALL_MOTIONS, motions), prefix, rng))
    return path


def tiny_world_words() -> list[str]:
    """Every word the world's prompts and targets use: single tokens for a fast tiny model."""
    import re

    from model.prompts import SYSTEM_PROMPT

    texts = [INSTRUCTION, SYSTEM_PROMPT, QUERY_VIDEO_TASK, *QUERY_TASKS.values(), *DOCUMENT_TASKS.values()]
    found = {word for text in texts for word in re.findall(r"[A-Za-z]+", text)}
    return sorted(found | set(words()))


def flat_record(record: Record) -> Record:
    """A released-SFT-style record in the released RL layout (flat, no completions)."""
    flat: Record = {"dataset_name": record["dataset_name"]}
    for name in ("qry", "pos"):
        value = record[name]
        human = value["conversations"][0]["value"]
        flat[f"{name}_text"] = human.split("\n", 1)[1].split("\n<disc_emb>", 1)[0]
        flat[f"{name}_image"] = value.get("image")
        flat[f"{name}_video"] = value.get("video")
    return flat


def write_rl_split(root: Path, shapes: int = 1000, videos: int = 8, seed: int = 1, pages: int = 0) -> Path:
    """`rl.jsonl` under `root`: fresh renders of scenes, motions and pages, in the RL format."""
    rng = random.Random(seed)
    records = shape_records(root, [rng.choice(ALL_SCENES) for _ in range(shapes)], "rl", rng)
    records += video_records(root, [rng.choice(ALL_MOTIONS) for _ in range(videos)], "rl", rng)
    records += page_records(root, [rng.choice(ALL_PAGES) for _ in range(pages)], "rl", rng)
    path = root / "rl.jsonl"
    write_jsonl(path, [flat_record(record) for record in records])
    return path
