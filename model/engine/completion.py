"""Read the model's generated text: the reasoning, the summary, and whether the format holds.

A UME-R1 generation looks like `<think>…</think><answer>…` (often without `</answer>`), then
`<gen_emb>`. Its training targets were written by another model that wraps a very short summary
in `<|begin_of_box|>…<|end_of_box|>`: plain text to Qwen's tokenizer, stripped for display.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The RL format reward's pattern (UME-R1 §5), used verbatim.
FORMAT_PATTERN = re.compile(r"<think>.*?</think>.*?\s*<answer>.*?\s*<gen_emb>", re.DOTALL)

_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|<gen_emb>|$)", re.DOTALL)
_BOX_MARKERS = re.compile(r"<\|(?:begin|end)_of_box\|>")
_TRAILERS = ("<gen_emb>", "<|im_end|>", "<|endoftext|>")


@dataclass(frozen=True)
class ParsedCompletion:
    reasoning: str | None  # the <think> text, None when the model wrote none
    summary: str | None  # the <answer> text without box markers, None when absent
    well_formed: bool  # matches the format the model was trained to produce


def parse_completion(text: str) -> ParsedCompletion:
    """Split a generation into reasoning and summary."""
    think = _THINK.search(text)
    answer = _ANSWER.search(text)
    summary = _BOX_MARKERS.sub("", answer.group(1)).strip() if answer else None
    return ParsedCompletion(
        reasoning=think.group(1).strip() if think else None,
        summary=summary,
        well_formed=format_ok(text),
    )


def format_ok(text: str) -> bool:
    return FORMAT_PATTERN.search(text) is not None


def strip_trailers(text: str) -> str:
    """The completion as displayed: without the embedding token and end-of-turn markers."""
    for trailer in _TRAILERS:
        text = text.replace(trailer, "")
    return text.strip()
