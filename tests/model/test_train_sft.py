"""`ume train sft` end to end on the tiny model: data readers, checkpoints, exact resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from app.cli import main as ume
from model.encoder import Encoder
from model.inputs import EVALUATION_BUDGET, VisionBudget, prepare, text_input
from model.tiny import build_processor, build_tokenizer
from model.train.config import DataSource, SFTConfig, load_config
from model.train.data import Skipped, batch_order, load_pairs
from model.train.sft import SFTRun
from model.train.tiny_world import write_clip_gallery, write_fresh_renders, write_tiny_world
from tests.conftest import REPO
from tests.model.train_helpers import assert_resume_is_exact

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-world")
    write_tiny_world(root, train_shapes=6, videos=2, pages=2, held_out=1)
    return root / "train.jsonl"


def config(model_dir: Path, data: Path, out: Path, **overrides: Any) -> SFTConfig:
    values: dict[str, Any] = {
        "model": str(model_dir),
        "data": [DataSource(path=data)],
        "output_dir": out,
        "steps": 4,
        "batch_size": 2,
        "lr": 1e-3,
        "gradient_checkpointing": False,
        "save_every": 2,
        "image_max_pixels": 112 * 112,
    }
    return SFTConfig.model_validate(values | overrides)


def test_released_records_read_with_tags_stripped_and_bad_ones_counted(tmp_path: Path) -> None:
    Image.new("RGB", (56, 56), "red").save(tmp_path / "red.png")
    human = "<image><video>\nFind a red thing\n<disc_emb>\nRepresent ..."
    good_side = {"conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": "<think>x"}]}
    records = [
        {"dataset_name": "a", "qry": good_side, "pos": good_side | {"image": "red.png"}},
        {"dataset_name": "a", "qry": good_side, "pos": good_side | {"image": "missing.png"}},
        {"dataset_name": "a", "qry": {"conversations": []}, "pos": good_side},
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\nnot json\n")
    skipped = Skipped()
    pairs = load_pairs(path, "released", None, skipped)
    assert len(pairs) == 1
    assert pairs[0].query.task == "Find a red thing" and pairs[0].query.image is None
    assert pairs[0].target.image == tmp_path / "red.png"
    assert pairs[0].target.completion.endswith("<gen_emb>")
    assert skipped.reasons == {
        "missing media file": 1,
        "conversations need a human and a gpt turn": 1,
        "unparsable JSON line": 1,
    }


def test_plain_records_get_inference_task_texts(tmp_path: Path) -> None:
    Image.new("RGB", (56, 56), "blue").save(tmp_path / "blue.png")
    record = {"query": "a blue square", "target_image": "blue.png", "target_reasoning": "blue"}
    path = tmp_path / "plain.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps({"query": "no target"}) + "\n")
    skipped = Skipped()
    (pair,) = load_pairs(path, "plain", None, skipped)
    assert pair.query.task == "Find me an everyday image that matches the given caption: a blue square"
    assert pair.target.task == "Represent the given image."
    assert pair.target.completion == "<think>blue</think><answer><gen_emb>"
    assert skipped.reasons == {"target side is empty": 1}


def test_batches_hold_one_dataset_each(world: Path) -> None:
    pairs = load_pairs(world, "released", None, Skipped())
    for batch in batch_order(pairs, batch_size=2, seed=0, epoch=0):
        assert len({pairs[i].dataset for i in batch}) == 1


def test_short_run_saves_a_checkpoint_the_encoder_loads(
    tiny_model_dir: Path, world: Path, tmp_path: Path
) -> None:
    run = SFTRun(config(tiny_model_dir, world, tmp_path / "run", steps=2))
    final = run.run(progress=False)
    assert final == tmp_path / "run" / "checkpoint-2"
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"gen_nce", "disc_nce", "lm_query", "lm_target"} <= lines[-1].keys()
    encoder = Encoder.from_pretrained(final, device="cpu")
    encoded = encoder.encode_document(["a cat"], mode="both", max_new_tokens=4)
    assert encoded.disc is not None and encoded.disc.shape == (1, encoder.hidden_size)


def test_resume_continues_at_the_same_step_with_the_same_data(
    tiny_model_dir: Path, world: Path, tmp_path: Path
) -> None:
    assert_resume_is_exact(lambda out: SFTRun(config(tiny_model_dir, world, out)), tmp_path)


def test_cli_flags_override_the_config_file(
    tiny_model_dir: Path, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "sft.toml"
    settings.write_text(
        f'model = "{tiny_model_dir}"\nsteps = 50\nbatch_size = 2\ngradient_checkpointing = false\n'
        f'[[data]]\npath = "{world}"\n'
    )
    status = ume(
        ["train", "sft", "--config", str(settings), "--steps", "1", "--output-dir", str(tmp_path / "o")]
    )
    assert status == 0
    assert (tmp_path / "o" / "checkpoint-1" / "config.json").is_file()
    assert "checkpoint-1" in capsys.readouterr().out


def test_cli_reports_a_bad_setting_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = ume(["train", "sft", "--data", str(tmp_path / "x.jsonl"), "--steps", "zero"])
    assert status == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_word_tokenizer_makes_known_words_single_tokens_and_round_trips() -> None:
    from model.tiny import build_tokenizer

    tokenizer = build_tokenizer(["red", "circle"])
    text = "a red circle, not a redder circlet <gen_emb>"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert len(tokenizer(" red circle")["input_ids"]) == 2
    assert len(build_tokenizer()) < len(tokenizer)


def test_lora_trains_adapters_and_saves_merged_plain_weights(
    tiny_model_dir: Path, world: Path, tmp_path: Path
) -> None:
    """Under LoRA the LLM's own weights stay put, and the checkpoint is the merged model."""
    run = SFTRun(config(tiny_model_dir, world, tmp_path / "lora", steps=2, lora_rank=4, lr=1e-2))
    query_weight = "model.language_model.layers.0.self_attn.q_proj.base_layer.weight"
    base_query = dict(run.loaded.model.named_parameters())[query_weight].clone()
    final = run.run(progress=False)
    assert final is not None
    trained = dict(run.loaded.model.named_parameters())
    torch.testing.assert_close(
        trained["model.language_model.layers.0.self_attn.q_proj.base_layer.weight"], base_query
    )
    assert all("lora_" in name or ".merger." in name for name, p in trained.items() if p.requires_grad)
    encoder = Encoder.from_pretrained(final, device="cpu")
    saved = encoder.encode_document(["a red circle"], mode="disc").disc
    live = Encoder(run.loaded.model.eval(), run.loaded.processor, "live").encode_document(
        ["a red circle"], mode="disc"
    )
    assert saved is not None and live.disc is not None
    torch.testing.assert_close(torch.from_numpy(saved), torch.from_numpy(live.disc), rtol=1e-4, atol=1e-5)


