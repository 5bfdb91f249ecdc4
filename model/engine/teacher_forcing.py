"""Prompt + completion in one forward: the reference the decode loop must agree with, and the
shapes training reads its embeddings and LM targets from."""

from __future__ import annotations

from typing import Any

import torch

from model.engine.prefill import Batch, normalise, run_prefill
from model.engine.tokens import TokenIds


@torch.inference_mode()
def teacher_forced_gen_embeddings(
    model: Any, batch: Batch, completions: list[list[int]], ids: TokenIds
) -> torch.Tensor:
    """Gen embeddings from one forward over prompt + completion (no generation).

    The reference the decode loop must agree with, and what training uses: the state at the
    last `<gen_emb>` of the completion, else where its final token was predicted.
    """
    full = append_completions(batch, completions, ids.pad)
    hidden = run_prefill(model, full, use_cache=False).last_hidden_state
    return normalise(hidden[torch.arange(hidden.shape[0]), gen_positions(full, completions, ids)])


def append_completions(batch: Batch, completions: list[list[int]], pad: int) -> Batch:
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


def gen_positions(full: Batch, completions: list[list[int]], ids: TokenIds) -> torch.Tensor:
    """(batch,) where to read gen in a prompt+completion batch (completions right-aligned).

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
