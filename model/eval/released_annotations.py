"""The released annotation files: find them (hub cache or a local folder), fetch them, read rows.

Where a hub dataset's files are looked for, in order:
1. `--annotations DIR`: `DIR/<owner>/<name>/` as written by
   `huggingface-cli download <owner>/<name> --repo-type dataset --local-dir DIR/<owner>/<name>`;
2. huggingface_hub's cache (`HF_HUB_CACHE`, by default `~/.cache/huggingface/hub`), the snapshot
   that `refs/main` names, else the newest one.

Which files hold a (config, split): the dataset card's `configs:` list when it has one (its
`data_files` patterns), else the layouts the hub writes itself: `<config>/<split>-*.parquet`,
`<config>/<split>/*.parquet`, `data/<split>-*.parquet` (no config), and the parquet export's
`<config>/<split>/NNNN.parquet`.

Design decisions:
- pyarrow reads the parquet files directly, a batch at a time and only the needed columns, so
  a corpus of page images never sits in memory as Python objects twice.
- `download` asks the hub for the repository's file list and fetches only the files the chosen
  configs and splits match, with huggingface_hub's own progress bars.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from model.eval.released_table import HubSource

CARD = "README.md"


class AnnotationsMissing(Exception):
    """A hub dataset's files for a task are not on this machine; the message says how to get them."""


@dataclass(frozen=True)
class Located:
    """The parquet files of one (config, split), and the folder they were found in."""

    folder: Path
    files: tuple[Path, ...]


def hub_cache() -> Path:
    """huggingface_hub's cache folder, honouring HF_HUB_CACHE / HF_HOME as the library does."""
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


def candidate_folders(repo: str, annotations: Path | None) -> list[Path]:
    """Folders that may hold `repo`'s files, best first (see the module docstring)."""
    folders = []
    if annotations is not None:
        folders += [annotations / repo, annotations / repo.replace("/", "--")]
    cached = hub_cache() / f"datasets--{repo.replace('/', '--')}"
    ref = cached / "refs" / "main"
    if ref.is_file():
        folders.append(cached / "snapshots" / ref.read_text(encoding="utf-8").strip())
    snapshots = cached / "snapshots"
    if snapshots.is_dir():
        folders += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    return [folder for folder in dict.fromkeys(folders) if folder.is_dir()]


def card_patterns(card: Path, config: str | None, split: str) -> list[str] | None:
    """The `data_files` patterns a dataset card gives (config, split); None if it says nothing."""
    if not card.is_file():
        return None
    from huggingface_hub.repocard import metadata_load

    try:
        metadata = metadata_load(card) or {}
    except Exception:  # a card with broken front matter: fall back to the hub's layouts
        return None
    for entry in metadata.get("configs") or []:
        if not isinstance(entry, dict) or entry.get("config_name", "default") != (config or "default"):
            continue
        return _split_patterns(entry.get("data_files"), split)
    return None


def _split_patterns(data_files: Any, split: str) -> list[str]:
    if isinstance(data_files, str):
        return [data_files] if split == "train" else []
    if isinstance(data_files, dict):
        data_files = [{"split": key, "path": value} for key, value in data_files.items()]
    patterns: list[str] = []
    for item in data_files or []:
        if isinstance(item, dict) and item.get("split") == split:
            path = item.get("path")
            patterns += [path] if isinstance(path, str) else [p for p in path or [] if isinstance(p, str)]
    return patterns


def default_patterns(config: str | None, split: str) -> list[str]:
    """The layouts the hub writes when a card names no files."""
    if config is None:
        return [f"data/{split}-*.parquet", f"{split}-*.parquet", f"default/{split}/*.parquet"]
    return [f"{config}/{split}-*.parquet", f"{config}/{split}/*.parquet", f"data/{config}/{split}-*.parquet"]