def test_lora_resume_continues_exactly(tiny_model_dir: Path, world: Path, tmp_path: Path) -> None:
    settings = {"lora_rank": 4, "lr": 1e-2}
    assert_resume_is_exact(lambda out: SFTRun(config(tiny_model_dir, world, out, **settings)), tmp_path)


def test_a_fresh_run_starts_its_log_afresh_and_a_resumed_one_appends(
    tiny_model_dir: Path, world: Path, tmp_path: Path
) -> None:
    def logged_steps() -> list[int]:
        lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["step"] for line in lines]

    SFTRun(config(tiny_model_dir, world, tmp_path / "run", steps=2, log_every=1)).run(progress=False)
    assert logged_steps() == [1, 2]
    SFTRun(config(tiny_model_dir, world, tmp_path / "run", steps=3, log_every=1)).run(progress=False)
    assert logged_steps() == [1, 2, 3]  # resumed at step 2: appended
    fresh = config(tiny_model_dir, world, tmp_path / "run", steps=1, log_every=1, resume=False)
    SFTRun(fresh).run(progress=False)
    assert logged_steps() == [1]  # not the earlier run's steps


def test_fresh_renders_join_the_world_without_touching_its_files(tmp_path: Path) -> None:
    """The reference model's second SFT stage adds renders beside the world it was trained on."""
    train, _ = write_tiny_world(tmp_path, train_shapes=1, videos=2, pages=4, held_out=1)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    fresh = write_fresh_renders(tmp_path, videos=2, pages=4, seed=5)
    assert all(path.read_bytes() == data for path, data in before.items())
    names = {record["dataset_name"] for record in fresh}
    assert names == {"tiny_videos", "tiny_pages"} and len(fresh) == 6
    fresh_file = train.with_name("fresh.jsonl")
    fresh_file.write_text("".join(json.dumps(record) + "\n" for record in fresh))
    pairs = load_pairs(fresh_file, "released", None, Skipped())
    assert len(pairs) == 6
    videos = [pair.target.video for pair in pairs if pair.dataset == "tiny_videos"]
    assert all(len(frames or []) == 8 for frames in videos)  # the indexer's frames per segment


def test_a_clip_gallery_holds_distinct_motions_rendered_afresh(tmp_path: Path) -> None:
    """Each extra gallery is a 48-way choice like the held-out clips: distinct motions (one right
    answer each), new renders under each seed, frames on disk as the trainer reads them."""
    files = [write_clip_gallery(tmp_path, seed=seed, prefix=f"g{seed}", motions=6) for seed in (1, 2)]
    first, second = (load_pairs(path, "released", None, Skipped()) for path in files)
    assert len(first) == 6 and len({pair.query.task for pair in first}) == 6
    assert {pair.dataset for pair in first + second} == {"tiny_videos"}
    frames = [frame for pair in first + second for frame in pair.target.video]
    assert len(frames) == 12 * 8 and all(frame.is_file() for frame in frames)
    assert {pair.query.task for pair in first} != {pair.query.task for pair in second}


@pytest.mark.parametrize(
    "config_file", sorted((REPO / "benchmarks").glob("*_sft*.toml")), ids=lambda path: path.name
)
def test_a_tiny_model_trains_text_queries_on_the_blank_they_are_searched_with(config_file: Path) -> None:
    """A text query carries a blank image, 4 vision tokens at search and evaluation. A tiny model
    trained from random weights on the authors' 1-token SFT blank meets another input at search,
    and its held-out gen Hit@1 after SFT falls to about one half; so every tiny SFT config gives
    the blank the search's grid."""
    processor = build_processor(build_tokenizer())
    query = text_input("one red circle at the top left")

    def blank_grid(budget: VisionBudget) -> list[list[int]]:
        prepared = prepare(processor, query, "one red circle at the top left", budget)
        assert prepared.image_grid_thw is not None
        return prepared.image_grid_thw.tolist()

    config = load_config(config_file, SFTConfig)
    assert blank_grid(config.budget) == blank_grid(EVALUATION_BUDGET)
