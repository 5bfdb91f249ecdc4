"""One entry point: a catalogue task read from the released layout, and fetching what it needs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.eval.mmeb_data import Task
from model.eval.published import TaskSpec
from model.eval.released_annotations import AnnotationsMissing, Say, download, iter_rows, locate
from model.eval.released_image_tasks import COLUMNS, image_root, read_image_task
from model.eval.released_moment_tasks import read_moment_task
from model.eval.released_table import HubSource, released_task
from model.eval.released_video_tasks import read_media_jsonl, read_video_task
from model.eval.released_visdoc_tasks import read_visdoc_task

__all__ = ["AnnotationsMissing", "ReleasedPaths", "fetch_annotations", "load_released", "missing_annotations"]


@dataclass(frozen=True)
class ReleasedPaths:
    """Where the released benchmark is: media as unpacked, annotations, and a folder of our own."""

    media_root: Path
    annotations: Path | None = None  # local copies; None: huggingface_hub's cache only
    work: Path = Path("ume-eval")  # page images extracted from the visual-document parquet files


def _hub_rows(
    source: HubSource, annotations: Path | None, columns: Sequence[str] | None
) -> Iterator[dict[str, Any]]:
    """Every config's rows in order; MVBench's rows carry their config name as `subset`."""
    for config in source.configs:
        located = locate(source, config, annotations)
        for row in iter_rows(located.files, columns):
            if len(source.configs) > 1:
                row["subset"] = config
            yield row


def _config_rows(source: HubSource, config: str, annotations: Path | None) -> Iterator[dict[str, Any]]:
    return iter_rows(locate(source, config, annotations).files)


def load_released(spec: TaskSpec, paths: ReleasedPaths) -> Task:
    """Read one catalogue task from the released files with the reader its row names."""
    released = released_task(spec.name)
    if released.loader.startswith("image_"):
        assert released.source is not None
        rows = list(_hub_rows(released.source, paths.annotations, COLUMNS))
        first = next((r["qry_img_path"] for r in rows if r.get("qry_img_path")), None)
        first = first or next((r["tgt_img_path"][0] for r in rows if r.get("tgt_img_path")), None)
        return read_image_task(spec, released.loader, rows, image_root(paths.media_root, first))
    if released.loader in ("vidore", "visrag"):
        assert released.source is not None
        source, where = released.source, paths.annotations
        return read_visdoc_task(
            spec,
            released,
            _config_rows(source, "queries", where),
            _config_rows(source, "qrels", where),
            _config_rows(source, "corpus", where),
            paths.work / "pages" / spec.name,
        )
    if released.source is None:
        records = iter(read_media_jsonl(paths.media_root / released.media_file))
    else:
        records = _hub_rows(released.source, paths.annotations, None)
    if released.loader == "moment":
        return read_moment_task(spec, released, records, paths.media_root)
    return read_video_task(spec, released, records, paths.media_root)


def _sources(names: Sequence[str]) -> dict[HubSource, list[str]]:
    sources: dict[HubSource, list[str]] = {}
    for name in names:
        source = released_task(name).source
        if source is not None:
            sources.setdefault(source, []).append(name)
    return sources


def missing_annotations(
    names: Sequence[str], annotations: Path | None, media_root: Path | None = None
) -> list[str]:
    """One line per task whose records are not on this machine (empty: all there).

    Records that ship inside the media (ActivityNetQA) are checked when `media_root` is given.
    """
    lines = []
    for name in names:
        media_file = released_task(name).media_file
        if media_root is not None and media_file and not (media_root / media_file).is_file():
            lines.append(f"{name}: {media_root / media_file} not found (it ships in MMEB-V2's media)")
    for source, tasks in _sources(names).items():
        for config in source.configs:
            try:
                locate(source, config, annotations)
            except AnnotationsMissing as error:
                lines.append(f"{', '.join(tasks)}: {error}")
                break
    return lines


def fetch_annotations(names: Sequence[str], annotations: Path | None, say: Say) -> list[Path]:
    """Download exactly the annotation files the named tasks need (each hub dataset once)."""
    fetched: list[Path] = []
    for source, tasks in _sources(names).items():
        say(f"{', '.join(tasks)}: {source.repo}")
        fetched += download(source, annotations, say)
    for name in names:
        released = released_task(name)
        if released.source is None:
            say(f"{name}: its records ship in the media ({released.media_file}), nothing to fetch")
    return fetched
