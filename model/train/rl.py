"""Stage 2: GRPO with the embedding-ranking reward (UME-R1 §5), top to bottom.

Each optimiser step takes `pairs_per_step` pairs from one source dataset and splits them into
micro-batches (reward pools). Per micro-batch and per side (query, target):
1. sample G rollouts per prompt from the policy at temperature 1 (`model.train.rollout`);
2. gather every process's rollout gen embeddings; reward each rollout with format + rank × gap
   against all rollouts of the other side; normalise within each group of G (`model.train.grpo`);
3. score the rollouts teacher-forced under the policy (with gradient) and the frozen start
   model, and backpropagate PPO-clip + β·k3 KL, each sequence's token sum over the constant
   `max_new_tokens`, averaged over rollouts; the step's loss is the mean of the two sides.
On-policy with one iteration, so the old log-probabilities are the policy's own, detached.

Design decisions:
- A compact loop instead of trl's GRPOTrainer: the reward couples query and target rollouts of
  the whole micro-batch across processes, which a per-prompt reward function cannot see.
- Rollouts are scored `score_rows` at a time and each chunk is backpropagated at once, so the
  memory of a step is bounded by one chunk's activations, whatever G and the batch are.
- Every vision tensor goes into every forward: video rollouts are scored with their video.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model.engine import Sampling
from model.inputs import PreparedInput, prepare
from model.train.batch import load_pairs_media
from model.train.config import ConfigError, RLConfig
from model.train.data import Pair, Skipped
from model.train.distributed import (
    gather_with_grad,
    init_from_env,
    mean_over_processes,
    min_over_processes,
    world,
)
from model.train.grpo import (
    clipped_token_objective,
    group_advantages,
    k3_kl,
    sequence_losses,
    side_rewards,
    side_summary,
)
from model.train.loading import load_for_training
from model.train.lora import merged_adapters
from model.train.rl_data import load_rl_pairs
from model.train.rl_fixed import fixed_batches, fixed_rewards, record
from model.train.rollout import Rollouts, completion_batch, completion_logprobs, sample_rollouts
from model.train.trainer import Trainer, read_sources


@dataclass
class LossSettings:
    group: int
    normaliser: int  # the constant each sequence's token sum is divided by (max_new_tokens)
    eps_low: float = 0.2
    eps_high: float = 0.28
    beta: float = 0.04
    score_rows: int = 8


def side_loss_backward(
    model: Any,
    reference: Any | None,
    rollouts: Rollouts,
    advantages: torch.Tensor,
    settings: LossSettings,
    scale: float,
    ids: Any,
) -> defaultdict[str, float]:
    """Backpropagate `scale` × the side's mean sequence loss, chunk by chunk; returns sums."""
    stats: defaultdict[str, float] = defaultdict(float)
    rows = len(rollouts.completions)
    for start in range(0, rows, settings.score_rows):
        part = slice(start, start + settings.score_rows)
        device = next(model.parameters()).device
        batch = completion_batch(rollouts.prompts[part], rollouts.completions[part], ids, device)
        logprobs = completion_logprobs(model, batch)
        advantage = advantages[part].to(device)
        token_loss, clipped = clipped_token_objective(
            logprobs, logprobs.detach(), advantage, settings.eps_low, settings.eps_high
        )
        if reference is not None:  # there is one exactly when beta > 0
            with torch.no_grad():
                reference_logprobs = completion_logprobs(reference, batch)
            kl = k3_kl(logprobs, reference_logprobs)
            token_loss = token_loss + settings.beta * kl
            stats["kl"] += float((kl.detach() * batch.mask).sum())
        losses = sequence_losses(token_loss, batch.mask, settings.normaliser)
        (losses.sum() * scale).backward()
        stats["loss"] += float(losses.detach().sum()) * scale
        stats["clipped"] += float((clipped.float() * batch.mask).sum())
        stats["tokens"] += float(batch.mask.sum())
    return stats


