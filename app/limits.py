"""The stated limits of one search, checked in one place for the page, the HTTP API and the CLI.

Every search passes through `SearchService.search`, which calls `check_request` first; the API
and the CLI call it too before they do anything slow (load a model, decode an upload). A request
beyond a limit is refused with one line that names the limit, never cut short silently.

Queries are short by nature; the cap on their length also keeps the page's deep link (which
carries the words) far below the length at which servers refuse a URL.
"""

from __future__ import annotations

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


def check_request(
    text: str | None,
    top_k: int,
    shortlist: int | None = None,
    max_new_tokens: int | None = None,
) -> None:
    """Raise `LimitError` for the first limit the request breaks."""
    check_query_text(text)
    check_range("top_k", top_k, MAX_TOP_K)
    if shortlist is not None:
        check_range("shortlist", shortlist, MAX_SHORTLIST)
    if max_new_tokens is not None:
        check_range("max_new_tokens", max_new_tokens, MAX_QUERY_NEW_TOKENS)
