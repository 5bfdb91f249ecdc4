"""Checkpoints: an ordinary HF checkpoint directory plus the trainer state for an exact resume.

`output_dir/checkpoint-{step}/` holds the model and processor exactly as `save_pretrained` writes
them (so `Encoder.from_pretrained` and the rest of the project load it like any checkpoint) and
`trainer_state.pt`: step, data position, optimiser and scheduler state. Resume picks the newest
directory that has a trainer state, i.e. one that was written completely.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model.train.data import DataPosition

STATE_FILE = "trainer_state.pt"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")


@dataclass
class TrainerState:
    step: int
    position: DataPosition
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    trainable: dict[str, Any] | None = None  # LoRA runs: every trainable tensor, unmerged


def save_checkpoint(
    out_dir: Path, model: Any, processor: Any, state: TrainerState, weights: dict[str, Any] | None = None
) -> Path:
    """Write `checkpoint-{step}`; the state file goes last, marking the directory complete.

    `weights` replaces the model's own state dict (a full state gathered from shards).
    """
    path = out_dir / f"checkpoint-{state.step}"
    partial = out_dir / f".partial-checkpoint-{state.step}"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, state_dict=weights)
    processor.save_pretrained(partial)
    torch.save(
        {
            "step": state.step,
            "epoch": state.position.epoch,
            "index": state.position.index,
            "optimizer": state.optimizer,
            "scheduler": state.scheduler,
            "trainable": state.trainable,
        },
        partial / STATE_FILE,
    )
    shutil.rmtree(path, ignore_errors=True)
    partial.rename(path)
    return path


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step, if any."""
    found = []
    for child in out_dir.glob("checkpoint-*"):
        match = _CHECKPOINT.search(child.name)
        if match and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def load_state(path: Path) -> TrainerState:
    raw = torch.load(path / STATE_FILE, weights_only=False)
    return TrainerState(
        step=raw["step"],
        position=DataPosition(raw["epoch"], raw["index"]),
        optimizer=raw["optimizer"],
        scheduler=raw["scheduler"],
        trainable=raw.get("trainable"),
    )
