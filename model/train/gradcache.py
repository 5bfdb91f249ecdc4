"""One training step's backward, in one forward or in chunks with cached embeddings (GradCache).

In-batch negatives want a big batch (the paper: 256 pairs per forward); one GPU cannot hold the
activations of 512 sequences. GradCache (Gao et al., 2021) splits the work:
1. embed every chunk without gradient;
2. compute the contrastive losses on those cached embeddings and backpropagate to them only;
3. re-run each chunk with gradient and backpropagate `sum(embedding · its cached gradient)` plus
   the chunk's share of the LM loss.
The parameter gradients equal those of the whole batch in one forward (the model has no
dropout, so the two forwards agree). The LM terms are token sums divided by the token count of
the whole step over all processes, known before any forward, so chunks and processes add up to
the whole batch's token mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.engine import normalise, run_prefill
from model.train.batch import SideBatch
from model.train.distributed import gather_with_grad, sum_over_processes, world
from model.train.losses import LossTerms, info_nce, lm_token_loss_sum

Chunk = tuple[SideBatch, SideBatch]  # (query side, target side) of the same pairs


@dataclass
class SideOutput:
    disc: torch.Tensor  # (rows, H) L2-normalised, at <disc_emb>
    gen: torch.Tensor  # (rows, H) L2-normalised, at <gen_emb>
    lm_sum: torch.Tensor  # summed LM loss over the side's assistant messages


def encode_side(model: torch.nn.Module, side: SideBatch) -> SideOutput:
    """Both embeddings and the LM loss of one side, from one forward through the backbone."""
    hidden = run_prefill(model, side.inputs, use_cache=False).last_hidden_state  # (rows, length, H)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return SideOutput(
        disc=normalise(hidden[rows, side.disc_positions]),
        gen=normalise(hidden[rows, side.gen_positions]),
        lm_sum=lm_token_loss_sum(hidden, side.labels, model.lm_head),  # type: ignore[arg-type]
    )


def contrastive_terms(
    query_gen: torch.Tensor,
    target_gen: torch.Tensor,
    query_disc: torch.Tensor,
    target_disc: torch.Tensor,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(gen InfoNCE, disc InfoNCE) of local rows against every process's rows."""
    pooled = [gather_with_grad(x) for x in (query_gen, target_gen, query_disc, target_disc)]
    offset = pooled[0][1]
    gen = info_nce(query_gen, target_gen, pooled[0][0], pooled[1][0], offset, temperature)
    disc = info_nce(query_disc, target_disc, pooled[2][0], pooled[3][0], offset, temperature)
    return gen, disc


def lm_normalisers(chunks: list[Chunk]) -> tuple[float, float]:
    """Per-process divisors that turn token sums into the step's global token mean."""
    _, size = world()
    query_tokens = sum_over_processes(sum(q.label_tokens for q, _ in chunks))
    target_tokens = sum_over_processes(sum(t.label_tokens for _, t in chunks))
    return max(query_tokens, 1.0) / size, max(target_tokens, 1.0) / size


def backward_step(
    model: torch.nn.Module,
    chunks: list[Chunk],
    temperature: float,
    bf16: bool = False,
) -> LossTerms:
    """Backpropagate the four-term loss of all chunks; returns the detached terms.

    `bf16` runs the forwards under bfloat16 autocast (weights and optimiser stay float32).
    """
    norm_q, norm_t = lm_normalisers(chunks)
    device = next(model.parameters()).device.type

    def autocast() -> torch.autocast:
        return torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16)

    if len(chunks) == 1:
        return _whole_batch(model, chunks[0], temperature, norm_q, norm_t, autocast)
    return _cached(model, chunks, temperature, norm_q, norm_t, autocast)


def _whole_batch(model, chunk: Chunk, temperature, norm_q, norm_t, autocast) -> LossTerms:
    with autocast():
        query, target = encode_side(model, chunk[0]), encode_side(model, chunk[1])
    gen, disc = contrastive_terms(query.gen, target.gen, query.disc, target.disc, temperature)
    terms = LossTerms(gen, disc, query.lm_sum / norm_q, target.lm_sum / norm_t)
    terms.total.backward()
    return LossTerms(*(t.detach() for t in (gen, disc, terms.lm_query, terms.lm_target)))


def _cached(model, chunks: list[Chunk], temperature, norm_q, norm_t, autocast) -> LossTerms:
    with torch.no_grad(), autocast():
        outputs = [(encode_side(model, q), encode_side(model, t)) for q, t in chunks]
    cached = [
        torch.cat([getattr(out[side], name) for out in outputs]).detach().requires_grad_()
        for side in (0, 1)
        for name in ("gen", "disc")
    ]  # query gen, query disc, target gen, target disc
    gen, disc = contrastive_terms(cached[0], cached[2], cached[1], cached[3], temperature)
    (gen + disc).backward()
    grads = [leaf.grad for leaf in cached]
    lm_query = lm_target = torch.zeros(())
    start = 0
    for query_side, target_side in chunks:
        rows = slice(start, start + query_side.labels.shape[0])
        start = rows.stop
        with autocast():
            query, target = encode_side(model, query_side), encode_side(model, target_side)
        surrogate = query.lm_sum / norm_q + target.lm_sum / norm_t
        for vectors, grad in zip((query.gen, query.disc, target.gen, target.disc), grads, strict=True):
            assert grad is not None
            surrogate = surrogate + (vectors * grad[rows]).sum()
        surrogate.backward()
        lm_query = lm_query + query.lm_sum.detach().cpu() / norm_q
        lm_target = lm_target + target.lm_sum.detach().cpu() / norm_t
    return LossTerms(gen.detach(), disc.detach(), lm_query, lm_target)
