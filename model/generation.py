"""Both UME-R1 embeddings from one call: disc from the prefill, gen from a stopping decode.

Why a decode loop of our own instead of `generate(output_hidden_states=True)`:
- `generate` materialises the hidden states of every layer at every step; we keep only the last
  layer's state at the single step whose input is `<gen_emb>`.
- rows stop as soon as they have consumed `<gen_emb>` (it is followed only by `<|im_end|>`),
  and finished rows are dropped from the KV cache, so a long generation does not hold the whole
  batch hostage;
- the disc embedding comes from the same prefill that starts generation.

Extraction rules (UME-R1 §1): disc = last-layer state AT the last `<disc_emb>` of the prompt;
gen = last-layer state of the step whose input is the last `<gen_emb>` generated. A row that ends
without one (`<|im_end|>` or the token cap) takes the state of its last generated step, the one
that produced its final token, as the authors' evaluation reads `generate`'s last hidden state.
Both are L2-normalised float32.

Inference stops a row once it has consumed `<gen_emb>` (only `<|im_end|>` follows). RL rollouts
(`Sampling.stop_at_gen_emb=False`) run on to the first `<|im_end|>` as the authors' rollouts do,
so that token is part of the completion the policy and KL terms score.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model.graph_decode import GraphStep, full_capacity_bias, grow_caches
from model.kv_cache import ALIGN, growing_cache
from model.lean_step import AttentionBias, lean_decode_step

# Drop finished rows from the cache once this share of the batch is dead; compacting copies the
# whole cache, so doing it for every single finished row would cost more than it saves.
COMPACT_DEAD_FRACTION = 0.125

StepCallback = Callable[[list[int], list[int]], None]  # (original row indices, new token ids)


@dataclass(frozen=True)
class TokenIds:
    """Token ids the loop needs, looked up through the tokenizer of the checkpoint."""

    gen_emb: int
    disc_emb: int
    eos: int
    pad: int


@dataclass(frozen=True)
class Sampling:
    """Decoding settings. Greedy by default; sampling is for pass@k and RL rollouts."""

    max_new_tokens: int = 8192
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # sample among the k likeliest tokens; 0 = no limit
    seed: int | None = None
    # Stop a row once it has consumed `<gen_emb>`; False runs on to `<|im_end|>` (RL rollouts).
    stop_at_gen_emb: bool = True
    # Token ids never to emit. RL rollouts ban the vision placeholders: a sampled
    # `<|image_pad|>` would be taken for an image slot when the rollout is scored.
    banned_tokens: tuple[int, ...] = ()


@dataclass
class BatchEmbeddings:
    disc: torch.Tensor | None  # (batch, hidden) float32, L2-normalised
    gen: torch.Tensor | None  # (batch, hidden) float32, L2-normalised
    completions: list[list[int]]  # generated ids per row, terminal token included


def normalise(vectors: torch.Tensor) -> torch.Tensor:
    return F.normalize(vectors.float(), dim=-1)


def last_token_positions(input_ids: torch.Tensor, token_id: int) -> torch.Tensor:
    """(batch,) index of the last occurrence of `token_id` per row; -1 where absent."""
    hits = input_ids == token_id
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    return torch.where(hits, positions, -1).max(dim=1).values


def rope_positions(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
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
    model,
    batch: dict[str, torch.Tensor],
    use_cache: bool,
    reserve: int = 0,
    position_ids: torch.Tensor | None = None,
):
    """One forward over the prompts through the base model (no LM head over every position).

    With `use_cache`, the KV cache keeps `reserve` tokens of headroom for the decode.
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


def truncate_after(batch: dict[str, torch.Tensor], column: int) -> dict[str, torch.Tensor]:
    """Keep token columns [0, column]; vision tensors are untouched (they come earlier)."""
    sequence_keys = ("input_ids", "attention_mask", "mm_token_type_ids")
    return {k: (v[:, : column + 1] if k in sequence_keys else v) for k, v in batch.items()}


@torch.inference_mode()
def disc_embeddings(model, batch: dict[str, torch.Tensor], ids: TokenIds) -> torch.Tensor:
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
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return normalise(hidden[rows, positions])


