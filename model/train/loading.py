"""Loading a checkpoint for training, and the small pieces both stages use around it.

- `load_for_training`: model (float32, train mode) and processor; a base Qwen2-VL checkpoint
  without `<gen_emb>`/`<disc_emb>` gets them added, with their input rows copied from
  `<|object_ref_end|>`/`<|object_ref_start|>` (§1).
- `cosine_with_warmup`: the learning-rate schedule; `use_bf16`: autocast where supported;
  `MetricsLog`: per-step values to `metrics.jsonl` (and TensorBoard).
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

from model.engine import TokenIds
from model.prompts import DISC_EMB_TOKEN, GEN_EMB_TOKEN
from model.train.config import ConfigError, TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    model: Any
    processor: Any
    ids: TokenIds


def load_for_training(name: str, device: torch.device) -> Loaded:
    """Model (float32, train mode) and processor; adds the UME tokens to a base checkpoint."""
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    from model.encoder import lookup_token_ids
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
    model = model.to(device)  # type: ignore[arg-type]  # transformers' typing of .to is too narrow
    return Loaded(model.train(), processor, lookup_token_ids(tokenizer))


def cosine_with_warmup(steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """Learning-rate multiplier: linear warmup, then cosine decay to zero."""
    warmup = max(1, round(steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def use_bf16(config: TrainConfig, device: torch.device) -> bool:
    supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if config.bf16 == "on" and not supported:
        raise ConfigError("bf16 = 'on' needs a GPU with bfloat16; use 'auto' or 'off'")
    return config.bf16 == "on" or (config.bf16 == "auto" and supported)


class MetricsLog:
    """Per-step loss terms and the batch's dataset to `metrics.jsonl` (and TensorBoard when
    installed and asked for).

    A resumed run appends; a run that starts at step 0 starts the file afresh, so the log never
    mixes the steps of an earlier run into this one's.
    """

    def __init__(self, out_dir: Path, tensorboard: bool, resumed: bool) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / "metrics.jsonl"
        if not resumed:
            self.path.unlink(missing_ok=True)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out_dir / "tensorboard"))
            except ImportError:
                log.warning("tensorboard is not installed; logging to %s only", self.path)

    def write(self, step: int, values: dict[str, float], dataset: str | None = None) -> None:
        """One step's numbers, with the dataset its batch came from (batches hold one each)."""
        line = {"step": step, **({"dataset": dataset} if dataset is not None else {}), **values}
        with self.path.open("a") as out:
            out.write(json.dumps(line) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"train/{name}", value, step)
