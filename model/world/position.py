"""Can a model see where a shape is? Left/right and top/bottom, read from its embeddings.

A scene of the tiny world puts its shapes in one quadrant, and its caption ends with it ("… at
the top left"). Two readings:
- `position_choice`: does each image's embedding sit closer to its own caption's than to the
  same caption with the column (or the row) flipped? What search needs: near 1.0 the model
  tells the two apart, near one half it guesses.
- `position_readout`: a ridge classifier on the embeddings of held-out scenes, cross-validated
  in stratified folds, predicts the column and the row. Stricter: it asks that the axis be one
  direction for every colour, shape and count. Near one half (or below: the nearest training
  scenes are the same shapes in the same row, other column) the axis is not linearly there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from model.world.scenes import QUADRANTS

FOLDS = 5
RIDGE = 1.0


def quadrant_of(caption: str) -> str:
    """The quadrant a scene's caption ends with."""
    found = [name for name in QUADRANTS if caption.endswith(f"at the {name}")]
    if len(found) != 1:
        raise ValueError(f"not a tiny-world scene caption: {caption!r}")
    return found[0]


def flipped(caption: str, axis: str) -> str:
    """The caption with its quadrant's column (axis "column") or row (axis "row") flipped."""
    quadrant = quadrant_of(caption)
    vertical, horizontal = quadrant.split()
    if axis == "column":
        horizontal = {"left": "right", "right": "left"}[horizontal]
    elif axis == "row":
        vertical = {"top": "bottom", "bottom": "top"}[vertical]
    else:
        raise ValueError(f"axis is column or row, not {axis!r}")
    return caption.removesuffix(quadrant) + f"{vertical} {horizontal}"


def position_choice(
    images: np.ndarray, captions: Sequence[str], embed_captions: Callable[[list[str]], np.ndarray]
) -> dict[str, float]:
    """Share of images (rows, unit vectors) closer to their own caption's embedding than to the
    same caption with the column flipped (left_right) and with the row flipped (top_bottom).

    `embed_captions` embeds captions as queries, one row each, in the images' order."""
    own = np.sum(images * embed_captions(list(captions)), axis=1)

    def share_preferring_own(axis: str) -> float:
        other = np.sum(images * embed_captions([flipped(caption, axis) for caption in captions]), axis=1)
        return round(float(np.mean(own > other)), 3)

    return {"left_right": share_preferring_own("column"), "top_bottom": share_preferring_own("row")}


def probe_accuracy(states: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Cross-validated accuracy of a ridge classifier (labels ±1) on standardised states.

    Folds are stratified: with unstratified folds a state that says nothing scores below chance
    (each fold's training part leans towards the other label), which reads as a signal."""
    rng = np.random.default_rng(seed)
    by_label = [rng.permutation(np.flatnonzero(labels == label)) for label in (-1.0, 1.0)]
    split = [np.array_split(indices, FOLDS) for indices in by_label]
    folds = [np.concatenate(parts) for parts in zip(*split, strict=True)]
    order = np.concatenate(folds)
    right = 0
    for held in folds:
        fit = np.setdiff1d(order, held)
        mean, std = states[fit].mean(0), states[fit].std(0) + 1e-6
        x = (states[fit] - mean) / std
        weights = np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T @ labels[fit])
        right += int(np.sum(np.sign(((states[held] - mean) / std) @ weights) == labels[held]))
    return right / len(labels)


def position_readout(states: np.ndarray, captions: Sequence[str]) -> dict[str, float]:
    """How well the embeddings of scenes (one row per caption) tell left from right and top
    from bottom: the probe's cross-validated accuracy for each axis."""
    places = [QUADRANTS[quadrant_of(caption)] for caption in captions]
    columns = np.array([1.0 if column else -1.0 for column, _ in places])
    rows = np.array([1.0 if row else -1.0 for _, row in places])
    return {
        "left_right": round(probe_accuracy(states, columns), 3),
        "top_bottom": round(probe_accuracy(states, rows), 3),
    }
