"""GRPO math (UME-R1 §5) on hand-computed examples, and the loss across two processes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from model.inputs import EmbedInput, VisionBudget, prepare
from model.prompts import DOCUMENT_TASKS
from model.train.distributed import average_gradients
from model.train.grpo import (
    clipped_token_objective,
    embedding_rewards,
    format_rewards,
    group_advantages,
    group_spread,
    k3_kl,
    rank_and_gap,
    sequence_losses,
    side_rewards,
)
from model.train.loading import load_for_training
from model.train.rl import LossSettings, micro_step_backward
from model.train.rollout import Rollouts, completion_batch, completion_logprobs

# 2 pairs × G = 2 query rollouts (rows) against the 4 target rollouts (columns), pair-major.
SIMILARITIES = torch.tensor(
    [
        [0.9, 0.8, 0.1, 0.85],  # top-2: own 0.9, other 0.85 -> rank 1/2; gap 0.85 - 0.475
        [0.7, 0.6, 0.2, 0.1],  # top-2 both own -> rank 1; gap 0.65 - 0.15
        [0.2, 0.1, 0.7, 0.6],  # pair 1: rank 1; gap 0.65 - 0.15
        [0.9, 0.3, 0.4, 0.2],  # top-2: other 0.9, own 0.4 -> rank 1/2; gap 0.3 - 0.6
    ]
)
WELL_FORMED = "<think>i see a red circle</think><answer>red circle<gen_emb>"


def test_rank_gap_and_reward_on_a_hand_made_similarity_matrix() -> None:
    rank, gap = rank_and_gap(SIMILARITIES, group=2)
    torch.testing.assert_close(rank, torch.tensor([0.5, 1.0, 1.0, 0.5]))
    torch.testing.assert_close(gap, torch.tensor([0.375, 0.5, 0.5, -0.3]))
    torch.testing.assert_close(
        embedding_rewards(SIMILARITIES, group=2), torch.tensor([0.1875, 0.5, 0.5, -0.15])
    )


def test_rewards_of_local_rows_use_their_global_pair() -> None:
    """A process holding only pair 1's rollouts scores them as the whole micro-batch would."""
    local = embedding_rewards(SIMILARITIES[2:], group=2, row_offset=2)
    torch.testing.assert_close(local, embedding_rewards(SIMILARITIES, group=2)[2:])


def test_format_term_follows_the_spec_regex_and_adds_to_the_embedding_term() -> None:
    texts = [
        WELL_FORMED,
        "<think>no answer</think> red circle<gen_emb>",
        "<think>x</think><answer>y",
        WELL_FORMED,
    ]
    torch.testing.assert_close(format_rewards(texts), torch.tensor([1.0, 0.0, 0.0, 1.0]))
    rollouts = Rollouts(prompts=[], completions=[[1]] * 4, gen=torch.eye(4), texts=texts)
    # gen @ pool.T with gen = I and pool = S.T is the similarity matrix itself.
    rewards = side_rewards(rollouts, SIMILARITIES.T, group=2, offset=0)
    torch.testing.assert_close(rewards["reward"], torch.tensor([1.1875, 0.5, 0.5, 0.85]))


def test_advantages_are_normalised_within_each_group() -> None:
    advantages = group_advantages(torch.tensor([1.0, 2.0, 3.0, 5.0, 7.0, 7.0]), group=3)
    std = math.sqrt(1.0)  # unbiased std of (1, 2, 3)
    torch.testing.assert_close(advantages[:3], torch.tensor([-1.0, 0.0, 1.0]) / (std + 1e-4))
    second = torch.tensor([5.0, 7.0, 7.0])
    torch.testing.assert_close(advantages[3:], (second - second.mean()) / (second.std() + 1e-4))
    assert group_advantages(torch.tensor([0.3, 0.3]), group=2).abs().max() == 0  # no signal, no push


def test_group_spread_counts_the_groups_that_teach_nothing() -> None:
    rewards = torch.tensor([0.5, 0.5, 0.5, 1.0, 0.0, 1.0, 0.2, 0.2, 0.2 + 1e-3])
    mean_std, zero_share = group_spread(rewards, group=3)
    assert zero_share == pytest.approx(1 / 3)  # only the first group's rewards are all equal
    stds = [0.0, float(torch.tensor([1.0, 0.0, 1.0]).std()), float(torch.tensor([0.2, 0.2, 0.201]).std())]
    assert mean_std == pytest.approx(sum(stds) / 3, rel=1e-5)


def test_clipping_is_asymmetric() -> None:
    ratios = torch.tensor([[1.5, 1.2, 0.5, 0.5]])
    advantages = torch.tensor([1.0])
    logprobs = torch.log(ratios).requires_grad_(True)
    loss, clipped = clipped_token_objective(logprobs, torch.zeros_like(ratios), advantages, 0.2, 0.28)
    torch.testing.assert_close(loss, -torch.tensor([[1.28, 1.2, 0.5, 0.5]]))
    assert clipped.tolist() == [[True, False, False, False]]
    loss.sum().backward()
    assert logprobs.grad is not None and logprobs.grad[0, 0] == 0  # a clipped token pushes nothing
    negative, clipped_negative = clipped_token_objective(
        torch.log(torch.tensor([[0.5, 0.9]])), torch.zeros(1, 2), torch.tensor([-1.0]), 0.2, 0.28
    )
    torch.testing.assert_close(negative, torch.tensor([[0.8, 0.9]]))  # low side clips at 1 - 0.2
    assert clipped_negative.tolist() == [[True, False]]


