"""SFT loss terms and the tensors they are computed on."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from model.inputs import VisionBudget
from model.train.batch import IGNORE, load_pairs_media, pair_batches
from model.train.data import Skipped, load_pairs
from model.train.loading import load_for_training
from model.train.losses import LossTerms, info_nce
from model.train.tiny_world import write_tiny_world


def test_info_nce_matches_a_hand_computed_example() -> None:
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # logits = cos / 0.5 = [[2, 0], [0, 2]] both ways: each CE is log(1 + e^-2).
    loss = info_nce(queries, targets, queries, targets, temperature=0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_info_nce_is_symmetric_and_scores_against_the_pool() -> None:
    queries = torch.tensor([[1.0, 0.0]])
    targets = torch.tensor([[0.6, 0.8]])
    pool_q = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    pool_t = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # The local row is pool row 1. q->t logits [1, 0.6]/0.1; t->q logits [0.8, 0.6]/0.1.
    expected = 0.5 * (
        -torch.log_softmax(torch.tensor([10.0, 6.0]), 0)[1]
        - torch.log_softmax(torch.tensor([8.0, 6.0]), 0)[1]
    )
    loss = info_nce(queries, targets, pool_q, pool_t, offset=1, temperature=0.1)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_total_is_the_unweighted_sum_of_four_terms() -> None:
    terms = LossTerms(torch.tensor(0.5), torch.tensor(1.5), torch.tensor(2.0), torch.tensor(3.0))
    assert terms.total.item() == pytest.approx(7.0)
    assert terms.as_floats()["loss"] == pytest.approx(7.0)


def test_labels_cover_exactly_the_assistant_message(tiny_model_dir: Path, tmp_path: Path) -> None:
    train, _ = write_tiny_world(tmp_path, train_shapes=2, videos=1, pages=1, held_out=1)
    pairs = load_pairs(train, "released", None, Skipped())
    loaded = load_for_training(str(tiny_model_dir), torch.device("cpu"))
    tokenizer = loaded.processor.tokenizer
    queries, targets = pair_batches(
        loaded.processor, loaded.ids, load_pairs_media(pairs, Skipped()), VisionBudget(), 4096
    )
    for side, batch in (("query", queries), ("target", targets)):
        for row, pair in enumerate(pairs):
            labelled = batch.labels[row][batch.labels[row] != IGNORE]
            completion = getattr(pair, side).completion
            assert tokenizer.decode(labelled) == completion + "<|im_end|>"
            prompt = batch.inputs["input_ids"][row][batch.labels[row] == IGNORE]
            assert "<|im_start|>assistant\n" in tokenizer.decode(prompt)
            assert batch.inputs["input_ids"][row, batch.disc_positions[row]] == loaded.ids.disc_emb
            assert batch.inputs["input_ids"][row, batch.gen_positions[row]] == loaded.ids.gen_emb
