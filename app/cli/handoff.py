"""Handing `ume index`, `ume status` and `ume search` to a running `ume serve` over HTTP.

While `ume serve` holds an embedded index (one process at a time), these commands find it by the
note it leaves in the data dir (`app.server_file`) and send it the work (`app.api`). They print
what they would have printed alone (the `--json` output has the same structure), show progress
on stderr, and exit with the status a standalone run would have had.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from app.cli import UserError
from app.cli.common import parse_auth
from app.search_request import SearchFields
from app.server_file import RunningServer, running_server
from indexer.catalog.open import default_data_dir
from indexer.config import IndexConfig
from indexer.summary import print_summary, summary_from_json

CONNECT_S = 10.0
SEARCH_S = 600.0  # a reasoning search may wait for the model behind other searches
# the server decides where it writes, and how its collections are spread
LOCATION_FIELDS = {"roots", "data_dir", "qdrant_url", "shards", "replicas"}


def server_for(args: argparse.Namespace) -> RunningServer | None:
    """The `ume serve` holding the embedded index these arguments name, if one runs."""
    if getattr(args, "qdrant_url", None) is not None:
        return None  # a Qdrant server is shared by every process: nothing to hand over
    return running_server(args.data_dir if args.data_dir is not None else default_data_dir())


class ServerClient:
    """Requests to one running server, with the login from --auth / UME_AUTH."""

    def __init__(self, server: RunningServer, auth: str | None) -> None:
        self.server = server
        credentials = parse_auth(auth)
        self.client = httpx.Client(
            base_url=server.url.rstrip("/") + "/ume",
            auth=httpx.BasicAuth(*credentials) if credentials else None,
            timeout=httpx.Timeout(SEARCH_S, connect=CONNECT_S),
        )

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self.client.request(method, path, **options)
        except httpx.HTTPError as error:
            raise self.unreachable(error) from error
        return checked(response)

    def stream_lines(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST `body` and yield the JSON lines of the answer as they arrive."""
        try:
            endless = httpx.Timeout(None, connect=CONNECT_S)  # a job takes as long as it takes
            with self.client.stream("POST", path, json=body, timeout=endless) as answer:
                if answer.status_code >= 400:
                    answer.read()
                    checked(answer)
                for line in answer.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.HTTPError as error:
            raise self.unreachable(error) from error

    def unreachable(self, error: Exception) -> UserError:
        return UserError(
            f"ume serve (pid {self.server.pid}) holds this index but does not answer at "
            f"{self.server.url} ({type(error).__name__}): try again, or stop it"
        )


def checked(response: httpx.Response) -> httpx.Response:
    """The response, or its one-line error as a UserError (printed, exit status 2)."""
    if response.status_code < 400:
        return response
    try:
        message = str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        message = f"ume serve answered {response.status_code}: {response.text[:200]}"
    raise UserError(message)


def index(server: RunningServer, args: argparse.Namespace, config: IndexConfig) -> int:
    """Run `ume index` as a job of the server; returns the exit status it would have alone."""
    progress = not args.no_progress
    if progress:
        print(f"ume: {server.url} (ume serve) holds this index: indexing there", file=sys.stderr)
    body = {
        "roots": [str(Path(root).expanduser().resolve()) for root in config.roots],
        "collection": config.collection,
        "fields": config.model_dump(mode="json", exclude=LOCATION_FIELDS | {"collection"}),
    }
    bar = tqdm(desc="indexing", unit="file", disable=None if progress else True, file=sys.stderr)
    try:
        for event in ServerClient(server, args.auth).stream_lines("/index", body):
            ended = show(event, bar, progress)
            if ended is not None:
                return finish(event, args.json)
    finally:
        bar.close()
    raise UserError(f"ume serve at {server.url} stopped before the indexing job ended: run it again")


def show(event: dict[str, Any], bar: tqdm, progress: bool) -> bool | None:
    """Show one event on stderr; True/False once the job ended (done/failed), else None."""
    kind = event.get("event")
    if kind == "stage" and progress:
        tqdm.write(f"ume: {event['line']}", file=sys.stderr)
    elif kind == "queued" and progress and event.get("position"):
        tqdm.write(f"ume: waiting for {event['position']} job(s) ahead on the server", file=sys.stderr)
    elif kind == "progress":
        bar.unit = str(event.get("unit") or "files").removesuffix("s")
        bar.total = event.get("total")
        bar.n = int(event.get("done") or 0)
        bar.refresh()
    return {"done": True, "failed": False}.get(str(kind))


def finish(event: dict[str, Any], as_json: bool) -> int:
    status = int(event["exit_status"])
    if event["event"] == "failed":
        if status == 2:
            raise UserError(str(event["error"]))
        print(f"ume: error: {event['error']}", file=sys.stderr)
        return status
    print_summary(summary_from_json(event["summary"]), as_json)
    return status


def status(server: RunningServer, args: argparse.Namespace) -> dict[str, Any]:
    """`ume status`'s JSON, from the server."""
    answer = ServerClient(server, args.auth).request("GET", "/status", params={"collection": args.collection})
    data: dict[str, Any] = answer.json()
    return data


def search(
    server: RunningServer, args: argparse.Namespace, request: SearchFields
) -> tuple[dict[str, Any], str | None]:
    """`ume search`'s JSON and the outdated-index notice, if any, from the server; the example
    files go as uploads (the server may not see the caller's files)."""
    body = {
        **request.search_fields(),
        "collection": args.collection,
        "image": upload(args.image),
        "video": upload(args.video),
        "model": args.model,
    }
    answer = ServerClient(server, args.auth).request("POST", "/search", json=body)
    return answer.json(), answer.headers.get("X-Ume-Warning")


def upload(path: Path | None) -> dict[str, str] | None:
    """An example file sent along (the server may not see the caller's files)."""
    if path is None:
        return None
    try:
        data = path.expanduser().read_bytes()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from error
    return {"name": path.name, "data": base64.b64encode(data).decode("ascii")}
