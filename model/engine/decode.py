"""Both embeddings from one call: disc from the prefill, gen from a decode that stops per row.

`generate_embeddings` prefills the prompts (reading disc there), then runs one of two loops over
the same `DecodeState`: the eager loop (lean steps; any device, greedy or sampled, per-token
reporting) or the fixed-shape loop (greedy steps replayed from a CUDA graph on CUDA, run eagerly
elsewhere, which is how the tests check it).

Every CHECK_EVERY steps a loop looks at the host side. Once enough rows have finished, it either
lets waiting prompts take their places (continuous batching, when the caller gives a
`PromptSource`; see `model.engine.refill`) or drops the finished rows from the cache, so the
batch shrinks. Both loops do both; the fixed-shape loop captures its graph again after each
change. A `wait_turn` hook is called before every step (and every joining prefill), so other work
on the same model waits at most one step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from model.engine.graph_step import GraphStep, grow_caches
from model.engine.kv_cache import ALIGN
from model.engine.lean_step import lean_decode_step
from model.engine.prefill import Batch, normalise
from model.engine.refill import PromptSource, Waiting
from model.engine.sampling import Sampling, pick_next_tokens, seeded_generator
from model.engine.state import DecodeState, StepCallback, start_decode
from model.engine.tokens import TokenIds

# Drop finished rows from the cache (or let waiting prompts take their places) once this share of
# the batch is dead; either copies the whole cache, so doing it for every single finished row
# would cost more than it saves.
COMPACT_DEAD_FRACTION = 0.125

# KV-cache headroom allocated at prefill; longer generations grow the cache geometrically.
DECODE_RESERVE = 1024

# Called between two decode steps; may block (a background batch yielding to a search).
WaitTurn = Callable[[], object]

# How often (in steps) the loop looks at the host side: finished? compact? refill? A dead row
# costs one wasted row-step until then; looking every step would stall the device on every token.
CHECK_EVERY = 8


@dataclass
class BatchEmbeddings:
    disc: torch.Tensor | None  # (inputs, hidden) float32, L2-normalised
    gen: torch.Tensor | None  # (inputs, hidden) float32, L2-normalised
    completions: list[list[int]]  # generated ids per input, terminal token included


def use_cuda_graphs(device: torch.device, sampling: Sampling, on_step: StepCallback | None) -> bool:
    """Graphs pay off on CUDA for greedy decoding; UME_CUDA_GRAPHS=0 turns them off."""
    enabled = os.environ.get("UME_CUDA_GRAPHS", "1") != "0"
    plain_greedy = not sampling.do_sample and not sampling.banned_tokens
    return enabled and device.type == "cuda" and plain_greedy and on_step is None


@dataclass
class _Loop:
    """What a decode loop needs besides the state: the model and the caller's hooks."""

    model: Any
    width: int  # rows the batch holds at most: the first batch's size
    on_step: StepCallback | None
    wait_turn: WaitTurn | None
    waiting: Waiting | None


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
    refill: PromptSource | None = None,
) -> BatchEmbeddings:
    """Prefill (disc), then decode until each row has consumed `<gen_emb>` (gen).

    `on_step` hears every token as it is chosen, the first ones included.
    `fixed_shape_steps` picks the CUDA-graph-ready loop (default: on CUDA for greedy decoding);
    off CUDA it runs the same fixed-shape steps eagerly, which is how the tests check it.
    `wait_turn` is called before every decode step in either loop and may block there (the
    batch in flight keeps its state), so other work on the model waits at most one step.
    `refill(n)` gives up to n more prompts to decode in the places of finished rows (None when
    none are left); inputs are numbered in arrival order, `batch` first, and the results cover
    them all.
    """
    device = batch["input_ids"].device
    generator = seeded_generator(sampling, device)
    reserve = min(sampling.max_new_tokens, DECODE_RESERVE) + 1
    state, disc = start_decode(model, batch, sampling, ids, generator, reserve)
    waiting = None if refill is None else Waiting(refill, batch["input_ids"].shape[0], reserve)
    if on_step is not None:
        on_step(state.rows.tolist(), state.tokens.tolist())
    if fixed_shape_steps is None:
        fixed_shape_steps = use_cuda_graphs(device, sampling, on_step)
    loop = _Loop(model, batch["input_ids"].shape[0], on_step, wait_turn, waiting)
    if fixed_shape_steps:
        _graph_loop(loop, state)
    else:
        _eager_loop(loop, state)
    discs = [disc, *(waiting.disc if waiting else [])]
    return BatchEmbeddings(
        disc=torch.cat(discs) if want_disc else None,
        gen=normalise(state.gen),
        completions=state.completions(),
    )


