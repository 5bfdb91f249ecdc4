"""Cold-start SFT (UME-R1 §4), top to bottom: load, read data, then step until done.

Each step: take a batch of pairs from one source dataset (this process's share when several
run), build the query and target sequences (prompt + assistant message), backpropagate
gen InfoNCE + disc InfoNCE + query LM + target LM (GradCache when `chunk_size` splits the
batch), average gradients over processes, clip, AdamW, cosine schedule. Checkpoints are
ordinary HF directories plus the state for an exact resume (`model.train.checkpoint`).

Design decisions:
- The vision tower is frozen and its merger trains, as in the paper; all LLM weights train.
- bf16 is autocast over float32 weights where the device supports it (CUDA with bf16).
- A base Qwen2-VL checkpoint without `<gen_emb>`/`<disc_emb>` gets them added, with their
  input rows copied from `<|object_ref_end|>`/`<|object_ref_start|>` (§1).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from model.generation import TokenIds
from model.inputs import VisionBudget
from model.prompts import DISC_EMB_TOKEN, GEN_EMB_TOKEN
from model.train.batch import load_pairs_media, pair_batches
from model.train.checkpoint import TrainerState, latest_checkpoint, load_state, save_checkpoint
from model.train.config import ConfigError, SFTConfig
from model.train.data import DataPosition, Pair, Skipped, batch_stream, load_pairs
from model.train.distributed import average_gradients, init_from_env, min_over_processes, world
from model.train.gradcache import Chunk, backward_step

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    model: Any
    processor: Any
    ids: TokenIds


def load_for_training(name: str, device: torch.device) -> Loaded:
    """Model (float32, train mode) and processor; adds the UME tokens to a base checkpoint."""
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    from model.tiny import init_ume_token_rows

    try:
        processor = AutoProcessor.from_pretrained(name)
        model = Qwen2VLForConditionalGeneration.from_pretrained(name, dtype=torch.float32)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load model '{name}': {str(error).splitlines()[0][:200]}") from error
    tokenizer = processor.tokenizer
    if tokenizer.convert_tokens_to_ids(GEN_EMB_TOKEN) in (None, tokenizer.unk_token_id):
        tokenizer.add_tokens([GEN_EMB_TOKEN, DISC_EMB_TOKEN], special_tokens=False)
        rows = model.get_input_embeddings().weight.shape[0]  # type: ignore[index]
        if len(tokenizer) > rows:
            model.resize_token_embeddings(len(tokenizer))
        init_ume_token_rows(model, tokenizer)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ids = TokenIds(
        gen_emb=tokenizer.convert_tokens_to_ids(GEN_EMB_TOKEN),
        disc_emb=tokenizer.convert_tokens_to_ids(DISC_EMB_TOKEN),
        eos=eos,
        pad=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
    )
    model = model.to(device)  # type: ignore[arg-type]  # transformers' typing of .to is too narrow
    return Loaded(model.train(), processor, ids)


def trainable_parameters(model: Any, freeze_vision: bool) -> list[torch.nn.Parameter]:
    """LLM + merger; the vision blocks too unless frozen."""
    if freeze_vision:
        model.model.visual.requires_grad_(False)
        model.model.visual.merger.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def cosine_with_warmup(steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """Learning-rate multiplier: linear warmup, then cosine decay to zero."""
    warmup = max(1, round(steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def read_data(config: SFTConfig) -> tuple[list[Pair], Skipped]:
    skipped = Skipped()
    pairs: list[Pair] = []
    for source in config.data:
        if not source.path.is_file():
            raise ConfigError(f"data file {source.path} does not exist")
        pairs.extend(load_pairs(source.path, source.format, source.root, skipped))
    if not pairs:
        raise ConfigError("no usable training pairs" + (f" ({skipped.summary()})" if skipped.total else ""))
    return pairs, skipped


def use_bf16(config: SFTConfig, device: torch.device) -> bool:
    supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if config.bf16 == "on" and not supported:
        raise ConfigError("bf16 = 'on' needs a GPU with bfloat16; use 'auto' or 'off'")
    return config.bf16 == "on" or (config.bf16 == "auto" and supported)


class MetricsLog:
    """Per-step loss terms to `metrics.jsonl` (and TensorBoard when installed and asked for)."""

    def __init__(self, out_dir: Path, tensorboard: bool) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / "metrics.jsonl"
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out_dir / "tensorboard"))
            except ImportError:
                log.warning("tensorboard is not installed; logging to %s only", self.path)

    def write(self, step: int, values: dict[str, float]) -> None:
        with self.path.open("a") as out:
            out.write(json.dumps({"step": step, **values}) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"train/{name}", value, step)


class SFTRun:
    """One SFT run: model, optimiser, data stream and the step loop (resumes if it can)."""

    def __init__(self, config: SFTConfig, device: str | torch.device | None = None) -> None:
        init_from_env()
        self.config, (self.rank, self.size) = config, world()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch.manual_seed(config.seed)
        if config.cpu_threads:
            torch.set_num_threads(config.cpu_threads)
        resume_from = latest_checkpoint(config.output_dir) if config.resume else None
        self.loaded = load_for_training(str(resume_from or config.model), self.device)
        if config.gradient_checkpointing:
            self.loaded.model.activation_checkpointing_enable({"use_reentrant": False})
        self.params = trainable_parameters(self.loaded.model, config.freeze_vision)
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        schedule = cosine_with_warmup(config.steps, config.warmup_ratio)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.pairs, self.skipped = read_data(config)
        self.step, self.position = 0, DataPosition()
        if resume_from is not None:
            self._restore(load_state(resume_from))
            log.info("resuming from %s at step %d", resume_from, self.step)
        self.budget = VisionBudget(
            image_max_pixels=config.image_max_pixels, video_max_pixels=config.video_max_pixels
        )
        self.bf16 = use_bf16(config, self.device)
        self.metrics = MetricsLog(config.output_dir, config.tensorboard) if self.rank == 0 else None

    def _restore(self, state: TrainerState) -> None:
        self.step, self.position = state.step, state.position
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)

    def chunks(self, pairs: list[Pair]) -> list[Chunk]:
        """This process's pairs as (query, target) tensors, split for GradCache when asked."""
        loaded = load_pairs_media(pairs, self.skipped)
        loaded = loaded[: min_over_processes(len(loaded))]
        size = self.config.chunk_size or len(loaded)
        parts = [loaded[start : start + size] for start in range(0, len(loaded), max(size, 1))]
        processor, ids, cap = self.loaded.processor, self.loaded.ids, self.config.max_completion_tokens
        made = [pair_batches(processor, ids, part, self.budget, cap) for part in parts]
        return [(query.to(self.device), target.to(self.device)) for query, target in made]

    def train_step(self, pairs: list[Pair]) -> dict[str, float] | None:
        """One optimiser step on this process's share of a batch; None if nothing was usable."""
        chunks = self.chunks(pairs)
        if not chunks or (chunks[0][0].labels.shape[0] < 2 and self.size == 1):
            return None  # InfoNCE needs at least one negative
        terms = backward_step(self.loaded.model, chunks, self.config.temperature, self.bf16)
        average_gradients(self.params)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return terms.as_floats() | {
            "grad_norm": float(grad_norm),
            "lr": float(self.scheduler.get_last_lr()[0]),
        }

    def local_share(self, batch: list[Pair]) -> list[Pair]:
        per_process = len(batch) // self.size
        return batch[self.rank * per_process : (self.rank + 1) * per_process]

    def save(self) -> Path:
        optimizer, scheduler = self.optimizer.state_dict(), self.scheduler.state_dict()
        state = TrainerState(self.step, self.position, optimizer, scheduler)
        return save_checkpoint(self.config.output_dir, self.loaded.model, self.loaded.processor, state)

    def run(self, stop_after: int | None = None, progress: bool = True) -> Path | None:
        """Train to `config.steps` (or `stop_after` more steps); returns the last checkpoint."""
        stream = batch_stream(self.pairs, self.config.batch_size * self.size, self.config.seed, self.position)
        end = self.config.steps if stop_after is None else min(self.config.steps, self.step + stop_after)
        bar = tqdm(total=self.config.steps, initial=self.step, disable=not progress or self.rank != 0)
        saved, unusable = None, 0
        while self.step < end:
            values = self.train_step(self.local_share(next(stream)))
            if values is None:
                unusable += 1
                if unusable > len(self.pairs):
                    raise ConfigError(f"no batch has usable pairs ({self.skipped.summary()})")
                continue
            unusable = 0
            self.step += 1
            bar.update(1)
            saved = self._after_step(values, end) or saved
        bar.close()
        if self.skipped.total and self.rank == 0:
            log.warning("skipped records: %s", self.skipped.summary())
        return saved

    def _after_step(self, values: dict[str, float], end: int) -> Path | None:
        if self.metrics is not None and (self.step % self.config.log_every == 0 or self.step == end):
            self.metrics.write(self.step, values)
            log.info("step %d %s", self.step, " ".join(f"{k}={v:.4g}" for k, v in values.items()))
        if self.step % self.config.save_every == 0 or self.step == end:
            return self.save() if self.rank == 0 else None
        return None
