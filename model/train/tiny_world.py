"""A synthetic multimodal world small enough to learn on a CPU, written in the released SFT format.

Why: the method's claims (both embeddings retrieve, generations keep the format) need a
training set whose answers we know. The world has
- shapes: images of 1–2 coloured shapes in one quadrant (8 colours × 4 shapes × 4 quadrants ×
  2 counts = 256 scenes), queried by caption; the held-out split is 200 distinct scenes drawn
  afresh, so retrieval among them is a 200-way choice with exactly one right answer;
- videos: a few clips of a shape moving across the frame, queried by caption;
- pages: rendered text pages, queried by a question about their words.
Targets are templated reasoning and a short summary, in the `<think>…</think><answer>…<gen_emb>`
shape; queries get their own templated reasoning. Records follow UME-sft-train exactly (human
turn with `<image>`/`<video>` tags, media paths relative to the data root), and text-only
queries keep the `<image>` tag with no image, which readers must strip.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from model.prompts import (
    DOCUMENT_TASKS,
    INSTRUCTION,
    QUERY_TASKS,
    QUERY_VIDEO_TASK,
    SYSTEM_PROMPT,
    render_completion,
)

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (230, 210, 20),
    "purple": (140, 40, 170),
    "orange": (245, 140, 20),
    "black": (10, 10, 10),
    "cyan": (20, 200, 210),
}
SHAPES = ("circle", "square", "triangle", "diamond")
QUADRANTS = {"top left": (0, 0), "top right": (1, 0), "bottom left": (0, 1), "bottom right": (1, 1)}
COUNTS = {1: "one", 2: "two"}
PAGE_WORDS = ("apple", "river", "music", "cloud", "stone", "garden", "winter", "paper", "light", "forest")
DIRECTIONS = {"left to right": (1, 0), "right to left": (-1, 0), "top to bottom": (0, 1)}

IMAGE_SIZE = 112  # 16 vision tokens after the 2×2 merge
VIDEO_SIZE = 56
VIDEO_FRAMES = 4
# Each shape fills one 28-pixel cell, the area of one vision token (2x2 patches of 14 pixels),
# and sits on that grid. A tiny vision tower trained from scratch has no translation invariance
# to speak of: with shapes at any pixel offset it was still guessing half the shapes after 20
# CPU minutes. Renders still differ: which cells of the quadrant, and the shape's size.
CELL = 28
SHAPE_SIZE = (22, 28)  # side of a shape in pixels (jittered, centred in its cell)
HELD_OUT = 200


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    quadrant: str
    count: int

    @property
    def summary(self) -> str:
        noun = self.shape + ("s" if self.count > 1 else "")
        return f"{COUNTS[self.count]} {self.colour} {noun} {self.quadrant}"

    @property
    def caption(self) -> str:
        noun = self.shape + ("s" if self.count > 1 else "")
        return f"{COUNTS[self.count]} {self.colour} {noun} at the {self.quadrant}"


ALL_SCENES = [Scene(*values) for values in itertools.product(COLOURS, SHAPES, QUADRANTS, COUNTS)]


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill: Any) -> None:
    left, top, right, bottom = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([((left + right) // 2, top), (right, bottom), (left, bottom)], fill=fill)
    else:
        middle_x, middle_y = (left + right) // 2, (top + bottom) // 2
        draw.polygon([(middle_x, top), (right, middle_y), (middle_x, bottom), (left, middle_y)], fill=fill)


def render_scene(scene: Scene, rng: random.Random) -> Image.Image:
    """The scene in random cells of its quadrant, at a random size, so renders differ."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    cells_per_quadrant = IMAGE_SIZE // 2 // CELL
    column, row = QUADRANTS[scene.quadrant]
    cells = [(x, y) for x in range(cells_per_quadrant) for y in range(cells_per_quadrant)]
    for x, y in rng.sample(cells, scene.count):
        size = rng.randint(*SHAPE_SIZE)
        left = (column * cells_per_quadrant + x) * CELL + (CELL - size) // 2
        top = (row * cells_per_quadrant + y) * CELL + (CELL - size) // 2
        draw_shape(draw, scene.shape, (left, top, left + size, top + size), COLOURS[scene.colour])
    return image


def human_turn(task: str, media_tag: str) -> str:
    return f"{media_tag}\n{task}\n<disc_emb>\n{INSTRUCTION}"


def side(task: str, completion: str, media_tag: str = "<image>", **media: Any) -> dict[str, Any]:
    turns = [{"from": "human", "value": human_turn(task, media_tag)}, {"from": "gpt", "value": completion}]
    return {"conversations": turns, **media}


def shape_record(scene: Scene, image_path: str) -> dict[str, Any]:
    query_reasoning = f"the caption asks for {scene.caption}"
    target_reasoning = f"i see {scene.caption}"
    return {
        "dataset_name": "tiny_shapes",
        "qry": side(
            QUERY_TASKS["image"].replace("{text}", scene.caption),
            render_completion(query_reasoning, scene.summary),
        ),
        "pos": side(
            DOCUMENT_TASKS["image"], render_completion(target_reasoning, scene.summary), image=image_path
        ),
    }


def video_record(colour: str, shape: str, direction: str, frame_paths: list[str]) -> dict[str, Any]:
    caption = f"one {colour} {shape} moving from {direction}"
    summary = f"{colour} {shape} moving {direction}"
    return {
        "dataset_name": "tiny_videos",
        "qry": side(
            QUERY_TASKS["video"].replace("{text}", caption),
            render_completion(f"the caption asks for {caption}", summary),
        ),
        "pos": side(
            QUERY_VIDEO_TASK,
            render_completion(f"i see {caption}", summary),
            media_tag="<video>",
            video=frame_paths,
        ),
    }