def match_files(paths: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """Repository-relative parquet paths matching any pattern, sorted (shard order)."""
    wanted = [p for p in paths if p.endswith(".parquet") and any(fnmatch.fnmatch(p, pat) for pat in patterns)]
    return sorted(wanted)


def _relative_files(folder: Path) -> list[str]:
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet") if ".cache" not in p.parts]


def locate(source: HubSource, config: str | None, annotations: Path | None) -> Located:
    """The parquet files of one config of `source`; AnnotationsMissing says how to get them."""
    for folder in candidate_folders(source.repo, annotations):
        patterns = card_patterns(folder / CARD, config, source.split)
        patterns = patterns or default_patterns(config, source.split)
        found = match_files(_relative_files(folder), patterns)
        if found:
            return Located(folder, tuple(folder / path for path in found))
    where = f"{annotations} or " if annotations is not None else ""
    what = f"{source.repo} ({'config ' + config + ', ' if config else ''}split {source.split})"
    raise AnnotationsMissing(
        f"no annotation files for {what} in {where}{hub_cache()}: run `ume eval mmeb download` for "
        "this task while online, or copy them with `huggingface-cli download "
        f"{source.repo} --repo-type dataset --local-dir DIR/{source.repo}` and pass --annotations DIR"
    )


def iter_rows(files: Sequence[Path], columns: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows of parquet files in order, as dicts of the requested columns (all when None)."""
    for path in files:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        if columns is not None:
            missing = [c for c in columns if c not in names]
            if missing:
                raise ValueError(f"{path} has no column {', '.join(missing)} (it has {', '.join(names)})")
        for batch in parquet.iter_batches(batch_size=256, columns=list(columns) if columns else None):
            yield from batch.to_pylist()


# --- fetching ------------------------------------------------------------------------------


def files_to_fetch(repo_files: Sequence[str], card: Path | None, source: HubSource) -> list[str]:
    """The repository files every config of `source` needs, from the repository's file list."""
    needed: list[str] = []
    for config in source.configs:
        patterns = (card_patterns(card, config, source.split) if card else None) or default_patterns(
            config, source.split
        )
        needed += match_files(repo_files, patterns)
    return list(dict.fromkeys(needed))


Say = Callable[[str], None]


def download(source: HubSource, annotations: Path | None, say: Say) -> list[Path]:
    """Fetch the files `source` needs into `annotations/<repo>` (or the hub cache); returns them."""
    import httpx

    try:
        return _download(source, annotations, say)
    except (OSError, httpx.HTTPError) as error:
        raise AnnotationsMissing(
            f"cannot fetch {source.repo} from the hub ({type(error).__name__}: {str(error)[:200]}); "
            "check the network (and that HF_HUB_OFFLINE is not set), or copy the files on a machine "
            f"that is online with `huggingface-cli download {source.repo} --repo-type dataset "
            f"--local-dir DIR/{source.repo}` and pass --annotations DIR"
        ) from None


@cache
def _repo_files(repo: str) -> tuple[str, ...]:
    """A hub dataset's file list, asked once per run (the 36 image tasks share one dataset)."""
    from huggingface_hub import HfApi

    return tuple(HfApi().list_repo_files(repo, repo_type="dataset"))


def _download(source: HubSource, annotations: Path | None, say: Say) -> list[Path]:
    from huggingface_hub import hf_hub_download, snapshot_download

    repo_files = _repo_files(source.repo)
    local_dir = annotations / source.repo if annotations is not None else None
    card = None
    if CARD in repo_files:
        card = Path(hf_hub_download(source.repo, CARD, repo_type="dataset", local_dir=local_dir))
    needed = files_to_fetch(repo_files, card, source)
    if not needed:
        raise AnnotationsMissing(f"{source.repo} has no parquet files for split {source.split}")
    say(f"{source.repo}: fetching {len(needed)} file(s)")
    folder = snapshot_download(source.repo, repo_type="dataset", allow_patterns=needed, local_dir=local_dir)
    return [Path(folder) / path for path in needed]
