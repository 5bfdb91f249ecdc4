"""The encoder against the method's rules, on the offline tiny model through the real loading code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.cli import main as ume
from model import prompts
from model.encoder import Encoder, ModelLoadError, document_task, task_text
from model.engine import append_completions, parse_completion
from model.inputs import EmbedInput, collate, image_input, inputs_from_path, pdf_inputs, text_input
from model.media import MediaError
from tests.conftest import TAUGHT_COMPLETIONS, taught_inputs

VIDEO = "videos/circle_square_hello.mp4"
PDF = "documents/cats_coffee_rockets_tomatoes.pdf"
CAT = "photos/tabby_cat_closeup.jpg"

SPEC_INSTRUCTION = (
    "Represent the above input text, images, videos, or any combination of the three as embeddings. "
    "First output the thinking process in <think> </think> tags and then summarize the entire input "
    "in a word or sentence. Finally, use the <gen_emb> tag to represent the entire input."
)


def last_hidden(encoder: Encoder, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Plain HF forward, all hidden states returned: the reference our shortcuts must match."""
    with torch.no_grad():
        out = encoder.model(**batch, output_hidden_states=True)
    return out.hidden_states[-1]


def test_prompt_is_exactly_the_spec(encoder: Encoder) -> None:
    task = "Find me an everyday image that matches the given caption: a dog"
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
        f"{task}\n<disc_emb>\n{SPEC_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert prompts.render_prompt(task, ["image"]) == expected
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompts.user_text(task)}]}
    ]
    templated = encoder.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert templated == expected


def test_query_and_document_task_texts(encoder: Encoder) -> None:
    query = text_input("a dog on a beach")
    assert task_text(query, "Find me an everyday image that matches the given caption: {text}") == (
        "Find me an everyday image that matches the given caption: a dog on a beach"
    )
    assert task_text(
        EmbedInput(image=Image.new("RGB", (8, 8))), document_task(EmbedInput(image=Image.new("RGB", (8, 8))))
    ) == ("Represent the given image.")
    assert task_text(EmbedInput(text="Why?", task="{text}"), "ignored {text}") == "Why?"


def test_ume_tokens_are_plain_added_tokens_initialised_as_the_spec(encoder: Encoder) -> None:
    tokenizer = encoder.processor.tokenizer
    gen_id, disc_id = encoder.token_ids.gen_emb, encoder.token_ids.disc_emb
    assert tokenizer.convert_tokens_to_ids("<gen_emb>") == gen_id and disc_id == gen_id + 1
    assert "<gen_emb>" not in tokenizer.all_special_tokens
    assert tokenizer.decode([gen_id], skip_special_tokens=True) == "<gen_emb>"
    table = encoder.model.get_input_embeddings().weight
    assert torch.equal(table[gen_id], table[tokenizer.convert_tokens_to_ids("<|object_ref_end|>")])
    assert torch.equal(table[disc_id], table[tokenizer.convert_tokens_to_ids("<|object_ref_start|>")])


def test_disc_is_read_at_disc_emb_itself_not_the_next_token(encoder: Encoder) -> None:
    item = text_input("a red bicycle")
    prepared = encoder.prepare(item, task_text(item, document_task(item)))
    hidden = last_hidden(encoder, collate([prepared], encoder.token_ids.pad))[0]
    position = int((prepared.input_ids == encoder.token_ids.disc_emb).nonzero()[-1])
    disc = encoder.encode_document([item], mode="disc").disc[0]
    at_token = torch.nn.functional.normalize(hidden[position], dim=-1).numpy()
    after_token = torch.nn.functional.normalize(hidden[position + 1], dim=-1).numpy()
    np.testing.assert_allclose(disc, at_token, atol=1e-5)
    assert np.abs(disc - after_token).max() > 1e-3


def test_generation_stops_at_gen_emb_and_parses_reasoning(taught: Encoder) -> None:
    encoded = taught.encode_document(taught_inputs(), mode="both", max_new_tokens=120)
    assert encoded.completion == list(TAUGHT_COMPLETIONS)
    assert encoded.reasoning == ["cat", "red box here"]
    assert encoded.summary == ["a cat", "red"]  # box markers stripped


