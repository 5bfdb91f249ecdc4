"""The example queries a model ships with, as buttons under the query box."""

from __future__ import annotations

import gradio as gr
from gradio.helpers import Examples

from app.context import AppContext
from app.ui.controls import KIND_NAMES
from model.world.gallery import read_example_queries


def example_queries(ctx: AppContext, text: gr.Textbox, kind: gr.Dropdown) -> Examples | None:
    """Clickable queries the loaded model ships with (the reference model does), in its words.

    A click fills the words and the kind (the model was taught each kind's own task) and
    searches; the kind is dropped again when the person types a query of their own.
    """
    encoder = ctx.service.encoder if ctx.service is not None else None
    examples = read_example_queries(encoder.model_id) if encoder is not None else []
    if not examples:
        return None
    return gr.Examples(
        [list(example) for example in examples],
        [text, kind],
        label="Example queries in the words this model was trained on: click one to search",
        example_labels=[f"{words} ({KIND_NAMES.get(kind, kind).lower()})" for words, kind in examples],
        examples_per_page=len(examples),
        elem_id="ume-examples",
    )
