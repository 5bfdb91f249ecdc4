"""Scale-out: one indexing run split across processes, all writing to one server collection.

    torchrun --nproc_per_node=4 -m indexer.shard ~/Photos --qdrant-url http://qdrant:6333
    ume index ~/Photos --qdrant-url http://qdrant:6333 --workers 4      (the same, spawned by ume)

Design decisions:
- Each file belongs to exactly one process (`indexer.sharding`).
- Every process walks all roots (cheap) and keeps its own files; rank 0 alone creates the
  collection before the others start, and prunes deleted files after every process is done
  (a moved file must be copied by its new owner before its old path is pruned).
- The embedded engine is one process at a time, so sharding needs `--qdrant-url`. qdrant-client's
  local mode (`local:PATH`) is accepted too, but it also allows one process at a time: its
  workers take turns, which is only useful for testing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from indexer.catalog.store import StoreError
from indexer.config import (
    ConfigError,
    IndexConfig,
    add_cluster_arguments,
    add_index_arguments,
    add_store_arguments,
    config_from_args,
    validation_message,
)
from indexer.run import index_folders
from indexer.sharding import POLL_S, ShardSpec
from indexer.summary import print_summary
from model.encoder import ModelLoadError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launch_workers(config: IndexConfig, workers: int, as_json: bool, progress: bool) -> int:
    """Run `workers` processes of `python -m indexer.shard` like torchrun would; rank 0 reports.

    Returns rank 0's exit status, or the first failing worker's if a worker crashed.
    """
    with tempfile.TemporaryDirectory(prefix="ume-shard-") as folder:
        config_file = Path(folder) / "config.json"
        config_file.write_text(config.model_dump_json())
        command = [sys.executable, "-m", "indexer.shard", "--config-json", str(config_file)]
        command += ["--json"] if as_json else []
        command += [] if progress else ["--no-progress"]
        port = free_port()
        children = [
            subprocess.Popen(command, env=_worker_env(rank, workers, port)) for rank in range(workers)
        ]
        return _wait_all(children)


def _worker_env(rank: int, world: int, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env |= {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)}
    env |= {"LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    return env


def _wait_all(children: list[subprocess.Popen[bytes]]) -> int:
    """Wait for every worker; if one dies with an error, stop the rest (they would wait forever)."""
    while any(child.poll() is None for child in children):
        crashed = [c for c in children if c.returncode not in (None, 0, 1)]
        if crashed:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                child.wait()
            return int(crashed[0].returncode or 2)
        time.sleep(POLL_S)
    return int(children[0].returncode)


def _parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m indexer.shard", description=__doc__.splitlines()[0])
    parser.add_argument("--config-json", type=Path, help="read every option from this JSON file")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    if "--config-json" not in argv:
        add_store_arguments(parser)
        add_cluster_arguments(parser)
        add_index_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The torchrun entry point: index this rank's share and, on rank 0, report the whole run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        if args.config_json is not None:
            config = IndexConfig(**json.loads(args.config_json.read_text()))
        else:
            config = config_from_args(args)
        try:
            shard = ShardSpec.from_env()
        except ValueError as error:
            raise ConfigError(str(error)) from error
        summary = index_folders(config, progress=not args.no_progress and shard.is_leader, shard=shard)
    except ValidationError as error:
        print(f"indexer: error: {validation_message(error)}", file=sys.stderr)
        return 2
    except (ConfigError, StoreError, ModelLoadError) as error:
        print(f"indexer: error: {error}", file=sys.stderr)
        return 2
    if not shard.is_leader:
        return 0  # rank 0 reports the whole run (and a non-zero exit makes torchrun stop the rest)
    print_summary(summary, args.json)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
