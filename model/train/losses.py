"""The four SFT loss terms (UME-R1 §4) and their sum.

- `info_nce`: symmetric InfoNCE over in-batch negatives, ½[CE(q→t) + CE(t→q)], logits = cos/τ.
  Inputs are L2-normalised (rows, hidden) embeddings; the local rows are scored against the
  pool of all processes (`pool_queries`, `pool_targets`), where the positive of local row i is
  pool row `offset + i`. Alone, the pool is the batch and offset is 0.

      q = F.normalize(torch.randn(4, 8), dim=-1); t = F.normalize(q + 0.1, dim=-1)
      info_nce(q, t, q, t)  # small: each query is nearest its own target

- `lm_token_loss_sum`: summed next-token cross-entropy over labelled positions; dividing by the
  batch's label-token count gives the usual mean, and dividing by a count known ahead lets
  GradCache chunks and processes add up to exactly the whole batch's mean.
- `LossTerms`: gen InfoNCE + disc InfoNCE + query LM + target LM, all with weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

TEMPERATURE = 0.02  # logits = 50·cos, the paper's scale
IGNORE = -100


def info_nce(
    queries: torch.Tensor,
    targets: torch.Tensor,
    pool_queries: torch.Tensor,
    pool_targets: torch.Tensor,
    offset: int = 0,
    temperature: float = TEMPERATURE,
) -> torch.Tensor:
    """Symmetric InfoNCE of local rows against the pool, mean over local rows."""
    positives = torch.arange(queries.shape[0], device=queries.device) + offset
    query_logits = queries @ pool_targets.T / temperature  # (rows, pool)
    target_logits = targets @ pool_queries.T / temperature  # (rows, pool)
    return 0.5 * (F.cross_entropy(query_logits, positives) + F.cross_entropy(target_logits, positives))


def lm_token_loss_sum(hidden: torch.Tensor, labels: torch.Tensor, lm_head: torch.nn.Module) -> torch.Tensor:
    """Summed CE of predicting each labelled token from the state before it.

    hidden: (rows, length, H) last-layer states; labels: (rows, length), IGNORE where unlabelled.
    Only labelled positions go through the LM head, so the vocabulary projection is not paid
    for the (long) prompts.
    """
    targets = labels[:, 1:]
    keep = targets != IGNORE
    logits = lm_head(hidden[:, :-1][keep])  # (labelled tokens, vocab)
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum")


@dataclass
class LossTerms:
    """The four terms of one step (floats once detached for logging)."""

    gen_nce: torch.Tensor
    disc_nce: torch.Tensor
    lm_query: torch.Tensor
    lm_target: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.gen_nce + self.disc_nce + self.lm_query + self.lm_target

    def as_floats(self) -> dict[str, float]:
        return {
            "loss": float(self.total),
            "gen_nce": float(self.gen_nce),
            "disc_nce": float(self.disc_nce),
            "lm_query": float(self.lm_query),
            "lm_target": float(self.lm_target),
        }
