"""What the decode loop carries from step to step, and how one step's result updates it.

Two sets of rows: the batch's inputs (the outputs are indexed by input), and the rows still in
the KV cache (`rows` maps each cache row to its input). Everything per cache row stays on the
device, so a step needs no host round trip; rows that have consumed their last token are dead
until the next compaction drops them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from model.engine.kv_cache import GrowingLayer
from model.engine.lean_step import AttentionBias
from model.engine.sampling import Sampling
from model.engine.tokens import TokenIds

StepCallback = Callable[[list[int], list[int]], None]  # (original row indices, new token ids)

# The per-cache-row tensors, the ones compaction selects.
_ROW_FIELDS = ("rows", "tokens", "positions", "lengths", "alive", "captured", "previous", "has_gen")


@dataclass(eq=False)
class DecodeState:
    """The decode's settings, its per-cache-row state, and its per-input outputs.

    `captured` holds the state read at the last `<gen_emb>` consumed (`has_gen`), and for a dead
    row without one, the state of its last generated step; `previous` is each row's latest step
    state (at the start: the prefill state that chose the first tokens).
    """

    ids: TokenIds
    sampling: Sampling
    generator: torch.Generator | None  # None: greedy, or sampling from torch's global source
    # Per cache row; shrunk by `compact`.
    rows: torch.Tensor  # (rows,) input index of each cache row
    tokens: torch.Tensor  # (rows,) each row's next input; pad once dead
    positions: torch.Tensor  # (rows,) RoPE position of the next input (the eager loop's)
    lengths: torch.Tensor  # (rows,) tokens generated so far, the pending one included
    alive: torch.Tensor  # (rows,) bool
    captured: torch.Tensor  # (rows, hidden)
    previous: torch.Tensor  # (rows, hidden)
    has_gen: torch.Tensor  # (rows,) bool
    caches: list[GrowingLayer]  # one per layer
    bias: AttentionBias  # the eager step's attention mask
    # Per input: the results.
    generated: torch.Tensor  # (batch, max_new_tokens + 1) ids, pad-filled; dead rows write the last column
    generated_lengths: torch.Tensor  # (batch,) tokens generated per input, terminal token included
    gen: torch.Tensor  # (batch, hidden) gen states, filled as rows leave the cache

    def closing(self) -> torch.Tensor:
        """(rows,) bool: rows whose pending token is their last: `<|im_end|>`, the cap, or
        `<gen_emb>` when the run stops there."""
        terminal = self.tokens == self.ids.eos
        if self.sampling.stop_at_gen_emb:
            terminal = terminal | (self.tokens == self.ids.gen_emb)
        return self.alive & (terminal | (self.lengths >= self.sampling.max_new_tokens))

    def advance(self, closing: torch.Tensor, step_hidden: torch.Tensor, next_tokens: torch.Tensor) -> None:
        """After a step that consumed `tokens`: read gen where `<gen_emb>` was the input, settle
        the rows that closed, and append `next_tokens` (rows,) to the others.

        `closing` is `self.closing()` from before the step; `step_hidden` (rows, hidden) the step's
        last-layer states.
        """
        self._capture(closing, step_hidden)
        self.alive = self.alive & ~closing
        self.tokens = torch.where(self.alive, next_tokens, self.ids.pad)
        cap = self.sampling.max_new_tokens
        # Dead rows write into the spare last column, so the write needs no host-side filter.
        self.generated[self.rows, torch.where(self.alive, self.lengths, cap)] = self.tokens
        self.lengths = self.lengths + self.alive.long()
        self.generated_lengths[self.rows] = self.lengths.clamp(max=cap)

    def _capture(self, closing: torch.Tensor, step_hidden: torch.Tensor) -> None:
        consumed = self.alive & (self.tokens == self.ids.gen_emb)
        self.captured = torch.where(consumed.unsqueeze(-1), step_hidden, self.captured)
        self.has_gen = self.has_gen | consumed
        # No `<gen_emb>`: the last generated step is the one that produced this closing token.
        fallback = (closing & ~self.has_gen).unsqueeze(-1)
        self.captured = torch.where(fallback, self.previous, self.captured)
        self.previous = step_hidden

    def report(self, on_step: StepCallback) -> None:
        """Tell `on_step` the token each live row has just been given."""
        alive = self.alive.nonzero().squeeze(-1)
        on_step(self.rows[alive].tolist(), self.tokens[alive].tolist())

    def store_finished(self) -> None:
        """Copy the captured states of dead rows into `gen`."""
        dead = ~self.alive
        self.gen[self.rows[dead]] = self.captured[dead]

    def compact(self) -> torch.Tensor:
        """Store the captured states of dead rows, then drop those rows everywhere.

        Returns the kept rows' former indices, for whatever else is held per cache row.
        """
        self.store_finished()
        keep = self.alive.nonzero().squeeze(-1)
        for layer in self.caches:
            layer.batch_select_indices(keep)
        self.bias.select(keep)
        for name in _ROW_FIELDS:
            setattr(self, name, getattr(self, name)[keep])
        return keep

    def completions(self) -> list[list[int]]:
        """Generated ids per input, terminal token included."""
        rows = zip(self.generated.cpu(), self.generated_lengths.tolist(), strict=True)
        return [row[:n].tolist() for row, n in rows]
