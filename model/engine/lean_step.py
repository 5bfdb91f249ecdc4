"""One decode step of the Qwen2-VL text stack, without the framework's per-call machinery.

At decode time each step is a single token per row, so the cost of a transformers forward is
mostly Python: decorators, output capturing, attention dispatch and mask building run for every
layer of every step. This step calls the same weights and norm modules directly, and keeps the
attention mask as a preallocated additive bias, so a step is ~12 kernels per layer.

Numerics follow `Qwen2VLDecoderLayer` exactly (same modules, same order, same SDPA call); the
tests compare it with `generate` and with a teacher-forced forward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from model.engine.kv_cache import ALIGN, GrowingLayer, Window, aligned, stack_windows


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class AttentionBias:
    """(rows, 1, 1, capacity) additive mask over the cache's slots: 0 where a row may attend, -inf
    on its left padding and on slots not written yet; the first `length` slots are written.

    The eager step reads the first `length` slots, the fixed-shape step all of them."""

    def __init__(self, bias: torch.Tensor, length: int) -> None:
        self.bias = bias
        self.length = length

    @classmethod
    def of_prompts(cls, attention_mask: torch.Tensor, capacity: int, dtype: torch.dtype) -> AttentionBias:
        """The bias of left-padded prompts (attention_mask (rows, length)) with `capacity` slots."""
        rows, length = attention_mask.shape
        shape = (rows, 1, 1, aligned(max(capacity, length)))
        bias = torch.full(shape, float("-inf"), dtype=dtype, device=attention_mask.device)
        bias[:, 0, 0, :length].masked_fill_(attention_mask.bool(), 0.0)
        return cls(bias, length)

    @property
    def capacity(self) -> int:
        return int(self.bias.shape[-1])

    def step(self) -> torch.Tensor:
        """Open the slot the next token is written to; returns the bias over the written slots."""
        if self.length == self.capacity:
            self.resize(self.capacity + ALIGN)
        self.bias[..., self.length] = 0.0
        self.length += 1
        return self.bias[..., : self.length]

    def resize(self, capacity: int) -> None:
        """`capacity` slots (aligned; never fewer than are written), the new ones closed."""
        capacity = aligned(max(capacity, self.length))
        resized = self.bias.new_full((*self.bias.shape[:3], capacity), float("-inf"))
        resized[..., : self.length] = self.bias[..., : self.length]
        self.bias = resized

    def select(self, keep: torch.Tensor) -> None:
        self.bias = self.bias[keep]

    def window(self) -> Window:
        """The written slots some row may still attend to: those left of every row's first open
        slot are padding for all of them, and a merge can drop them."""
        open_slots = self.bias[:, 0, 0, : self.length] == 0
        if open_slots.shape[0] == 0:
            return self.length, self.length  # no rows: nothing to keep
        return int(open_slots.int().argmax(dim=1).min()), self.length

    def stack(self, mine: Window, other: AttentionBias, theirs: Window, capacity: int) -> None:
        """Append `other`'s rows as `GrowingLayer.stack` appends their keys and values."""
        blocks = [(self.bias, mine), (other.bias, theirs)]
        self.bias = stack_windows(blocks, 3, capacity, float("-inf"))
        self.length = max(mine[1] - mine[0], theirs[1] - theirs[0])


KVWrite = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _layer(
    layer: Any,
    hidden: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    write: KVWrite,
    bias: torch.Tensor,
) -> torch.Tensor:
    """One `Qwen2VLDecoderLayer` over (rows, 1, hidden) states; `cos`/`sin` are (rows, 1, 1, head_dim)."""
    attention = layer.self_attn
    rows, heads, dim = hidden.shape[0], attention.num_heads, attention.head_dim
    groups = attention.num_key_value_groups
    x = layer.input_layernorm(hidden)  # (rows, 1, hidden)
    query = (
        F.linear(x, attention.q_proj.weight, attention.q_proj.bias).view(rows, 1, heads, dim).transpose(1, 2)
    )
    key = F.linear(x, attention.k_proj.weight, attention.k_proj.bias).view(rows, 1, -1, dim).transpose(1, 2)
    value = F.linear(x, attention.v_proj.weight, attention.v_proj.bias).view(rows, 1, -1, dim).transpose(1, 2)
    query = query * cos + rotate_half(query) * sin
    key = key * cos + rotate_half(key) * sin
    keys, values = write(key, value)  # (rows, kv_heads, length, dim)
    # Query heads grouped under their key/value head: (rows, kv_heads, groups, dim).
    grouped = query.reshape(rows, heads // groups, groups, dim)
    out = F.scaled_dot_product_attention(grouped, keys, values, attn_mask=bias, scale=attention.scaling)
    hidden = hidden + F.linear(out.reshape(rows, 1, heads * dim), attention.o_proj.weight)
    x = layer.post_attention_layernorm(hidden)
    mlp = layer.mlp
    gated = mlp.act_fn(F.linear(x, mlp.gate_proj.weight)) * F.linear(x, mlp.up_proj.weight)
    return hidden + F.linear(gated, mlp.down_proj.weight)


def lean_decode_step(
    text_model: Any,
    tokens: torch.Tensor,
    positions: torch.Tensor,
    caches: list[GrowingLayer],
    bias: torch.Tensor,
) -> torch.Tensor:
    """Feed one token per row; returns the last-layer (final-norm) states, (rows, hidden)."""
    return decode_layers(text_model, tokens, positions, [cache.update for cache in caches], bias)


def decode_layers(
    text_model: Any, tokens: torch.Tensor, positions: torch.Tensor, writes: list[KVWrite], bias: torch.Tensor
) -> torch.Tensor:
    """The step itself, with each layer's key/value write supplied by the caller.

    Text tokens have equal temporal/height/width RoPE positions, so the multimodal rotary module
    gets the same position three times.
    """
    hidden = text_model.embed_tokens(tokens).unsqueeze(1)  # (rows, 1, hidden)
    cos, sin = text_model.rotary_emb(hidden, positions.view(1, -1, 1).expand(3, -1, 1))
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (rows, 1, 1, head_dim)
    for layer, write in zip(text_model.layers, writes, strict=True):
        hidden = _layer(layer, hidden, cos, sin, write, bias)
    return text_model.norm(hidden)[:, 0]
