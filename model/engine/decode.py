"""Both embeddings from one call: disc from the prefill, gen from a decode that stops per row.

`generate_embeddings` prefills the prompts (reading disc there), then runs one of two loops over
the same `DecodeState`: the eager loop (lean steps; any device, greedy or sampled, per-token
reporting) or the fixed-shape loop (greedy steps replayed from a CUDA graph on CUDA, run eagerly
elsewhere, which is how the tests check it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from model.engine.graph_step import GraphStep, full_capacity_bias, grow_caches
from model.engine.kv_cache import ALIGN
from model.engine.lean_step import AttentionBias, lean_decode_step
from model.engine.prefill import (
    Batch,
    last_token_positions,
    normalise,
    rope_positions,
    run_prefill,
    states_at,
)
from model.engine.sampling import Sampling, pick_next_tokens, seeded_generator
from model.engine.state import DecodeState, StepCallback
from model.engine.tokens import TokenIds

# Drop finished rows from the cache once this share of the batch is dead; compacting copies the
# whole cache, so doing it for every single finished row would cost more than it saves.
COMPACT_DEAD_FRACTION = 0.125

# KV-cache headroom allocated at prefill; longer generations grow the cache geometrically.
DECODE_RESERVE = 1024

# Called between two decode steps; may block (a background batch yielding to a search).
WaitTurn = Callable[[], object]

# How often (in steps) the loop looks at the host side: finished? compact? A dead row costs one
# wasted row-step until then; looking every step would stall the device on every token.
CHECK_EVERY = 8


@dataclass
class BatchEmbeddings:
    disc: torch.Tensor | None  # (batch, hidden) float32, L2-normalised
    gen: torch.Tensor | None  # (batch, hidden) float32, L2-normalised
    completions: list[list[int]]  # generated ids per row, terminal token included


def use_cuda_graphs(device: torch.device, sampling: Sampling, on_step: StepCallback | None) -> bool:
    """Graphs pay off on CUDA for greedy decoding; UME_CUDA_GRAPHS=0 turns them off."""
    enabled = os.environ.get("UME_CUDA_GRAPHS", "1") != "0"
    plain_greedy = not sampling.do_sample and not sampling.banned_tokens
    return enabled and device.type == "cuda" and plain_greedy and on_step is None


@torch.inference_mode()
def generate_embeddings(
    model: Any,
    batch: Batch,
    ids: TokenIds,
    sampling: Sampling,
    want_disc: bool = True,
    on_step: StepCallback | None = None,
    fixed_shape_steps: bool | None = None,
    wait_turn: WaitTurn | None = None,
) -> BatchEmbeddings:
    """Prefill (disc), then decode until each row has consumed `<gen_emb>` (gen).

    `on_step` hears every token as it is chosen, the first ones included.
    `fixed_shape_steps` picks the CUDA-graph-ready loop (default: on CUDA for greedy decoding);
    off CUDA it runs the same fixed-shape steps eagerly, which is how the tests check it.
    `wait_turn` is called before every decode step in either loop and may block there (the
    batch in flight keeps its state), so other work on the model waits at most one step.
    """
    state, hidden = _prefill(model, batch, ids, sampling)
    disc = None
    if want_disc:
        disc = states_at(hidden, last_token_positions(batch["input_ids"], ids.disc_emb))
    if on_step is not None:
        on_step(state.rows.tolist(), state.tokens.tolist())
    if fixed_shape_steps is None:
        fixed_shape_steps = use_cuda_graphs(batch["input_ids"].device, sampling, on_step)
    if fixed_shape_steps:
        _graph_loop(model, state, batch["attention_mask"], wait_turn)
    else:
        _eager_loop(model, state, on_step, wait_turn)
    return BatchEmbeddings(disc=disc, gen=normalise(state.gen), completions=state.completions())


def _prefill(model: Any, batch: Batch, ids: TokenIds, sampling: Sampling) -> tuple[DecodeState, torch.Tensor]:
    """Run the prompts and pick each row's first token.

    Returns the decode's starting state and the prompts' last-layer states (batch, length, hidden).
    """
    size, device = batch["input_ids"].shape[0], batch["input_ids"].device
    generator = seeded_generator(sampling, device)
    reserve = min(sampling.max_new_tokens, DECODE_RESERVE) + 1
    # (3, batch, length); computed once: a per-row Python loop in transformers, costly at batch 512.
    positions = rope_positions(model, batch)
    prefill = run_prefill(model, batch, use_cache=True, reserve=reserve, position_ids=positions)
    hidden = prefill.last_hidden_state  # (batch, length, hidden)
    first = pick_next_tokens(model.lm_head(hidden[:, -1]), sampling, generator)
    generated = torch.full((size, sampling.max_new_tokens + 1), ids.pad, dtype=torch.long, device=device)
    generated[:, 0] = first
    state = DecodeState(
        ids=ids,
        sampling=sampling,
        generator=generator,
        rows=torch.arange(size, device=device),
        tokens=first,
        positions=positions[0, :, -1] + 1,
        lengths=torch.ones_like(first),
        alive=torch.ones_like(first, dtype=torch.bool),
        captured=hidden.new_zeros(size, hidden.shape[-1]),
        previous=hidden[:, -1],
        has_gen=torch.zeros_like(first, dtype=torch.bool),
        caches=list(prefill.cache.layers),
        bias=AttentionBias(batch["attention_mask"], reserve, hidden.dtype),
        generated=generated,
        generated_lengths=torch.ones(size, dtype=torch.long, device=device),
        gen=torch.zeros(size, hidden.shape[-1], dtype=hidden.dtype, device=device),
    )
    return state, hidden


def _worth_compacting(state: DecodeState, alive: int) -> bool:
    """Whether enough of the cache's rows are dead (`alive` of them are not) to drop them now."""
    return alive <= (1 - COMPACT_DEAD_FRACTION) * state.alive.shape[0]


