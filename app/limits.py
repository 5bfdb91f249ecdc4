"""The stated limits of one search, checked in one place for the page, the HTTP API and the CLI.

Every search passes through `SearchService.search`, which calls `check_request` first; the API
and the CLI call it too before they do anything slow (load a model, decode an upload). A request
beyond a limit is refused with one line that names the limit, never cut short silently.

Queries are short by nature; the cap on their length also keeps the page's deep link (which
carries the words) far below the length at which servers refuse a URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.search_request import SearchFields

MAX_QUERY_CHARS = 2_000
MAX_TOP_K = 1_000
MAX_SHORTLIST = 10_000
MAX_QUERY_NEW_TOKENS = 8_192  # the model's own default cap on a generation


class LimitError(ValueError):
    """A search request beyond one of the stated limits; the message is one line."""


def check_query_text(text: str | None) -> None:
    length = len(text or "")
    if length > MAX_QUERY_CHARS:
        raise LimitError(
            f"the query is {length:,} characters long; the most a query may have is {MAX_QUERY_CHARS:,}: "
            "shorten it"
        )


def check_range(name: str, value: int, most: int) -> None:
    if not 1 <= value <= most:
        raise LimitError(f"{name} must be a whole number from 1 to {most:,}, not {value}")


def check_request(request: SearchFields) -> None:
    """Raise `LimitError` for the first limit the request breaks."""
    check_query_text(request.text)
    check_range("top_k", request.top_k, MAX_TOP_K)
    check_range("shortlist", request.shortlist, MAX_SHORTLIST)
    check_range("max_new_tokens", request.max_new_tokens, MAX_QUERY_NEW_TOKENS)
