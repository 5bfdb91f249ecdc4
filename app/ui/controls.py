"""What the tabs' controls share: their choices, how a filter's value reads, and the status line.

A mistake a user can cause (`USER_ERRORS`: an empty or too long query, a mode the index cannot
serve, an unreadable example file, a store or model that is not there) ends up in the status
line as one line, never as a stack trace.
"""

from __future__ import annotations

import html

from app.limits import LimitError
from app.search_request import SearchError
from indexer.catalog.schema import ITEM_KINDS
from indexer.catalog.store import StoreError
from model.encoder import ModelLoadError
from model.media import MediaError

USER_ERRORS = (SearchError, LimitError, StoreError, MediaError, ModelLoadError)
MAX_TOP_K = 100
MODE_CHOICES = [("Fast", "fast"), ("Reasoning", "reasoning"), ("Re-rank", "rerank")]
KIND_NAMES: dict[str, str] = {kind: f"{kind.capitalize()}s" for kind in ITEM_KINDS}
KIND_CHOICES = [("All kinds", "all")] + [(name, kind) for kind, name in KIND_NAMES.items()]
ALL_FOLDERS = ("All folders", "")


def none_if_all(kind: str | None) -> str | None:
    return None if not kind or kind == "all" else kind


def status_html(message: str, error: bool = False) -> str:
    css = "ume-status ume-error" if error else "ume-status"
    return f'<div class="{css}">{html.escape(message)}</div>'
