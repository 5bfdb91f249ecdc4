"""GRPO's progress measured the same way before and after a run: fixed batches, fixed seeds.

The training log's rewards come from a new batch at every step, drawn from datasets whose reward
levels differ, and from a policy that changes between them; comparing its first and last steps
mixes all of that. Here the same pairs (`fixed_eval_data`, else drawn once from the training
data with `fixed_eval_seed`) are rolled out with the same sampling seeds at step 0 and at the
end, and rewarded as training rewards them (the same reward pools), without a gradient. The
result goes to `output_dir/fixed_eval.json`: per side (query, target) and per dataset, the
reward, its embedding part, the format rate, the within-group spread and the share of groups
that teach nothing.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from model.train.data import DataPosition, Pair, batch_stream
from model.train.distributed import gather_with_grad, mean_over_processes
from model.train.grpo import side_rewards, side_summary

if TYPE_CHECKING:
    from model.train.rl import RLRun

log = logging.getLogger(__name__)

FIXED_EVAL_FILE = "fixed_eval.json"
SIDE_KEYS = ("reward", "embedding_reward", "format", "group_std", "zero_spread")


def fixed_batches(pairs: list[Pair], pairs_per_step: int, count: int, seed: int) -> list[list[Pair]]:
    """`count` batches as training would draw them (one dataset each), the same on every call."""
    stream = batch_stream(pairs, pairs_per_step, seed, DataPosition())
    return [next(stream) for _ in range(count)]


def fixed_rewards(run: RLRun, batches: list[list[Pair]], seed: int) -> dict[str, Any]:
    """Mean rewards of the policy as it is now on `batches`, overall and per dataset."""
    sums: dict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
    micro_batch = run.config.micro_batch
    for number, batch in enumerate(batches):
        for micro, start in enumerate(range(0, len(batch), micro_batch)):
            values = pool_rewards(run, batch[start : start + micro_batch], seed + 7_919 * number + micro)
            if values is None:
                continue
            for scope in ("all", batch[0].dataset):
                for key, value in values.items():
                    sums[scope][key] += value
                sums[scope]["pools"] += 1
    means = {scope: averaged(totals) for scope, totals in sums.items()}
    overall = means.pop("all", {})
    return overall | {"by_dataset": dict(sorted(means.items()))}


def averaged(totals: dict[str, float]) -> dict[str, float]:
    """Sums over reward pools as means (every process holds the same number of pools)."""
    pools = max(totals.pop("pools"), 1.0)
    return {key: round(value / pools, 4) for key, value in mean_over_processes(dict(totals)).items()}


@torch.no_grad()
def pool_rewards(run: RLRun, pool: list[Pair], seed: int) -> dict[str, float] | None:
    """Rewards of one reward pool: G rollouts per query and per target, ranked against each other."""
    queries, targets = run.prompts(run.local_share(pool))
    if not queries:
        return None
    query_rollouts, target_rollouts = run.rollouts(queries, seed), run.rollouts(targets, seed + 1)
    query_pool, offset = gather_with_grad(query_rollouts.gen)
    target_pool, _ = gather_with_grad(target_rollouts.gen)
    values: dict[str, float] = {}
    group = run.config.group_size
    for side, own, other in (("query", query_rollouts, target_pool), ("target", target_rollouts, query_pool)):
        summary = side_summary(side, side_rewards(own, other, group, offset), group)
        values |= {f"{side}_{key}": summary[f"{side}_{key}"] for key in SIDE_KEYS}
    return values


def record(output_dir: Path, moment: str, rewards: dict[str, Any], batches: int, seed: int) -> None:
    """Write `moment` ("before" or "after") into the run's fixed_eval.json, keeping the other."""
    path = output_dir / FIXED_EVAL_FILE
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    recorded |= {"batches": batches, "seed": seed, moment: rewards}
    path.write_text(json.dumps(recorded, indent=2) + "\n")
    shown = " ".join(f"{side}_{key}={rewards.get(f'{side}_{key}', float('nan')):.4g}"
                     for side in ("query", "target") for key in ("embedding_reward", "format"))  # fmt: skip
    log.info("fixed batches %s the run: %s", moment, shown)
