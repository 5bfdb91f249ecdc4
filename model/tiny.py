"""Build a tiny random UME-R1-shaped checkpoint, fully offline.

Weights and data sets cannot be fetched in tests, so the project builds its own miniature
Qwen2-VL: the same classes, processor, chat template and added tokens as a released UME-R1
checkpoint, only small. It is saved as an ordinary checkpoint directory, so every other path
(`Encoder.from_pretrained`, training, indexing, the UI) runs the real loading code on it.

Design decisions:
- Byte-level tokenizer (256 byte tokens, no merges): round-trips any UTF-8 text with no files.
- The Qwen special tokens come next, in Qwen's order, then `<gen_emb>` and `<disc_emb>` as plain
  added tokens (not special, so decoding keeps them), as in the released checkpoints.
- `<gen_emb>` / `<disc_emb>` input rows start as copies of `<|object_ref_end|>` /
  `<|object_ref_start|>`, the initialisation the method prescribes.
- Vision patching (patch 14, merge 2, temporal patch 2) matches the real model, so the stock
  image and video processors produce the same grids as for a released checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
from tokenizers import pre_tokenizers
from transformers import (
    Qwen2Tokenizer,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)

from model.prompts import DISC_EMB_TOKEN, GEN_EMB_TOKEN, QWEN2_VL_CHAT_TEMPLATE

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

TEXT_HIDDEN = 128
TEXT_LAYERS = 2
VISION_EMBED = 64
# M-RoPE gives height and width the lowest rotary frequencies (mrope_section [4, 6, 6]: time,
# height, width). At Qwen's theta (1e6) they turn less than a thousandth of a radian across a
# small image grid; at 20, width's six turn 0.06-0.15 rad per column, and the reference model
# trained at 20 told left from right at chance; at 2 (every frequency 0.52-1 rad per position)
# the same recipe sees both axes (docs/findings.md).
ROPE_THETA = 2.0


def word_merges(words: Sequence[str]) -> list[tuple[str, str]]:
    """BPE merges that make each word (with and without a leading space) one token.

    Short sequences are what make CPU training fast (a byte per token costs ~45% of the speed).
    Merges grow each word left to right; shorter prefixes rank first so shared prefixes agree,
    and the spaced forms rank before the bare ones so a bare word's merges never split a spaced
    word. Any other text still falls back to bytes, so everything round-trips.
    """
    to_bytes = pre_tokenizers.ByteLevel(add_prefix_space=False)
    chains: set[tuple[int, int, str, str]] = set()
    for word in words:
        for bare, form in ((1, word), (0, " " + word)):
            symbols = "".join(piece for piece, _ in to_bytes.pre_tokenize_str(form))
            for end in range(2, len(symbols) + 1):
                chains.add((bare, end, symbols[: end - 1], symbols[end - 1]))
    return [(left, right) for _, _, left, right in sorted(chains)]


def build_tokenizer(words: Sequence[str] = ()) -> Qwen2Tokenizer:
    """A byte-level Qwen2 tokenizer with the Qwen special tokens and the two UME tokens.

    `words` (optional) become single tokens through BPE merges; the default has none.
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {char: index for index, char in enumerate(alphabet)}
    merges = word_merges(words)
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,  # type: ignore[arg-type]  # tuples: the form this tokenizer accepts
        unk_token=None,  # type: ignore[arg-type]  # byte-level: every input has a token
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS)})
    tokenizer.add_tokens([GEN_EMB_TOKEN, DISC_EMB_TOKEN], special_tokens=False)
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tokenizer


def token_id(tokenizer: Qwen2Tokenizer, token: str) -> int:
    """The id of one token (the stubs type `convert_tokens_to_ids` for a list too)."""
    return int(tokenizer.convert_tokens_to_ids(token))  # type: ignore[arg-type]


def build_config(tokenizer: Qwen2Tokenizer, rope_theta: float = ROPE_THETA) -> Qwen2VLConfig:
    """A Qwen2-VL config small enough to run in milliseconds on a CPU."""

    ids = partial(token_id, tokenizer)
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": TEXT_HIDDEN,
        "intermediate_size": 4 * TEXT_HIDDEN,
        "num_hidden_layers": TEXT_LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        # mrope sections sum to head_dim / 2 (head_dim = 128 / 4 = 32).
        "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta, "mrope_section": [4, 6, 6]},
        "bos_token_id": ids("<|endoftext|>"),
        "eos_token_id": ids("<|im_end|>"),
        "pad_token_id": ids("<|endoftext|>"),
    }
    vision_config = {
        "depth": 2,
        "embed_dim": VISION_EMBED,
        "hidden_size": TEXT_HIDDEN,
        "num_heads": 4,
        "mlp_ratio": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    return Qwen2VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )


def init_ume_token_rows(model: Qwen2VLForConditionalGeneration, tokenizer: Qwen2Tokenizer) -> None:
    """Copy `<|object_ref_end|>` into `<gen_emb>` and `<|object_ref_start|>` into `<disc_emb>`."""
    ids = tokenizer.convert_tokens_to_ids
    table: torch.Tensor = model.get_input_embeddings().weight  # type: ignore[assignment]
    with torch.no_grad():
        table[ids(GEN_EMB_TOKEN)] = table[ids("<|object_ref_end|>")]
        table[ids(DISC_EMB_TOKEN)] = table[ids("<|object_ref_start|>")]


def build_processor(tokenizer: Qwen2Tokenizer) -> Qwen2VLProcessor:
    """The stock Qwen2-VL processor (image + video) around the tiny tokenizer."""
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )


def build_tiny_model(
    out_dir: Path, seed: int = 0, words: Sequence[str] = (), rope_theta: float = ROPE_THETA
) -> Path:
    """Write a tiny random UME-R1 checkpoint to `out_dir` and return the directory.

    `words` become single tokens (see `word_merges`); without them the tokenizer is byte-level.
    `rope_theta` sets the language model's rotary base (its M-RoPE frequencies).
    """
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(words)
    model = Qwen2VLForConditionalGeneration(build_config(tokenizer, rope_theta))
    init_ume_token_rows(model, tokenizer)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    build_processor(tokenizer).save_pretrained(out_dir)
    return out_dir
