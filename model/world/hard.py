"""The hard world: scenes that need counting, sizes and relations, and a 1,000-way gallery of them.

The easy world (model/world/scenes.py) has 256 scenes and a model trained on it scores 1.00, so
it can no longer tell one model from another, and a gallery larger than 256 repeats scenes.
Here a scene is one of two kinds:
- a **count** scene: one, two or three equal shapes (colour, shape, size) in any cells:
  "two big red circles"; 3 × 8 × 4 × 2 = 192 scenes;
- a **relation** scene: two different shapes, the first left of or above the second:
  "a small red circle left of a big blue square"; 64 × 63 × 2 = 8,064 scenes.

Design decisions:
- Every scene is a flat tuple of attributes (`HardScene.attributes`: count, the first shape's
  colour, shape and size, the relation, the second shape's colour, shape and size), so "differs
  in exactly one attribute" is a Hamming distance of one, and the hard negatives of a scene
  are its neighbours at that distance.
- The gallery (`plan_hard_gallery`) is every count scene plus relation scenes drawn in
  families (a scene and some of its neighbours), so most gallery scenes have hard negatives in
  the gallery itself; its scenes are distinct, so a query has exactly one right answer.
- Shapes sit in the cells of the vision-token grid, as in the easy world; "left of" keeps both
  shapes in one row and "above" in one column, anywhere in the picture, so only the relation,
  not the place, tells two relation scenes apart. Sizes are far apart (small 10–14 px, big
  22–28 px) so a 112-pixel render shows them.
- Captions use only the easy world's words plus `NEW_WORDS`, so a tiny model's word vocabulary
  (`hard_world_words`) holds every word as one token.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from model.prompts import DOCUMENT_TASKS, QUERY_TASKS
from model.world.scenes import CELL, COLOURS, COUNTS, IMAGE_SIZE, SHAPES, WHITE, draw_shape

COUNT_WORDS = COUNTS | {3: "three"}
SIZES = {"small": (10, 14), "big": (22, 28)}
RELATIONS = ("left of", "above")
NEW_WORDS = ("small", "big")  # everything else a caption says is already an easy-world word
GRID = IMAGE_SIZE // CELL  # cells per row and per column
HARD_GALLERY_SEED = 11
HARD_GALLERY_SIZE = 1000
HARD_TASK = "HardScenes"  # the eval set's folder (and dataset) name
HARD_NEGATIVES = 4  # listed per record; a global task ranks against the whole gallery anyway
FAMILY_NEIGHBOURS = 4  # relation scenes drawn per family besides its first


@dataclass(frozen=True)
class Thing:
    """One shape as a caption names it: "small red circle"."""

    colour: str
    shape: str
    size: str

    def words(self, count: int = 1) -> str:
        noun = self.shape + ("s" if count > 1 else "")
        return f"{self.size} {self.colour} {noun}"


@dataclass(frozen=True)
class HardScene:
    """`count` copies of `first`, or (count 1) `first` in `relation` to a different `second`."""

    first: Thing
    count: int = 1
    relation: str | None = None
    second: Thing | None = None

    @property
    def attributes(self) -> tuple[Any, ...]:
        """The scene's attributes in a fixed order; its identity (`key`) and its distances."""
        second = self.second
        return (
            self.count,
            self.first.colour,
            self.first.shape,
            self.first.size,
            self.relation,
            second.colour if second else None,
            second.shape if second else None,
            second.size if second else None,
        )

    @property
    def key(self) -> str:
        """A distinct name per scene (two scenes with the same key are the same scene)."""
        return "|".join("-" if value is None else str(value) for value in self.attributes)

    @property
    def caption(self) -> str:
        if self.second is None:
            return f"{COUNT_WORDS[self.count]} {self.first.words(self.count)}"
        return f"a {self.first.words()} {self.relation} a {self.second.words()}"

    @property
    def summary(self) -> str:
        if self.second is None:
            return self.caption
        return f"{self.first.words()} {self.relation} {self.second.words()}"


ALL_THINGS = [Thing(*values) for values in itertools.product(COLOURS, SHAPES, SIZES)]
COUNT_SCENES = [HardScene(thing, count) for count in COUNT_WORDS for thing in ALL_THINGS]
RELATION_SCENES = [
    HardScene(first, 1, relation, second)
    for first, second in itertools.permutations(ALL_THINGS, 2)
    for relation in RELATIONS
]
ALL_HARD_SCENES = COUNT_SCENES + RELATION_SCENES


def differences(a: HardScene, b: HardScene) -> int:
    """How many attributes two scenes differ in."""
    return sum(x != y for x, y in zip(a.attributes, b.attributes, strict=True))


def _thing_variants(thing: Thing) -> list[Thing]:
    """Every shape that differs from `thing` in exactly one of colour, shape and size."""
    return (
        [replace(thing, colour=c) for c in COLOURS if c != thing.colour]
        + [replace(thing, shape=s) for s in SHAPES if s != thing.shape]
        + [replace(thing, size=z) for z in SIZES if z != thing.size]
    )


