"""The SFT run's settings: one pydantic model, read from a TOML/JSON file, overridden by flags.

Defaults are the paper's 2B recipe (UME-R1 §4) where it has one; the tiny-world benchmark file
overrides them for a CPU-sized run. Every field carries its meaning in `description`, which is
also the `--help` text of its command-line flag.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


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


class SFTConfig(BaseModel):
    """Cold-start SFT settings (UME-R1 §4)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="Qwen/Qwen2-VL-2B-Instruct", description="hub name or local checkpoint dir")
    data: list[DataSource] = Field(default_factory=list, description="training files")
    output_dir: Path = Field(default=Path("runs/sft"), description="checkpoints and logs go here")
    steps: int = Field(default=5000, ge=1, description="optimiser steps")
    batch_size: int = Field(default=256, ge=1, description="pairs per step per process (in-batch negatives)")
    chunk_size: int = Field(
        default=0, ge=0, description="pairs per forward with GradCache; 0 = whole batch in one forward"
    )
    lr: float = Field(default=5e-5, gt=0, description="peak AdamW learning rate")
    warmup_ratio: float = Field(default=0.03, ge=0, le=1, description="share of steps with linear warmup")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay")
    grad_clip: float = Field(default=1.0, gt=0, description="clip the global gradient norm to this")
    temperature: float = Field(default=0.02, gt=0, description="InfoNCE temperature (logits = cos / t)")
    max_completion_tokens: int = Field(
        default=12288, ge=8, description="truncate a target completion to this many tokens"
    )
    image_max_pixels: int = Field(
        default=1536 * 1536, description="largest image size given to the processor"
    )
    video_max_pixels: int = Field(
        default=32 * 28 * 28, description="largest video frame size (SFT used tiny frames)"
    )
    freeze_vision: bool = Field(
        default=True, description="keep the vision tower frozen (merger still trains)"
    )
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

    def with_overrides(self, overrides: dict[str, Any]) -> SFTConfig:
        """A copy with `overrides` applied and validated (flags win over the file)."""
        merged = self.model_dump() | {k: v for k, v in overrides.items() if v is not None}
        return validated(merged)


def validated(values: dict[str, Any]) -> SFTConfig:
    try:
        return SFTConfig.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"config field {where}: {first['msg']}") from error


def load_config(path: Path | None) -> SFTConfig:
    """Read a TOML or JSON config; relative data paths are taken from the file's folder."""
    if path is None:
        return SFTConfig()
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
    return validated(values)
