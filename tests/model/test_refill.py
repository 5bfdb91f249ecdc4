"""Continuous batching: an input's tokens and vectors do not depend on when it joined the decode.

Every input is forced to write `<gen_emb>` at its own drawn length (`forced_stops`), so rows
finish at different steps, as a real checkpoint's do, and waiting inputs take their places.
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from model.encoder import Encoded, Encoder, Mode, document_task, task_text
from model.engine import Batch, BatchEmbeddings, Sampling, decode, forced_stops, generate_embeddings
from model.engine.state import DecodeState
from model.inputs import PreparedInput, collate, image_input, text_input

CAP = 24  # max_new_tokens; one input is forced past it and ends at the cap without <gen_emb>


def varied_inputs(encoder: Encoder) -> list[PreparedInput]:
    """Prompts of different lengths, two with images (their RoPE positions lag their length)."""
    items = [text_input("a dog " * n) for n in (1, 9, 3, 14, 0, 6)]
    items += [image_input(Image.new("RGB", (56 * k, 56), (40 * k, 90, 20))) for k in (1, 3)]
    return [encoder.prepare(i, task_text(i, document_task(i))) for i in items]


def drawn_stops(count: int, seed: int) -> torch.Tensor:
    stops = torch.randint(2, CAP - 4, (count,), generator=torch.Generator().manual_seed(seed))
    stops[0] = CAP + 5  # runs into the cap
    return stops


def alone(encoder: Encoder, item: PreparedInput, stop: int) -> BatchEmbeddings:
    sampling = Sampling(max_new_tokens=CAP, override=forced_stops(torch.tensor([stop]), encoder.token_ids))
    batch = collate([item], encoder.token_ids.pad)
    return generate_embeddings(encoder.model, batch, encoder.token_ids, sampling, fixed_shape_steps=False)


def queue(items: list[PreparedInput], first: int, pad: int):  # -> PromptSource
    taken = first

    def more(count: int) -> Batch | None:
        nonlocal taken
        chunk = items[taken : taken + count]
        taken += len(chunk)
        return collate(chunk, pad) if chunk else None

    return more


def arrival(kind: str, items: list[PreparedInput]) -> list[int]:
    indices = list(range(len(items)))
    if kind == "shortest first":  # later prompts are longer than the running cache: it shifts
        return sorted(indices, key=lambda i: items[i].length)
    if kind == "longest first":
        return sorted(indices, key=lambda i: -items[i].length)
    random.Random(3).shuffle(indices)
    return indices


@pytest.fixture(scope="module")
def references(encoder: Encoder) -> tuple[list[PreparedInput], torch.Tensor, list[BatchEmbeddings]]:
    items = varied_inputs(encoder)
    stops = drawn_stops(len(items), seed=0)
    return items, stops, [alone(encoder, item, int(stop)) for item, stop in zip(items, stops, strict=True)]


def assert_same_as_alone(out: BatchEmbeddings, expected: list[BatchEmbeddings], order: list[int]) -> None:
    assert out.gen is not None and out.disc is not None
    for position, index in enumerate(order):
        reference = expected[index]
        assert reference.gen is not None and reference.disc is not None
        assert out.completions[position] == reference.completions[0], f"input {index}"
        torch.testing.assert_close(out.gen[position], reference.gen[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out.disc[position], reference.disc[0], atol=1e-5, rtol=0)


ARRIVALS = [
    ("longest first", 1),
    ("longest first", 3),
    ("shortest first", 1),
    ("shortest first", 3),
    ("shuffled", 2),
    ("shuffled", 5),
]


@pytest.mark.parametrize("fixed_shape", [False, True])
@pytest.mark.parametrize(("kind", "width"), ARRIVALS)
def test_a_joining_input_decodes_as_it_would_alone(
    encoder: Encoder, references: tuple, fixed_shape: bool, kind: str, width: int
) -> None:
    items, stops, expected = references
    order = arrival(kind, items)
    arrived = [items[i] for i in order]
    sampling = Sampling(max_new_tokens=CAP, override=forced_stops(stops[order], encoder.token_ids))
    out = generate_embeddings(
        encoder.model,
        collate(arrived[:width], encoder.token_ids.pad),
        encoder.token_ids,
        sampling,
        fixed_shape_steps=fixed_shape,
        refill=queue(arrived, width, encoder.token_ids.pad),
    )
    assert [len(c) for c in out.completions] == [min(int(stops[i]), CAP) for i in order]
    assert_same_as_alone(out, expected, order)


def test_rows_join_at_every_step_when_checked_every_step(
    encoder: Encoder, references: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    items, stops, expected = references
    monkeypatch.setattr(decode, "CHECK_EVERY", 1)
    sampling = Sampling(max_new_tokens=CAP, override=forced_stops(stops, encoder.token_ids))
    out = generate_embeddings(
        encoder.model,
        collate(items[:2], encoder.token_ids.pad),
        encoder.token_ids,
        sampling,
        refill=queue(items, 2, encoder.token_ids.pad),
    )
    assert_same_as_alone(out, expected, list(range(len(items))))


def test_the_cache_keeps_only_slots_a_running_row_attends_to(
    encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many short generations in a row: the cache spans the live rows, not the whole run."""
    items = [encoder.prepare(text_input(f"item {i}"), "Represent the given text.") for i in range(12)]
    lengths: list[int] = []
    absorb = DecodeState.absorb

    def measured(self: DecodeState, other: DecodeState) -> None:
        absorb(self, other)
        lengths.append(self.bias.length)

    monkeypatch.setattr(DecodeState, "absorb", measured)
    stops = torch.full((len(items),), 10)
    sampling = Sampling(max_new_tokens=CAP, override=forced_stops(stops, encoder.token_ids))
    pad = encoder.token_ids.pad
    first = collate(items[:2], pad)
    generate_embeddings(encoder.model, first, encoder.token_ids, sampling, refill=queue(items, 2, pad))
    longest = max(item.length for item in items)
    assert len(lengths) >= 4 and max(lengths) <= longest + 10 + decode.CHECK_EVERY


