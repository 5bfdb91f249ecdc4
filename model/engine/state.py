"""What the decode loop carries from step to step, and how one step's result updates it.

Two sets of rows: the inputs (the outputs are indexed by input, numbered in the order they
arrive), and the rows in the KV cache (`rows` maps each cache row to its input). Everything per
cache row stays on the device, so a step needs no host round trip; rows that have consumed their
last token are dead until the next compaction stores their results and drops them. `absorb`
appends the rows of later inputs, prefilled on their own, to a running state (continuous
batching, see `model.engine.refill`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from model.engine.kv_cache import GrowingLayer, aligned
from model.engine.lean_step import AttentionBias
from model.engine.prefill import Batch, last_token_positions, rope_positions, run_prefill, states_at
from model.engine.sampling import Sampling, pick_next_tokens
from model.engine.tokens import TokenIds

StepCallback = Callable[[list[int], list[int]], None]  # (input indices, new token ids)

# The per-cache-row tensors, the ones compaction selects and `absorb` extends.
_ROW_FIELDS = (
    "rows",
    "tokens",
    "positions",
    "lengths",
    "alive",
    "captured",
    "previous",
    "has_gen",
    "generated",
)


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
    # Per cache row; shrunk by `compact`, extended by `absorb`.
    rows: torch.Tensor  # (rows,) input index of each cache row
    tokens: torch.Tensor  # (rows,) each row's next input; pad once dead
    positions: torch.Tensor  # (rows,) RoPE position of the next input
    lengths: torch.Tensor  # (rows,) tokens generated so far, the pending one included
    alive: torch.Tensor  # (rows,) bool
    captured: torch.Tensor  # (rows, hidden)
    previous: torch.Tensor  # (rows, hidden)
    has_gen: torch.Tensor  # (rows,) bool
    generated: torch.Tensor  # (rows, max_new_tokens + 1) ids, pad-filled; dead rows write the last column
    caches: list[GrowingLayer]  # one per layer
    bias: AttentionBias  # which cache slots each row attends to
    # Per input: the results, stored as rows leave the cache.
    gen: torch.Tensor  # (inputs, hidden) gen states
    completed: dict[int, list[int]] = field(default_factory=dict)  # ids per input, terminal token included

    def closing(self) -> torch.Tensor:
        """(rows,) bool: rows whose pending token is their last: `<|im_end|>`, the cap, or
        `<gen_emb>` when the run stops there."""
        terminal = self.tokens == self.ids.eos
        for token in self.sampling.also_stop_at:
            terminal = terminal | (self.tokens == token)
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
        if self.sampling.override is not None:
            next_tokens = self.sampling.override(next_tokens, self.rows, self.lengths)
        self.tokens = torch.where(self.alive, next_tokens, self.ids.pad)
        # Dead rows write into the spare last column, so the write needs no host-side filter.
        column = torch.where(self.alive, self.lengths, self.sampling.max_new_tokens)
        self.generated.scatter_(1, column.unsqueeze(1), self.tokens.unsqueeze(1))
        self.lengths = self.lengths + self.alive.long()

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
        """Store the results of dead rows: gen states into `gen`, token ids into `completed`."""
        dead = (~self.alive).nonzero().squeeze(-1)
        if dead.numel() == 0:
            return
        self.gen[self.rows[dead]] = self.captured[dead]
        lengths = self.lengths[dead].clamp(max=self.sampling.max_new_tokens).tolist()
        tokens = self.generated[dead, : max(lengths)].tolist()
        for index, length, row in zip(self.rows[dead].tolist(), lengths, tokens, strict=True):
            self.completed[index] = row[:length]

    def compact(self) -> torch.Tensor:
        """Store the results of dead rows, then drop those rows everywhere.

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

    def absorb(self, other: DecodeState) -> None:
        """Append `other`'s rows, a prefill of the inputs that follow this state's, to the batch.

        Each side keeps only the cache slots one of its rows still attends to, and both end in one
        column (see `GrowingLayer.stack`); positions and biases are per row, so no row's numbers
        change. Compact first: a dead row would pin slots nobody needs.
        """
        mine, theirs = self.bias.window(), other.bias.window()
        width = max(mine[1] - mine[0], theirs[1] - theirs[0])
        capacity = aligned(width + max(self._headroom(), other._headroom()))
        for layer, joining in zip(self.caches, other.caches, strict=True):
            layer.stack(mine, joining, theirs, capacity)
        self.bias.stack(mine, other.bias, theirs, capacity)
        for name in _ROW_FIELDS:
            setattr(self, name, torch.cat([getattr(self, name), getattr(other, name)]))
        self.gen = torch.cat([self.gen, other.gen])

    def _headroom(self) -> int:
        """Cache slots allocated beyond those written."""
        return self.caches[0].capacity - self.bias.length

    def completions(self) -> list[list[int]]:
        """Generated ids per input, terminal token included."""
        return [self.completed[index] for index in range(self.gen.shape[0])]


@torch.inference_mode()
def start_decode(
    model: Any,
    batch: Batch,
    sampling: Sampling,
    ids: TokenIds,
    generator: torch.Generator | None,
    reserve: int,
    first_input: int = 0,
) -> tuple[DecodeState, torch.Tensor]:
    """Prefill the prompts and pick each row's first token; inputs are numbered from `first_input`.

    Returns the decode's starting state, with `reserve` cache slots of headroom, and the prompts'
    disc embeddings (batch, hidden).
    """
    (size, length), device = batch["input_ids"].shape, batch["input_ids"].device
    # (3, batch, length); computed once: a per-row Python loop in transformers, costly at batch 512.
    positions = rope_positions(model, batch)
    prefill = run_prefill(model, batch, use_cache=True, reserve=reserve, position_ids=positions)
    hidden = prefill.last_hidden_state  # (batch, length, hidden)
    rows = torch.arange(size, device=device) + first_input
    first = pick_next_tokens(model.lm_head(hidden[:, -1]), sampling, generator)
    if sampling.override is not None:
        first = sampling.override(first, rows, torch.zeros_like(first))
    generated = torch.full((size, sampling.max_new_tokens + 1), ids.pad, dtype=torch.long, device=device)
    generated[:, 0] = first
    state = DecodeState(
        ids=ids,
        sampling=sampling,
        generator=generator,
        rows=rows,
        tokens=first,
        positions=positions[0, :, -1] + 1,
        lengths=torch.ones_like(first),
        alive=torch.ones_like(first, dtype=torch.bool),
        captured=hidden.new_zeros(size, hidden.shape[-1]),
        previous=hidden[:, -1],
        has_gen=torch.zeros_like(first, dtype=torch.bool),
        generated=generated,
        caches=list(prefill.cache.layers),
        bias=AttentionBias.of_prompts(batch["attention_mask"], length + reserve, hidden.dtype),
        gen=torch.zeros(size, hidden.shape[-1], dtype=hidden.dtype, device=device),
    )
    disc = states_at(hidden, last_token_positions(batch["input_ids"], ids.disc_emb))
    return state, disc
