"""The note a running `ume serve` leaves in the data dir it holds, so other `ume` commands find it.

An embedded index opens in one process at a time. While `ume serve` holds one, `ume index`,
`ume status` and `ume search` on the same data dir read this file and hand their work to the
server over HTTP (`app.cli.handoff`) instead of stopping at the lock.

The file is written atomically (a temporary file renamed over it), removed when the server
exits, and ignored when the process that wrote it is gone (a server that was killed).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

SERVER_FILE = "ume-serve.json"


@dataclass(frozen=True)
class RunningServer:
    url: str  # where this machine reaches it, e.g. http://127.0.0.1:7860/
    pid: int
    collection: str
    login: bool  # whether it was started with --auth


def server_file(data_dir: Path) -> Path:
    return data_dir / SERVER_FILE


def announce(data_dir: Path, server: RunningServer) -> Path:
    """Write the note atomically; returns its path."""
    path = server_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".ume-serve-", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        json.dump(asdict(server), file)
    os.replace(temporary, path)
    return path


def withdraw(data_dir: Path) -> None:
    """Remove the note, if it is this process's (a newer server may have replaced it)."""
    found = read(data_dir)
    if found is not None and found.pid == os.getpid():
        server_file(data_dir).unlink(missing_ok=True)


def read(data_dir: Path) -> RunningServer | None:
    try:
        data = json.loads(server_file(data_dir).read_text(encoding="utf-8"))
        return RunningServer(str(data["url"]), int(data["pid"]), str(data["collection"]), bool(data["login"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no note, or one cut short: as good as none


def running_server(data_dir: Path) -> RunningServer | None:
    """The server holding `data_dir`, when its note is there and its process is alive."""
    found = read(data_dir)
    if found is None or found.pid == os.getpid() or not process_alive(found.pid):
        return None  # a dead server's note (its pid may even be ours now)
    return found


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
