"""What both training stages share: processes, the model (full, LoRA or FSDP-sharded), AdamW
with a cosine schedule, checkpoints with an exact resume, and the step loop.

A stage subclasses `Trainer` and supplies `read_data` (its pairs), `pairs_per_step` (over all
processes) and `train_step` (one optimiser step on a batch, or None when no pair in it was
usable). Checkpoints are `output_dir/checkpoint-{step}` (see `model.train.checkpoint`).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from model.train.checkpoint import TrainerState, latest_checkpoint, load_state, save_checkpoint
from model.train.config import ConfigError, TrainConfig
from model.train.data import DataPosition, Pair, Skipped, batch_stream
from model.train.distributed import average_gradients, barrier, init_from_env, world
from model.train.loading import Loaded, MetricsLog, cosine_with_warmup, load_for_training, use_bf16
from model.train.lora import (
    add_lora,
    merged_adapters,
    plain_state_dict,
    restore_trainable_state,
    trainable_state,
)
from model.train.sharding import full_states, load_full_optimizer_state, shard_model

log = logging.getLogger(__name__)


class Trainer(ABC):
    """Shared set-up, checkpointing and step loop of a training stage."""

    def __init__(self, config: TrainConfig, device: str | torch.device | None = None, shard: bool = False):
        init_from_env()
        self.config, (self.rank, self.size) = config, world()
        if shard and config.lora_rank:
            raise ConfigError("LoRA and sharding = 'fsdp' cannot be combined: pick one")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch.manual_seed(config.seed)
        if config.cpu_threads:
            torch.set_num_threads(config.cpu_threads)
        resume_from = latest_checkpoint(config.output_dir) if config.resume else None
        state = load_state(resume_from) if resume_from is not None else None
        self.loaded, self.adapters = self._load_policy(resume_from, state)
        if config.gradient_checkpointing:
            self.loaded.model.activation_checkpointing_enable({"use_reentrant": False})
        self.sharded = shard and self.size > 1
        if self.sharded:
            shard_model(self.loaded.model)
        self.params = [p for p in self.loaded.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        schedule = cosine_with_warmup(config.steps, config.warmup_ratio)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.pairs, self.skipped = self.read_data()
        self.step, self.position = 0, DataPosition()
        if state is not None:
            self._restore(state)
            log.info("resuming from %s at step %d", resume_from, self.step)
        self.budget = config.budget
        self.bf16 = use_bf16(config, self.device)
        resumed = state is not None
        self.metrics = MetricsLog(config.output_dir, config.tensorboard, resumed) if self.rank == 0 else None

    # --- what a stage supplies -------------------------------------------------------------

    @abstractmethod
    def read_data(self) -> tuple[list[Pair], Skipped]:
        """The stage's training pairs and what was skipped."""

    @property
    @abstractmethod
    def pairs_per_step(self) -> int:
        """Pairs per optimiser step over all processes."""

    @abstractmethod
    def train_step(self, pairs: list[Pair]) -> dict[str, float] | None:
        """One optimiser step on `pairs`: the values to log, or None if no pair was usable."""

    # --- shared machinery ------------------------------------------------------------------

    def _load_policy(self, resume_from: Path | None, state: TrainerState | None) -> tuple[Loaded, Any]:
        """The model to train (and its LoRA wrapper, or None)."""
        config = self.config
        if not config.lora_rank:
            loaded = load_for_training(str(resume_from or config.model), self.device)
            freeze_vision(loaded.model, config.freeze_vision)
            return loaded, None
        # Under LoRA the base weights never change: a resume starts from the same base and puts
        # the trained tensors (adapters, merger) back.
        loaded = load_for_training(config.model, self.device)
        adapters = add_lora(loaded.model, config.lora_rank, config.lora_alpha, not config.freeze_vision)
        if state is not None and state.trainable is not None:
            restore_trainable_state(loaded.model, state.trainable)
        return loaded, adapters

    def _restore(self, state: TrainerState) -> None:
        self.step, self.position = state.step, state.position
        if self.sharded:
            load_full_optimizer_state(self.loaded.model, self.optimizer, state.optimizer)
        else:
            self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)

    def local_share(self, batch: list[Pair]) -> list[Pair]:
        """This process's equal slice of a batch that spans every process."""
        per_process = len(batch) // self.size
        return batch[self.rank * per_process : (self.rank + 1) * per_process]

    def optimiser_step(self) -> dict[str, float]:
        """Average gradients (unless FSDP did), clip, step; the logged gradient norm and lr."""
        if not self.sharded:
            average_gradients(self.params)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"grad_norm": float(grad_norm), "lr": float(self.scheduler.get_last_lr()[0])}

    def save(self) -> Path | None:
        """Write a checkpoint: rank 0 writes, every process helps gather FSDP shards."""
        model, weights = self.loaded.model, None
        if self.sharded:
            weights, optimizer = full_states(model, self.optimizer)
        else:
            optimizer = self.optimizer.state_dict()
        path = None
        if self.rank == 0:
            trainable = trainable_state(model) if self.adapters is not None else None
            state = TrainerState(self.step, self.position, optimizer, self.scheduler.state_dict(), trainable)
            with merged_adapters(self.adapters):
                if self.adapters is not None:
                    weights = plain_state_dict(model)
                path = save_checkpoint(self.config.output_dir, model, self.loaded.processor, state, weights)
        # Nobody moves on before the checkpoint is complete: a process that restarted at once
        # would otherwise resume from an older step than rank 0 and the collectives would hang.
        barrier()
        return path

    def run(self, stop_after: int | None = None, progress: bool = True) -> Path | None:
        """Train to `config.steps` (or `stop_after` more steps); returns the last checkpoint."""
        config = self.config
        stream = batch_stream(self.pairs, self.pairs_per_step, config.seed, self.position)
        end = config.steps if stop_after is None else min(config.steps, self.step + stop_after)
        bar = tqdm(total=config.steps, initial=self.step, disable=not progress or self.rank != 0)
        saved, unusable = None, 0
        while self.step < end:
            batch = next(stream)
            values = self.train_step(batch)
            if values is None:
                unusable += 1
                if unusable > len(self.pairs):
                    raise ConfigError(f"no batch has usable pairs ({self.skipped.summary()})")
                continue
            unusable = 0
            self.step += 1
            bar.update(1)
            saved = self._after_step(values, end, batch[0].dataset) or saved
        bar.close()
        if self.skipped.total and self.rank == 0:
            log.warning("skipped records: %s", self.skipped.summary())
        return saved

    def log_line(self, values: dict[str, float]) -> str:
        return " ".join(f"{k}={v:.4g}" for k, v in values.items())

    def _after_step(self, values: dict[str, float], end: int, dataset: str) -> Path | None:
        if self.metrics is not None and (self.step % self.config.log_every == 0 or self.step == end):
            self.metrics.write(self.step, values, dataset)
            log.info("step %d (%s) %s", self.step, dataset, self.log_line(values))
        if self.step % self.config.save_every == 0 or self.step == end:
            return self.save()
        return None


PairLoader = Callable[[Path, str, Path | None, Skipped], list[Pair]]


def read_sources(config: TrainConfig, load: PairLoader) -> tuple[list[Pair], Skipped]:
    """Every usable pair of the configured files; a missing file or no usable pair is an error."""
    skipped = Skipped()
    pairs: list[Pair] = []
    for source in config.data:
        if not source.path.is_file():
            raise ConfigError(f"data file {source.path} does not exist")
        pairs.extend(load(source.path, source.format, source.root, skipped))
    if not pairs:
        raise ConfigError("no usable training pairs" + (f" ({skipped.summary()})" if skipped.total else ""))
    return pairs, skipped


def freeze_vision(model: Any, frozen: bool) -> None:
    """Keep the vision tower fixed (its merger still trains), as the paper does."""
    if frozen:
        model.model.visual.requires_grad_(False)
        model.model.visual.merger.requires_grad_(True)
