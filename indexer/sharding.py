"""This process's share of an indexing run: which files it owns, and how processes meet.

Design decisions:
- Each file belongs to exactly one process: a hash of its absolute path modulo the world size.
  It needs no coordination and gives every process the same answer in every run, so a re-run
  finds each file's record where the process that owns it left it.
- Processes meet through torch.distributed (gloo, CPU-only, set up by torchrun's RANK,
  WORLD_SIZE, MASTER_ADDR, MASTER_PORT), the same engine used for training.
- qdrant-client's local mode (`local:PATH`) allows one process at a time, so workers wait for
  each other's turn at it (`open_store_waiting`), which is only useful for testing.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.catalog.open import open_store
from indexer.catalog.store import Store, StoreError
from indexer.config import IndexConfig
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
            return open_store(config.data_dir, config.qdrant_url, layout=config.layout())
        except StoreError as error:
            if "in use" not in str(error) or time.monotonic() > deadline:
                raise
            if not waiting_said:
                log.info("waiting for %s: another worker holds it", config.where())
                waiting_said = True
            time.sleep(POLL_S)
