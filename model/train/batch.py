"""Pairs -> model tensors: prompt + assistant message per side, with LM labels and read positions.

The prompt comes from `model.inputs.prepare` and the completion is appended with
`model.engine.append_completions`, and the embedding positions are found with
`last_token_positions` / `gen_positions`: the very code inference uses, so what training shapes
is exactly what the encoder reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from model.engine import TokenIds, append_completions, gen_positions, last_token_positions
from model.inputs import EmbedInput, VisionBudget, collate, prepare
from model.media import MediaError, load_image
from model.prompts import blank_image
from model.train.data import Pair, Side, Skipped

IGNORE = -100  # label value the LM loss skips
END_OF_TURN = "<|im_end|>"


@dataclass
class SideBatch:
    """One side of several pairs, ready for the model."""

    inputs: dict[str, torch.Tensor]  # left-padded prompt + completion, with vision tensors
    labels: torch.Tensor  # (rows, length): token ids on the assistant message, IGNORE elsewhere
    disc_positions: torch.Tensor  # (rows,) the prompt's last <disc_emb>
    gen_positions: torch.Tensor  # (rows,) the completion's last <gen_emb>, else its end

    @property
    def label_tokens(self) -> int:
        return int((self.labels[:, 1:] != IGNORE).sum())

    def to(self, device: torch.device) -> SideBatch:
        return SideBatch(
            {k: v.to(device) for k, v in self.inputs.items()},
            self.labels.to(device),
            self.disc_positions.to(device),
            self.gen_positions.to(device),
        )


def load_side(side: Side, blank_video: bool = False) -> EmbedInput:
    """The side's media as an input (raises `MediaError` for an unreadable file).

    A text-only side carries the blank image; with `blank_video` it carries it as a one-frame
    video instead (what the authors' RL gives a text side whose partner is a video).
    """
    if side.video:
        return EmbedInput(video_frames=[load_image(frame) for frame in side.video], kind="video")
    if side.image is not None:
        return EmbedInput(image=load_image(side.image), kind="image")
    if blank_video:
        return EmbedInput(video_frames=[blank_image()], kind="text")
    return EmbedInput(kind="text")


def load_pairs_media(
    pairs: list[Pair], skipped: Skipped, blank_like_partner: bool = False
) -> list[tuple[EmbedInput, EmbedInput, Pair]]:
    """Pairs whose media all load; the others are counted and left out of the batch.

    `blank_like_partner` (RL): a text-only side opposite a video gets a blank one-frame video.
    """
    loaded = []
    for pair in pairs:
        try:
            query = load_side(pair.query, blank_like_partner and bool(pair.target.video))
            target = load_side(pair.target, blank_like_partner and bool(pair.query.video))
            loaded.append((query, target, pair))
        except MediaError:
            skipped.add("unreadable media file")
    return loaded


def side_batch(
    processor: Any,
    ids: TokenIds,
    items: list[tuple[EmbedInput, Side]],
    budget: VisionBudget,
    max_completion_tokens: int,
) -> SideBatch:
    """Tensors for one side of several pairs."""
    tokenizer = processor.tokenizer
    prepared = [prepare(processor, item, side.task, budget) for item, side in items]
    completions = [
        tokenizer(side.completion + END_OF_TURN)["input_ids"][:max_completion_tokens] for _, side in items
    ]
    full = append_completions(collate(prepared, ids.pad), completions, ids.pad)
    labels = torch.full_like(full["input_ids"], IGNORE)
    for row, completion in enumerate(completions):
        labels[row, -len(completion) :] = full["input_ids"][row, -len(completion) :]
    return SideBatch(
        inputs=full,
        labels=labels,
        disc_positions=last_token_positions(full["input_ids"], ids.disc_emb),
        gen_positions=gen_positions(full, completions, ids),
    )


def pair_batches(
    processor: Any,
    ids: TokenIds,
    loaded: list[tuple[EmbedInput, EmbedInput, Pair]],
    budget: VisionBudget,
    max_completion_tokens: int,
) -> tuple[SideBatch, SideBatch]:
    """(query side, target side) tensors for a list of loaded pairs."""
    queries = [(query, pair.query) for query, _, pair in loaded]
    targets = [(target, pair.target) for _, target, pair in loaded]
    return (
        side_batch(processor, ids, queries, budget, max_completion_tokens),
        side_batch(processor, ids, targets, budget, max_completion_tokens),
    )
