"""Example uploads (an image or a clip to search by), checked as they arrive.

Gradio opens an uploaded image with PIL before any handler runs, so a decompression bomb or a
file that is not an image used to end there: the page and the API got only Gradio's generic
"the upstream app has raised an exception", and the log a full traceback. `example_image` turns
every bad upload into a `gr.Error` of one line that says what is wrong (never a server path) and
the log into one line. Clips are decoded by the search service, which words its errors the same
way (`app.search.query_input`); `MAX_UPLOAD` bounds the bytes of any upload.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr
from PIL import Image

log = logging.getLogger(__name__)

MAX_UPLOAD = "200mb"  # Gradio refuses larger uploads itself, with a message that says so


def rejected_image(error: BaseException) -> gr.Error:
    """The one-line error for an image upload that cannot be used."""
    if isinstance(error, Image.DecompressionBombError | Image.DecompressionBombWarning):
        reason = "it is too large (more pixels than ume decodes); resize it and try again"
    elif isinstance(error, Image.UnidentifiedImageError):
        reason = "it is not an image ume can read (use JPEG, PNG, WebP, GIF, BMP or TIFF)"
    else:
        reason = "it is damaged or truncated"
    log.warning("refused an example image upload: %s (%s)", reason, type(error).__name__)
    return gr.Error(f"the example image cannot be used: {reason}", print_exception=False)


def example_image(**options: Any) -> gr.Image:
    """A `gr.Image` whose decoding errors become one-line messages.

    The check wraps this one component's `preprocess` rather than subclassing `gr.Image`: Gradio
    writes a `.pyi` stub beside the module of every component subclass it sees imported.
    """
    component = gr.Image(**options)
    decode = component.preprocess

    def checked(payload: Any) -> Any:
        try:
            return decode(payload)
        except gr.Error:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise rejected_image(error) from None

    component.preprocess = checked  # type: ignore[method-assign]
    return component
