"""The HTTP API's request bodies, and how a body that cannot be used becomes one line.

A body is read only after the login is checked (`app.api`), so a caller without one learns that
first. Bodies are parsed here rather than by FastAPI: its 422 answers are nested objects, and the
API promises `{"error": "one line"}` (status 400) that names what to fix and the limit broken.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from app.limits import MAX_QUERY_NEW_TOKENS, MAX_SHORTLIST, MAX_TOP_K
from app.search_request import SearchFields, SearchRequest

Body = TypeVar("Body", bound=BaseModel)
# Fields with a stated range: a value that is not a whole number is told the range as well.
RANGES = {"top_k": MAX_TOP_K, "shortlist": MAX_SHORTLIST, "max_new_tokens": MAX_QUERY_NEW_TOKENS}


class BadRequest(Exception):
    """A request body the caller can fix; the message is one line."""


class IndexRequest(BaseModel):
    roots: list[str]
    collection: str
    fields: dict[str, Any] = Field(default_factory=dict)  # IndexConfig fields besides the location


class Upload(BaseModel):
    name: str
    data: str  # base64 of the file's bytes


class SearchBody(SearchFields):
    """`POST /ume/search`: a search (`app.search_request`) of a collection, with an example
    file sent as base64 instead of a path the server may not see."""

    collection: str
    image: Upload | None = None
    video: Upload | None = None
    model: str | None = None

    def request(self, image: Path | None, video: Path | None) -> SearchRequest:
        """The search, once the uploads are saved as files."""
        return SearchRequest(**self.search_fields(), image=image, video=video)


def parse_body(raw: bytes, model: type[Body]) -> Body:
    """The body as `model`, or `BadRequest` saying what is wrong with it."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        where = error_position(error)
        raise BadRequest(f"the request body is not JSON ({where}): send a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the request body must be a JSON object, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise BadRequest(field_problem(error)) from None


def error_position(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg.lower()} at character {error.pos}"
    return "it is not UTF-8 text"


def field_problem(error: ValidationError) -> str:
    """One line for the first field that is wrong: its name, what it must be, what it was."""
    first = error.errors()[0]
    location = [str(part) for part in first.get("loc", ())]
    name = ".".join(location) or "the body"
    if first.get("type") == "missing":
        return f"{name} is missing from the request body"
    given = first.get("input")
    shown = json.dumps(given)[:60] if given is not None else "null"
    if location and location[0] in RANGES and len(location) == 1:
        return f"{name} must be a whole number from 1 to {RANGES[location[0]]:,}, not {shown}"
    return f"{name}: {str(first.get('msg', 'invalid value')).lower()}, not {shown}"
