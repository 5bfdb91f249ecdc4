"""The decode loop's hooks for sharing the model: a background batch waits its turn between steps."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from indexer.gate import Gate
from model.encoder import Encoder, Mode, document_task, task_text
from model.engine import Batch, BatchEmbeddings, Sampling, WaitTurn, generate_embeddings
from model.inputs import collate
from tests.conftest import taught_inputs


def taught_batch(taught: Encoder) -> Batch:
    prepared = [taught.prepare(i, task_text(i, document_task(i))) for i in taught_inputs()]
    return collate(prepared, taught.token_ids.pad)


def decode(taught: Encoder, fixed_shape: bool, wait_turn: WaitTurn | None = None) -> BatchEmbeddings:
    return generate_embeddings(
        taught.model,
        taught_batch(taught),
        taught.token_ids,
        Sampling(max_new_tokens=120),
        fixed_shape_steps=fixed_shape,
        wait_turn=wait_turn,
    )


@pytest.mark.parametrize("fixed_shape", [False, True])
def test_a_waiting_batch_ends_as_one_that_never_waited(taught: Encoder, fixed_shape: bool) -> None:
    calls = 0

    def slow_turn() -> None:
        nonlocal calls
        calls += 1
        time.sleep(0.0005)

    plain = decode(taught, fixed_shape)
    waited = decode(taught, fixed_shape, slow_turn)
    assert waited.completions == plain.completions
    assert len({len(c) for c in plain.completions}) == 2  # the rows stop at different steps
    assert calls >= max(len(c) for c in plain.completions)  # one turn per step at least
    assert plain.gen is not None and waited.gen is not None
    torch.testing.assert_close(waited.gen, plain.gen, atol=0, rtol=0)
    torch.testing.assert_close(waited.disc, plain.disc, atol=0, rtol=0)


@pytest.mark.parametrize("mode", ["disc", "both"])
def test_a_paused_gate_holds_the_encoder_until_resumed(taught: Encoder, mode: Mode) -> None:
    items = [taught.prepare(i, task_text(i, document_task(i))) for i in taught_inputs()]
    began = time.perf_counter()
    plain = taught.encode_prepared(items, mode=mode, batch_size=1, max_new_tokens=120)
    delay = max(0.3, 2 * (time.perf_counter() - began))
    gate = Gate()
    gate.pause()
    threading.Timer(delay, gate.resume).start()
    began = time.perf_counter()
    held = taught.encode_prepared(
        items, mode=mode, batch_size=1, max_new_tokens=120, wait_turn=gate.wait_turn
    )
    assert time.perf_counter() - began >= delay
    assert held.completion == plain.completion
    for name in ("disc", "gen"):
        expected, got = getattr(plain, name), getattr(held, name)
        assert (expected is None) == (got is None)
        if expected is not None:
            assert (expected == got).all()