def test_gen_equals_a_forward_over_prompt_plus_completion(taught: Encoder) -> None:
    items = taught_inputs()
    encoded = taught.encode_document(items, mode="gen", max_new_tokens=120)
    tokenizer, ids = taught.processor.tokenizer, taught.token_ids
    for row, item in enumerate(items):
        prepared = taught.prepare(item, task_text(item, document_task(item)))
        completion = tokenizer(encoded.completion[row])["input_ids"]
        full = append_completions(collate([prepared], ids.pad), [completion], ids.pad)
        hidden = last_hidden(taught, full)[0]
        position = int((full["input_ids"][0] == ids.gen_emb).nonzero()[-1])
        expected = torch.nn.functional.normalize(hidden[position], dim=-1).numpy()
        np.testing.assert_allclose(encoded.gen[row], expected, atol=1e-5)


def test_disc_from_a_generation_call_equals_disc_only(taught: Encoder) -> None:
    items = taught_inputs()
    both = taught.encode_document(items, mode="both", max_new_tokens=120)
    disc_only = taught.encode_document(items, mode="disc")
    np.testing.assert_allclose(both.disc, disc_only.disc, atol=1e-5)


def test_greedy_completion_matches_hf_generate(encoder: Encoder) -> None:
    item = image_input(Image.new("RGB", (64, 48), (0, 90, 200)))
    prepared = encoder.prepare(item, task_text(item, document_task(item)))
    batch = collate([prepared], encoder.token_ids.pad)
    reference = encoder.model.generate(**batch, max_new_tokens=12, do_sample=False)
    ours = encoder.encode_document([item], mode="gen", max_new_tokens=12)
    expected = encoder.processor.tokenizer.decode(
        reference[0, batch["input_ids"].shape[1] :], skip_special_tokens=True
    )
    assert ours.completion[0] == expected


def mixed_inputs(examples_dir: Path) -> list[EmbedInput]:
    return [
        *taught_inputs(),
        image_input(examples_dir / CAT),
        image_input(examples_dir / CAT, text="the same cat, but sleeping"),
        inputs_from_path(examples_dir / VIDEO, segment_seconds=4.0)[1],
        pdf_inputs(examples_dir / PDF, dpi=36)[2],
        text_input("a much longer piece of text that makes this prompt the longest of the batch"),
    ]


@pytest.mark.parametrize("mode", ["disc", "both"])
def test_item_alone_equals_item_in_a_mixed_batch(taught: Encoder, examples_dir: Path, mode: str) -> None:
    items = mixed_inputs(examples_dir)
    together = taught.encode_document(items, mode=mode, batch_size=len(items), max_new_tokens=24)
    for row, item in enumerate(items):
        alone = taught.encode_document([item], mode=mode, max_new_tokens=24)
        np.testing.assert_allclose(alone.disc[0], together.disc[row], atol=2e-5)
        if mode == "both":
            np.testing.assert_allclose(alone.gen[0], together.gen[row], atol=2e-5)
            assert alone.completion[0] == together.completion[row]


def test_every_input_kind_embeds(encoder: Encoder, examples_dir: Path) -> None:
    video = inputs_from_path(examples_dir / VIDEO, segment_seconds=4.0)
    pages = inputs_from_path(examples_dir / PDF)
    assert [(v.start, v.end) for v in video] == [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]
    assert all(len(v.video_frames or []) == 8 for v in video)
    assert [p.page for p in pages] == [1, 2, 3, 4] and {p.kind for p in pages} == {"document"}
    items = [text_input("hello"), image_input(examples_dir / CAT), video[0], pages[0]]
    encoded = encoder.encode_document(items, mode="both", max_new_tokens=4)
    for vectors in (encoded.disc, encoded.gen):
        assert vectors is not None and vectors.shape == (4, encoder.hidden_size)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len({tuple(np.round(v, 4)) for v in encoded.disc}) == 4  # different inputs, different vectors


def test_missing_and_corrupt_files_give_one_line_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path, words in [
        (tmp_path / "absent.png", "no such file"),
        (broken, "not a readable image"),
        (empty, "empty"),
    ]:
        with pytest.raises(MediaError, match=words) as caught:
            inputs_from_path(path)
        assert "\n" not in str(caught.value)