@pytest.mark.parametrize("mode", ["gen", "both"])
def test_the_encoder_refills_and_returns_input_order(encoder: Encoder, references: tuple, mode: Mode) -> None:
    items, stops, expected = references
    order = arrival("shuffled", items)
    shuffled = [items[i] for i in order]
    override = forced_stops(stops[order], encoder.token_ids)
    streamed: dict[int, list[int]] = {}
    turns = 0

    def wait_turn() -> None:
        nonlocal turns
        turns += 1

    def encoded(refill: bool) -> Encoded:
        return encoder.encode_prepared(
            shuffled,
            mode=mode,
            batch_size=3,
            max_new_tokens=CAP,
            refill=refill,
            override=override,
            on_tokens=lambda index, tokens: streamed.__setitem__(index, list(tokens)),
            wait_turn=wait_turn,
        )

    refilled, one_by_one = encoded(True), encoded(False)
    tokenizer = encoder.processor.tokenizer
    assert turns > 2 * max(min(int(s), CAP) for s in stops)  # every step of both runs
    assert refilled.completion == one_by_one.completion
    for position, index in enumerate(order):
        reference = expected[index]
        assert streamed[position] == reference.completions[0]
        text = tokenizer.decode(reference.completions[0], skip_special_tokens=True)
        assert refilled.completion[position] == text
        assert reference.gen is not None and reference.disc is not None
        assert refilled.gen is not None
        np.testing.assert_allclose(refilled.gen[position], reference.gen[0].numpy(), atol=1e-5)
        if mode == "both":
            assert refilled.disc is not None
            np.testing.assert_allclose(refilled.disc[position], reference.disc[0].numpy(), atol=1e-5)


def test_sampled_refills_repeat_with_a_seed_and_keep_their_stops(encoder: Encoder, references: tuple) -> None:
    """One random source serves the whole batch, so a sampled input's tokens depend on its
    neighbours and cannot equal its run alone; a seed still repeats the whole run."""
    items, stops, _ = references

    def sampled(seed: int) -> Encoded:
        return encoder.encode_prepared(
            items,
            mode="gen",
            batch_size=3,
            max_new_tokens=CAP,
            do_sample=True,
            seed=seed,
            override=forced_stops(stops, encoder.token_ids),
        )

    first, again, other = sampled(5), sampled(5), sampled(6)
    assert first.completion == again.completion
    np.testing.assert_array_equal(first.gen, again.gen)
    assert first.completion != other.completion


def test_forced_stops_end_each_input_at_its_length(encoder: Encoder) -> None:
    item = varied_inputs(encoder)[1]
    for stop in (1, 4, 9):
        out = alone(encoder, item, stop)
        assert len(out.completions[0]) == stop and out.completions[0][-1] == encoder.token_ids.gen_emb
        assert encoder.token_ids.gen_emb not in out.completions[0][:-1]
    capped = generate_embeddings(
        encoder.model,
        collate([item], encoder.token_ids.pad),
        encoder.token_ids,
        replace(Sampling(max_new_tokens=6), override=forced_stops(torch.tensor([50]), encoder.token_ids)),
    )
    assert len(capped.completions[0]) == 6


def test_no_inputs_give_an_empty_result(encoder: Encoder) -> None:
    encoded = encoder.encode_prepared([], mode="both", batch_size=2)
    assert len(encoded) == 0 and encoded.gen is not None and encoded.gen.shape == (0, encoder.hidden_size)
