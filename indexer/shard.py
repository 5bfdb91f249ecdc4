"""Scale-out: one indexing run split across processes, all writing to one server collection.

    torchrun --nproc_per_node=4 -m indexer.shard ~/Photos --qdrant-url http://qdrant:6333
    ume index ~/Photos --qdrant-url http://qdrant:6333 --workers 4      (the same, spawned by ume)

Design decisions:
- Each file belongs to exactly one process: a hash of its absolute path modulo the world size.
  It needs no coordination and gives every process the same answer in every run, so a re-run
  finds each file's record where the process that owns it left it.
- Every process walks all roots (cheap) and keeps its own files; rank 0 alone creates the
  collection before the others start, and prunes deleted files after every process is done
  (a moved file must be copied by its new owner before its old path is pruned).
- Processes meet through torch.distributed (gloo, CPU-only, set up by torchrun's RANK,
  WORLD_SIZE, MASTER_ADDR, MASTER_PORT), the same engine used for training.
- The embedded engine is one process at a time, so sharding needs `--qdrant-url`. qdrant-client's
  local mode (`local:PATH`) is accepted too, but it also allows one process at a time: its
  workers take turns, which is only useful for testing.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.config import IndexConfig
from indexer.store import Store, StoreError, open_store
from indexer.summary import RunSummary, summary_from_json

log = logging.getLogger(__name__)

STORE_WAIT_S = 24 * 3600  # how long a worker waits for a local-mode index another one holds
PROCESS_GROUP_TIMEOUT = datetime.timedelta(hours=24)  # a slow shard must not time out the rest
POLL_S = 0.2


def shard_of(path: Path | str, world: int) -> int:
    """The process (rank) that owns `path`: stable across runs, machines and Python versions."""
    digest = hashlib.blake2b(str(path).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % world


@dataclass(frozen=True)
class ShardSpec:
    """This process's place in the run: rank `rank` of `world`."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @classmethod
    def from_env(cls) -> ShardSpec:
        """torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), else alone."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        if not 0 <= rank < world:
            raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world}")
        return cls(rank, world, local_rank, local_world)

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def owns(self, path: Path) -> bool:
        return self.world == 1 or shard_of(path, self.world) == self.rank

    def start(self) -> None:
        """Join the process group (no-op alone)."""
        import torch.distributed as dist

        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("gloo", timeout=PROCESS_GROUP_TIMEOUT)

    def stop(self) -> None:
        import torch.distributed as dist

        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank; also a barrier."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, summary: RunSummary) -> RunSummary:
        """On rank 0, every rank's summary merged; elsewhere, the rank's own."""
        if self.world == 1:
            return summary
        import torch.distributed as dist

        shares: list[Any] | None = [None] * self.world if self.is_leader else None
        dist.gather_object(summary.to_json(), shares, dst=0)
        if shares is None:
            return summary
        merged = RunSummary()
        for share in shares:
            merged = merged.merge(summary_from_json(share))
        return merged


def open_store_waiting(config: IndexConfig, wait_s: float = STORE_WAIT_S) -> Store:
    """Open the configured store, waiting while another process of the run holds it."""
    deadline = time.monotonic() + wait_s
    waiting_said = False
    while True:
        try:
            return open_store(config.data_dir, config.qdrant_url)
        except StoreError as error:
            if "in use" not in str(error) or time.monotonic() > deadline:
                raise
            if not waiting_said:
                log.info("waiting for %s: another worker holds it", config.where())
                waiting_said = True
            time.sleep(POLL_S)


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
    from indexer.config import add_index_arguments, add_store_arguments

    parser = argparse.ArgumentParser(prog="python -m indexer.shard", description=__doc__.splitlines()[0])
    parser.add_argument("--config-json", type=Path, help="read every option from this JSON file")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    if "--config-json" not in argv:
        add_store_arguments(parser)
        add_index_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The torchrun entry point: index this rank's share and, on rank 0, report the whole run."""
    from pydantic import ValidationError

    from indexer.config import ConfigError, config_from_args, validation_message
    from indexer.run import index_folders
    from indexer.summary import print_summary
    from model.encoder import ModelLoadError

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
