"""A gallery written from the tiny world: a folder to index and the queries that find each item.

The demo indexes one when it runs the reference model (whose world it is), the end-to-end test
and `ume eval collection` measure retrieval on one. Every item's caption is distinct, so each
query has exactly one right answer: an image, a segment of a clip, or a page of a PDF.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.world.files import SEGMENT_SECONDS, SEGMENTS_PER_CLIP, write_clip, write_image, write_pdf
from model.world.scenes import ALL_MOTIONS, ALL_SCENES, Motion, Page, Scene, distinct_pages

GALLERY_SEED = 7  # the training world uses seeds 0 and 1: these renders are held out
EXAMPLE_QUERIES_FILE = "example_queries.json"
EXAMPLES_PER_KIND = 3


@dataclass(frozen=True)
class GalleryPlan:
    """What a gallery shows, before anything is drawn."""

    scenes: list[Scene]
    motions: list[Motion]
    pages: list[Page]
    pages_per_document: int


@dataclass(frozen=True)
class GalleryQuery:
    """A query in the world's words, the kind it looks for, and its one right answer."""

    text: str
    kind: str  # image, video or document
    expected: dict[str, Any]  # `ume eval collection`'s {"path", "page" | "start", "end"}

    def to_json(self) -> dict[str, Any]:
        return {"query": self.text, "kind": self.kind, "expected": [self.expected]}


def plan_gallery(
    images: int = 12,
    clips: int = 5,
    documents: int = 2,
    pages_per_document: int = 5,
    seed: int = GALLERY_SEED,
) -> GalleryPlan:
    """Distinct scenes, motions and word pairs, chosen by `seed`."""
    rng = random.Random(seed)
    scenes = rng.sample(ALL_SCENES, images)
    motions = rng.sample(ALL_MOTIONS, clips * SEGMENTS_PER_CLIP)
    return GalleryPlan(
        scenes, motions, distinct_pages(rng, documents * pages_per_document), pages_per_document
    )


def gallery_queries(plan: GalleryPlan) -> list[GalleryQuery]:
    """One query per item, with the relative path (and page or span) of its answer."""
    queries = [
        GalleryQuery(scene.caption, "image", {"path": image_name(index)})
        for index, scene in enumerate(plan.scenes)
    ]
    for index, motion in enumerate(plan.motions):
        clip, segment = divmod(index, SEGMENTS_PER_CLIP)
        span = {"start": segment * SEGMENT_SECONDS, "end": (segment + 1) * SEGMENT_SECONDS}
        queries.append(GalleryQuery(motion.caption, "video", {"path": clip_name(clip)} | span))
    for index, page in enumerate(plan.pages):
        document, number = divmod(index, plan.pages_per_document)
        queries.append(
            GalleryQuery(page.caption, "document", {"path": pdf_name(document), "page": number + 1})
        )
    return queries


def image_name(index: int) -> str:
    return f"images/scene-{index:02d}.{'jpg' if index % 2 else 'png'}"


def clip_name(index: int) -> str:
    return f"clips/motion-{index:02d}.mp4"


def pdf_name(index: int) -> str:
    return f"documents/pages-{index:02d}.pdf"


def write_gallery(
    folder: Path, plan: GalleryPlan | None = None, seed: int = GALLERY_SEED
) -> list[GalleryQuery]:
    """Write the plan's images, clips and PDFs under `folder`, and `queries.jsonl` beside them."""
    plan = plan or plan_gallery(seed=seed)
    rng = random.Random(seed)
    for index, scene in enumerate(plan.scenes):
        write_image(folder / image_name(index), scene, rng)
    for start in range(0, len(plan.motions), SEGMENTS_PER_CLIP):
        write_clip(
            folder / clip_name(start // SEGMENTS_PER_CLIP),
            plan.motions[start : start + SEGMENTS_PER_CLIP],
            rng,
        )
    step = plan.pages_per_document
    for start in range(0, len(plan.pages), step):
        write_pdf(folder / pdf_name(start // step), plan.pages[start : start + step], rng)
    queries = gallery_queries(plan)
    write_queries(folder / "queries.jsonl", queries)
    return queries


def write_queries(path: Path, queries: list[GalleryQuery]) -> Path:
    """Queries in `ume eval collection`'s JSONL format (one per line, with its kind)."""
    path.write_text("".join(json.dumps(query.to_json()) + "\n" for query in queries))
    return path


def example_queries(plan: GalleryPlan | None = None) -> list[tuple[str, str]]:
    """(words, kind) for the first few items of each kind of the demo's gallery."""
    queries = gallery_queries(plan or plan_gallery())
    chosen: list[tuple[str, str]] = []
    for kind in ("image", "video", "document"):
        chosen += [(query.text, kind) for query in queries if query.kind == kind][:EXAMPLES_PER_KIND]
    return chosen


def write_example_queries(model_dir: Path) -> Path:
    """The example queries a UI offers for this model, in a file beside its weights."""
    path = model_dir / EXAMPLE_QUERIES_FILE
    path.write_text(json.dumps([{"query": text, "kind": kind} for text, kind in example_queries()], indent=1))
    return path


def read_example_queries(model_id: str | Path) -> list[tuple[str, str]]:
    """(words, kind) that a model directory offers as examples; none for any other model."""
    path = Path(model_id) / EXAMPLE_QUERIES_FILE
    try:
        records = json.loads(path.read_text())
        return [(str(record["query"]), str(record["kind"])) for record in records]
    except (OSError, ValueError, TypeError, KeyError):
        return []
