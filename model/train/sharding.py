"""FSDP (parameters, gradients and optimiser state sharded across processes) for large models.

With `sharding = "fsdp"` each process keeps only its shard of every weight and of AdamW's state,
which is what lets a 7B model train on GPUs that cannot each hold a full copy plus its
optimiser. PyTorch's FSDP2 (`fully_shard`) does the work; this module only says where the
shard groups are and how to gather a full checkpoint from them.

Design decisions:
- One shard group per decoder layer and per vision block (each is gathered just before it runs
  and freed after), and the rest (embeddings, merger, final norm, LM head) at the root.
- FSDP averages gradients itself, so the trainer skips its own averaging when sharded.
- Checkpoints stay ordinary, full HF directories: the shards are gathered to full tensors (on
  the CPU) and written by rank 0; the optimiser state is gathered the same way, and on resume
  each process loads the full state and keeps its shard.
"""

from __future__ import annotations

from types import MethodType
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

FULL_ON_CPU = StateDictOptions(full_state_dict=True, cpu_offload=True)


def _backbone(self: Any, **inputs: Any) -> Any:
    return self.model(**inputs)


def shard_model(model: Any) -> None:
    """Shard a Qwen2-VL model in place: layers and vision blocks first, then the root.

    The trainers run the backbone (`model.model`) and the LM head separately, never the root's
    own `forward`, so the root gets a `backbone` method that FSDP treats as a forward: it
    gathers the root's weights (embeddings tied to the LM head, merger, norms) before it runs.
    The root keeps them gathered until backward, so the LM head can be applied after it.
    """
    for layer in model.model.language_model.layers:
        fully_shard(layer)
    for block in model.model.visual.blocks:
        fully_shard(block)
    fully_shard(model)
    model.backbone = MethodType(_backbone, model)
    register_fsdp_forward_method(model, "backbone")


def full_states(model: Any, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full model and optimiser state dicts on the CPU (a collective: every process calls it)."""
    model_state = get_model_state_dict(model, options=FULL_ON_CPU)
    optimizer_state = get_optimizer_state_dict(model, optimizer, options=FULL_ON_CPU)
    # Gathered copies no longer share storage, so the saver cannot see which weights are tied:
    # leave the tied copies (the LM head of a tied model) out, as an unsharded save does.
    for tied in model.get_expanded_tied_weights_keys():
        model_state.pop(tied, None)
    return model_state, optimizer_state


def load_full_optimizer_state(model: Any, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Give each process its shard of a full optimiser state saved by `full_states`."""
    set_optimizer_state_dict(
        model, optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True)
    )
