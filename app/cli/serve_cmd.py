"""`ume search` and `ume serve`: search an index from the shell or in a browser.

Searching uses the model the collection was built with unless `--model` names another (which
is then checked against it), so `ume search "a red bike"` needs no other option.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from app.cli import UserError, handoff
from app.cli.common import (
    AUTH_ENV,
    add_cluster_options,
    add_login_option,
    add_store_options,
    model_for,
    parse_auth,
    store_from_args,
)
from app.context import AppContext, IndexingPolicy, make_context
from app.hits import SearchHit, SearchResult
from app.limits import check_request
from app.search import SearchService
from app.search_dates import DATE_FORMS, SORT_ORDERS
from app.search_request import (
    DEFAULT_QUERY_MAX_NEW_TOKENS,
    DEFAULT_SHORTLIST,
    DEFAULT_TOP_K,
    SEARCH_MODES,
    SearchError,
    SearchRequest,
)
from app.server_file import RunningServer, announce, withdraw
from indexer.catalog.open import default_data_dir
from indexer.catalog.schema import ITEM_KINDS
from indexer.catalog.store import Store, StoreError
from model.encoder import Encoder, ModelLoadError

DEFAULT_PORT = 7860


def register(subparsers: argparse._SubParsersAction) -> None:
    search = subparsers.add_parser("search", help="search a collection from the command line")
    search.add_argument("text", nargs="?", default=None, help="what to look for, in words")
    search.add_argument("--image", type=Path, help="an example image (alone or with words)")
    search.add_argument("--video", type=Path, help="an example video clip (alone or with words)")
    search.add_argument(
        "--mode",
        choices=SEARCH_MODES,
        default="fast",
        help="fast: disc vectors; reasoning: gen vectors after the model reasons "
        "about the query; rerank: fast shortlist re-ranked by gen similarity",
    )
    search.add_argument("--kind", choices=ITEM_KINDS, help="only images, videos or documents")
    search.add_argument("--folder", help="only items under this folder")
    search.add_argument("--after", metavar="DATE", help=f"only items made on or after DATE ({DATE_FORMS})")
    search.add_argument("--before", metavar="DATE", help="only items made on or before DATE (the whole day)")
    search.add_argument(
        "--sort",
        choices=SORT_ORDERS,
        default="score",
        help="score: best match first; newest / oldest: the best matches ordered by date",
    )
    search.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help="how many hits")
    search.add_argument("--shortlist", type=int, default=DEFAULT_SHORTLIST, help="rerank: N")
    search.add_argument("--json", action="store_true", help='print {"hits": [...]} as JSON')
    add_model_options(search)
    add_store_options(search)
    add_login_option(search)
    search.set_defaults(handler=run_search)

    serve = subparsers.add_parser("serve", help="the search UI in a browser (and its HTTP API)")
    add_model_options(serve)
    add_server_options(serve)
    add_store_options(serve)
    add_cluster_options(serve)
    serve.set_defaults(handler=run_serve)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default=None,
        help="model name or dir (default: the one the collection was built with)",
    )
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: best available)")
    group.add_argument(
        "--max-new-tokens",
        type=int,
        default=DEFAULT_QUERY_MAX_NEW_TOKENS,
        help="cap on the query's generated reasoning (reasoning/rerank modes)",
    )


def add_server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    group.add_argument("--port", type=int, default=DEFAULT_PORT)
    group.add_argument(
        "--auth",
        default=os.environ.get(AUTH_ENV),
        help=f"require a login, USER:PASSWORD (env {AUTH_ENV})",
    )
    group.add_argument(
        "--index-under",
        type=Path,
        action="append",
        default=None,
        metavar="DIR",
        help="let the Index tab and `ume index` add folders under DIR (repeatable); without it, "
        "any folder when bound to this machine only, none otherwise",
    )
    group.add_argument(
        "--watch",
        action="store_true",
        help="keep the indexed folders current: re-scan a folder when files in it change",
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def indexing_policy(host: str, index_under: list[Path] | None) -> IndexingPolicy:
    """Anyone who can reach the page could index (and then view) any folder: limit that."""
    if index_under:
        return IndexingPolicy(under=[Path(os.path.abspath(d.expanduser())) for d in index_under])
    if is_loopback(host):
        return IndexingPolicy(under=None)
    return IndexingPolicy(
        under=[],
        refusal="indexing from the browser is off when serving beyond this machine: "
        "restart with --index-under DIR to allow folders under DIR",
    )


def run_search(args: argparse.Namespace) -> int:
    request = search_request(args)
    check_request(request)  # before anything slow
    server = handoff.server_for(args)
    if server is not None:
        return search_on(server, args, request)
    try:
        result = search_once(args, request)
    except SearchError as error:
        raise UserError(str(error)) from error
    print(json.dumps(result.to_json(), ensure_ascii=False) if args.json else format_result(result))
    return 0


def search_on(server: RunningServer, args: argparse.Namespace, request: SearchRequest) -> int:
    """`ume search` answered by the running server; printed as a standalone run prints."""
    found, notice = handoff.search(server, args, request)
    if args.json:
        print(json.dumps(found, ensure_ascii=False))
    else:
        if found.get("query_reasoning") and args.mode != "fast":
            echo = ReasoningEcho()
            echo(found["query_reasoning"])
            echo.end()
        print(format_result(result_from_json(found)))
    if notice:
        print(f"ume: warning: {notice}", file=sys.stderr)
    return 0


def result_from_json(data: dict[str, Any]) -> SearchResult:
    """Enough of a `SearchResult` to print, from its JSON (hits lack their id and root)."""
    hits = [SearchHit(id="", root=None, **hit) for hit in data["hits"]]
    return SearchResult(hits, data["mode"], data["query_reasoning"], data["query_summary"], 0.0)


def search_request(args: argparse.Namespace) -> SearchRequest:
    """`ume search`'s arguments (named as the request's fields) as one search."""
    return SearchRequest.model_validate(args, from_attributes=True)


def search_once(args: argparse.Namespace, request: SearchRequest) -> SearchResult:
    """Open the index, check the mode before loading a model (slow), then search."""
    with store_from_args(args) as store:
        SearchService(store, args.collection, None).check_mode(request.mode)
        request.item_filter()  # a bad date: say so first
        model = model_for(store, args.collection, args.model)
        service = SearchService(store, args.collection, Encoder.from_pretrained(model, device=args.device))
        echo = ReasoningEcho() if args.mode != "fast" and not args.json else None
        result = service.search(request, on_text=echo)
        if echo is not None:
            echo.end()
        for notice in (service.outdated_notice(), result.pending_notice()):
            if notice:
                print(f"ume: warning: {notice}", file=sys.stderr)
        return result


class ReasoningEcho:
    """Writes the query's reasoning to stderr as the model generates it."""

    def __init__(self) -> None:
        self.shown = 0

    def __call__(self, text: str) -> None:
        if self.shown == 0 and text:
            sys.stderr.write("the model's reasoning about the query:\n")
        sys.stderr.write(text[self.shown :])
        sys.stderr.flush()
        self.shown = max(self.shown, len(text))

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\n\n")


