"""Several processes as one batch: gather embeddings with gradient, average parameter gradients.

Why our own autograd gather: `torch.distributed.nn.functional.all_gather` differentiates through
reduce-scatter, which the gloo backend (CPU) lacks. Ours all-reduces the gathered gradient and
keeps this process's rows; it needs only all_gather and all_reduce, so it runs on gloo and NCCL.

With the contrastive loss of each process computed on its local rows against the gathered
pool, summing parameter gradients over processes and dividing by their number gives exactly
the gradient of the whole-batch mean loss (see `tests/model/test_train_distributed.py`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when no process group is running."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env() -> bool:
    """Join the process group torchrun describes (gloo on CPU, NCCL on GPUs); False if alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, local: torch.Tensor) -> torch.Tensor:
        rank, size = world()
        ctx.rank, ctx.rows = rank, local.shape[0]
        parts = [torch.empty_like(local) for _ in range(size)]
        dist.all_gather(parts, local.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        # Every process's loss depends on our rows: their gradients are summed over processes.
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(all processes' rows in rank order, index of this process's first row).

    Every process must hold the same number of rows.
    """
    rank, size = world()
    if size == 1:
        return local, 0
    return _GatherWithGrad.apply(local), rank * local.shape[0]


def sum_over_processes(value: float | int) -> float:
    """A number summed over processes (e.g. the label-token count that normalises the LM loss)."""
    _, size = world()
    if size == 1:
        return float(value)
    total = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(total)
    return float(total.item())


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Make every process hold the mean gradient over processes (what DDP would do)."""
    _, size = world()
    if size == 1:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad /= size


def min_over_processes(value: int) -> int:
    """The smallest of every process's value (to keep per-process row counts equal)."""
    _, size = world()
    if size == 1:
        return value
    smallest = torch.tensor([value], dtype=torch.long)
    dist.all_reduce(smallest, op=dist.ReduceOp.MIN)
    return int(smallest.item())


def mean_over_processes(values: dict[str, float]) -> dict[str, float]:
    """Each number averaged over processes (for logging what the whole batch did)."""
    _, size = world()
    if size == 1:
        return values
    keys = sorted(values)
    totals = torch.tensor([values[key] for key in keys], dtype=torch.float64)
    dist.all_reduce(totals)
    return {key: float(total) / size for key, total in zip(keys, totals.tolist(), strict=True)}


def barrier() -> None:
    """Wait for every process (no-op when alone)."""
    if world()[1] > 1:
        dist.barrier()
