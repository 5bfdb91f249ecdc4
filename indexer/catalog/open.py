"""Opening a store: the server engine for a URL, else the embedded one under a data directory."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from indexer.catalog.store import LAYOUT_NEEDS_SERVER, ClusterLayout, Store, StoreError

APP_NAME = "ume"
DATA_DIR_ENV = "UME_DATA_DIR"


def default_data_dir() -> Path:
    """$UME_DATA_DIR when set, else the platform's per-user data directory for ume."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME))


def open_store(
    data_dir: Path | None = None,
    qdrant_url: str | None = None,
    api_key: str | None = None,
    layout: ClusterLayout | None = None,
) -> Store:
    """Open the server engine when `qdrant_url` is given, else the embedded one.

    `qdrant_url` may be an http(s) URL, `local:PATH` or `:memory:` (qdrant-client local mode,
    for tests). The embedded engine lives under `data_dir` (default: `default_data_dir()`).
    `layout` spreads the collections the server engine creates; the embedded engine refuses one.
    """
    # Each engine is imported when it is opened: qdrant-client alone adds ~2 s to every `ume`
    # command, `--help` included. Neither engine imports this module, so there is no circle.
    if qdrant_url is not None:
        from indexer.catalog.server import ServerStore

        return ServerStore(qdrant_url, api_key=api_key, layout=layout)
    if layout is not None and layout.given:
        raise StoreError(LAYOUT_NEEDS_SERVER)
    from indexer.catalog.edge import EdgeStore

    return EdgeStore(data_dir if data_dir is not None else default_data_dir())