def _eager_loop(
    model: Any, state: DecodeState, on_step: StepCallback | None, wait_turn: WaitTurn | None
) -> None:
    """Eager lean steps: any device, greedy or sampled, with optional per-token reporting."""
    text_model, step = model.model.language_model, 0
    while True:
        if wait_turn is not None:
            wait_turn()
        step += 1
        closing = state.closing()
        step_hidden = lean_decode_step(
            text_model, state.tokens, state.positions, state.caches, state.bias.step()
        )
        state.positions = state.positions + 1
        next_tokens = pick_next_tokens(model.lm_head(step_hidden), state.sampling, state.generator)
        state.advance(closing, step_hidden, next_tokens)
        if on_step is not None:
            state.report(on_step)
        if step % CHECK_EVERY == 0 or on_step is not None:
            alive = int(state.alive.sum())
            if alive == 0:
                break
            if _worth_compacting(state, alive):
                state.compact()
    state.store_finished()


def _graph_loop(
    model: Any, state: DecodeState, attention_mask: torch.Tensor, wait_turn: WaitTurn | None
) -> None:
    """Greedy steps replayed from a CUDA graph, re-captured when rows are dropped or the cache grows.

    `attention_mask` is the prompts' (batch, length) mask. `wait_turn` runs on the host before
    each replay and reads nothing from the device, so it adds no synchronisation (on CUDA the
    device may still hold up to CHECK_EVERY queued steps when it blocks).
    """
    write_at = attention_mask.shape[1]  # the cache slot the next step writes
    capture = state.tokens.device.type == "cuda"
    bias = _graph_bias(state, attention_mask)
    step = GraphStep(model, state.caches, state.tokens, state.positions, bias, write_at, capture)
    while True:
        for _ in range(CHECK_EVERY):
            if wait_turn is not None:
                wait_turn()
            closing = state.closing()
            step_hidden, next_tokens = step.run(state.tokens)
            state.advance(closing, step_hidden, next_tokens)
            write_at += 1
        alive = int(state.alive.sum())
        if alive == 0:
            break
        shrink = _worth_compacting(state, alive)
        grow = write_at + CHECK_EVERY + 1 > step.capacity
        if shrink or grow:
            positions, bias = _resized(state, step, shrink, grow)
            step = GraphStep(model, state.caches, state.tokens, positions, bias, write_at, capture)
    state.store_finished()


def _graph_bias(state: DecodeState, attention_mask: torch.Tensor) -> torch.Tensor:
    """The first graph's (rows, 1, 1, capacity) bias, the cache grown first if CHECK_EVERY steps
    would not fit."""
    bias = full_capacity_bias(attention_mask, state.caches[0].capacity, state.captured.dtype)
    capacity, write_at = bias.shape[-1], attention_mask.shape[1]
    if write_at + CHECK_EVERY + 1 > capacity:
        bias = grow_caches(state.caches, bias, write_at + max(capacity // 2, ALIGN))
    return bias


def _resized(
    state: DecodeState, step: GraphStep, shrink: bool, grow: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The next graph's positions (rows,) and bias after dropping dead rows and/or growing the cache."""
    positions, bias = step.positions, step.bias
    if shrink:
        keep = state.compact()
        positions, bias = positions[keep], bias[keep]
    if grow:
        bias = grow_caches(state.caches, bias, step.capacity + max(step.capacity // 2, ALIGN))
    return positions, bias
