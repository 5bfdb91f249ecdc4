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


@pytest.fixture(scope="module")
def encoder(tiny_model_dir: Path) -> Iterator[CountingEncoder]:
    """The tiny model, on one thread: its batches are too small to gain from more, and a busy
    machine makes a team of threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    loaded = Encoder.from_pretrained(tiny_model_dir, device="cpu")
    yield CountingEncoder(loaded.model, loaded.processor, loaded.model_id)
    torch.set_num_threads(threads)
