"""Cold-start SFT (UME-R1 §4), top to bottom: load, read data, then step until done.

Each step: take a batch of pairs from one source dataset (this process's share when several
run), build the query and target sequences (prompt + assistant message), backpropagate
gen InfoNCE + disc InfoNCE + query LM + target LM (GradCache when `chunk_size` splits the
batch), average gradients over processes, clip, AdamW, cosine schedule. Checkpoints are
ordinary HF directories plus the state for an exact resume (`model.train.checkpoint`).

Design decisions:
- The vision tower is frozen and its merger trains, as in the paper; all LLM weights train
  (or LoRA adapters on them, `lora_rank`); `sharding = "fsdp"` shards everything across
  processes for models too big to copy per GPU. The shared machinery is `model.train.trainer`.
- bf16 is autocast over float32 weights where the device supports it (CUDA with bf16).
- A base Qwen2-VL checkpoint without `<gen_emb>`/`<disc_emb>` gets them added, with their
  input rows copied from `<|object_ref_end|>`/`<|object_ref_start|>` (§1).
"""

from __future__ import annotations

import torch

from model.train.batch import load_pairs_media, pair_batches
from model.train.config import SFTConfig
from model.train.data import Pair, Skipped, load_pairs
from model.train.distributed import min_over_processes
from model.train.gradcache import Chunk, backward_step
from model.train.trainer import Trainer, read_sources


class SFTRun(Trainer):
    """One SFT run: contrastive + LM steps on batches of pairs (resumes if it can)."""

    config: SFTConfig

    def __init__(self, config: SFTConfig, device: str | torch.device | None = None) -> None:
        super().__init__(config, device, shard=config.sharding == "fsdp")

    def read_data(self) -> tuple[list[Pair], Skipped]:
        return read_sources(self.config, load_pairs)

    @property
    def pairs_per_step(self) -> int:
        return self.config.batch_size * self.size

    def chunks(self, pairs: list[Pair]) -> list[Chunk]:
        """This process's pairs as (query, target) tensors, split for GradCache when asked."""
        loaded = load_pairs_media(pairs, self.skipped)
        loaded = loaded[: min_over_processes(len(loaded))]
        size = self.config.chunk_size or len(loaded)
        parts = [loaded[start : start + size] for start in range(0, len(loaded), max(size, 1))]
        processor, ids, cap = self.loaded.processor, self.loaded.ids, self.config.max_completion_tokens
        made = [pair_batches(processor, ids, part, self.budget, cap) for part in parts]
        return [(query.to(self.device), target.to(self.device)) for query, target in made]

    def train_step(self, pairs: list[Pair]) -> dict[str, float] | None:
        """One optimiser step on this process's share of a batch; None if nothing was usable."""
        chunks = self.chunks(self.local_share(pairs))
        if not chunks or (chunks[0][0].labels.shape[0] < 2 and self.size == 1):
            return None  # InfoNCE needs at least one negative
        terms = backward_step(self.loaded.model, chunks, self.config.temperature, self.bf16)
        return terms.as_floats() | self.optimiser_step()
