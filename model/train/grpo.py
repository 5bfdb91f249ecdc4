"""The GRPO math of UME-R1's second stage (§5), as small functions on tensors.

Each pair contributes G rollouts for its query and G for its target. Rollouts are laid out
pair-major: rows [p·G, (p+1)·G) belong to pair p, on both sides and in every pool.

- `format_rewards`: 1 where a completion matches the trained format (the §5 regex), else 0.
- `embedding_rewards`: rank × gap of each rollout against every rollout of the other side.
  rank = share of the rollout's G most similar other-side rollouts that belong to its own pair;
  gap = mean similarity to its own pair's rollouts − mean similarity to all other pairs'.
- `side_rewards`: the total reward format + rank × gap of one side's rollouts.
- `group_advantages`: (r − group mean) / (group std + 1e-4) within each pair's G rollouts;
  `group_spread` says how much the groups disagree (a group whose rewards are all equal has
  zero advantages and teaches nothing).
- `clipped_token_objective`, `k3_kl`, `sequence_losses`: PPO-clip with asymmetric clipping
  (ε_low, ε_high), the k3 KL estimator to the frozen start model, and each sequence's token sum
  divided by a constant (the largest completion length), not by the sequence's own length.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from model.engine import format_ok

if TYPE_CHECKING:
    from model.train.rollout import Rollouts

ADVANTAGE_EPS = 1e-4
SPREAD_EPS = 1e-6  # rewards closer than this within a group count as equal


def format_rewards(completions: list[str]) -> torch.Tensor:
    """(rollouts,) 1.0 where the completion is in the trained format, else 0.0."""
    return torch.tensor([1.0 if format_ok(text) else 0.0 for text in completions])


def own_pair_mask(rows: int, columns: int, group: int, row_offset: int = 0) -> torch.Tensor:
    """(rows, columns) True where row i (global index row_offset + i) and column j share a pair."""
    row_pairs = (torch.arange(rows) + row_offset) // group
    column_pairs = torch.arange(columns) // group
    return row_pairs[:, None] == column_pairs[None, :]


def rank_and_gap(
    similarities: torch.Tensor, group: int, row_offset: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows,) rank and (rows,) gap of local rollouts scored against the other side's pool.

    similarities: (rows, pool) cosine similarities of this process's rollouts (global row index
    `row_offset + i`) to every rollout of the other side in the micro-batch, pair-major.
    With a single pair there are no other pairs: the gap is then the own-pair mean alone.
    """
    rows, pool = similarities.shape
    own = own_pair_mask(rows, pool, group, row_offset).to(similarities.device)
    top = similarities.topk(min(group, pool), dim=1).indices
    rank = own.gather(1, top).float().sum(dim=1) / group
    own_mean = (similarities * own).sum(dim=1) / own.sum(dim=1)
    other_mean = (similarities * ~own).sum(dim=1) / (~own).sum(dim=1).clamp(min=1)
    return rank, own_mean - other_mean


def embedding_rewards(similarities: torch.Tensor, group: int, row_offset: int = 0) -> torch.Tensor:
    """(rows,) the embedding reward rank × gap (see `rank_and_gap`)."""
    rank, gap = rank_and_gap(similarities, group, row_offset)
    return rank * gap


def group_advantages(rewards: torch.Tensor, group: int) -> torch.Tensor:
    """(rollouts,) rewards normalised within each pair's group of G rollouts (std unbiased, as torch)."""
    grouped = rewards.view(-1, group)
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True) if group > 1 else torch.zeros_like(mean)
    return ((grouped - mean) / (std + ADVANTAGE_EPS)).view(-1)


def group_spread(rewards: torch.Tensor, group: int) -> tuple[float, float]:
    """The mean within-group std of the rewards, and the share of groups whose G rewards are all
    equal: such a group's advantages are zero, so it teaches nothing."""
    grouped = rewards.view(-1, group)
    std = grouped.std(dim=1) if group > 1 else torch.zeros(grouped.shape[0])
    flat = (grouped.max(dim=1).values - grouped.min(dim=1).values) <= SPREAD_EPS
    return float(std.mean()), float(flat.float().mean())


def clipped_token_objective(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token loss −min(ρA, clip(ρ, 1−ε_low, 1+ε_high)A), per-token clipped flag).

    logprobs, old_logprobs: (rows, tokens); advantages: (rows,).
    """
    ratio = torch.exp(logprobs - old_logprobs)
    advantage = advantages[:, None]
    unclipped = ratio * advantage
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high) * advantage
    return -torch.minimum(unclipped, clipped), (clipped < unclipped)


def k3_kl(logprobs: torch.Tensor, reference_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy ‖ reference): exp(ref − logp) − (ref − logp) − 1."""
    delta = reference_logprobs - logprobs
    return torch.exp(delta) - delta - 1


def sequence_losses(token_losses: torch.Tensor, mask: torch.Tensor, normaliser: int) -> torch.Tensor:
    """(rows,) each sequence's masked token sum divided by the constant `normaliser`."""
    return (token_losses * mask).sum(dim=1) / normaliser


def side_rewards(own: Rollouts, other_pool: torch.Tensor, group: int, offset: int) -> dict[str, torch.Tensor]:
    """Format, rank, gap and total reward of this process's rollouts of one side, ranked against
    `other_pool`: every rollout of the other side in the reward pool."""
    rank, gap = rank_and_gap(own.gen @ other_pool.T, group, offset)
    formats = format_rewards(own.texts).to(rank.device)
    return {"format": formats, "rank": rank, "gap": gap, "reward": formats + rank * gap}


def side_summary(name: str, rewards: dict[str, torch.Tensor], group: int) -> dict[str, float]:
    """The side's mean rewards (with the embedding part rank × gap), and how much its groups
    disagree (GRPO learns from that alone)."""
    summary = {f"{name}_{key}": float(value.mean()) for key, value in rewards.items()}
    summary[f"{name}_embedding_reward"] = float((rewards["rank"] * rewards["gap"]).mean())
    summary[f"{name}_group_std"], summary[f"{name}_zero_spread"] = group_spread(rewards["reward"], group)
    return summary
