"""Training settings: one pydantic model per stage, read from a TOML/JSON file, overridden by flags.

Defaults are the paper's 2B recipe (UME-R1 §4 for SFT, §5 for RL) where it has one; the
tiny-world benchmark files override them for a CPU-sized run. Every field carries its meaning
in `description`, which is also the `--help` text of its command-line flag.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model.inputs import EVALUATION_BUDGET, SFT_BUDGET, VisionBudget

ConfigT = TypeVar("ConfigT", bound="TrainConfig")


class ConfigError(Exception):
    """A config file or flag the user must fix; the message is one line."""


class DataSource(BaseModel):
    """One training file and how to read it."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="JSON or JSONL file of pairs")
    format: Literal["released", "plain"] = Field(
        default="released", description="released: UME-sft-train records (qry/pos); plain: our flat JSONL"
    )
    root: Path | None = Field(
        default=None, description="media paths are relative to this (default: file's folder)"
    )


class TrainConfig(BaseModel):
    """Settings both training stages share."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="Qwen/Qwen2-VL-2B-Instruct", description="hub name or local checkpoint dir")
    data: list[DataSource] = Field(default_factory=list, description="training files")
    output_dir: Path = Field(default=Path("runs/sft"), description="checkpoints and logs go here")
    steps: int = Field(default=5000, ge=1, description="optimiser steps")
    lr: float = Field(default=5e-5, gt=0, description="peak AdamW learning rate")
    warmup_ratio: float = Field(default=0.03, ge=0, le=1, description="share of steps with linear warmup")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay")
    grad_clip: float = Field(default=1.0, gt=0, description="clip the global gradient norm to this")
    # Pixel limits default to what the authors' code used at each stage (model.inputs budgets).
    image_min_pixels: int = Field(
        default=SFT_BUDGET.image_min_pixels, ge=1, description="smallest image size given to the processor"
    )
    image_max_pixels: int = Field(
        default=SFT_BUDGET.image_max_pixels, ge=1, description="largest image size given to the processor"
    )
    video_min_pixels: int = Field(
        default=SFT_BUDGET.video_min_pixels, ge=1, description="smallest video frame size"
    )
    video_max_pixels: int = Field(
        default=SFT_BUDGET.video_max_pixels,
        ge=1,
        description="largest video frame size (SFT used tiny frames)",
    )
    freeze_vision: bool = Field(
        default=True, description="keep the vision tower frozen (merger still trains)"
    )
    lora_rank: int = Field(
        default=0, ge=0, description="0: train every LLM weight; > 0: LoRA adapters of this rank instead"
    )
    lora_alpha: int = Field(default=16, gt=0, description="LoRA scaling numerator (scale = alpha / rank)")
    bf16: Literal["auto", "on", "off"] = Field(
        default="auto", description="bf16 autocast: auto = where supported"
    )
    gradient_checkpointing: bool = Field(default=True, description="recompute activations to save memory")
    cpu_threads: int = Field(
        default=0, ge=0, description="torch CPU threads; 0 = torch's default (1 is fastest on a busy box)"
    )
    seed: int = Field(default=0, description="seeds the model init noise and the batch order")
    log_every: int = Field(default=10, ge=1, description="steps between log lines")
    save_every: int = Field(default=500, ge=1, description="steps between checkpoints")
    tensorboard: bool = Field(default=False, description="also log to TensorBoard (if it is installed)")
    resume: bool = Field(default=True, description="continue from the newest checkpoint in output_dir")

    @property
    def budget(self) -> VisionBudget:
        """The pixel limits inputs are prepared under."""
        return VisionBudget(
            self.image_min_pixels, self.image_max_pixels, self.video_min_pixels, self.video_max_pixels
        )

    def with_overrides(self, overrides: dict[str, Any]) -> Self:
        """A copy with `overrides` applied and validated (flags win over the file)."""
        merged = self.model_dump() | {k: v for k, v in overrides.items() if v is not None}
        return validated(type(self), merged)


class SFTConfig(TrainConfig):
    """Cold-start SFT settings (UME-R1 §4)."""

    batch_size: int = Field(default=256, ge=1, description="pairs per step per process (in-batch negatives)")
    chunk_size: int = Field(
        default=0, ge=0, description="pairs per forward with GradCache; 0 = whole batch in one forward"
    )
    temperature: float = Field(default=0.02, gt=0, description="InfoNCE temperature (logits = cos / t)")
    max_completion_tokens: int = Field(
        default=12288, ge=8, description="truncate a target completion to this many tokens"
    )
    sharding: Literal["ddp", "fsdp"] = Field(
        default="ddp",
        description="ddp: a full model per process; fsdp: weights, gradients and optimiser state "
        "sharded across processes (for 7B)",
    )


class RLConfig(TrainConfig):
    """GRPO settings (UME-R1 §5); `model` is the SFT checkpoint to start from."""

    model: str = Field(default="zhibinlan/UME-R1-2B", description="SFT checkpoint (hub name or local dir)")
    output_dir: Path = Field(default=Path("runs/rl"), description="checkpoints and logs go here")
    steps: int = Field(default=344, ge=1, description="optimiser steps (the paper: one epoch of 11K pairs)")
    lr: float = Field(default=1e-6, gt=0, description="peak AdamW learning rate")
    pairs_per_step: int = Field(default=32, ge=1, description="pairs per optimiser step, all processes")
    micro_batch: int = Field(
        default=16, ge=1, description="pairs per reward pool (rollouts ranked against each other)"
    )
    group_size: int = Field(default=8, ge=2, description="G: rollouts per query and per target")
    sampling_temperature: float = Field(default=1.0, gt=0, description="rollout sampling temperature")
    sampling_top_k: int = Field(
        default=50,
        ge=0,
        description="sample among the k likeliest tokens (the authors' rollouts keep transformers' "
        "default 50); 0 = the whole vocabulary",
    )
    # RL rollouts go through qwen-vl-utils' fetch_image first: the evaluation's limits, frames included.
    image_min_pixels: int = Field(
        default=EVALUATION_BUDGET.image_min_pixels,
        ge=1,
        description="smallest image size given to the processor",
    )
    video_max_pixels: int = Field(
        default=EVALUATION_BUDGET.video_max_pixels, ge=1, description="largest video frame size"
    )
    max_new_tokens: int = Field(
        default=2048, ge=1, description="rollout length cap; also the loss's constant normaliser"
    )
    eps_low: float = Field(default=0.2, ge=0, description="PPO clip below: ratio >= 1 - eps_low")
    eps_high: float = Field(default=0.28, ge=0, description="PPO clip above: ratio <= 1 + eps_high")
    beta: float = Field(default=0.04, ge=0, description="KL weight to the frozen start model (0: none)")
    rollout_rows: int = Field(default=64, ge=1, description="rollouts per decode call (bounds memory)")
    score_rows: int = Field(default=8, ge=1, description="rollouts per forward+backward (bounds memory)")
    fixed_eval_batches: int = Field(
        default=0,
        ge=0,
        description="batches rewarded with the same rollout seeds before and after the run, written "
        "to output_dir/fixed_eval.json (0: none)",
    )
    fixed_eval_data: list[DataSource] = Field(
        default_factory=list, description="the fixed batches' pairs (default: drawn from data)"
    )
    fixed_eval_seed: int = Field(default=1234, description="draws the fixed batches and seeds their rollouts")


def validated(kind: type[ConfigT], values: dict[str, Any]) -> ConfigT:
    try:
        return kind.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"config field {where}: {first['msg']}") from error


def load_config(path: Path | None, kind: type[ConfigT]) -> ConfigT:
    """Read a TOML or JSON config; relative data paths are taken from the file's folder."""
    if path is None:
        return kind()
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from error
    try:
        values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"config {path} is not valid {path.suffix[1:] or 'TOML'}: {error}") from error
    for source in values.get("data", []):
        for key in ("path", "root"):
            if key in source and not Path(source[key]).is_absolute():
                source[key] = str(path.parent / source[key])
    return validated(kind, values)