def format_result(result: SearchResult) -> str:
    if not result.hits:
        return "no results"
    lines = []
    for rank, hit in enumerate(result.hits, 1):
        where = f"  ({hit.where})" if hit.where else ""
        lines.append(f"{rank:>3}. {hit.score:.3f}  {hit.kind:<8}  {hit.path}{where}  [{hit.date}]")
        if hit.summary:
            lines.append(f"      {hit.summary}")
    return "\n".join(lines)


def open_context(args: argparse.Namespace, **options: Any) -> AppContext:
    """Store, model and context for `serve`; what cannot be opened becomes a banner line."""
    problems: list[str] = []
    store: Store | None = None
    encoder: Encoder | None = None
    try:
        store = store_from_args(args)
    except StoreError as error:
        problems.append(f"the index cannot be opened ({error}); fix it and restart ume serve")
    if store is not None:
        try:
            model = model_for(store, args.collection, args.model)
            encoder = Encoder.from_pretrained(model, device=args.device)
        except (ModelLoadError, StoreError) as error:
            problems.append(f"searching and indexing are off: {error}")
    for problem in problems:
        print(f"ume: {problem}", file=sys.stderr)
    return make_context(store, args.collection, encoder, problems, **options)


def run_serve(args: argparse.Namespace) -> int:
    auth = parse_auth(args.auth)
    warn_if_exposed(args.host, auth)
    ctx = open_context(
        args,
        max_new_tokens=args.max_new_tokens,
        indexing=indexing_policy(args.host, args.index_under),
        index_settings={
            "data_dir": args.data_dir,
            "qdrant_url": args.qdrant_url,
            "shards": args.shards,
            "replicas": args.replicas,
        },
    )
    embedded = None if args.qdrant_url is not None else (args.data_dir or default_data_dir())
    return serve_page(ctx, args.host, args.port, auth, embedded, args.watch)


def serve_page(
    ctx: AppContext,
    host: str,
    port: int | None,
    auth: tuple[str, str] | None,
    data_dir: Path | None,
    watch: bool,
) -> int:
    """Serve the page and the API until Ctrl-C or SIGTERM (`ume serve` and `ume demo` alike).
    `data_dir` is the embedded index the server holds (None for a Qdrant server)."""
    from app.ui.page import build_ui, launch

    demo = launch(build_ui(ctx), ctx, host=host, port=port, auth=auth, prevent_thread_lock=True)
    try:
        with serving(ctx, data_dir, str(demo.local_url), auth is not None, watch):
            stop_on_sigterm()
            demo.block_thread()  # until Ctrl-C (or SIGTERM)
    finally:
        demo.close()
    return 0


@contextmanager
def serving(ctx: AppContext, data_dir: Path | None, url: str, login: bool, watch: bool) -> Iterator[None]:
    """While the server runs: its note in the data dir it holds (so `ume index`, `ume status` and
    `ume search` hand their work to it), and the folder watcher."""
    held = data_dir if ctx.service is not None else None  # an index that did not open is not held
    if held is not None:
        announce(held, RunningServer(url, os.getpid(), ctx.collection, login))
    if watch:
        start_watching(ctx)
    try:
        yield
    finally:
        if held is not None:
            withdraw(held)
        ctx.close()


def start_watching(ctx: AppContext) -> None:
    if ctx.service is None or ctx.service.encoder is None:
        print(
            "ume: warning: --watch is off: without the index and a model nothing can be indexed "
            "(see the line above)",
            file=sys.stderr,
        )
        return
    ctx.watch()


def stop_on_sigterm() -> None:
    """SIGTERM (a service manager stopping us) ends the server as Ctrl-C does, cleaning up."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def warn_if_exposed(host: str, auth: tuple[str, str] | None) -> None:
    if not is_loopback(host) and auth is None:
        print(
            f"ume: warning: serving on {host} without --auth: anyone who can reach this port "
            "can search and view the indexed files",
            file=sys.stderr,
        )
