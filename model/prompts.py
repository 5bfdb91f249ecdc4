"""The exact UME-R1 prompt: instruction text, task templates, chat rendering, blank image.

Everything that builds a prompt (inference, training, evaluation) calls this module, so the
released weights always see the text they were trained on. The rendered string is the Qwen2-VL
chat template's output for one user turn with the media first, then the text; we render it
ourselves so the prompt does not depend on whichever template a checkpoint happens to ship.
"""

from __future__ import annotations

from typing import Literal

from PIL import Image

GEN_EMB_TOKEN = "<gen_emb>"
DISC_EMB_TOKEN = "<disc_emb>"

INSTRUCTION = (
    "Represent the above input text, images, videos, or any combination of the three as "
    "embeddings. First output the thinking process in <think> </think> tags and then summarize "
    "the entire input in a word or sentence. Finally, use the <gen_emb> tag to represent the "
    "entire input."
)

SYSTEM_PROMPT = "You are a helpful assistant."

MediaKind = Literal["image", "video"]
TargetKind = Literal["text", "image", "video", "document"]

# Query-side task texts, keyed by what the query searches for. `{text}` is the user's words.
QUERY_TASKS: dict[str, str] = {
    "image": "Find me an everyday image that matches the given caption: {text}",
    "video": "Find a video that contains the following visual content: {text}",
    # Visual-document retrieval feeds the raw question, with no instruction.
    "document": "{text}",
    "text": "Find a text that matches the given query: {text}",
}
# A query that carries its own image (search by example), with or without words.
QUERY_IMAGE_TASK = "Represent the given image."
QUERY_IMAGE_WITH_TEXT_TASK = (
    "Given an image, find a similar everyday image with the described changes: {text}"
)
QUERY_VIDEO_TASK = "Understand the content of the provided video."

# Document-side (candidate) task texts, keyed by the candidate's kind.
DOCUMENT_TASKS: dict[str, str] = {
    "image": "Represent the given image.",
    "video": "Understand the content of the provided video.",
    "document": "Understand the content of the provided document.",
    "text": "Represent the given text: {text}",
}

BLANK_IMAGE_SIZE = 28


def blank_image() -> Image.Image:
    """The 28x28 white image that text-only inputs carry, as in the authors' code.

    Its size in vision tokens is set by the pixel budget it is prepared under (`model.inputs`):
    56x56 = 4 tokens at inference, evaluation and RL; 28x28 = 1 token in SFT.
    """
    return Image.new("RGB", (BLANK_IMAGE_SIZE, BLANK_IMAGE_SIZE), (255, 255, 255))


def user_text(task_text: str) -> str:
    """The user turn's text: `{task text}\\n<disc_emb>\\n{INSTRUCTION}`."""
    return f"{task_text}\n{DISC_EMB_TOKEN}\n{INSTRUCTION}"


def format_task(template: str, text: str | None) -> str:
    """Fill a task template; templates without `{text}` ignore the words."""
    return template.replace("{text}", text or "").strip() if "{text}" in template else template


def render_prompt(task_text: str, media: list[MediaKind]) -> str:
    """The full chat prompt for one input, ending with the assistant header.

    Identical to Qwen2-VL's chat template with the default system turn,
    `add_generation_prompt=True`, and content = media items then the text.
    """
    placeholders = "".join(
        "<|vision_start|><|image_pad|><|vision_end|>"
        if kind == "image"
        else "<|vision_start|><|video_pad|><|vision_end|>"
        for kind in media
    )
    return (
        f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\n{placeholders}{user_text(task_text)}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def render_completion(reasoning: str, summary: str) -> str:
    """An assistant message in the training-target shape, ending with `<gen_emb>`."""
    return f"<think>{reasoning}</think><answer>{summary}{GEN_EMB_TOKEN}"


# Qwen2-VL-Instruct's chat template, shipped with the offline test model so that
# `apply_chat_template` works on it exactly as on a released checkpoint.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
