"""The server's HTTP API for the command line: index, status and search on the served collection.

    POST /ume/index    {"roots": [...], "fields": {IndexConfig fields}, "collection": "media"}
                       -> newline-delimited JSON events of one job: queued, running, stage lines,
                          progress (done, total, eta_s), then done (summary, exit_status) or
                          failed (error, exit_status)
    GET  /ume/status?collection=media   -> the JSON of `ume status --json`
    POST /ume/search   {"text": ..., "image": {"name", "data" (base64)}, "mode": ..., ...}
                       -> the JSON of `ume search --json` (an outdated-index notice, if any, in the
                          X-Ume-Warning header)

Errors are `{"error": "one line"}` with status 400 (a request the caller can fix: a body that is
not JSON, a field of the wrong type, a value beyond a stated limit of `app.limits`, which the line
names), 401 (a login is needed: `ume serve --auth` applies here too, as HTTP Basic; checked
before the body is read), 403 (a folder outside what the server may index) or 409 (another
collection than the one served).

A job keeps running when its caller disconnects: the server owns it, and the Index tab shows it.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from app.api_requests import BadRequest, IndexRequest, SearchBody, Upload, parse_body
from app.context import AppContext
from app.limits import LimitError, check_request
from app.search_request import SearchError
from indexer.catalog.collection import describe, resolved_model_id
from indexer.catalog.store import StoreError
from indexer.config import ConfigError, validation_message

API_PREFIX = "/ume"
LOGIN_NEEDED = "this ume server requires a login: give --auth USER:PASSWORD or set UME_AUTH"
WRONG_LOGIN = "this ume server refused the login: check --auth USER:PASSWORD or UME_AUTH"


def error(message: str, status: int) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="ume"'} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def login_refusal(request: Request, auth: tuple[str, str] | None) -> JSONResponse | None:
    """None when no login is needed or the request carries the right one (HTTP Basic)."""
    if auth is None:
        return None
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return error(LOGIN_NEEDED, 401)
    try:
        user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return error(WRONG_LOGIN, 401)
    right = same(user, auth[0]) & same(password, auth[1])  # both compared: no early exit to time
    return None if right else error(WRONG_LOGIN, 401)


def same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def api_routes(ctx: AppContext, auth: tuple[str, str] | None) -> list[BaseRoute]:
    """The routes, to be given to the app Gradio builds (`FastAPI(routes=...)`).

    Each checks the login before it reads anything else of the request, then parses the body
    itself (`app.api_requests`) so that every refusal is one line; the work runs in a thread."""
    router = APIRouter(prefix=API_PREFIX)

    @router.post("/index")
    async def index(request: Request) -> Response:
        refused = login_refusal(request, auth)
        if refused is not None:
            return refused
        try:
            body = parse_body(await request.body(), IndexRequest)
        except BadRequest as problem:
            return error(str(problem), 400)
        return await run_in_threadpool(start_index, ctx, body)

    @router.get("/status")
    async def status(request: Request) -> Response:
        refused = login_refusal(request, auth)
        if refused is not None:
            return refused
        collection = request.query_params.get("collection")
        if not collection:
            return error("give the collection: GET /ume/status?collection=NAME", 400)
        return await run_in_threadpool(collection_status, ctx, collection)

    @router.post("/search")
    async def search(request: Request) -> Response:
        refused = login_refusal(request, auth)
        if refused is not None:
            return refused
        try:
            body = parse_body(await request.body(), SearchBody)
            check_request(body)
        except (BadRequest, LimitError) as problem:
            return error(str(problem), 400)
        return await run_in_threadpool(run_search, ctx, body)

    return list(router.routes)


def served_elsewhere(ctx: AppContext, collection: str) -> JSONResponse | None:
    if collection == ctx.collection:
        return None
    return error(
        f"ume serve holds this index for collection {ctx.collection!r}, not {collection!r}: "
        f"use --collection {ctx.collection}, or stop ume serve first",
        409,
    )


def start_index(ctx: AppContext, body: IndexRequest) -> Response:
    """Queue the job, then stream its events as they happen."""
    refused = served_elsewhere(ctx, body.collection)
    if refused is not None:
        return refused
    roots = [Path(root) for root in body.roots]
    for root in roots:
        refusal = "give absolute paths" if not root.is_absolute() else ctx.indexing.refusal_for(root)
        if refusal:
            return error(refusal, 403)
    try:
        job = ctx.submit(roots, "cli", **body.fields)
    except (ConfigError, ValidationError) as problem:
        return error(validation_message(problem), 400)
    return StreamingResponse(ndjson(job.events()), media_type="application/x-ndjson")


def ndjson(events: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for event in events:
        yield (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")


def collection_status(ctx: AppContext, collection: str) -> Response:
    if ctx.service is None:
        return error("; ".join(ctx.problems) or "no index is open", 400)
    try:
        return JSONResponse(describe(ctx.service.store, collection).to_json())
    except StoreError as problem:
        return error(str(problem), 400)


def run_search(ctx: AppContext, body: SearchBody) -> Response:
    """One search with the server's model; searches go ahead of background indexing."""
    refused = served_elsewhere(ctx, body.collection) or model_refusal(ctx, body.model)
    if refused is not None:
        return refused
    service = ctx.service
    if service is None:
        return error("; ".join(ctx.problems) or "no index is open", 400)
    with tempfile.TemporaryDirectory(prefix="ume-query-") as scratch:
        try:
            image, video = (saved(upload, Path(scratch)) for upload in (body.image, body.video))
            # the service goes ahead of background work at its gate
            result = service.search(body.request(image, video))
            notice = service.outdated_notice()
        except (SearchError, LimitError, StoreError, ValueError) as problem:
            return error(str(problem), 400)
    return JSONResponse(result.to_json(), headers={"X-Ume-Warning": notice} if notice else None)


def model_refusal(ctx: AppContext, requested: str | None) -> JSONResponse | None:
    encoder = ctx.service.encoder if ctx.service is not None else None
    if not requested or encoder is None:
        return None
    if resolved_model_id(requested) == resolved_model_id(encoder.model_id):
        return None
    return error(f"this server searches with {encoder.model_id}, not {requested}: leave out --model", 409)


def saved(upload: Upload | None, folder: Path) -> Path | None:
    """An uploaded example written to a scratch file (the search service reads files)."""
    if upload is None:
        return None
    try:
        data = base64.b64decode(upload.data, validate=True)
    except binascii.Error as problem:
        raise ValueError(f"the example {upload.name!r} is not valid base64") from problem
    path = folder / (Path(upload.name).name or "example")
    path.write_bytes(data)
    return path