def micro_step_backward(
    model: Any,
    reference: Any | None,
    queries: Rollouts,
    targets: Rollouts,
    settings: LossSettings,
    ids: Any,
    scale: float = 1.0,
) -> dict[str, float]:
    """Rewards (pooled over processes), advantages and the backward of one micro-batch.

    The loss backpropagated is `scale` × ½(query side mean + target side mean) over this
    process's rollouts; averaging gradients over processes gives the whole micro-batch's loss.
    """
    query_pool, offset = gather_with_grad(queries.gen.detach())
    target_pool, _ = gather_with_grad(targets.gen.detach())
    metrics: dict[str, float] = {}
    for name, own, pool in (("query", queries, target_pool), ("target", targets, query_pool)):
        rewards = side_rewards(own, pool, settings.group, offset)
        advantages = group_advantages(rewards["reward"], settings.group)
        side_scale = 0.5 * scale / len(own.completions)
        stats = side_loss_backward(model, reference, own, advantages, settings, side_scale, ids)
        metrics |= side_summary(name, rewards, settings.group)
        tokens = max(stats["tokens"], 1.0)
        metrics[f"{name}_loss"] = stats["loss"]
        metrics[f"{name}_kl"] = stats["kl"] / tokens
        metrics[f"{name}_clip_fraction"] = stats["clipped"] / tokens
        metrics[f"{name}_length"] = tokens / len(own.completions)
    return metrics


def mean_metrics(parts: list[dict[str, float]]) -> dict[str, float]:
    """Per-key mean over micro-batches, plus the headline numbers over both sides."""
    merged = {key: sum(p[key] for p in parts) / len(parts) for key in parts[0]}
    # Each micro-batch's loss is already scaled by its share of the step: they add up.
    merged["loss"] = sum(p["query_loss"] + p["target_loss"] for p in parts)
    del merged["query_loss"], merged["target_loss"]
    for key in ("reward", "format", "rank", "gap", "kl", "clip_fraction", "group_std", "zero_spread"):
        merged[key] = (merged[f"query_{key}"] + merged[f"target_{key}"]) / 2
    merged["embedding_reward"] = merged["reward"] - merged["format"]
    return merged


def vision_placeholders(config: Any) -> tuple[int, ...]:
    """The ids that stand for image/video features: a rollout must never contain them."""
    return tuple(int(i) for i in (config.image_token_id, config.video_token_id) if i is not None)


def rollout_sampling(config: RLConfig, model_config: Any, seed: int) -> Sampling:
    """How rollouts are sampled: as the authors' `GenerationConfig(do_sample=True, temperature=1)`,
    which keeps transformers' default top-k of 50 and runs on past `<gen_emb>` to `<|im_end|>`
    (so that token is in the policy and KL terms)."""
    return Sampling(
        max_new_tokens=config.max_new_tokens,
        do_sample=True,
        temperature=config.sampling_temperature,
        top_k=config.sampling_top_k,
        seed=seed,
        banned_tokens=vision_placeholders(model_config),
        stop_at_gen_emb=False,
    )


def load_reference(name: str, device: torch.device) -> Any:
    """The frozen start model the KL term pulls towards."""
    reference = load_for_training(name, device).model.eval()
    reference.requires_grad_(False)
    return reference


