"""Continuous batching: prompts that wait take the places of rows that have finished.

Real generations end row by row, each at its own `<gen_emb>`, so a batch decoded to its end
spends its last steps on a few long rows. Given a `PromptSource`, the decode instead prefills
waiting prompts as a small batch of their own whenever enough rows have finished, and appends
their cache rows to the running ones (`DecodeState.absorb`), so it keeps a full batch until the
queue is empty.

Why a row's results do not depend on when it joined: its RoPE positions are its own (its prompt's,
then one more per token), and its attention bias opens only its own prompt and tokens. Cache
columns are mere storage: a joining block is right-aligned to the running length, its empty slots
closed like left padding, and slots no row attends to any more are dropped at each join, so the
cache does not grow with the length of the whole run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from model.engine.prefill import Batch
from model.engine.state import DecodeState, StepCallback, start_decode

# Up to n more prompts, collated (left-padded) on the model's device; None when none are left.
PromptSource = Callable[[int], Batch | None]


class Waiting:
    """The prompts a running decode has not started yet, numbered in the order they arrive."""

    def __init__(self, source: PromptSource, first_input: int, reserve: int) -> None:
        self.source = source
        self.next_input = first_input  # the number the next prompt to arrive gets
        self.reserve = reserve
        self.exhausted = False
        self.disc: list[torch.Tensor] = []  # (prompts, hidden) per group, in arrival order

    def join(
        self,
        model: Any,
        state: DecodeState,
        free: int,
        on_step: StepCallback | None,
        wait_turn: Callable[[], object] | None,
    ) -> bool:
        """Prefill up to `free` waiting prompts and append them to `state` (dropping its finished
        rows first); False when none are left."""
        if self.exhausted:
            return False
        batch = self.source(free)
        if batch is None or batch["input_ids"].shape[0] == 0:
            self.exhausted = True
            return False
        if wait_turn is not None:
            wait_turn()  # the prefill is one more model step
        group, disc = start_decode(
            model, batch, state.sampling, state.ids, state.generator, self.reserve, self.next_input
        )
        self.next_input += batch["input_ids"].shape[0]
        self.disc.append(disc)
        state.compact()
        state.absorb(group)
        if on_step is not None:
            on_step(group.rows.tolist(), group.tokens.tolist())
        return True
