"""A KV cache that grows in place instead of re-allocating on every decode step.

transformers' `DynamicCache` concatenates each new key/value onto the whole cache, so every
generated token copies the entire cache: O(length) memory traffic per step, which dominates a
large-batch decode. `GrowingLayer` keeps a preallocated buffer with headroom, writes each step
into it, and hands attention a view of the filled part. The buffer grows geometrically when the
headroom runs out, so copies happen O(log length) times instead of once per token.

Rows of a cache are independent: `GrowingLayer.stack` appends another cache's rows (continuous
batching), both right-aligned so the next write lands in one column for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

ALIGN = 64  # capacity rounding: aligned rows keep SDPA on its fused kernels


def aligned(tokens: int) -> int:
    """`tokens` rounded up to a multiple of ALIGN."""
    return -(-tokens // ALIGN) * ALIGN


class GrowingLayer(DynamicLayer):
    """One layer's keys/values (batch, kv_heads, capacity, head_dim); the first `length` are valid."""

    def __init__(self, reserve: int = 256) -> None:
        super().__init__()
        self.reserve = reserve  # tokens of headroom allocated beyond the first write
        self.length = 0
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        needed = self.length + key_states.shape[-2]
        if self._key_buffer is None or needed > self._key_buffer.shape[-2]:
            self._grow(key_states, value_states, needed)
        assert self._key_buffer is not None and self._value_buffer is not None
        self._key_buffer[:, :, self.length : needed] = key_states
        self._value_buffer[:, :, self.length : needed] = value_states
        self.length = needed
        self._expose()
        assert self.keys is not None and self.values is not None
        return self.keys, self.values

    def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, needed: int) -> None:
        capacity = aligned(needed + max(self.reserve, needed // 2))
        keys = key_states.new_zeros((*key_states.shape[:2], capacity, key_states.shape[-1]))
        values = value_states.new_zeros((*value_states.shape[:2], capacity, value_states.shape[-1]))
        if self._key_buffer is not None and self._value_buffer is not None:
            keys[:, :, : self.length] = self._key_buffer[:, :, : self.length]
            values[:, :, : self.length] = self._value_buffer[:, :, : self.length]
        self._key_buffer, self._value_buffer = keys, values

    def _expose(self) -> None:
        assert self._key_buffer is not None and self._value_buffer is not None
        self.keys = self._key_buffer[:, :, : self.length]
        self.values = self._value_buffer[:, :, : self.length]

    @property
    def capacity(self) -> int:
        """Slots allocated per row (written or not); 0 before the first write."""
        return 0 if self._key_buffer is None else int(self._key_buffer.shape[-2])

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._key_buffer is None or self._value_buffer is None:
            return
        self._key_buffer = self._key_buffer[indices]
        self._value_buffer = self._value_buffer[indices]
        self._expose()

    def stack(self, mine: Window, other: GrowingLayer, theirs: Window, capacity: int) -> None:
        """Append `other`'s rows below this layer's, keeping only each one's `Window` of columns;
        both end in one column, the new length (see `stack_windows`)."""
        assert self._key_buffer is not None and self._value_buffer is not None
        assert other._key_buffer is not None and other._value_buffer is not None
        for name in ("_key_buffer", "_value_buffer"):
            blocks = [(getattr(self, name), mine), (getattr(other, name), theirs)]
            setattr(self, name, stack_windows(blocks, 2, capacity, 0.0))
        self.length = max(mine[1] - mine[0], theirs[1] - theirs[0])
        self._expose()

    def mark_written(self, length: int) -> None:
        """The first `length` slots hold keys and values (written in place, by a replayed graph)."""
        self.length = length
        self._expose()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove < 0 and self.is_initialized:
            self.length = max(self.length + tokens_to_remove, 0)
            self._expose()


# The columns [start, end) of a block of rows that some row may still attend to.
Window = tuple[int, int]


def stack_windows(
    blocks: Sequence[tuple[torch.Tensor, Window]], dim: int, capacity: int, fill: float
) -> torch.Tensor:
    """Stack blocks of rows into one tensor, each block's window right-aligned to end in one column.

    The shared end is the widest window's width, so the decode's next write lands in the same
    column for every row; `dim` is the column dimension, every slot outside a window is `fill`.
    """
    width = max(end - start for _, (start, end) in blocks)
    first = blocks[0][0]
    shape = list(first.shape)
    shape[0], shape[dim] = sum(block.shape[0] for block, _ in blocks), capacity
    out = first.new_full(shape, fill)
    row = 0
    for block, (start, end) in blocks:
        rows = out[row : row + block.shape[0]]
        rows.narrow(dim, width - (end - start), end - start).copy_(block.narrow(dim, start, end - start))
        row += block.shape[0]
    return out


def growing_cache(num_layers: int, reserve: int) -> Cache:
    """A cache of `num_layers` growing layers with `reserve` tokens of headroom each."""
    return Cache(layers=[GrowingLayer(reserve) for _ in range(num_layers)])
