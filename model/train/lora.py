"""LoRA: train low-rank adapters on the LLM's linear layers instead of every LLM weight.

peft injects the adapters into the model in place, so the trainers keep calling the same
Qwen2-VL object. What trains under LoRA: the adapters, the merger (as in full fine-tuning) and,
unless frozen, the vision tower.

Design decisions:
- Checkpoints stay ordinary HF directories: the adapters are merged into the weights for the
  save and unmerged after, and the saved names are the plain ones, so `Encoder.from_pretrained`
  loads them like any checkpoint.
- Exact resume needs the unmerged pieces: every trainable tensor (adapters, merger) is kept in
  the trainer state by name and put back onto a fresh base model with fresh adapters.
- The decode loop reads weights directly (`model.engine.lean_step`), so rollouts run with the
  adapters merged (`merged_adapters`), exactly the policy being trained.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

# The LLM's projections (attention and MLP); the vision tower's layers have other names.
LLM_LINEARS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def add_lora(model: Any, rank: int, alpha: int, train_vision: bool) -> Any:
    """Inject adapters (in place) and set what trains; returns the peft wrapper."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=LLM_LINEARS, bias="none")
    wrapper = get_peft_model(model, config)
    visual = model.model.visual
    (visual if train_vision else visual.merger).requires_grad_(True)
    return wrapper


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """Every trainable tensor by name (adapters, merger), for an exact resume."""
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


def restore_trainable_state(model: Any, state: dict[str, torch.Tensor]) -> None:
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            parameters[name].copy_(value)


@contextmanager
def merged_adapters(wrapper: Any | None) -> Iterator[None]:
    """Adapters folded into the base weights for the duration (no-op without LoRA)."""
    if wrapper is None:
        yield
        return
    wrapper.merge_adapter()
    try:
        yield
    finally:
        wrapper.unmerge_adapter()


def plain_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """The model's weights under their ordinary names, adapters left out (merge them first)."""
    return {
        name.replace(".base_layer", ""): tensor
        for name, tensor in model.state_dict().items()
        if "lora_" not in name
    }
