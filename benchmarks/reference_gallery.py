"""Retrieval of the reference model on the demo's gallery, through `ume index` and `ume eval`.

    python benchmarks/reference_gallery.py --out DIR [--model models/ume-r1-tiny-world]

Writes the gallery `ume demo` shows (model/world/gallery.py: 12 images, 5 clips of 2 segments,
2 PDFs of 5 pages, all rendered afresh), indexes it in both modes with `ume index` (timed: the
demo's wait), and runs `ume eval collection` for each kind in the three search modes. The last
line printed is one JSON object: index_seconds and Hit@1 per kind and mode.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from app.cli import main as ume
from model.world import REFERENCE_MODEL
from model.world.gallery import write_gallery, write_queries

KINDS = ("image", "video", "document")
MAX_NEW_TOKENS = "48"  # as the demo: a well-formed completion is ~25 tokens


def hit1_by_mode(out: Path, kind: str, queries_file: Path, location: list[str]) -> dict[str, float]:
    report_dir = out / f"eval-{kind}"
    flags = ["--queries", str(queries_file), "--kind", kind, "--k", "1", "--out", str(report_dir)]
    ume(["eval", "collection", *flags, "--max-new-tokens", MAX_NEW_TOKENS, *location])
    report = json.loads((report_dir / "collection-world.json").read_text())
    return {mode["mode"]: round(mode["metrics"]["hit@1"], 3) for mode in report["modes"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="gallery, index and reports go here")
    parser.add_argument("--model", type=Path, default=REFERENCE_MODEL)
    args = parser.parse_args()
    queries = write_gallery(args.out / "gallery")
    location = ["--collection", "world", "--data-dir", str(args.out / "data")]
    started = time.monotonic()
    model = ["--model", str(args.model), "--mode", "both", "--max-new-tokens", MAX_NEW_TOKENS]
    ume(["index", str(args.out / "gallery"), *model, "--no-progress", *location])
    result: dict[str, object] = {"index_seconds": round(time.monotonic() - started, 1), "items": len(queries)}
    for kind in KINDS:
        path = write_queries(args.out / f"queries-{kind}.jsonl", [q for q in queries if q.kind == kind])
        result[kind] = hit1_by_mode(args.out, kind, path, location)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