def neighbours(scene: HardScene) -> list[HardScene]:
    """Every scene that differs from `scene` in exactly one attribute."""
    if scene.second is None:
        found = [replace(scene, count=n) for n in COUNT_WORDS if n != scene.count]
        return found + [replace(scene, first=thing) for thing in _thing_variants(scene.first)]
    second = scene.second
    found = [replace(scene, relation=r) for r in RELATIONS if r != scene.relation]
    found += [replace(scene, first=t) for t in _thing_variants(scene.first) if t != second]
    return found + [replace(scene, second=t) for t in _thing_variants(second) if t != scene.first]


def render_hard_scene(scene: HardScene, rng: random.Random) -> Image.Image:
    """The scene in random cells (in one row or column for a relation), at random sizes."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), WHITE)
    draw = ImageDraw.Draw(image)
    if scene.second is None:
        cells = rng.sample([(x, y) for x in range(GRID) for y in range(GRID)], scene.count)
        placed = [(scene.first, cell) for cell in cells]
    else:
        line, (near, far) = rng.randrange(GRID), sorted(rng.sample(range(GRID), 2))
        first_cell, second_cell = (
            ((near, line), (far, line))
            if scene.relation == "left of"
            else (
                (line, near),
                (line, far),
            )
        )
        placed = [(scene.first, first_cell), (scene.second, second_cell)]
    for thing, (x, y) in placed:
        size = rng.randint(*SIZES[thing.size])
        left, top = x * CELL + (CELL - size) // 2, y * CELL + (CELL - size) // 2
        draw_shape(draw, thing.shape, (left, top, left + size, top + size), COLOURS[thing.colour])
    return image


def hard_words() -> list[str]:
    """Every word the hard world's captions and summaries use."""
    texts = [scene.caption + " " + scene.summary for scene in ALL_HARD_SCENES]
    return sorted({word for text in texts for word in text.split()})


def plan_hard_gallery(size: int = HARD_GALLERY_SIZE, seed: int = HARD_GALLERY_SEED) -> list[HardScene]:
    """`size` distinct scenes: every count scene, then relation scenes in families of neighbours."""
    rng = random.Random(seed)
    chosen: dict[str, HardScene] = {scene.key: scene for scene in COUNT_SCENES[:size]}
    pool = rng.sample(RELATION_SCENES, len(RELATION_SCENES))
    while len(chosen) < size:
        base = next(scene for scene in pool if scene.key not in chosen)
        family = [base, *rng.sample(neighbours(base), FAMILY_NEIGHBOURS)]
        for scene in family:
            if len(chosen) < size:
                chosen.setdefault(scene.key, scene)
    return list(chosen.values())


def hard_negatives(scene: HardScene, gallery: dict[str, int], limit: int = HARD_NEGATIVES) -> list[int]:
    """Gallery indices of up to `limit` scenes that differ from `scene` in exactly one attribute."""
    found = [gallery[other.key] for other in neighbours(scene) if other.key in gallery]
    return sorted(found)[:limit]


def gallery_image_name(index: int) -> str:
    return f"images/scene-{index:04d}.png"


def query_instruction() -> str:
    """MMEB's `qry_inst`: the image-query task text up to the caption."""
    return QUERY_TASKS["image"].replace("{text}", "").strip()


def write_hard_task(
    data_root: Path, size: int = HARD_GALLERY_SIZE, seed: int = HARD_GALLERY_SEED, name: str = HARD_TASK
) -> Path:
    """A caption -> image task in MMEB's image layout, ranked against the whole gallery.

    `data_root/name/` gets one PNG per gallery scene, `records.jsonl` (one record per scene:
    its caption as the query, its image as candidate 0, then its hard negatives) and `task.json`
    (scope "global", so `ume eval mmeb --tasks name` ranks each query against all `size` images).
    """
    folder = data_root / name
    scenes = plan_hard_gallery(size, seed)
    index = {scene.key: number for number, scene in enumerate(scenes)}
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for number, scene in enumerate(scenes):
        render_hard_scene(scene, rng).save(folder / gallery_image_name(number))
        shown = [number, *hard_negatives(scene, index)]
        records.append(
            {
                "qry_inst": query_instruction(),
                "qry_text": scene.caption,
                "qry_img_path": "",
                "tgt_inst": DOCUMENT_TASKS["image"],
                "tgt_text": [""] * len(shown),
                "tgt_img_path": [gallery_image_name(i) for i in shown],
                "scene": scene.key,
            }
        )
    (folder / "records.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    spec = {"modality": "image", "meta_task": "I-RET", "metric": "hit@1", "scope": "global"}
    (folder / "task.json").write_text(json.dumps(spec, indent=1) + "\n")
    return folder
