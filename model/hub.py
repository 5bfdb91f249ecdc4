"""Where a model comes from: a folder, the Hugging Face cache, or the hub (fetched on first use).

Loading a hub name that is not cached makes transformers download it, and without a network it
retries each file for minutes before failing with a message about connections. Instead, a load
first asks `fetch_refusal`: a folder or a cached copy loads with no network at all; a name that
must be fetched is tried only when `HF_HUB_OFFLINE` is unset and one short connection to the hub
succeeds (no retries), else the load stops at once with one line that gives the choices.
`download` fetches a model ahead of time, with progress bars (`ume download-model`).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_MODEL = "zhibinlan/UME-R1-2B"
MODEL_ENV = "UME_MODEL"  # the model a command uses when none is named (and none is recorded)
REFERENCE_MODEL_ENV = "UME_REFERENCE_MODEL"
# The reference model trained on the tiny world (`model.world`), shipped in the repository (see
# its README.md). An installed copy of the package (a wheel, the Docker image) lies outside the
# repository, so the model's folder can be named in $UME_REFERENCE_MODEL.
IN_REPOSITORY = Path(__file__).resolve().parents[1] / "models" / "ume-r1-tiny-world"
REFERENCE_MODEL = Path(os.environ.get(REFERENCE_MODEL_ENV) or IN_REPOSITORY)
CONNECT_TIMEOUT_S = 3.0
TRUE_VALUES = {"1", "on", "yes", "true"}
# "owner/name" or "name" as the hub spells repository ids; anything else can only be a folder.
REPO_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def is_repo_id(name: str) -> bool:
    return bool(REPO_ID.match(name)) and ".." not in name and "--" not in name


def cached(name: str) -> bool:
    """Whether the hub model `name` has a copy in the Hugging Face cache (its config, at least)."""
    from huggingface_hub import try_to_load_from_cache

    if not is_repo_id(name):
        return False
    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def on_this_machine(name: str) -> bool:
    """A model folder, or a hub name with a cached copy: loading needs no network."""
    return Path(name).is_dir() or cached(name)


def offline_mode() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set: the hub must not be asked at all."""
    named = (os.environ.get(var, "").strip().lower() for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(value in TRUE_VALUES for value in named)


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def hub_reachable(timeout_s: float = CONNECT_TIMEOUT_S) -> bool:
    """One TCP connection to the hub's host, no retries: enough to tell offline from online."""
    parts = urlsplit(hub_endpoint())
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def hub_unavailable() -> str | None:
    """Why the hub cannot be asked right now, or None when it answers."""
    if offline_mode():
        return "HF_HUB_OFFLINE is set"
    if not hub_reachable():
        return f"{hub_endpoint()} cannot be reached"
    return None


def fetch_refusal(name: str, local_files_only: bool = False) -> str | None:
    """None when `name` can be loaded (on this machine, or fetchable now), else one line saying
    what to do. Called before transformers would try (and retry) the network."""
    if on_this_machine(name):
        return None
    if not is_repo_id(name):
        return f"no model folder at {name}: check the path{try_reference()}"
    why = "loading was asked to stay offline" if local_files_only else hub_unavailable()
    if why is None:
        return None
    return missing_line(name, why)


def missing_line(name: str, why: str) -> str:
    """The one line for a hub model that is neither cached nor fetchable."""
    command = "ume download-model" + ("" if name == default_model() else f" {name}")
    return (
        f"the model {name} is not on this machine ({why}): run `{command}` while online, "
        f"or pass --model DIR{try_reference()}"
    )


def try_reference() -> str:
    """The suggestion to try the shipped reference model, when this install has it."""
    if not (REFERENCE_MODEL / "config.json").is_file():
        return ""
    return f" (try --model {shown_path(REFERENCE_MODEL)}, the shipped reference model)"


def shown_path(path: Path) -> str:
    """A path as short as it can be typed from here: relative under the working folder."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def default_model() -> str:
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def download(name: str) -> Path:
    """Fetch every file of hub model `name` into the cache, with progress bars; returns its
    folder. Raises `OSError` (with one line) when it cannot."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import enable_progress_bars

    if not is_repo_id(name):
        raise OSError(f"{name} is not a hub model name (owner/name): nothing to download")
    why = hub_unavailable()
    if why is not None:
        raise OSError(f"cannot download {name}: {why}; connect to the network and run it again")
    enable_progress_bars()
    try:
        return Path(str(snapshot_download(name)))
    except Exception as error:  # the hub's errors (not found, gated, disk full) share no base
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise OSError(f"cannot download {name}: {reason}") from error
