"""The token ids the engine acts on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenIds:
    """Token ids the loop needs, looked up through the tokenizer of the checkpoint."""

    gen_emb: int
    disc_emb: int
    eos: int
    pad: int
