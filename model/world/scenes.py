"""The tiny world's vocabulary and pictures: shape scenes, moving shapes, pages of words.

Why a world of our own: the method's claims (both embeddings retrieve, generations keep the
format) need data whose answers we know, and a model small enough to learn it on a CPU.

- A **scene** (an image) is 1–2 shapes of one colour in one quadrant: 8 colours × 4 shapes ×
  4 quadrants × 2 counts = 256 scenes, each with a caption and a summary.
- A **motion** (a video segment) is one shape crossing the frame: 8 colours × 4 shapes ×
  3 directions = 96 motions.
- A **page** (a PDF page) shows two words of ten, one per line: 90 ordered pairs.

Design decisions:
- Shapes sit on the 28-pixel grid of the vision tokens (2×2 patches of 14 px). A tiny vision
  tower trained from scratch has no translation invariance to speak of: with shapes at any pixel
  offset it was still guessing half of them after 20 CPU minutes. Renders still differ (which
  cells, the shape's size), so a held-out render is never a training picture.
- Pages use Pillow's bundled font at a large size, so every machine draws the same letters.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont

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
DIRECTIONS = {"left to right": (1, 0), "right to left": (-1, 0), "top to bottom": (0, 1)}
PAGE_WORDS = ("apple", "river", "music", "cloud", "stone", "garden", "winter", "paper", "light", "forest")

IMAGE_SIZE = 112  # 16 vision tokens after the 2×2 merge; pages and video frames too
CELL = 28  # one vision token's area
SHAPE_SIZE = (22, 28)  # side of a shape in pixels (jittered, centred in its cell)
FRAMES_PER_MOTION = 8  # what the indexer samples from one video segment
PAGE_FONT_SIZE = 26  # large enough for a tiny vision tower to tell ten words apart
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Scene:
    """An image: `count` shapes of one colour in one quadrant."""

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


@dataclass(frozen=True)
class Motion:
    """A video segment: one shape crossing the frame in one direction."""

    colour: str
    shape: str
    direction: str

    @property
    def summary(self) -> str:
        return f"{self.colour} {self.shape} moving {self.direction}"

    @property
    def caption(self) -> str:
        return f"one {self.colour} {self.shape} moving from {self.direction}"


@dataclass(frozen=True)
class Page:
    """A document page: two words, the first above the second."""

    first: str
    second: str

    @property
    def summary(self) -> str:
        return f"page with {self.first} and {self.second}"

    @property
    def caption(self) -> str:
        """The question that finds this page."""
        return f"which page says {self.first} and {self.second}"


ALL_SCENES = [Scene(*values) for values in itertools.product(COLOURS, SHAPES, QUADRANTS, COUNTS)]
ALL_MOTIONS = [Motion(*values) for values in itertools.product(COLOURS, SHAPES, DIRECTIONS)]
ALL_PAGES = [Page(first, second) for first, second in itertools.permutations(PAGE_WORDS, 2)]


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
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), WHITE)
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


def render_motion(motion: Motion, rng: random.Random) -> list[Image.Image]:
    """`FRAMES_PER_MOTION` frames of the shape crossing the frame along one row or column of cells."""
    step_x, step_y = DIRECTIONS[motion.direction]
    size = rng.randint(*SHAPE_SIZE)
    lane = rng.randrange(IMAGE_SIZE // CELL) * CELL + (CELL - size) // 2
    span = IMAGE_SIZE - size
    frames = []
    for index in range(FRAMES_PER_MOTION):
        travel = index * span // (FRAMES_PER_MOTION - 1)
        along = travel if (step_x or step_y) > 0 else span - travel
        left, top = (along, lane) if step_x else (lane, along)
        frame = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), WHITE)
        box = (left, top, left + size, top + size)
        draw_shape(ImageDraw.Draw(frame), motion.shape, box, COLOURS[motion.colour])
        frames.append(frame)
    return frames


def render_page(page: Page, rng: random.Random) -> Image.Image:
    """The two words in black, one per half of the page, at a small random indent."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), WHITE)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=PAGE_FONT_SIZE)
    for line, word in enumerate((page.first, page.second)):
        draw.text((rng.randint(4, 12), 12 + line * 2 * CELL), word, fill=(0, 0, 0), font=font)
    return image


def words() -> list[str]:
    """Every word the world's captions, summaries and reasoning use."""
    texts = [scene.caption for scene in ALL_SCENES] + [motion.caption for motion in ALL_MOTIONS]
    texts += [page.caption + " " + page.summary for page in ALL_PAGES[: len(PAGE_WORDS)]]
    texts += [*PAGE_WORDS, "the caption asks for i see the question asks for words read"]
    return sorted({word for text in texts for word in text.split()})


def distinct_pages(rng: random.Random, count: int) -> list[Page]:
    """`count` pages no two of which share both words (in either order)."""
    seen: set[frozenset[str]] = set()
    chosen: list[Page] = []
    for page in rng.sample(ALL_PAGES, len(ALL_PAGES)):
        pair = frozenset((page.first, page.second))
        if pair not in seen and len(chosen) < count:
            seen.add(pair)
            chosen.append(page)
    return chosen
