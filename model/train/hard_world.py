"""The hard world (model/world/hard.py) as training data, in the released SFT and RL formats.

Training pairs are scenes drawn at random, each rendered afresh, so the evaluation gallery's
pictures are never training pictures (its scenes may be). A quarter are count scenes: drawn
uniformly from all 8,256 scenes they would be 2% of the pairs (but they are a fifth of the
gallery), and a model trained so described every picture as a relation.
Records have the shape of the easy world's `tiny_shapes` (model/train/tiny_world.py): a caption
query with templated reasoning, an image target with "i see ..." reasoning and the scene's
summary, both in the `<think>…</think><answer>…<gen_emb>` form.
"""

from __future__ import annotations

import random
from pathlib import Path

from model.prompts import DOCUMENT_TASKS, render_completion
from model.train.tiny_world import Record, flat_record, query_side, side, tiny_world_words, write_jsonl
from model.world.hard import COUNT_SCENES, RELATION_SCENES, HardScene, hard_words, render_hard_scene

HARD_DATASET = "hard_scenes"
COUNT_SHARE = 0.25


def draw_scene(rng: random.Random) -> HardScene:
    """A count scene `COUNT_SHARE` of the time, else a relation scene, each kind uniformly."""
    return rng.choice(COUNT_SCENES if rng.random() < COUNT_SHARE else RELATION_SCENES)


def hard_record(scene: HardScene, image_path: str) -> Record:
    target = render_completion(f"i see {scene.caption}", scene.summary)
    reasoning = f"the caption asks for {scene.caption}"
    return {
        "dataset_name": HARD_DATASET,
        "qry": query_side("image", scene.caption, scene.summary, reasoning),
        "pos": side(DOCUMENT_TASKS["image"], target, image=image_path),
    }


def hard_records(root: Path, count: int, prefix: str, rng: random.Random) -> list[Record]:
    """`count` random scenes, each rendered to `root/hard/<prefix>-N.png`."""
    records = []
    (root / "hard").mkdir(parents=True, exist_ok=True)
    for index in range(count):
        scene = draw_scene(rng)
        name = f"hard/{prefix}-{index:05d}.png"
        render_hard_scene(scene, rng).save(root / name)
        records.append(hard_record(scene, name))
    return records


def write_hard_train(root: Path, pairs: int, seed: int = 0) -> Path:
    """`hard-train.jsonl` under `root`: SFT pairs in the released layout."""
    path = root / "hard-train.jsonl"
    write_jsonl(path, hard_records(root, pairs, "train", random.Random(seed)))
    return path


def write_hard_rl(root: Path, pairs: int, seed: int = 1) -> Path:
    """`hard-rl.jsonl` under `root`: fresh renders in the released RL layout (flat)."""
    path = root / "hard-rl.jsonl"
    write_jsonl(path, [flat_record(r) for r in hard_records(root, pairs, "rl", random.Random(seed))])
    return path


def hard_world_words() -> list[str]:
    """The easy world's words and the hard world's: one token each in a tiny model."""
    return sorted(set(tiny_world_words()) | set(hard_words()))