def test_k3_kl_estimator() -> None:
    logprobs = torch.tensor([-1.0, -2.0, -0.5])
    reference = torch.tensor([-1.0, -1.0, -1.5])
    expected = torch.tensor([0.0, math.exp(1.0) - 1.0 - 1.0, math.exp(-1.0) + 1.0 - 1.0])
    torch.testing.assert_close(k3_kl(logprobs, reference), expected)


def test_sequences_are_divided_by_the_constant_not_their_length() -> None:
    token_losses = torch.ones(2, 4)
    mask = torch.tensor([[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    torch.testing.assert_close(sequence_losses(token_losses, mask, normaliser=8), torch.tensor([0.25, 0.5]))


def _image(colour: str) -> EmbedInput:
    from PIL import Image

    return EmbedInput(image=Image.new("RGB", (56, 56), colour), kind="image")


def fixed_rollouts(processor: Any, pair_range: range, group: int = 2) -> tuple[Rollouts, Rollouts]:
    """Hand-written rollouts for pairs in `pair_range` (deterministic, no sampling)."""
    colours = ["red", "green", "blue", "yellow"]
    tokenizer, sides = processor.tokenizer, []
    for side in ("query", "target"):
        prompts, completions, texts = [], [], []
        for pair in pair_range:
            item = EmbedInput(text=f"a {colours[pair]} square") if side == "query" else _image(colours[pair])
            prompt = prepare(processor, item, DOCUMENT_TASKS["image"], VisionBudget())
            for rollout in range(group):
                text = WELL_FORMED if rollout == 0 else f"<think>{colours[pair]}</think> {pair}<gen_emb>"
                prompts.append(prompt)
                texts.append(text)
                completions.append(tokenizer(text)["input_ids"])
        torch.manual_seed(len(sides))
        all_gens = torch.nn.functional.normalize(torch.randn(4 * group, 8), dim=-1)
        gens = all_gens[pair_range.start * group : pair_range.stop * group]
        sides.append(Rollouts(prompts, completions, gens, texts))
    return sides[0], sides[1]


def loss_and_gradients(model_dir: Path, pair_range: range) -> tuple[float, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    policy = load_for_training(str(model_dir), torch.device("cpu"))
    reference = load_for_training(str(model_dir), torch.device("cpu")).model.eval()
    with torch.no_grad():  # a reference that differs from the policy, so the KL term is live
        for parameter in reference.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    queries, targets = fixed_rollouts(policy.processor, pair_range)
    settings = LossSettings(group=2, normaliser=64, score_rows=3)
    metrics = micro_step_backward(policy.model, reference, queries, targets, settings, policy.ids)
    average_gradients(policy.model.parameters())
    grads = {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None}
    return metrics["query_loss"] + metrics["target_loss"], grads


def _worker(rank: int, model_dir: Path, rendezvous: Path, out: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        loss, grads = loss_and_gradients(model_dir, range(2 * rank, 2 * rank + 2))
        total = torch.tensor([loss])
        dist.all_reduce(total)
        torch.save({"loss": float(total) / 2, "grads": grads}, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.usefixtures("one_thread")
def test_two_processes_give_the_loss_and_gradients_of_one(tiny_model_dir: Path, tmp_path: Path) -> None:
    mp.spawn(_worker, args=(tiny_model_dir, tmp_path / "rendezvous", tmp_path), nprocs=2)
    whole_loss, whole = loss_and_gradients(tiny_model_dir, range(4))
    assert whole_loss != 0
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["loss"] == pytest.approx(whole_loss, rel=1e-4, abs=1e-7)
        assert result["grads"].keys() == whole.keys()
        for name, grad in whole.items():
            torch.testing.assert_close(result["grads"][name], grad, rtol=1e-3, atol=1e-6, msg=name)


def test_video_rollouts_are_scored_with_their_video(tiny_model_dir: Path) -> None:
    """The forward that scores a rollout sees its video: another video changes the log-probs."""
    from PIL import Image

    loaded = load_for_training(str(tiny_model_dir), torch.device("cpu"))
    completion = [loaded.processor.tokenizer(WELL_FORMED)["input_ids"]]

    def logprobs(colour: str) -> torch.Tensor:
        frames = [Image.new("RGB", (56, 56), colour) for _ in range(4)]
        item = EmbedInput(video_frames=frames, kind="video")
        prompt = prepare(loaded.processor, item, DOCUMENT_TASKS["video"], VisionBudget())
        with torch.no_grad():
            batch = completion_batch([prompt], completion, loaded.ids, torch.device("cpu"))
            return completion_logprobs(loaded.model, batch)

    red, red_again, blue = logprobs("red"), logprobs("red"), logprobs("blue")
    torch.testing.assert_close(red, red_again)
    assert (red - blue).abs().max() > 1e-4


def test_banned_tokens_are_never_emitted() -> None:
    """RL bans the vision placeholders: a sampled `<|image_pad|>` breaks the scoring forward."""
    from model.engine import Sampling, pick_next_tokens

    logits = torch.zeros(64, 10)
    logits[:, 7] = 20.0  # the banned id is by far the likeliest
    for sampling in (Sampling(banned_tokens=(7,)), Sampling(do_sample=True, banned_tokens=(7,), seed=0)):
        generator = torch.Generator().manual_seed(0)
        assert 7 not in pick_next_tokens(logits, sampling, generator).tolist()
    assert set(pick_next_tokens(logits, Sampling(), None).tolist()) == {7}
