"""Scan: walk the roots a user gave and list the media files under them.

Design decisions:
- Hidden files and folders (a leading dot, which also covers macOS `._*` forks) and OS clutter
  (`Thumbs.db`, `@eaDir`, `System Volume Information`, ...) are skipped: nobody searches those.
- Symbolic links are followed, but every folder is entered once, keyed by (device, inode), so a
  link pointing back up the tree cannot make the walk loop forever. A file reachable by two
  names (hard link, file symlink) is listed once, under the first name in sorted order.
- The walk is sorted, so every process of a sharded run sees the same files in the same order.
- The fingerprint reads at most three MiB (start, middle, end) plus the size, so it is cheap on
  large videos yet tells apart files that merely share a size; it is what lets a moved or copied
  file reuse its vectors.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from model.dates import TakenDate, taken_date
from model.media import media_kind

log = logging.getLogger(__name__)

SKIPPED_NAMES = frozenset(
    {
        "Thumbs.db",
        "desktop.ini",
        "@eaDir",
        "System Volume Information",
        "$RECYCLE.BIN",
        "lost+found",
        "__MACOSX",
        "#recycle",
    }
)


@dataclass(frozen=True)
class ScannedFile:
    """A media file found under a root, with what `stat` said about it."""

    path: Path  # absolute, as reached from the root (symlinks not resolved)
    root: Path  # the root given by the user that it was found under
    kind: str  # "image" | "video" | "document"
    size: int  # bytes
    mtime: float  # epoch seconds
    taken: TakenDate | None = None  # when it was made: read by `dated`, off the walk's thread


def dated(file: ScannedFile) -> ScannedFile:
    """The file with when it was taken or made (its metadata, else its mtime, never an error)."""
    return replace(file, taken=taken_date(file.path, file.kind, file.mtime))


def is_skipped(name: str) -> bool:
    """Hidden names and OS clutter that no one means to index."""
    return name.startswith(".") or name in SKIPPED_NAMES


def absolute_root(root: Path | str) -> Path:
    """An absolute, normalised root that keeps the user's spelling of symlinked folders."""
    return Path(os.path.abspath(os.path.expanduser(root)))


def walk(roots: Iterable[Path]) -> Iterator[ScannedFile]:
    """Every media file under `roots` (folders or single files), each once, in sorted order."""
    seen_folders: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    for root in roots:
        root = absolute_root(root)
        if root.is_dir():
            yield from _walk_folder(root, root, seen_folders, seen_files)
        else:
            found = _scanned(root, root, seen_files)
            if found is not None:
                yield found


def _walk_folder(
    folder: Path, root: Path, seen_folders: set[tuple[int, int]], seen_files: set[tuple[int, int]]
) -> Iterator[ScannedFile]:
    try:
        identity = _identity(folder.stat())
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as error:
        log.warning("skipping folder %s: %s", folder, error.strerror or error)
        return
    if identity in seen_folders:
        return  # a symlink loop, or a folder linked twice
    seen_folders.add(identity)
    for entry in entries:
        if is_skipped(entry.name) or not _is_utf8(entry.path):
            continue
        path = folder / entry.name
        if _is_folder(entry):
            yield from _walk_folder(path, root, seen_folders, seen_files)
        else:
            found = _scanned(path, root, seen_files)
            if found is not None:
                yield found


def _scanned(path: Path, root: Path, seen_files: set[tuple[int, int]]) -> ScannedFile | None:
    kind = media_kind(path)
    if kind is None:
        return None
    try:
        info = path.stat()  # follows symlinks: a broken link raises and is skipped
    except OSError:
        log.info("skipping %s: broken link or vanished", path)
        return None
    if not stat.S_ISREG(info.st_mode) or _identity(info) in seen_files:
        return None
    seen_files.add(_identity(info))
    return ScannedFile(path, root, kind, info.st_size, info.st_mtime)


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _is_utf8(path: str) -> bool:
    """Names that are not valid UTF-8 cannot be stored in a JSON payload; say so and skip."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        log.warning("skipping %r: its name is not valid UTF-8 (rename it to index it)", path)
        return False
    return True