def pick_next_tokens(
    logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None
) -> torch.Tensor:
    """(rows, vocab) logits -> (rows,) next token ids."""
    if sampling.banned_tokens:
        logits = logits.clone()
        logits[:, list(sampling.banned_tokens)] = float("-inf")
    if not sampling.do_sample:
        return logits.argmax(dim=-1)
    logits = logits.float() / max(sampling.temperature, 1e-5)
    if 0 < sampling.top_k < logits.shape[-1]:
        # As transformers' top-k warper: everything below the k-th largest logit is dropped (ties kept).
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if sampling.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        keep = sorted_probs.cumsum(dim=-1) - sorted_probs < sampling.top_p
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class _DecodeState:
    """Rows still in the cache, kept on the device so a step needs no host round trip.

    `rows` maps each cache row to its input index; `tokens` is each row's next input; rows that
    have consumed their last token are dead until the next compaction removes them. `captured`
    holds the state read at the last `<gen_emb>` consumed (`has_gen`), and for a dead row without
    one, the state of its last generated step; `previous` is each row's latest step state.
    """

    def __init__(
        self, first_tokens, attention_mask, next_positions, cache, reserve: int, hidden: torch.Tensor
    ) -> None:
        device = first_tokens.device
        self.rows = torch.arange(first_tokens.shape[0], device=device)
        self.tokens = first_tokens
        self.positions = next_positions  # (rows,) RoPE position of the next input
        self.lengths = torch.ones_like(first_tokens)  # tokens generated so far (the first is pending)
        self.alive = torch.ones_like(first_tokens, dtype=torch.bool)
        self.captured = hidden.new_zeros(first_tokens.shape[0], hidden.shape[-1])  # (rows, hidden)
        self.previous = hidden[:, -1]  # (rows, hidden): the prefill state that chose `first_tokens`
        self.has_gen = torch.zeros_like(first_tokens, dtype=torch.bool)
        self.caches = list(cache.layers)
        self.bias = AttentionBias(attention_mask, reserve, hidden.dtype)

    def compact(self, gen: torch.Tensor) -> None:
        """Store the captured states of dead rows, then drop those rows everywhere."""
        dead = ~self.alive
        gen[self.rows[dead]] = self.captured[dead]
        keep = self.alive.nonzero().squeeze(-1)
        for layer in self.caches:
            layer.batch_select_indices(keep)
        self.bias.select(keep)
        for name in ("rows", "tokens", "positions", "lengths", "alive", "captured", "previous", "has_gen"):
            setattr(self, name, getattr(self, name)[keep])


def use_cuda_graphs(device: torch.device, sampling: Sampling, on_step: StepCallback | None) -> bool:
    """Graphs pay off on CUDA for greedy decoding; UME_CUDA_GRAPHS=0 turns them off."""
    enabled = os.environ.get("UME_CUDA_GRAPHS", "1") != "0"
    plain_greedy = not sampling.do_sample and not sampling.banned_tokens
    return enabled and device.type == "cuda" and plain_greedy and on_step is None


# KV-cache headroom allocated at prefill; longer generations grow the cache geometrically.
DECODE_RESERVE = 1024

# How often (in steps) the loop looks at the host side: finished? compact? A dead row costs one
# wasted row-step until then; looking every step would stall the device on every token.
CHECK_EVERY = 8