class RLRun(Trainer):
    """One GRPO run: the policy, the frozen reference, and rollout -> reward -> update steps."""

    config: RLConfig

    def __init__(self, config: RLConfig, device: str | torch.device | None = None) -> None:
        init_from_env()
        _, size = world()
        if config.pairs_per_step % config.micro_batch or config.micro_batch % size:
            raise ConfigError(
                "pairs_per_step must be a multiple of micro_batch, and micro_batch of the process count"
            )
        super().__init__(config, device)
        self.reference = load_reference(config.model, self.device) if config.beta > 0 else None
        self.settings = LossSettings(
            group=config.group_size,
            normaliser=config.max_new_tokens,
            eps_low=config.eps_low,
            eps_high=config.eps_high,
            beta=config.beta,
            score_rows=config.score_rows,
        )

    def read_data(self) -> tuple[list[Pair], Skipped]:
        return read_sources(self.config, load_rl_pairs)

    @property
    def pairs_per_step(self) -> int:
        return self.config.pairs_per_step

    def autocast(self) -> torch.autocast:
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def prompts(self, pairs: list[Pair]) -> tuple[list[PreparedInput], list[PreparedInput]]:
        """Query and target prompts of the pairs whose media load, as many on every process."""
        loaded = load_pairs_media(pairs, self.skipped, blank_like_partner=True)
        loaded = loaded[: min_over_processes(len(loaded))]
        processor = self.loaded.processor
        queries = [prepare(processor, query, pair.query.task, self.budget) for query, _, pair in loaded]
        targets = [prepare(processor, target, pair.target.task, self.budget) for _, target, pair in loaded]
        return queries, targets

    def rollouts(self, prompts: list[PreparedInput], seed: int) -> Rollouts:
        config, model = self.config, self.loaded.model
        sampling = rollout_sampling(config, model.config, seed)
        model.eval()
        try:
            with self.autocast(), merged_adapters(self.adapters):
                tokenizer = self.loaded.processor.tokenizer
                return sample_rollouts(
                    model,
                    tokenizer,
                    self.loaded.ids,
                    prompts,
                    config.group_size,
                    sampling,
                    config.rollout_rows,
                )
        finally:
            model.train()

    def micro_step(self, pairs: list[Pair], micro: int, scale: float) -> dict[str, float] | None:
        queries, targets = self.prompts(pairs)
        if not queries:
            return None
        # A distinct, reproducible seed per (step, micro-batch, process, side).
        seed = ((self.config.seed * 1_000_003 + self.step) * 1_009 + micro) * 1_013 + self.rank * 2
        started = self.clock()
        query_rollouts, target_rollouts = self.rollouts(queries, seed), self.rollouts(targets, seed + 1)
        generated = self.clock()
        with self.autocast():
            metrics = micro_step_backward(
                self.loaded.model,
                self.reference,
                query_rollouts,
                target_rollouts,
                self.settings,
                self.loaded.ids,
                scale,
            )
        return metrics | {"generation_s": generated - started, "scoring_s": self.clock() - generated}

    def clock(self) -> float:
        """Seconds, after the device has finished its queued work (for honest phase timings)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def train_step(self, pairs: list[Pair]) -> dict[str, float] | None:
        """One optimiser step over `pairs` (all processes' pairs of this step)."""
        micro_batch = self.config.micro_batch
        groups = [pairs[start : start + micro_batch] for start in range(0, len(pairs), micro_batch)]
        parts = []
        for micro, group in enumerate(groups):
            values = self.micro_step(self.local_share(group), micro, 1.0 / len(groups))
            if values is not None:
                parts.append(values)
        if not parts:
            self.optimizer.zero_grad(set_to_none=True)
            return None
        update_started = self.clock()
        update = self.optimiser_step()
        logged = mean_metrics(parts)
        for phase in ("generation_s", "scoring_s"):  # time adds up over micro-batches
            logged[phase] *= len(parts)
        logged["update_s"] = self.clock() - update_started
        return mean_over_processes(logged) | update

    def run(self, stop_after: int | None = None, progress: bool = True) -> Path | None:
        """Train, rewarding the fixed batches (if asked for) at step 0 and after the last step."""
        config = self.config
        batches = self.fixed_batches()
        if batches and self.step == 0:
            self.record_fixed("before", batches)
        saved = super().run(stop_after, progress)
        if batches and self.step == config.steps:
            self.record_fixed("after", batches)
        return saved

    def fixed_batches(self) -> list[list[Pair]]:
        config = self.config
        if not config.fixed_eval_batches:
            return []
        pairs = self.pairs
        if config.fixed_eval_data:
            pairs, _ = read_sources(config.model_copy(update={"data": config.fixed_eval_data}), load_rl_pairs)
        return fixed_batches(pairs, config.pairs_per_step, config.fixed_eval_batches, config.fixed_eval_seed)

    def record_fixed(self, moment: str, batches: list[list[Pair]]) -> None:
        rewards = fixed_rewards(self, batches, self.config.fixed_eval_seed)
        if self.rank == 0:
            record(self.config.output_dir, moment, rewards, len(batches), self.config.fixed_eval_seed)

    def log_line(self, values: dict[str, float]) -> str:
        shown = ("loss", "reward", "format", "rank", "gap", "kl", "clip_fraction", "zero_spread")
        return " ".join(f"{k}={values[k]:.4g}" for k in shown)