def test_a_missing_model_folder_is_one_line_that_offers_the_reference_model(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no model folder at .*no-model-here: check the path") as caught:
        Encoder.from_pretrained(tmp_path / "no-model-here")
    assert "the shipped reference model" in str(caught.value) and "\n" not in str(caught.value)


def test_sampling_is_reproducible_with_a_seed(encoder: Encoder) -> None:
    def sample(seed: int) -> list[str | None]:
        return encoder.encode_document(
            ["x"], mode="gen", do_sample=True, seed=seed, max_new_tokens=16
        ).completion

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_parse_completion_handles_missing_closing_tags() -> None:
    parsed = parse_completion("<think>a dog runs</think><answer><|begin_of_box|>dog<|end_of_box|><gen_emb>")
    assert (parsed.reasoning, parsed.summary, parsed.well_formed) == ("a dog runs", "dog", True)
    unfinished = parse_completion("<think>still thinking")
    assert (unfinished.reasoning, unfinished.summary, unfinished.well_formed) == (
        "still thinking",
        None,
        False,
    )


def test_cli_embed_prints_json_and_fails_after_embedding_readable_inputs(
    tiny_model_dir: Path, examples_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"garbage")
    args = ["embed", "a red car", str(examples_dir / PDF), str(broken), "--model", str(tiny_model_dir)]
    status = ume([*args, "--mode", "both", "--max-new-tokens", "4", "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 1
    assert [line.get("kind") for line in lines] == [
        "text",
        "document",
        "document",
        "document",
        "document",
        None,
    ]
    assert [line.get("page") for line in lines[1:5]] == [1, 2, 3, 4]
    assert len(lines[0]["disc"]) == len(lines[0]["gen"]) == 128
    assert lines[-1]["input"] == str(broken) and "not a readable image" in lines[-1]["error"]


def outputs_in_static_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the fixed-shape step write its states into one buffer per shape, overwritten by every
    step, as a replayed CUDA graph does (on a CPU the step otherwise returns fresh tensors)."""
    from model.engine import graph_step

    body = graph_step.GraphStep._body

    def replayed(self: graph_step.GraphStep) -> None:
        body(self)
        assert self.hidden is not None
        static = getattr(self, "static_hidden", None)
        if static is None or static.shape != self.hidden.shape:
            static = self.static_hidden = self.hidden.clone()
        self.hidden = static.copy_(self.hidden)

    monkeypatch.setattr(graph_step.GraphStep, "_body", replayed)


@pytest.mark.parametrize(("reserve", "static_outputs"), [(1024, False), (8, False), (1024, True)])
def test_fixed_shape_steps_match_the_eager_loop(
    taught: Encoder, examples_dir: Path, reserve: int, static_outputs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CUDA-graph loop's fixed-shape steps (run eagerly here) agree with the eager loop,
    through early-finishing rows (compaction), with a small reserve cache growth, and with the
    graph's outputs overwritten in place by every replay (rows read at their last step)."""
    from model.engine import Sampling, decode

    monkeypatch.setattr(decode, "DECODE_RESERVE", reserve)
    if static_outputs:
        outputs_in_static_buffers(monkeypatch)
    items = mixed_inputs(examples_dir)
    prepared = [taught.prepare(i, task_text(i, document_task(i))) for i in items]
    batch = collate(prepared, taught.token_ids.pad)
    sampling = Sampling(max_new_tokens=90)
    eager = decode.generate_embeddings(
        taught.model, batch, taught.token_ids, sampling, fixed_shape_steps=False
    )
    fixed = decode.generate_embeddings(
        taught.model, batch, taught.token_ids, sampling, fixed_shape_steps=True
    )
    assert fixed.completions == eager.completions
    assert any(len(c) < 90 for c in eager.completions)  # some rows stopped at <gen_emb>
    assert any(taught.token_ids.gen_emb not in c for c in eager.completions)  # read at their last step
    torch.testing.assert_close(fixed.gen, eager.gen, atol=2e-5, rtol=0)
    torch.testing.assert_close(fixed.disc, eager.disc, atol=2e-5, rtol=0)
