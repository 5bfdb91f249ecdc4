"""`ume index` (embed the media under folders into a collection) and `ume status`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from app.cli import UserError, handoff
from app.cli.common import add_cluster_options, add_login_option, add_store_options, store_from_args
from indexer.catalog.collection import (
    CollectionStatus,
    StageCounts,
    collection_mode,
    describe,
    quantization_line,
    stale_notice,
)
from indexer.catalog.store import CollectionInfo, GraphStatus
from indexer.config import (
    ConfigError,
    IndexConfig,
    add_index_arguments,
    config_from_args,
    validation_message,
)
from indexer.summary import print_summary


def register(subparsers: argparse._SubParsersAction) -> None:
    index = subparsers.add_parser(
        "index",
        help="embed the photos, videos and PDFs under folders into a collection",
        description="Embed images, video segments and PDF pages under PATHs; re-runs embed only "
        "what changed. While `ume serve` holds the index, the run is handed to it. "
        "Exit status: 0 all indexed, 1 some files failed, 2 usage error.",
    )
    add_store_options(index)
    add_cluster_options(index)
    add_index_arguments(index)
    index.add_argument(
        "--workers",
        type=int,
        default=1,
        help="shard files across N processes writing to one server (needs --qdrant-url)",
    )
    index.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_login_option(index)
    index.set_defaults(handler=run_index, resumable=True)

    status = subparsers.add_parser("status", help="what a collection holds, and which files failed")
    add_store_options(status)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    add_login_option(status)
    status.set_defaults(handler=run_status)


def index_config(args: argparse.Namespace) -> IndexConfig:
    try:
        return config_from_args(args)
    except ValidationError as error:
        raise UserError(validation_message(error)) from error


def run_index(args: argparse.Namespace) -> int:
    from indexer.run import index_folders
    from indexer.shard import launch_workers

    config = index_config(args)
    progress = not args.no_progress
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.workers > 1:
        if config.qdrant_url is None:
            raise UserError("--workers needs --qdrant-url: the embedded index opens in one process at a time")
        return launch_workers(config, args.workers, args.json, progress)
    server = handoff.server_for(args)
    if server is not None:
        return handoff.index(server, args, config)
    graph = GraphProgress()
    try:
        summary = index_folders(
            config,
            progress=progress,
            on_stage=say_stage if progress else None,
            on_graph=graph if progress else None,
        )
    except ConfigError as error:
        raise UserError(str(error)) from error
    finally:
        graph.close()
    print_summary(summary, args.json)
    return 1 if summary.failed else 0


def say_stage(line: str) -> None:
    """A slow step's line on stderr, above the progress bar rather than through it."""
    tqdm.write(f"ume: {line}", file=sys.stderr)


class GraphProgress:
    """A bar for the search graph's background build: elapsed time against the measured estimate
    (qdrant-edge reports no progress of its own)."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def __call__(self, status: GraphStatus) -> None:
        total = max(1, round(status.estimate_s or 0))
        if self.bar is None:
            self.bar = tqdm(total=total, desc="search graph", unit="s", file=sys.stderr, leave=False)
            self.bar.bar_format = "{desc}: {bar} {elapsed} elapsed, estimate {total_fmt} s"
        self.bar.n = min(total, round(status.elapsed_s or 0))
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_status(args: argparse.Namespace) -> int:
    server = handoff.server_for(args)
    if server is not None:
        status = status_from_json(handoff.status(server, args))
    else:
        with store_from_args(args) as store:
            status = describe(store, args.collection)
    if args.json:
        print(json.dumps(status.to_json(), ensure_ascii=False))
    else:
        print(format_status(status))
    return 0


def stages_line(stages: StageCounts) -> str:
    """How far progressive indexing has got, in one line."""
    line = f"{stages.searchable:,} items searchable, {stages.with_reasoning:,} with reasoning"
    if stages.pending:
        line += f", {stages.pending:,} pending (the next `ume index` over their folders adds them)"
    return line


def status_from_json(data: dict[str, Any]) -> CollectionStatus:
    """The inverse of `CollectionStatus.to_json` (a status read from `ume serve`)."""
    info, stages = CollectionInfo.from_json(data["info"]), StageCounts(**data["stages"])
    return CollectionStatus(**{**data, "info": info, "stages": stages})


def format_status(status: CollectionStatus) -> str:
    info = status.info
    kinds = ", ".join(f"{count} {kind}" for kind, count in status.kinds.items())
    lines = [
        f"collection {status.collection}: {status.points} items ({kinds}) from {status.files} files",
        f"model {info.model_id} ({info.dim}-d vectors, mode {collection_mode(info)}, "
        f"schema {info.schema_version})",
        stages_line(status.stages),
        quantization_line(info),
    ]
    if status.graph:
        lines.append(status.graph)
    if status.incomplete:
        lines.append(f"{status.incomplete} files left incomplete by an interrupted run: run ume index again")
    notice = stale_notice(status.stale)
    if notice:
        lines.append(notice)
    lines.append(f"{len(status.failures)} files failed" + (":" if status.failures else ""))
    lines += [f"  {failure['path']}: {failure['reason']}" for failure in status.failures]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run `ume index` or `ume status`")