def page_record(words: tuple[str, str], image_path: str) -> dict[str, Any]:
    summary = f"page with {words[0]} and {words[1]}"
    return {
        "dataset_name": "tiny_pages",
        "qry": side(
            f"which page says {words[0]} and {words[1]}",
            render_completion(f"the question asks for the words {words[0]} and {words[1]}", summary),
        ),
        "pos": side(
            DOCUMENT_TASKS["document"],
            render_completion(f"i read the words {words[0]} and {words[1]}", summary),
            image=image_path,
        ),
    }


def render_video(colour: str, shape: str, direction: str, rng: random.Random) -> list[Image.Image]:
    """Frames of one shape crossing the frame in `direction`."""
    step_x, step_y = DIRECTIONS[direction]
    size, frames = 14, []
    fixed = rng.randint(4, VIDEO_SIZE - size - 4)
    for index in range(VIDEO_FRAMES):
        travel = 4 + index * (VIDEO_SIZE - size - 8) // (VIDEO_FRAMES - 1)
        along = travel if (step_x or step_y) > 0 else VIDEO_SIZE - size - travel
        left, top = (along, fixed) if step_x else (fixed, along)
        frame = Image.new("RGB", (VIDEO_SIZE, VIDEO_SIZE), (255, 255, 255))
        draw_shape(ImageDraw.Draw(frame), shape, (left, top, left + size, top + size), COLOURS[colour])
        frames.append(frame)
    return frames


def render_page(words: tuple[str, str]) -> Image.Image:
    page = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    draw.text((10, 30), words[0], fill=(0, 0, 0))
    draw.text((10, 60), words[1], fill=(0, 0, 0))
    return page


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")


def shape_records(root: Path, scenes: list[Scene], prefix: str, rng: random.Random) -> list[dict[str, Any]]:
    records = []
    for index, scene in enumerate(scenes):
        name = f"images/{prefix}-{index:05d}.png"
        render_scene(scene, rng).save(root / name)
        records.append(shape_record(scene, name))
    return records


def video_records(root: Path, count: int, rng: random.Random, prefix: str = "") -> list[dict[str, Any]]:
    records = []
    for index in range(count):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        direction = rng.choice(list(DIRECTIONS))
        names = []
        for number, frame in enumerate(render_video(colour, shape, direction, rng)):
            names.append(f"videos/{prefix}{index:04d}/frame-{number}.png")
            (root / names[-1]).parent.mkdir(parents=True, exist_ok=True)
            frame.save(root / names[-1])
        records.append(video_record(colour, shape, direction, names))
    return records


def page_records(root: Path, count: int, rng: random.Random) -> list[dict[str, Any]]:
    records = []
    for index in range(count):
        first, second = rng.sample(PAGE_WORDS, 2)
        name = f"pages/{index:04d}.png"
        render_page((first, second)).save(root / name)
        records.append(page_record((first, second), name))
    return records


def write_tiny_world(
    root: Path,
    train_shapes: int = 3000,
    videos: int = 24,
    pages: int = 48,
    held_out: int = HELD_OUT,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write `train.jsonl` and `heldout.jsonl` (`held_out` distinct shape scenes) under `root`."""
    rng = random.Random(seed)
    for folder in ("images", "videos", "pages"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    train_scenes = [rng.choice(ALL_SCENES) for _ in range(train_shapes)]
    held_out_scenes = rng.sample(ALL_SCENES, held_out)
    train = shape_records(root, train_scenes, "train", rng)
    train += video_records(root, videos, rng) + page_records(root, pages, rng)
    write_jsonl(root / "train.jsonl", train)
    write_jsonl(root / "heldout.jsonl", shape_records(root, held_out_scenes, "heldout", rng))
    return root / "train.jsonl", root / "heldout.jsonl"


def tiny_world_words() -> list[str]:
    """Every word the world's prompts and targets use: single tokens for a fast tiny model."""
    texts = [INSTRUCTION, SYSTEM_PROMPT, QUERY_VIDEO_TASK, "think answer moving from asks for the caption"]
    texts += list(QUERY_TASKS.values()) + list(DOCUMENT_TASKS.values()) + list(PAGE_WORDS)
    texts += [scene.caption for scene in ALL_SCENES] + list(DIRECTIONS)
    texts += ["i see", "which page says and", "the question asks for the words i read page with"]
    return sorted({word for text in texts for word in re.findall(r"[A-Za-z]+", text)})


def flat_record(record: dict[str, Any]) -> dict[str, Any]:
    """A released-SFT-style record in the released RL layout (flat, no completions)."""
    flat: dict[str, Any] = {"dataset_name": record["dataset_name"]}
    for side, prefix in (("qry", "qry"), ("pos", "pos")):
        value = record[side]
        human = value["conversations"][0]["value"]
        flat[f"{prefix}_text"] = human.split("\n", 1)[1].split("\n<disc_emb>", 1)[0]
        flat[f"{prefix}_image"] = value.get("image")
        flat[f"{prefix}_video"] = value.get("video")
    return flat


def write_rl_split(root: Path, shapes: int = 1000, videos: int = 8, seed: int = 1) -> Path:
    """`rl.jsonl` under `root`: fresh renders of shape scenes and videos, in the RL format."""
    rng = random.Random(seed)
    for folder in ("images", "videos"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    scenes = [rng.choice(ALL_SCENES) for _ in range(shapes)]
    records = shape_records(root, scenes, "rl", rng)
    records += video_records(root, videos, rng, prefix="rl-")
    path = root / "rl.jsonl"
    write_jsonl(path, [flat_record(record) for record in records])
    return path
