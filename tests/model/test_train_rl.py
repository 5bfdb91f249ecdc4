"""`ume train rl` end to end on the tiny model: RL data, rollouts, checkpoints, exact resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app.cli import main as ume
from model.encoder import Encoder
from model.train.config import DataSource, RLConfig
from model.train.data import Skipped
from model.train.rl import RLRun
from model.train.rl_data import load_rl_pairs
from model.train.tiny_world import write_rl_split
from tests.model.train_helpers import assert_resume_is_exact

LOGGED = {"reward", "format", "rank", "gap", "embedding_reward", "kl", "clip_fraction", "loss"}
PER_SIDE = {"reward", "embedding_reward", "format", "group_std", "zero_spread", "kl"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def rl_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rl_split(tmp_path_factory.mktemp("rl-world"), shapes=6, videos=2)


def config(model_dir: Path, data: Path, out: Path, **overrides: Any) -> RLConfig:
    values: dict[str, Any] = {
        "model": str(model_dir),
        "data": [DataSource(path=data)],
        "output_dir": out,
        "steps": 3,
        "lr": 1e-4,
        "pairs_per_step": 2,
        "micro_batch": 2,
        "group_size": 2,
        "max_new_tokens": 6,
        "gradient_checkpointing": False,
        "save_every": 2,
        "log_every": 1,
        "image_max_pixels": 56 * 56,
    }
    return RLConfig.model_validate(values | overrides)


def test_released_rl_records_are_read_and_bad_ones_counted(tmp_path: Path) -> None:
    Image.new("RGB", (56, 56), "red").save(tmp_path / "red.png")
    good = {"qry_text": "<image>\nFind a red square", "pos_image": "red.png", "pos_text": ""}
    records = [
        good,
        good | {"dataset_name": "videos", "pos_image": None, "pos_video": ["red.png", "red.png"]},
        good | {"pos_image": "missing.png"},
        good | {"pos_video": ["red.png"]},  # an image and a video on one side
        {"qry_text": "", "pos_image": "red.png"},  # empty query side
    ]
    path = tmp_path / "rl.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\nnot json\n")
    skipped = Skipped()
    pairs = load_rl_pairs(path, "released", None, skipped)
    assert [p.dataset for p in pairs] == ["default", "videos"]
    assert pairs[0].query.task == "Find a red square" and pairs[0].query.image is None
    assert (
        pairs[0].target.task == "Represent the given image." and pairs[0].target.image == tmp_path / "red.png"
    )
    assert pairs[1].target.video == (tmp_path / "red.png",) * 2
    assert skipped.total == 4


def test_short_run_logs_the_reward_terms_and_saves_a_checkpoint_the_encoder_loads(
    tiny_model_dir: Path, rl_data: Path, tmp_path: Path
) -> None:
    run = RLRun(config(tiny_model_dir, rl_data, tmp_path / "run", steps=2))
    final = run.run(progress=False)
    assert final == tmp_path / "run" / "checkpoint-2"
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    assert lines[-1].keys() >= LOGGED | {f"{side}_{key}" for side in ("query", "target") for key in PER_SIDE}
    assert all(line["dataset"] in {"tiny_shapes", "tiny_videos"} for line in lines)  # the batch's own
    assert 0 <= lines[-1]["zero_spread"] <= 1
    assert lines[-1]["kl"] > 0  # the policy moved away from the frozen start model
    encoder = Encoder.from_pretrained(final, device="cpu")
    encoded = encoder.encode_document(["a cat"], mode="gen", max_new_tokens=4)
    assert encoded.gen is not None and encoded.gen.shape == (1, encoder.hidden_size)


def test_fixed_batches_are_rewarded_before_and_after_with_the_same_seeds(
    tiny_model_dir: Path, rl_data: Path, tmp_path: Path
) -> None:
    """The gain of a run is read on the same pairs and rollout seeds; a run that learns nothing
    (a learning rate too small to move a weight) scores exactly the same before and after."""
    fixed = {"fixed_eval_batches": 2, "steps": 2}
    control = RLRun(config(tiny_model_dir, rl_data, tmp_path / "control", lr=1e-15, **fixed))
    control.run(progress=False)
    record = json.loads((tmp_path / "control" / "fixed_eval.json").read_text())
    assert record["batches"] == 2
    for side in ("query", "target"):
        assert 0 <= record["before"][f"{side}_format"] <= 1
        assert record["before"][f"{side}_embedding_reward"] == pytest.approx(
            record["before"][f"{side}_reward"] - record["before"][f"{side}_format"], abs=1e-3
        )
    assert record["before"] == record["after"]
    assert set(record["before"]["by_dataset"]) <= {"tiny_shapes", "tiny_videos"}
    learning = RLRun(config(tiny_model_dir, rl_data, tmp_path / "learning", lr=5e-2, **fixed))
    learning.run(progress=False)
    moved = json.loads((tmp_path / "learning" / "fixed_eval.json").read_text())
    assert moved["before"] == record["before"]  # the same batches and seeds from the same start
    assert moved["after"] != moved["before"]


def test_resume_continues_at_the_same_step_with_the_same_data(
    tiny_model_dir: Path, rl_data: Path, tmp_path: Path
) -> None:
    assert_resume_is_exact(lambda out: RLRun(config(tiny_model_dir, rl_data, out)), tmp_path)


def test_cli_runs_rl_and_reports_bad_settings_in_one_line(
    tiny_model_dir: Path, rl_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["train", "rl", "--model", str(tiny_model_dir), "--data", str(rl_data)]
    small = ["--group-size", "2", "--max-new-tokens", "6", "--gradient-checkpointing", "false"]
    sizes = ["--pairs-per-step", "2", "--micro-batch", "2", "--image-max-pixels", "3136"]
    status = ume([*common, *small, *sizes, "--steps", "1", "--output-dir", str(tmp_path / "o")])
    assert status == 0
    assert "checkpoint-1" in capsys.readouterr().out
    fixed = ["--fixed-eval-batches", "1", "--fixed-eval-data", str(rl_data)]
    status = ume([*common, *small, *sizes, *fixed, "--steps", "1", "--output-dir", str(tmp_path / "f")])
    assert status == 0
    assert json.loads((tmp_path / "f" / "fixed_eval.json").read_text()).keys() >= {"before", "after"}
    capsys.readouterr()
    status = ume(
        [*common, "--pairs-per-step", "3", "--micro-batch", "2", "--output-dir", str(tmp_path / "x")]
    )
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert "multiple of micro_batch" in error and error.count("\n") == 0


def test_lora_rollouts_sample_from_the_adapted_policy(
    tiny_model_dir: Path, rl_data: Path, tmp_path: Path
) -> None:
    """The decode loop reads raw weights, so rollouts must run with the adapters merged in."""
    from model.engine import Sampling, generate_embeddings, teacher_forced_gen_embeddings
    from model.inputs import collate
    from model.train.lora import merged_adapters

    run = RLRun(config(tiny_model_dir, rl_data, tmp_path / "lora", steps=2, lora_rank=4, lr=5e-2))
    run.run(progress=False)
    queries, _ = run.prompts(run.pairs[:2])
    batch, ids, model = collate(queries, run.loaded.ids.pad), run.loaded.ids, run.loaded.model.eval()
    greedy = Sampling(max_new_tokens=6)

    def decode_vs_policy() -> float:
        """Gap between the decode loop's gen vectors and the adapted policy's own forward."""
        decoded = generate_embeddings(model, batch, ids, greedy)
        assert decoded.gen is not None
        policy = teacher_forced_gen_embeddings(model, batch, decoded.completions, ids)
        return float((decoded.gen - policy).abs().max())

    with merged_adapters(run.adapters):
        assert decode_vs_policy() < 1e-4
    assert decode_vs_policy() > 1e-3  # without the merge the loop would sample another model
