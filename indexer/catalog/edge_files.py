"""The embedded engine's files: the data directory's lock, each collection's info.json, durable
writes, and what a killed process leaves behind.

    lock                          held (flock) while a process has the index open
    collections/NAME/info.json    the CollectionInfo, written last: a collection whose creation
                                  was interrupted has no info and is not listed; it also names
                                  the live shard directory (`shard` when it names none)
    collections/NAME/shard[-N]/   the live qdrant-edge shard (segments and write-ahead log)
    collections/NAME/build-TOKEN/ a copy being optimised by a build child (`edge_build`), which
                                  holds build-TOKEN.lock for as long as it runs
    collections/NAME/unbuilt      present while points were written that no build has covered

A swap is made durable the way a database commits: the new shard's files and folders are
synced to disk first, then info.json is written to a temporary file, synced, renamed over the
old one, and the folder holding it synced. After a power loss the collection is therefore
either the old shard or the complete new one, never a half-written copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import IO

from qdrant_edge import EdgeShard

from indexer.catalog.checks import in_use_error
from indexer.catalog.store import CollectionInfo, StoreError

try:
    import fcntl
except ImportError:  # Windows: the shard's own WAL lock still refuses a second opener
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = "lock"
INFO_FILE = "info.json"
SHARD_DIR = "shard"  # the live shard of a collection whose info names none
SHARD_KEY = "shard"  # the info.json key naming the live shard directory
BUILD_DIR = "build"  # a build's copy is build-TOKEN, its child's lock build-TOKEN.lock
CHILD_LOCK_SUFFIX = ".lock"
UNBUILT_MARK = "unbuilt"
ORPHAN_EXIT_WAIT_S = 30.0  # how long an open waits for an orphaned build child it ended


def make_dirs(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(
            f"cannot create index directory {folder}: {error.strerror}; "
            "choose another with --data-dir or UME_DATA_DIR"
        ) from error


def lock_data_dir(data_dir: Path) -> IO[str] | None:
    """Hold an exclusive lock for this store's lifetime, so a second opener fails up front."""
    if fcntl is None:
        return None
    handle = open(data_dir / LOCK_FILE, "a+")  # noqa: SIM115 (held open until close())
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise in_use_error(str(data_dir)) from None
    return handle


def load_shard(path: Path) -> EdgeShard:
    try:
        return EdgeShard.load(str(path))
    except Exception as error:  # the engine raises a bare Exception with its Rust message
        if "WouldBlock" in str(error):
            raise in_use_error(str(path)) from None
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise StoreError(f"cannot open collection at {path}: {first_line}") from error


def write_info(path: Path, info: CollectionInfo, shard_dir: str) -> None:
    """Write durably and atomically: after a crash or a power loss the file is either the old
    one or the new one, complete (naming the old or the new live shard)."""
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as handle:
        handle.write(json.dumps(info.to_json() | {SHARD_KEY: shard_dir}, indent=2))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    sync_dir(path.parent)


def read_info(path: Path) -> tuple[CollectionInfo, str] | None:
    """The recorded info and the live shard's directory name."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return CollectionInfo.from_json(data), str(data.get(SHARD_KEY) or SHARD_DIR)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StoreError(
            f"collection metadata {path} is unreadable ({error}): drop the collection and re-index"
        ) from error


def sync_tree(folder: Path) -> None:
    """fsync every file and folder under `folder`, and `folder` itself."""
    for root, _, files in os.walk(folder):
        for name in files:
            sync_file(Path(root) / name)
        sync_dir(Path(root))


def sync_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # a file the engine removed meanwhile
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def sync_dir(folder: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable; a no-op where folders can't be
    opened (Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def child_lock_path(build_dir: Path) -> Path:
    return build_dir.with_name(build_dir.name + CHILD_LOCK_SUFFIX)


def lock_for_child(build_dir: Path) -> IO[str] | None:
    """Lock build-TOKEN.lock for a build child about to start: the parent passes the open file
    to the child (`pass_fds`), so the lock is held from before the child exists until the child
    exits, however it exits (the kernel releases it with the last open descriptor). The caller
    writes the child's pid into it (`note_child`) and closes its own descriptor."""
    if fcntl is None:
        return None
    handle = open(child_lock_path(build_dir), "w")  # noqa: SIM115 (closed by the caller)
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def note_child(handle: IO[str] | None, pid: int) -> None:
    if handle is not None:
        handle.write(str(pid))
        handle.flush()
        handle.close()


def end_orphaned_child(build_dir: Path) -> None:
    """If a build child of a process that died still works on `build_dir`, end it and wait
    until it has exited, so that its copy can be removed without it writing there meanwhile."""
    lock = child_lock_path(build_dir)
    if fcntl is None or not lock.exists():
        return
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return  # nobody holds it: the child has exited
        except OSError:
            pass
        handle.seek(0)
        pid = read_pid(handle)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        wait_for_lock(handle, ORPHAN_EXIT_WAIT_S)


def read_pid(handle: IO[str], most_s: float = 2.0) -> int | None:
    """The child's pid, written by its parent right after starting it (a parent killed in
    between leaves none: the caller then waits for the child to end by itself)."""
    deadline = time.monotonic() + most_s
    while True:
        handle.seek(0)
        text = handle.read().strip()
        if text.isdigit() or time.monotonic() > deadline:
            return int(text) if text.isdigit() else None
        time.sleep(0.05)


def wait_for_lock(handle: IO[str], most_s: float) -> None:
    deadline = time.monotonic() + most_s
    while time.monotonic() < deadline:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError:
            time.sleep(0.05)
    raise StoreError(
        f"a graph build left running by an earlier ume process still holds {handle.name}: "
        "end it (see its pid in that file) and open the index again"
    )


def remove_leftovers(folder: Path, live_dir: str) -> None:
    """What a killed process left: copies of builds (ending a child still working on one
    first), their locks, and a copy renamed but never named live."""
    for path in sorted(folder.glob(f"{BUILD_DIR}-*")):
        if path.is_dir():
            end_orphaned_child(path)
            remove_tree(path)
            child_lock_path(path).unlink(missing_ok=True)
    for lock in folder.glob(f"{BUILD_DIR}-*{CHILD_LOCK_SUFFIX}"):
        if not lock.with_suffix("").exists():
            end_orphaned_child(lock.with_suffix(""))
            lock.unlink(missing_ok=True)
    for path in folder.glob("shard*"):
        if path.is_dir() and path.name != live_dir:
            remove_tree(path)
