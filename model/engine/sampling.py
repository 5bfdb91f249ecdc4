"""How the next token is chosen: greedy by default, sampled for pass@k and RL rollouts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

import torch

from model.engine.tokens import TokenIds

# Rewrites the tokens just chosen: (tokens (rows,), each row's input index (rows,), tokens each row
# generated before these (rows,)) -> tokens. Tests and benchmarks force stop lengths with it.
TokenOverride = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class Decoding(TypedDict, total=False):
    """The decoding settings a caller of the encoder may change, by keyword; the rest of
    `Sampling` is the encoder's own. Defaults are `Sampling`'s."""

    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_p: float
    top_k: int
    seed: int | None


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
    # More tokens that end a row, as `<|im_end|>` does: the authors' evaluation also stops at
    # `<|endoftext|>` (the checkpoint's generation config lists both).
    also_stop_at: tuple[int, ...] = ()
    # Token ids never to emit. RL rollouts ban the vision placeholders: a sampled
    # `<|image_pad|>` would be taken for an image slot when the rollout is scored.
    banned_tokens: tuple[int, ...] = ()
    # Applied after each choice, in every loop (the CUDA graph's choices included); None costs nothing.
    override: TokenOverride | None = None


def seeded_generator(sampling: Sampling, device: torch.device) -> torch.Generator | None:
    """The random source of a seeded run; None draws from torch's global one."""
    if sampling.seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(sampling.seed)
    return generator


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


def forced_stops(stop_lengths: torch.Tensor, ids: TokenIds) -> TokenOverride:
    """Input i writes `<gen_emb>` as its `stop_lengths[i]`-th token and nothing ends it before.

    Real checkpoints stop at different lengths; a random or tiny model does not, so tests and
    benchmarks impose them. An early `<gen_emb>` or `<|im_end|>` becomes `<disc_emb>`, a token
    that neither ends nor marks a row.
    """

    on_device: dict[torch.device, torch.Tensor] = {}  # copied once, not at every step

    def override(tokens: torch.Tensor, inputs: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
        if tokens.device not in on_device:
            on_device[tokens.device] = stop_lengths.to(tokens.device)
        due = before + 1 >= on_device[tokens.device][inputs]
        early = (tokens == ids.gen_emb) | (tokens == ids.eos)
        return torch.where(due, ids.gen_emb, torch.where(early, ids.disc_emb, tokens))

    return override
