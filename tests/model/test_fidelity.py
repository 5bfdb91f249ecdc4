"""What the released UME-R1 weights saw, stage by stage, matched on the tiny model.

The authors' evaluation and RL pass every image and video frame through qwen-vl-utils'
`fetch_image` (at least 56x56 px) before the processor; their SFT does not. Their RL samples with
transformers' default top-k of 50 and runs past `<gen_emb>` to `<|im_end|>`; their evaluation
reads `generate`'s last hidden state when no `<gen_emb>` was written; and their checkpoints were
saved in the transformers 4.x layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.encoder import Encoder, document_task, task_text
from model.engine import Sampling, pick_next_tokens, teacher_forced_gen_embeddings
from model.eval.mmeb_data import sample_uniform
from model.inputs import (
    EVALUATION_BUDGET,
    INDEXING_BUDGET,
    SFT_BUDGET,
    collate,
    image_input,
    prepare,
    text_input,
)
from model.train.batch import load_pairs_media
from model.train.config import RLConfig, SFTConfig
from model.train.data import Pair, Side, Skipped
from model.train.rl import rollout_sampling
from model.train.rollout import completion_batch, sample_rollouts
from tests.conftest import TAUGHT_COMPLETIONS, taught_inputs
from tests.model.released_layout import write_released_layout


def test_a_text_query_carries_a_56px_blank_as_in_evaluation_and_rl(encoder: Encoder) -> None:
    prepared = encoder.prepare(text_input("a red kite"), "Find me an everyday image: a red kite")
    assert prepared.image_grid_thw is not None
    assert prepared.image_grid_thw.tolist() == [[1, 4, 4]]  # 56x56 px: 4 vision tokens


def test_sft_keeps_the_28px_blank_and_its_tiny_frames(encoder: Encoder) -> None:
    prepared = prepare(encoder.processor, text_input("words"), "Represent the given text: words", SFT_BUDGET)
    assert prepared.image_grid_thw is not None and prepared.image_grid_thw.tolist() == [[1, 2, 2]]
    assert SFTConfig().budget == SFT_BUDGET
    assert RLConfig().budget == EVALUATION_BUDGET


def frames(folder: Path, count: int, size: tuple[int, int] = (896, 672)) -> tuple[Path, ...]:
    paths = []
    for index in range(count):
        path = folder / f"frame_{index}.png"
        Image.new("RGB", size, (20 * index, 100, 200)).save(path)
        paths.append(path)
    return tuple(paths)


def test_rl_gives_a_text_side_opposite_a_video_a_blank_one_frame_video(
    encoder: Encoder, tmp_path: Path
) -> None:
    clip = Side("Understand the content of the provided video.", "", video=frames(tmp_path, 2, (56, 56)))
    words = Side("Find a video that contains the following visual content: a dot", "")
    ((query, _target, _),) = load_pairs_media([Pair("v", words, clip)], Skipped(), blank_like_partner=True)
    prepared = prepare(encoder.processor, query, words.task, EVALUATION_BUDGET)
    assert prepared.video_grid_thw is not None and prepared.video_grid_thw.tolist() == [[1, 4, 4]]
    assert prepared.image_grid_thw is None
    ((plain_query, _, _),) = load_pairs_media([Pair("v", words, clip)], Skipped())  # SFT: an image
    sft = prepare(encoder.processor, plain_query, words.task, SFT_BUDGET)
    assert sft.video_grid_thw is None and sft.image_grid_thw is not None


def test_evaluation_and_rl_frames_take_image_limits_indexing_keeps_a_budget(
    encoder: Encoder, tmp_path: Path
) -> None:
    from model.inputs import EmbedInput

    clip = EmbedInput(video_frames=[Image.open(p) for p in frames(tmp_path, 8)])
    task = "Understand the content of the provided video."
    evaluated = prepare(encoder.processor, clip, task, EVALUATION_BUDGET).video_grid_thw
    indexed = prepare(encoder.processor, clip, task, INDEXING_BUDGET).video_grid_thw
    assert evaluated is not None and evaluated.tolist() == [[4, 48, 64]]  # 896x672 kept whole
    assert indexed is not None and int(indexed[0, 1] * indexed[0, 2]) * 14 * 14 <= 256 * 28 * 28 * 4


def test_mmeb_evaluation_embeds_under_the_evaluation_budget(
    encoder: Encoder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from model.eval import runner

    seen = []
    monkeypatch.setattr(runner, "select_tasks", lambda root, tasks: ["one"])
    monkeypatch.setattr(runner, "write_reports", lambda *args: None)
    monkeypatch.setattr(runner, "evaluate_task", lambda enc, *args: seen.append(enc.budget) or _no_scores())
    config = runner.MmebConfig(data_root=tmp_path, out_dir=tmp_path)
    runner.run_mmeb(config, encoder, say=lambda line: None)
    assert encoder.budget == INDEXING_BUDGET and seen == [EVALUATION_BUDGET]


def _no_scores():
    from types import SimpleNamespace

    return SimpleNamespace(scores={})


def test_evaluation_frame_picks_truncate_like_the_authors() -> None:
    saved = [Path(f"frame_{i:04d}.jpg") for i in range(10)]
    picked = [int(p.stem.split("_")[1]) for p in sample_uniform(saved, 8)]
    assert picked == [0, 1, 2, 3, 5, 6, 7, 9]  # np.linspace(0, 9, 8, dtype=int)
    assert len(sample_uniform(saved[:5], 8)) == 5  # fewer frames than wanted: all of them


def test_rollouts_sample_among_the_50_likeliest_tokens() -> None:
    assert RLConfig().sampling_top_k == 50
    logits = torch.linspace(0, 1, 300).repeat(400, 1)  # flat enough that the tail would be drawn
    drawn = pick_next_tokens(logits, Sampling(do_sample=True, top_k=50), torch.Generator().manual_seed(0))
    assert int(drawn.min()) >= 250 and len(set(drawn.tolist())) > 30
    full = pick_next_tokens(logits, Sampling(do_sample=True), torch.Generator().manual_seed(0))
    assert int(full.min()) < 250


def test_rollouts_run_on_to_im_end_and_the_loss_mask_covers_it(taught: Encoder) -> None:
    items = taught_inputs()
    prompts = [taught.prepare(i, task_text(i, document_task(i))) for i in items]
    sampling = rollout_sampling(RLConfig(max_new_tokens=120), taught.model.config, seed=0)
    assert sampling.top_k == 50 and not sampling.stop_at_gen_emb
    greedy = Sampling(max_new_tokens=120, stop_at_gen_emb=False)
    rollouts = sample_rollouts(
        taught.model, taught.processor.tokenizer, taught.token_ids, prompts, 1, greedy, 2
    )
    assert rollouts.texts == [t + "<|im_end|>" for t in TAUGHT_COMPLETIONS]
    batch = completion_batch(rollouts.prompts, rollouts.completions, taught.token_ids, torch.device("cpu"))
    ends = batch.inputs["input_ids"][:, -1]
    assert ends.tolist() == [taught.token_ids.eos] * 2 and batch.mask[:, -1].tolist() == [1.0, 1.0]
    stopped = taught.encode_document(items, mode="gen", max_new_tokens=120)
    np.testing.assert_allclose(rollouts.gen.numpy(), stopped.gen, atol=1e-5)  # gen still at <gen_emb>


def test_without_gen_emb_gen_is_generates_last_hidden_state(encoder: Encoder) -> None:
    """The authors' evaluation reads `hidden_states[-1][-1][:, -1]` of `generate` when no
    `<gen_emb>` was written: the step that produced the final token, not one more step."""
    item = image_input(Image.new("RGB", (64, 48), (0, 90, 200)))
    prepared = encoder.prepare(item, task_text(item, document_task(item)))
    batch = collate([prepared], encoder.token_ids.pad)
    with torch.no_grad():
        reference = encoder.model.generate(
            **batch,
            max_new_tokens=7,
            do_sample=False,
            output_hidden_states=True,
            return_dict_in_generate=True,
        )
    authors = torch.nn.functional.normalize(reference.hidden_states[-1][-1][0, -1].float(), dim=-1)
    ours = encoder.encode_document([item], mode="gen", max_new_tokens=7)
    generated = reference.sequences[0, batch["input_ids"].shape[1] :].tolist()
    assert encoder.token_ids.gen_emb not in generated
    np.testing.assert_allclose(ours.gen[0], authors.numpy(), atol=1e-5)
    completions = [generated]
    forced = teacher_forced_gen_embeddings(encoder.model, batch, completions, encoder.token_ids)
    np.testing.assert_allclose(forced[0].numpy(), ours.gen[0], atol=1e-5)  # RL scoring agrees


@pytest.mark.parametrize("limits", [(768, 2359296), (200704, 401408)])
def test_the_released_checkpoint_layout_loads_and_embeds_identically(
    tiny_model_dir: Path, encoder: Encoder, tmp_path: Path, limits: tuple[int, int]
) -> None:
    """A transformers 4.x directory (flat config with mrope rope_scaling, min/max_pixels in
    preprocessor_config.json, chat_template.json) gives our vectors; its pixel limits are ignored."""
    released = Encoder.from_pretrained(write_released_layout(tiny_model_dir, tmp_path / "released", *limits))
    clip = [Image.new("RGB", (120, 90), (30 * i, 60, 90)) for i in range(4)]
    from model.inputs import EmbedInput

    items = [
        text_input("hello"),
        image_input(Image.new("RGB", (300, 200), (10, 200, 30))),
        EmbedInput(video_frames=clip),
    ]
    ours = encoder.encode_document(items, mode="both", max_new_tokens=5)
    theirs = released.encode_document(items, mode="both", max_new_tokens=5)
    assert theirs.completion == ours.completion
    assert (
        ours.disc is not None and theirs.disc is not None and ours.gen is not None and theirs.gen is not None
    )
    np.testing.assert_allclose(theirs.disc, ours.disc, atol=1e-6)
    np.testing.assert_allclose(theirs.gen, ours.gen, atol=1e-6)