@torch.inference_mode()
def generate_embeddings(
    model,
    batch: dict[str, torch.Tensor],
    ids: TokenIds,
    sampling: Sampling,
    want_disc: bool = True,
    on_step: StepCallback | None = None,
    fixed_shape_steps: bool | None = None,
) -> BatchEmbeddings:
    """Prefill (disc), then decode until each row has consumed `<gen_emb>` (gen).

    `fixed_shape_steps` picks the CUDA-graph-ready loop (default: on CUDA for greedy decoding);
    off CUDA it runs the same fixed-shape steps eagerly, which is how the tests check it.
    """
    size, device = batch["input_ids"].shape[0], batch["input_ids"].device
    generator = None
    if sampling.seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(sampling.seed)
    reserve = min(sampling.max_new_tokens, DECODE_RESERVE) + 1
    # (3, batch, length); computed once: a per-row Python loop in transformers, costly at batch 512.
    positions = rope_positions(model, batch)
    prefill = run_prefill(model, batch, use_cache=True, reserve=reserve, position_ids=positions)
    hidden = prefill.last_hidden_state  # (batch, length, hidden)
    disc = None
    if want_disc:
        at = last_token_positions(batch["input_ids"], ids.disc_emb)
        disc = normalise(hidden[torch.arange(size, device=device), at])
    first = pick_next_tokens(model.lm_head(hidden[:, -1]), sampling, generator)
    next_positions = positions[0, :, -1] + 1
    state = _DecodeState(first, batch["attention_mask"], next_positions, prefill.cache, reserve, hidden)
    generated = torch.full((size, sampling.max_new_tokens + 1), ids.pad, dtype=torch.long, device=device)
    generated[:, 0] = first
    lengths = torch.ones(size, dtype=torch.long, device=device)
    gen = torch.zeros(size, hidden.shape[-1], dtype=hidden.dtype, device=device)
    if on_step is not None:
        on_step(list(range(size)), first.tolist())
    if fixed_shape_steps is None:
        fixed_shape_steps = use_cuda_graphs(device, sampling, on_step)
    if fixed_shape_steps:
        _graph_decode_loop(model, state, generated, lengths, gen, ids, sampling, batch["attention_mask"])
    else:
        _decode_loop(model, state, generated, lengths, gen, ids, sampling, generator, on_step)
    completions = [row[:n].tolist() for row, n in zip(generated.cpu(), lengths.tolist(), strict=True)]
    return BatchEmbeddings(disc=disc, gen=normalise(gen), completions=completions)


def _decode_loop(model, state, generated, lengths, gen, ids, sampling, generator, on_step) -> None:
    """Eager lean steps: any device, greedy or sampled, with optional per-token reporting."""
    text_model, step = model.model.language_model, 0
    while True:
        step += 1
        closing = _closing(state, ids, sampling)
        step_hidden = lean_decode_step(
            text_model, state.tokens, state.positions, state.caches, state.bias.step()
        )
        state.positions = state.positions + 1
        next_tokens = pick_next_tokens(model.lm_head(step_hidden), sampling, generator)
        _advance(state, closing, step_hidden, next_tokens, generated, lengths, ids, sampling.max_new_tokens)
        if on_step is not None:
            _report(state, on_step)
        if step % CHECK_EVERY == 0 or on_step is not None:
            alive = int(state.alive.sum())
            if alive == 0:
                break
            if alive <= (1 - COMPACT_DEAD_FRACTION) * state.alive.shape[0]:
                state.compact(gen)
    dead = ~state.alive
    gen[state.rows[dead]] = state.captured[dead]


