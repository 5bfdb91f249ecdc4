"""What an encode call returns, and the bookkeeping that fills it batch by batch.

The encoder decodes its inputs in an order of its own (longest prompt first, rows joining as
others finish); everything here maps that order back to the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from model.engine import StepCallback, TokenOverride, WaitTurn, parse_completion

Mode = Literal["disc", "gen", "both"]
TokenCallback = Callable[[int, list[int]], None]  # (input index, its tokens so far)


@dataclass
class Encoded:
    """Embeddings and generated text for a list of inputs, in input order."""

    disc: np.ndarray | None  # (n, hidden) float32, L2-normalised
    gen: np.ndarray | None  # (n, hidden) float32, L2-normalised
    reasoning: list[str | None]
    summary: list[str | None]
    completion: list[str | None]  # raw generated text, None in disc mode

    def __len__(self) -> int:
        return len(self.reasoning)


@dataclass
class DecodeRun:
    """One decode call of `encode_prepared`: its inputs in arrival order and the caller's hooks."""

    order: list[int]  # input indices; the engine numbers them 0, 1, ... in this order
    width: int  # rows decoded at once
    on_tokens: TokenCallback | None
    wait_turn: WaitTurn | None
    override: TokenOverride | None


def in_caller_numbers(
    override: TokenOverride | None, order: list[int], device: torch.device
) -> TokenOverride | None:
    """The engine numbers a call's inputs by arrival; the caller's `override` expects its own."""
    if override is None:
        return None
    numbers = torch.tensor(order, device=device)
    caller = override

    def renumbered(tokens: torch.Tensor, inputs: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
        return caller(tokens, numbers[inputs], before)

    return renumbered


class EncodedArrays:
    """Arrays filled batch by batch, then turned into an `Encoded`."""

    def __init__(self, size: int, hidden: int, mode: Mode) -> None:
        self.mode = mode
        self.disc = np.zeros((size, hidden), np.float32) if mode in ("disc", "both") else None
        self.gen = np.zeros((size, hidden), np.float32) if mode in ("gen", "both") else None
        self.completion_ids: list[list[int] | None] = [None] * size

    def store_disc(self, indices: list[int], disc: torch.Tensor) -> None:
        assert self.disc is not None
        self.disc[indices] = disc.cpu().numpy()

    def store_gen(self, indices: list[int], gen: torch.Tensor, completions: list[list[int]]) -> None:
        assert self.gen is not None
        self.gen[indices] = gen.cpu().numpy()
        for index, completion in zip(indices, completions, strict=True):
            self.completion_ids[index] = completion

    def finish(self, tokenizer: Any) -> Encoded:
        texts = [
            None if ids is None else tokenizer.decode(ids, skip_special_tokens=True)
            for ids in self.completion_ids
        ]
        parsed = [None if t is None else parse_completion(t) for t in texts]
        return Encoded(
            disc=self.disc,
            gen=self.gen,
            reasoning=[p.reasoning if p else None for p in parsed],
            summary=[p.summary if p else None for p in parsed],
            completion=texts,
        )


def row_callback(indices: list[int], on_tokens: TokenCallback) -> StepCallback:
    """Per-row token reports of one batch -> each input's tokens so far."""
    so_far: dict[int, list[int]] = {}

    def on_step(rows: list[int], tokens: list[int]) -> None:
        for row, token in zip(rows, tokens, strict=True):
            so_far.setdefault(row, []).append(token)
            on_tokens(indices[row], so_far[row])

    return on_step
