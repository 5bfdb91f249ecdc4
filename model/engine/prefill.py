"""The prompt's forward pass, and reading embeddings off its last-layer states.

Batches are left-padded (every prompt ends in the last column) and hold the processor's tensors:
`input_ids`, `attention_mask`, `mm_token_type_ids` (batch, length), plus vision tensors.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from model.engine.kv_cache import growing_cache
from model.engine.tokens import TokenIds

Batch = dict[str, torch.Tensor]


def normalise(vectors: torch.Tensor) -> torch.Tensor:
    return F.normalize(vectors.float(), dim=-1)


def last_token_positions(input_ids: torch.Tensor, token_id: int) -> torch.Tensor:
    """(batch,) index of the last occurrence of `token_id` per row; -1 where absent."""
    hits = input_ids == token_id
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    return torch.where(hits, positions, -1).max(dim=1).values


def rope_positions(model: Any, batch: Batch) -> torch.Tensor:
    """(3, batch, length) multimodal RoPE positions of a left-padded batch."""
    position_ids, _ = model.model.get_rope_index(
        batch["input_ids"],
        mm_token_type_ids=batch["mm_token_type_ids"],
        image_grid_thw=batch.get("image_grid_thw"),
        video_grid_thw=batch.get("video_grid_thw"),
        attention_mask=batch["attention_mask"],
    )
    return position_ids


def run_prefill(
    model: Any,
    batch: Batch,
    use_cache: bool,
    reserve: int = 0,
    position_ids: torch.Tensor | None = None,
) -> Any:
    """One forward over the prompts through the base model (no LM head over every position).

    Returns the backbone's output: `last_hidden_state` (batch, length, hidden) and, with
    `use_cache`, a `cache` that keeps `reserve` tokens of headroom for the decode.
    `position_ids` are computed from the batch unless the caller already has them.
    """
    layers = model.config.text_config.num_hidden_layers
    cache = growing_cache(layers, reserve) if use_cache else None
    if position_ids is None:
        position_ids = rope_positions(model, batch)
    # A sharded model (model.train.sharding) exposes its backbone through an FSDP-aware method.
    backbone = getattr(model, "backbone", model.model)
    return backbone(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=position_ids,
        pixel_values=batch.get("pixel_values"),
        image_grid_thw=batch.get("image_grid_thw"),
        pixel_values_videos=batch.get("pixel_values_videos"),
        video_grid_thw=batch.get("video_grid_thw"),
        mm_token_type_ids=batch["mm_token_type_ids"],
        cache=cache,
        use_cache=use_cache,
    )


def truncate_after(batch: Batch, column: int) -> Batch:
    """Keep token columns [0, column]; vision tensors are untouched (they come earlier)."""
    sequence_keys = ("input_ids", "attention_mask", "mm_token_type_ids")
    return {k: (v[:, : column + 1] if k in sequence_keys else v) for k, v in batch.items()}


def states_at(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(batch, length, hidden) states -> (batch, hidden) L2-normalised float32, one column per row."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return normalise(hidden[rows, positions])


@torch.inference_mode()
def disc_embeddings(model: Any, batch: Batch, ids: TokenIds) -> torch.Tensor:
    """Disc embeddings only: the prompt is cut right after `<disc_emb>`.

    Attention is causal, so nothing after `<disc_emb>` can change its state. With left padding
    every prompt ends in the same instruction suffix, so `<disc_emb>` sits in one column and the
    ~60-token suffix need not be computed at all.
    """
    positions = last_token_positions(batch["input_ids"], ids.disc_emb)
    if bool((positions < 0).any()):
        raise ValueError("a prompt lacks the <disc_emb> token: the checkpoint's tokenizer is not UME-R1's")
    if bool((positions == positions[0]).all()):
        batch = truncate_after(batch, int(positions[0]))
    hidden = run_prefill(model, batch, use_cache=False).last_hidden_state  # (batch, length, hidden)
    return states_at(hidden, positions)