def _mostly_dead(rows: int, alive: int) -> bool:
    """Whether enough of `rows` are dead (`alive` of them are not) to act on it now."""
    return alive <= (1 - COMPACT_DEAD_FRACTION) * rows


def _check(loop: _Loop, state: DecodeState) -> bool | None:
    """The host-side look every CHECK_EVERY steps: let waiting prompts join, or drop finished
    rows, when due. Returns None when nothing is left to decode, else whether the rows changed."""
    alive = int(state.alive.sum())
    if loop.waiting is not None and _mostly_dead(loop.width, alive) and _join(loop, state, alive):
        return True
    if alive == 0:
        return None
    if _mostly_dead(state.alive.shape[0], alive):
        state.compact()
        return True
    return False


def _join(loop: _Loop, state: DecodeState, alive: int) -> bool:
    """Let waiting prompts take the places of the finished rows; False when none are left."""
    assert loop.waiting is not None
    return loop.waiting.join(loop.model, state, loop.width - alive, loop.on_step, loop.wait_turn)


def _eager_loop(loop: _Loop, state: DecodeState) -> None:
    """Eager lean steps: any device, greedy or sampled, with optional per-token reporting."""
    text_model, step = loop.model.model.language_model, 0
    while True:
        if loop.wait_turn is not None:
            loop.wait_turn()
        step += 1
        closing = state.closing()
        step_hidden = lean_decode_step(
            text_model, state.tokens, state.positions, state.caches, state.bias.step()
        )
        state.positions = state.positions + 1
        next_tokens = pick_next_tokens(loop.model.lm_head(step_hidden), state.sampling, state.generator)
        state.advance(closing, step_hidden, next_tokens)
        if loop.on_step is not None:
            state.report(loop.on_step)
        if (step % CHECK_EVERY == 0 or loop.on_step is not None) and _check(loop, state) is None:
            break
    state.store_finished()


def _graph_loop(loop: _Loop, state: DecodeState) -> None:
    """Greedy steps replayed from a CUDA graph, captured again when the rows change or the cache
    grows.

    `wait_turn` runs on the host before each replay and reads nothing from the device, so it adds
    no synchronisation (on CUDA the device may still hold up to CHECK_EVERY queued steps when it
    blocks).
    """
    step = _graph_step(loop, state)
    while True:
        for _ in range(CHECK_EVERY):
            if loop.wait_turn is not None:
                loop.wait_turn()
            closing = state.closing()
            step_hidden, next_tokens = step.run(state.tokens)
            state.advance(closing, step_hidden, next_tokens)
        _settle(state, step, CHECK_EVERY)
        changed = _check(loop, state)
        if changed is None:
            break
        if changed or state.bias.length + CHECK_EVERY + 1 > step.capacity:
            step = _graph_step(loop, state)
    state.store_finished()


def _graph_step(loop: _Loop, state: DecodeState) -> GraphStep:
    """A step over the state's current rows, the cache first grown if CHECK_EVERY steps would not
    fit (a graph writes into fixed buffers)."""
    capacity, written = state.caches[0].capacity, state.bias.length
    if written + CHECK_EVERY + 1 > capacity:
        grow_caches(state.caches, state.bias, written + max(capacity // 2, ALIGN))
    elif state.bias.capacity != capacity:  # the fixed-shape step attends over every slot
        state.bias.resize(capacity)
    capture = state.tokens.device.type == "cuda"
    bias = state.bias.bias
    return GraphStep(loop.model, state.caches, state.tokens, state.positions, bias, written, capture)


def _settle(state: DecodeState, step: GraphStep, steps: int) -> None:
    """Bring the state up to date after `steps` graph steps, which wrote into its cache buffers and
    bias in place but advanced only the graph's own positions."""
    state.positions = step.positions.clone()
    state.bias.length += steps
    for layer in state.caches:
        layer.mark_written(state.bias.length)
