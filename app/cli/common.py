"""Options shared by every `ume` command that touches an index, and opening the store from them."""

from __future__ import annotations

import argparse
import os

from app.cli import UserError
from indexer.catalog.open import open_store
from indexer.catalog.store import LAYOUT_NEEDS_SERVER, ClusterLayout, Store
from indexer.config import add_cluster_arguments, add_store_arguments, collection_model

AUTH_ENV = "UME_AUTH"


def add_store_options(parser: argparse.ArgumentParser, collection: bool = True) -> None:
    """Add --data-dir and --qdrant-url (and --collection unless `collection` is False)."""
    add_store_arguments(parser, collection=collection)


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Add --shards and --replicas, for a command that may create a collection on a server."""
    add_cluster_arguments(parser)


def store_from_args(args: argparse.Namespace) -> Store:
    """The embedded index (--data-dir, default) or a Qdrant server (--qdrant-url)."""
    if args.data_dir is not None and args.qdrant_url is not None:
        raise UserError("give --data-dir (embedded index) or --qdrant-url (server), not both")
    layout = ClusterLayout(getattr(args, "shards", None), getattr(args, "replicas", None))
    if args.qdrant_url is None and layout.given:
        raise UserError(LAYOUT_NEEDS_SERVER)
    return open_store(data_dir=args.data_dir, qdrant_url=args.qdrant_url, layout=layout)


def model_for(store: Store, collection: str, requested: str | None) -> str:
    """The model to load: the requested one, else the collection's, else the default."""
    return collection_model(None if requested else store.collection_info(collection), requested)


def add_login_option(parser: argparse.ArgumentParser) -> None:
    """--auth for a command that may hand its work to a running `ume serve`."""
    parser.add_argument(
        "--auth",
        default=os.environ.get(AUTH_ENV),
        metavar="USER:PASSWORD",
        help=f"the login of a running `ume serve --auth` that holds the index (env {AUTH_ENV})",
    )


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, colon, password = value.partition(":")
    if not colon or not user or not password:
        raise UserError(f"--auth / {AUTH_ENV} must be USER:PASSWORD")
    return user, password