def _graph_decode_loop(model, state, generated, lengths, gen, ids, sampling, attention_mask) -> None:
    """Greedy steps replayed from a CUDA graph, re-captured when rows are dropped or the cache grows."""
    cap, write_at = sampling.max_new_tokens, attention_mask.shape[1]
    bias = full_capacity_bias(attention_mask, state.caches[0]._key_buffer.shape[2], state.captured.dtype)
    capacity = bias.shape[-1]
    if write_at + CHECK_EVERY + 1 > capacity:
        bias = grow_caches(state.caches, bias, write_at + max(capacity // 2, ALIGN))
    capture = state.tokens.device.type == "cuda"
    step = GraphStep(model, state.caches, state.tokens, state.positions, bias, write_at, capture)
    while True:
        for _ in range(CHECK_EVERY):
            closing = _closing(state, ids, sampling)
            step_hidden, next_tokens = step.run(state.tokens)
            _advance(state, closing, step_hidden, next_tokens, generated, lengths, ids, cap)
            write_at += 1
        alive = int(state.alive.sum())
        if alive == 0:
            break
        shrink = alive <= (1 - COMPACT_DEAD_FRACTION) * state.alive.shape[0]
        grow = write_at + CHECK_EVERY + 1 > step.capacity
        if not (shrink or grow):
            continue
        positions, bias = step.positions, step.bias
        if shrink:
            keep = state.alive.nonzero().squeeze(-1)
            state.compact(gen)
            positions, bias = positions[keep], bias[keep]
        if grow:
            bias = grow_caches(state.caches, bias, step.capacity + max(step.capacity // 2, ALIGN))
        step = GraphStep(model, state.caches, state.tokens, positions, bias, write_at, capture)
    dead = ~state.alive
    gen[state.rows[dead]] = state.captured[dead]


def _closing(state: _DecodeState, ids: TokenIds, sampling: Sampling) -> torch.Tensor:
    """Rows whose pending token is their last: `<|im_end|>`, the cap, or `<gen_emb>` when it stops."""
    terminal = state.tokens == ids.eos
    if sampling.stop_at_gen_emb:
        terminal = terminal | (state.tokens == ids.gen_emb)
    return state.alive & (terminal | (state.lengths >= sampling.max_new_tokens))


def _advance(state, closing, step_hidden, next_tokens, generated, lengths, ids, cap) -> None:
    """Read gen where `<gen_emb>` was the input, settle rows that closed, append next tokens."""
    consumed = state.alive & (state.tokens == ids.gen_emb)
    state.captured = torch.where(consumed.unsqueeze(-1), step_hidden, state.captured)
    state.has_gen = state.has_gen | consumed
    # No `<gen_emb>`: the last generated step is the one that produced this closing token.
    fallback = (closing & ~state.has_gen).unsqueeze(-1)
    state.captured = torch.where(fallback, state.previous, state.captured)
    state.previous = step_hidden
    state.alive = state.alive & ~closing
    state.tokens = torch.where(state.alive, next_tokens, ids.pad)
    # Dead rows write into the spare last column, so the write needs no host-side filter.
    generated[state.rows, torch.where(state.alive, state.lengths, cap)] = state.tokens
    state.lengths = state.lengths + state.alive.long()
    lengths[state.rows] = state.lengths.clamp(max=cap)


def _report(state: _DecodeState, on_step: StepCallback) -> None:
    alive = state.alive.nonzero().squeeze(-1)
    on_step(state.rows[alive].tolist(), state.tokens[alive].tolist())


@torch.inference_mode()
def teacher_forced_gen_embeddings(
    model, batch: dict[str, torch.Tensor], completions: list[list[int]], ids: TokenIds
) -> torch.Tensor:
    """Gen embeddings from one forward over prompt + completion (no generation).

    The reference the decode loop must agree with, and what training uses: the state at the
    last `<gen_emb>` of the completion, else where its final token was predicted.
    """
    full = append_completions(batch, completions, ids.pad)
    hidden = run_prefill(model, full, use_cache=False).last_hidden_state
    return normalise(hidden[torch.arange(hidden.shape[0]), gen_positions(full, completions, ids)])


def append_completions(
    batch: dict[str, torch.Tensor], completions: list[list[int]], pad: int
) -> dict[str, torch.Tensor]:
    """Prompt + completion per row, re-padded on the left so every sequence ends at the edge."""
    prompt_ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    rows = [
        torch.cat([prompt_ids[r][mask[r]], torch.tensor(c, dtype=torch.long)])
        for r, c in enumerate(completions)
    ]
    types = [
        torch.cat([batch["mm_token_type_ids"][r][mask[r]], torch.zeros(len(c), dtype=torch.long)])
        for r, c in enumerate(completions)
    ]
    width = max(len(r) for r in rows)
    out = dict(batch)
    out["input_ids"] = torch.full((len(rows), width), pad, dtype=torch.long)
    out["attention_mask"] = torch.zeros((len(rows), width), dtype=torch.long)
    out["mm_token_type_ids"] = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (row, kinds) in enumerate(zip(rows, types, strict=True)):
        out["input_ids"][r, width - len(row) :] = row
        out["attention_mask"][r, width - len(row) :] = 1
        out["mm_token_type_ids"][r, width - len(row) :] = kinds
    return out


def gen_positions(full: dict[str, torch.Tensor], completions: list[list[int]], ids: TokenIds) -> torch.Tensor:
    """Where to read gen in a prompt+completion batch (completions right-aligned).

    The completion's last `<gen_emb>`; without one, the position that predicted its final token
    (the one before it, the prompt's last for a one-token completion), as the decode loop reads.
    """
    width = full["input_ids"].shape[1]
    positions = []
    for completion in completions:
        marks = [i for i, token in enumerate(completion) if token == ids.gen_emb]
        offset = marks[-1] if marks else len(completion) - 2
        positions.append(width - len(completion) + offset)
    return torch.tensor(positions)
