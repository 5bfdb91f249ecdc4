"""RL rollouts: sample G completions per prompt, then score them with a teacher-forced forward.

Sampling reuses the encoder's decode loop (`model.engine.generate_embeddings`), which also
returns each rollout's gen embedding: the state at the step that consumed `<gen_emb>`, the same
numbers a teacher-forced forward over prompt + completion gives at that token (tested in
tests/model/test_encoder.py), so no extra forward is spent on the reward.

Scoring builds prompt + completion once (`completion_batch`) and runs it through the backbone
of each model that scores it (`completion_logprobs`: policy, then reference) with every vision
tensor of the batch (images and videos alike: a video rollout is always scored with its video),
reading the log-probability of each completion token. Completions are right-aligned by
`append_completions`, so the last `width` columns of every row hold its completion tokens
(left-masked for shorter ones).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from model.engine import Sampling, TokenIds, append_completions, generate_embeddings, run_prefill
from model.inputs import PreparedInput, collate


@dataclass
class Rollouts:
    """G sampled completions per prompt, pair-major (rows [p·G, (p+1)·G) share prompt p)."""

    prompts: list[PreparedInput]  # one per row (each prompt repeated G times)
    completions: list[list[int]]  # generated ids per row, terminal token included
    gen: torch.Tensor  # (rows, H) L2-normalised gen embeddings
    texts: list[str]  # decoded completions, special tokens kept (the format reward reads them)


def sample_rollouts(
    model: Any,
    tokenizer: Any,
    ids: TokenIds,
    prompts: list[PreparedInput],
    group: int,
    sampling: Sampling,
    rows_per_call: int,
) -> Rollouts:
    """G samples for each prompt, generated `rows_per_call` rows at a time to bound memory."""
    repeated = [prompt for prompt in prompts for _ in range(group)]
    device = next(model.parameters()).device
    completions: list[list[int]] = []
    gens: list[torch.Tensor] = []
    for start in range(0, len(repeated), rows_per_call):
        chunk = repeated[start : start + rows_per_call]
        batch = {k: v.to(device) for k, v in collate(chunk, ids.pad).items()}
        seed = None if sampling.seed is None else sampling.seed + start
        out = generate_embeddings(model, batch, ids, replace(sampling, seed=seed), want_disc=False)
        assert out.gen is not None
        completions.extend(out.completions)
        gens.append(out.gen)  # stays on the device: rewards gather it across processes
    texts = tokenizer.batch_decode(completions, skip_special_tokens=False)
    return Rollouts(repeated, completions, torch.cat(gens), texts)


@dataclass
class CompletionBatch:
    """Prompt + completion per rollout, built once and scored under several models."""

    inputs: dict[str, torch.Tensor]  # left-padded, completions right-aligned, on the device
    mask: torch.Tensor  # (rows, width) 1.0 on completion tokens, 0.0 on left padding
    width: int  # the longest completion


def completion_batch(
    prompts: list[PreparedInput], completions: list[list[int]], ids: TokenIds, device: torch.device
) -> CompletionBatch:
    full = append_completions(collate(prompts, ids.pad), completions, ids.pad)
    width = max(len(c) for c in completions)
    lengths = torch.tensor([len(c) for c in completions])
    mask = (torch.arange(width)[None, :] >= width - lengths[:, None]).float()
    return CompletionBatch({k: v.to(device) for k, v in full.items()}, mask.to(device), width)


def completion_logprobs(model: Any, batch: CompletionBatch) -> torch.Tensor:
    """(rows, width) log-probability of each completion token (differentiable unless no_grad).

    Only the positions that predict completion tokens go through the LM head: the vocabulary
    projection of the prompt is never paid for.
    """
    width = batch.width
    hidden = run_prefill(model, batch.inputs, use_cache=False).last_hidden_state
    logits = model.lm_head(hidden[:, -width - 1 : -1]).float()  # (rows, width, vocab)
    targets = batch.inputs["input_ids"][:, -width:]
    chosen = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return chosen - logits.logsumexp(dim=-1)
