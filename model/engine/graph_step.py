"""Greedy decode steps replayed from a CUDA graph.

On a GPU a decode step of a 2B model is a few milliseconds of arithmetic but ~600 kernel
launches; launched one by one from Python the launches, not the GPU, set the pace. Capturing the
step once and replaying it removes that. A graph needs fixed shapes, so the step attends over the
whole preallocated cache with an additive bias that keeps not-yet-written slots at -inf (exactly
zero weight), and writes each new key/value at a position held in a device tensor.

The graph is captured again when the batch changes (finished rows dropped, waiting prompts
joined) or the cache must grow.
Used for greedy decoding on CUDA only; sampling and CPU runs take the eager lean step.
"""

from __future__ import annotations

from typing import Any

import torch

from model.engine.kv_cache import GrowingLayer, aligned
from model.engine.lean_step import AttentionBias, KVWrite, decode_layers


class GraphStep:
    """One captured greedy step over fixed buffers: tokens in, (hidden, next tokens) out."""

    def __init__(
        self,
        model: Any,
        caches: list[GrowingLayer],
        tokens: torch.Tensor,
        positions: torch.Tensor,
        bias: torch.Tensor,
        write_at: int,
        capture: bool = True,
    ) -> None:
        self.model, self.caches = model, caches
        self.tokens = tokens.clone()  # (rows,) inputs, refreshed before each replay
        self.positions = positions.clone()  # (rows,)
        self.bias = bias  # (rows, 1, 1, capacity), -inf on padding and unwritten slots
        self.write_at = torch.tensor([write_at], device=tokens.device)
        self.hidden: torch.Tensor | None = None
        self.next_tokens: torch.Tensor | None = None
        # Without capture (CPU, tests) the same fixed-shape step runs eagerly.
        self.graph = self._capture() if capture else None

    @property
    def capacity(self) -> int:
        return int(self.bias.shape[-1])

    def _writes(self) -> list[KVWrite]:
        def make(layer: GrowingLayer) -> KVWrite:
            def write(key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                assert layer._key_buffer is not None and layer._value_buffer is not None
                layer._key_buffer.index_copy_(2, self.write_at, key)
                layer._value_buffer.index_copy_(2, self.write_at, value)
                return layer._key_buffer, layer._value_buffer

            return write

        return [make(layer) for layer in self.caches]

    def _body(self) -> None:
        # Writing the slot, opening it in the bias and computing the step are idempotent for a
        # given write position, so the warm-up runs below leave no trace.
        self.bias.index_fill_(3, self.write_at, 0.0)
        text_model = self.model.model.language_model
        hidden = decode_layers(text_model, self.tokens, self.positions, self._writes(), self.bias)
        self.hidden = hidden
        self.next_tokens = self.model.lm_head(hidden).argmax(dim=-1)

    def _capture(self) -> torch.cuda.CUDAGraph:
        """Warm up on a side stream (as CUDA graphs require), then record one step."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._body()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._body()
        return graph

    def run(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Consume `tokens`; returns (last-layer states, greedy next tokens) and advances positions."""
        self.tokens.copy_(tokens)
        if self.graph is None:
            self._body()
        else:
            self.graph.replay()
        self.positions += 1
        self.write_at += 1
        assert self.hidden is not None and self.next_tokens is not None
        # A replay overwrites the graph's output buffers in place; the caller keeps a step's states
        # past the next step (the last-step fallback of `DecodeState`), so it gets its own copy.
        return self.hidden.clone(), self.next_tokens


def grow_caches(caches: list[GrowingLayer], bias: AttentionBias, capacity: int) -> None:
    """Enlarge every layer's buffers (and the bias) to at least `capacity` slots."""
    capacity = aligned(capacity)
    for layer in caches:
        assert layer._key_buffer is not None and layer._value_buffer is not None
        for name in ("_key_buffer", "_value_buffer"):
            old = getattr(layer, name)
            new = old.new_zeros((*old.shape[:2], capacity, old.shape[-1]))
            new[:, :, : old.shape[2]] = old
            setattr(layer, name, new)
    bias.resize(capacity)
