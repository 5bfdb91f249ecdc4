"""The tiny world can be seen: the shipped reference model's embeddings say where a shape is.

A scene's caption ends with its quadrant. If a model cannot tell left from right in the pixels,
its captions swap them and retrieval by reasoning fails on exactly those scenes. What it sees is
read from its embeddings (model/world/position.py): does an image prefer its own caption to the
same caption with the column, or the row, flipped?
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.encoder import Encoder
from model.train.batch import load_side
from model.train.data import Side, Skipped, load_pairs
from model.train.tiny_world import write_tiny_world
from model.world import REFERENCE_MODEL
from model.world.position import flipped, position_choice, position_readout, quadrant_of
from model.world.scenes import QUADRANTS

SEEN = 0.95  # both axes, on 200 held-out scenes


def test_the_probe_reads_an_axis_the_states_hold_and_not_one_they_lack() -> None:
    rng = np.random.default_rng(0)
    captions = [f"one red circle at the {name}" for name in QUADRANTS for _ in range(50)]
    columns = np.array([QUADRANTS[quadrant_of(caption)][0] for caption in captions], dtype=float)
    states = rng.normal(size=(len(captions), 16))
    states[:, 3] += 3.0 * (2 * columns - 1)  # the column is written in one direction, the row nowhere
    readout = position_readout(states, captions)
    assert readout["left_right"] >= 0.95
    assert 0.3 <= readout["top_bottom"] <= 0.7


def test_a_caption_without_a_quadrant_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="not a tiny-world scene caption"):
        quadrant_of("a red circle somewhere")


def test_a_flipped_caption_names_the_other_column_or_row() -> None:
    assert flipped("two red circles at the top left", "column") == "two red circles at the top right"
    assert flipped("two red circles at the top left", "row") == "two red circles at the bottom left"
    with pytest.raises(ValueError, match="axis is column or row"):
        flipped("two red circles at the top left", "diagonal")


def test_the_shipped_model_tells_left_from_right_and_top_from_bottom(tmp_path: Path) -> None:
    """Each of 200 held-out images is closer, in disc, to its own caption than to the same
    caption with the column flipped, and than to it with the row flipped."""
    _, heldout_file = write_tiny_world(tmp_path, train_shapes=0, videos=0, pages=0, seed=11)
    pairs = load_pairs(heldout_file, "released", None, Skipped())
    encoder = Encoder.from_pretrained(REFERENCE_MODEL, device="cpu")

    def disc(sides: list[tuple[Side, str]]) -> np.ndarray:
        prepared = [encoder.prepare(load_side(side), task) for side, task in sides]
        states = encoder.encode_prepared(prepared, mode="disc", batch_size=50).disc
        assert states is not None
        return states

    images = disc([(pair.target, pair.target.task) for pair in pairs])
    choice = position_choice(
        images,
        [pair.query.task for pair in pairs],
        lambda captions: disc([(pair.query, caption) for pair, caption in zip(pairs, captions, strict=True)]),
    )
    assert choice["left_right"] >= SEEN, choice
    assert choice["top_bottom"] >= SEEN, choice
