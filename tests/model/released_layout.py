"""Rewrite a checkpoint directory in the layout the released UME-R1 weights were saved in.

The released checkpoints were written by transformers 4.x: a flat `config.json` (text settings at
the top level, `rope_scaling = {"type": "mrope", ...}`), a flat `preprocessor_config.json` with
`min_pixels` / `max_pixels`, the chat template in `chat_template.json`, and a tokenizer config
with `additional_special_tokens`. Weight names are already the 4.x ones (transformers 5 saves
them so).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

VISION_KEYS = ("depth", "embed_dim", "hidden_size", "mlp_ratio", "num_heads", "patch_size")
VISION_KEYS_4X = ("spatial_merge_size", "temporal_patch_size", "hidden_act")


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A transformers 5 Qwen2-VL config as transformers 4.49 wrote it."""
    text = dict(config["text_config"])
    rope = text.pop("rope_parameters")
    for key in ("model_type", "layer_types", "dtype"):
        text.pop(key, None)
    vision = {key: config["vision_config"][key] for key in (*VISION_KEYS, *VISION_KEYS_4X)}
    vision |= {"in_chans": 3, "spatial_patch_size": vision["patch_size"]}
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "model_type": "qwen2_vl",
        **text,
        "rope_theta": rope["rope_theta"],
        "rope_scaling": {"type": "mrope", "mrope_section": rope["mrope_section"]},
        "vision_config": vision,
        "image_token_id": config["image_token_id"],
        "video_token_id": config["video_token_id"],
        "vision_start_token_id": config["vision_start_token_id"],
        "vision_end_token_id": config["vision_end_token_id"],
        "vision_token_id": config["image_token_id"] - 1,
        "tie_word_embeddings": config["tie_word_embeddings"],
        "torch_dtype": "float32",
        "transformers_version": "4.49.0",
    }


def flat_preprocessor(processor: dict[str, Any], min_pixels: int, max_pixels: int) -> dict[str, Any]:
    image = processor["image_processor"]
    kept = ("do_convert_rgb", "do_normalize", "do_rescale", "do_resize", "image_mean", "image_std")
    return {
        **{key: image[key] for key in kept},
        "min_pixels": min_pixels,
        "max_pixels": max_pixels,
        "merge_size": image["merge_size"],
        "patch_size": image["patch_size"],
        "temporal_patch_size": image["temporal_patch_size"],
        "resample": image["resample"],
        "rescale_factor": image["rescale_factor"],
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2VLProcessor",
    }


def write_released_layout(source: Path, out: Path, min_pixels: int = 768, max_pixels: int = 2359296) -> Path:
    """Copy the checkpoint at `source` to `out` in the 4.x layout; returns `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "tokenizer.json", "generation_config.json"):
        shutil.copy(source / name, out / name)
    read = lambda name: json.loads((source / name).read_text())  # noqa: E731
    write = lambda name, data: (out / name).write_text(json.dumps(data, indent=2))  # noqa: E731
    write("config.json", flat_config(read("config.json")))
    write(
        "preprocessor_config.json", flat_preprocessor(read("processor_config.json"), min_pixels, max_pixels)
    )
    write("chat_template.json", {"chat_template": (source / "chat_template.jinja").read_text()})
    tokenizer = read("tokenizer_config.json")
    tokenizer["additional_special_tokens"] = tokenizer.pop("extra_special_tokens")
    tokenizer.pop("backend", None)
    write("tokenizer_config.json", tokenizer)
    return out
