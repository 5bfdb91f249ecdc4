"""One search as every caller asks for it, and what it becomes: model input and a store filter.

The page, the HTTP API, the command line and the evaluator each build one `SearchRequest` and
hand it to `SearchService.search`. The fields a caller sets are spelled once, in
`SearchFields`; the API's body (`app.api_requests`) shares them and differs only in how an
example file arrives (uploaded bytes instead of a path).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, get_args

from PIL import Image
from pydantic import BaseModel, ConfigDict

from app.search_dates import DateError, taken_range
from indexer.catalog import schema
from indexer.catalog.schema import ITEM_KINDS
from indexer.catalog.store import Match
from model.inputs import EmbedInput, image_input
from model.media import MediaError, load_image, read_video_segments

SearchMode = Literal["fast", "reasoning", "rerank"]
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)
DEFAULT_TOP_K = 10
DEFAULT_SHORTLIST = 50
# Queries are short; a cap keeps a runaway generation from holding the queue for minutes.
DEFAULT_QUERY_MAX_NEW_TOKENS = 1024


class SearchError(Exception):
    """A query the user can fix (nothing to search for, a mode the index cannot serve)."""


class SearchFields(BaseModel):
    """What a search asks for besides its example file.

    `kind` None means every kind and `folder` None every folder; `after` / `before` are dates
    as typed (`2024-06-01`, `2024-06`, `2024`; both inclusive, None: open) and `sort` is "score",
    "newest" or "oldest". `shortlist` matters to re-rank only and `max_new_tokens` to the
    generation modes only. Their ranges are checked by the service (`app.limits`).
    """

    model_config = ConfigDict(frozen=True)

    text: str | None = None
    mode: str = "fast"
    kind: str | None = None
    folder: str | Path | None = None
    after: str | None = None
    before: str | None = None
    sort: str = "score"
    top_k: int = DEFAULT_TOP_K
    shortlist: int = DEFAULT_SHORTLIST
    max_new_tokens: int = DEFAULT_QUERY_MAX_NEW_TOKENS

    def search_fields(self) -> dict[str, Any]:
        """These fields alone, as JSON values (what the HTTP API's body holds besides files)."""
        return self.model_dump(mode="json", include=set(SearchFields.model_fields))


class SearchRequest(SearchFields):
    """A search with its example image (a file or a picture) or clip (a file), if any."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    image: Image.Image | Path | str | None = None
    video: Path | str | None = None

    def query_input(self) -> EmbedInput:
        return query_input(self.text, self.image, self.video)

    def item_filter(self) -> Match:
        return item_filter(self.kind, self.folder, self.after, self.before)


def folder_key(folder: str | Path) -> str:
    """A folder as the indexer records it in `folders`: absolute, normalised, links kept."""
    return os.path.abspath(os.path.expanduser(folder))


def item_filter(
    kind: str | None = None,
    folder: str | Path | None = None,
    after: str | None = None,
    before: str | None = None,
) -> Match:
    """Stored items (not file records), optionally of one kind, under one folder, and made
    within a date range (`app.search_dates`)."""
    if kind and kind not in ITEM_KINDS:
        raise SearchError(f"unknown kind {kind!r}: use one of {', '.join(ITEM_KINDS)}")
    with date_errors():
        taken = taken_range(after, before)
    return schema.items(kind=kind or None, folder=folder_key(folder) if folder else None, taken=taken)


@contextmanager
def date_errors() -> Iterator[None]:
    try:
        yield
    except DateError as error:
        raise SearchError(str(error)) from None


@contextmanager
def example_errors(what: str, source: object) -> Iterator[None]:
    """A file given to search by (often an upload in a server's temporary folder) that cannot be
    read becomes a `SearchError` that names it by what it is, never by its path."""
    try:
        yield
    except MediaError as error:
        raise SearchError(str(error).replace(str(source), f"the example {what}")) from None


def query_input(
    text: str | None = None,
    image: Image.Image | str | Path | None = None,
    video: str | Path | None = None,
) -> EmbedInput:
    """The query as model input: words, an example image or clip, or words with one of those."""
    words = (text or "").strip() or None
    if image is not None and video is not None:
        raise SearchError("give an example image or a video clip, not both")
    if image is not None:
        with example_errors("image", image):
            picture = image if isinstance(image, Image.Image) else load_image(Path(image))
        return image_input(picture, text=words)
    if video is not None:
        with example_errors("clip", video):
            segment = next(iter(read_video_segments(Path(video))))  # the whole clip, 8 frames
        return EmbedInput(text=words, video_frames=segment.frames, kind="video", source=str(video))
    if words is None:
        raise SearchError("nothing to search for: type some words or give an example image or clip")
    return EmbedInput(text=words, kind="text")
