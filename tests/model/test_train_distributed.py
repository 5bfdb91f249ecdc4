"""In-batch negatives across processes and GradCache chunks give the whole batch's gradients."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from model.encoder import Encoder
from model.inputs import VisionBudget
from model.train.batch import load_pairs_media, pair_batches
from model.train.config import DataSource, SFTConfig
from model.train.data import Pair, Skipped, load_pairs
from model.train.distributed import average_gradients
from model.train.gradcache import Chunk, backward_step
from model.train.loading import Loaded, load_for_training
from model.train.sft import SFTRun
from model.train.tiny_world import write_tiny_world

PAIRS = 4
TEMPERATURE = 0.02


def make_pairs(root: Path) -> list[Pair]:
    return load_pairs(root / "train.jsonl", "released", None, Skipped())


def chunks_of(loaded: Loaded, pairs: list[Pair], size: int) -> list[Chunk]:
    media = load_pairs_media(pairs, Skipped())
    parts = [media[start : start + size] for start in range(0, len(media), size)]
    return [pair_batches(loaded.processor, loaded.ids, part, VisionBudget(), 4096) for part in parts]


def gradients(model_dir: Path, pairs: list[Pair], chunk: int) -> tuple[float, dict[str, torch.Tensor]]:
    """Total loss and parameter gradients of one step on `pairs` in this process."""
    torch.manual_seed(0)
    loaded = load_for_training(str(model_dir), torch.device("cpu"))
    terms = backward_step(loaded.model, chunks_of(loaded, pairs, chunk), TEMPERATURE)
    average_gradients(loaded.model.parameters())
    grads = {n: p.grad.clone() for n, p in loaded.model.named_parameters() if p.grad is not None}
    return float(terms.total), grads


def _worker(rank: int, model_dir: Path, data_root: Path, rendezvous: Path, out: Path) -> None:
    torch.set_num_threads(1)  # two processes on a small CPU: threads would only contend
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        pairs = make_pairs(data_root)
        half = PAIRS // 2
        loss, grads = gradients(model_dir, pairs[rank * half : (rank + 1) * half], chunk=half)
        total = torch.tensor([loss])
        dist.all_reduce(total)
        torch.save({"loss": float(total) / 2, "grads": grads}, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def assert_same_gradients(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for name, grad in want.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-3, atol=1e-5, msg=name)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def data_root(tmp_path: Path) -> Path:
    write_tiny_world(tmp_path / "data", train_shapes=PAIRS, videos=0, pages=0, held_out=1)
    return tmp_path / "data"


def test_two_processes_match_one_process_on_the_whole_batch(
    tiny_model_dir: Path, data_root: Path, tmp_path: Path
) -> None:
    mp.spawn(_worker, args=(tiny_model_dir, data_root, tmp_path / "rendezvous", tmp_path), nprocs=2)
    whole_loss, whole = gradients(tiny_model_dir, make_pairs(data_root), chunk=PAIRS)
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["loss"] == pytest.approx(whole_loss, rel=1e-4)
        assert_same_gradients(result["grads"], whole)


def test_gradcache_chunks_match_the_whole_batch(tiny_model_dir: Path, data_root: Path) -> None:
    pairs = make_pairs(data_root)
    whole_loss, whole = gradients(tiny_model_dir, pairs, chunk=PAIRS)
    cached_loss, cached = gradients(tiny_model_dir, pairs, chunk=1)
    assert cached_loss == pytest.approx(whole_loss, rel=1e-5)
    assert_same_gradients(cached, whole)


def sft_config(
    model_dir: Path, data_root: Path, out: Path, batch_size: int, sharding: str, steps: int = 2
) -> SFTConfig:
    return SFTConfig(
        model=str(model_dir),
        data=[DataSource(path=data_root / "train.jsonl")],
        output_dir=out,
        steps=steps,
        batch_size=batch_size,
        lr=1e-3,
        gradient_checkpointing=False,
        save_every=2,
        image_max_pixels=112 * 112,
        sharding=sharding,  # type: ignore[arg-type]  # a literal the test passes by name
        freeze_vision=False,
    )


def _sharded_worker(rank: int, model_dir: Path, data_root: Path, rendezvous: Path, out: Path) -> None:
    """One sharded step's full gradients, then a short sharded run that saves a checkpoint."""
    from model.train.sharding import shard_model

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        loaded = load_for_training(str(model_dir), torch.device("cpu"))
        shard_model(loaded.model)
        half = PAIRS // 2
        pairs = make_pairs(data_root)[rank * half : (rank + 1) * half]
        terms = backward_step(loaded.model, chunks_of(loaded, pairs, half), TEMPERATURE)
        grads = {n: p.grad.full_tensor() for n, p in loaded.model.named_parameters() if p.grad is not None}
        torch.save({"loss": float(terms.total), "grads": grads}, out / f"sharded{rank}.pt")
        SFTRun(sft_config(model_dir, data_root, out / "run", half, "fsdp"), device="cpu").run(progress=False)
        resumed = SFTRun(sft_config(model_dir, data_root, out / "run", half, "fsdp", steps=3), device="cpu")
        torch.save({"resumed_at": resumed.step}, out / f"resumed{rank}.pt")
        resumed.run(progress=False)
    finally:
        dist.destroy_process_group()


def test_fsdp_gives_the_gradients_of_one_process_and_saves_a_full_checkpoint(
    tiny_model_dir: Path, data_root: Path, tmp_path: Path
) -> None:
    """Sharded over two processes: the whole batch's gradients, and an ordinary checkpoint."""
    from safetensors.torch import load_file

    rendezvous = tmp_path / "rendezvous"
    mp.spawn(_sharded_worker, args=(tiny_model_dir, data_root, rendezvous, tmp_path), nprocs=2)
    whole_loss, whole = gradients(tiny_model_dir, make_pairs(data_root), chunk=PAIRS)
    results = [torch.load(tmp_path / f"sharded{rank}.pt") for rank in (0, 1)]
    assert (results[0]["loss"] + results[1]["loss"]) / 2 == pytest.approx(whole_loss, rel=1e-4)
    for result in results:
        assert_same_gradients(result["grads"], whole)
    assert [torch.load(tmp_path / f"resumed{rank}.pt")["resumed_at"] for rank in (0, 1)] == [2, 2]
    assert (tmp_path / "run" / "checkpoint-3" / "model.safetensors").is_file()  # sharded state restored
    checkpoint = tmp_path / "run" / "checkpoint-2"
    unsharded = load_file(tiny_model_dir / "model.safetensors")
    saved = load_file(checkpoint / "model.safetensors")
    assert saved.keys() == unsharded.keys()  # full weights under their ordinary names
    assert any(not torch.equal(saved[name], unsharded[name]) for name in saved)  # and trained
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["architectures"] == ["Qwen2VLForConditionalGeneration"]
    encoder = Encoder.from_pretrained(checkpoint, device="cpu")
    assert encoder.encode_document(["a cat"], mode="disc").disc is not None
