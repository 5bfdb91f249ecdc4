"""Fixtures of the indexer tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from model.encoder import Encoder
from model.inputs import PreparedInput


class CountingEncoder(Encoder):
    """The real encoder, counting the items that reach the model."""

    encoded_items = 0

    def encode_prepared(self, prepared: Sequence[PreparedInput], *args: Any, **kwargs: Any) -> Any:
        self.encoded_items += len(prepared)
        return super().encode_prepared(prepared, *args, **kwargs)


def counting_encoder(model_dir: Path) -> CountingEncoder:
    """The checkpoint at `model_dir`, loaded on the CPU, counting what it encodes."""
    loaded = Encoder.from_pretrained(model_dir, device="cpu")
    return CountingEncoder(loaded.model, loaded.processor, loaded.model_id)


@pytest.fixture(scope="module")
def encoder(tiny_model_dir: Path) -> Iterator[CountingEncoder]:
    """The tiny model, on one thread: its batches are too small to gain from more, and a busy
    machine makes a team of threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield counting_encoder(tiny_model_dir)
    torch.set_num_threads(threads)
