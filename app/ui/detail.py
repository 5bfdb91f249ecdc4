"""The detail pane: the original media of one item, where it is, and the model's reasoning.

The Search and Traces tabs each lay out one pane (`detail_pane`) and fill it with `item_detail`.

The reasoning is what the model wrote about the item when it was indexed. It is labelled as the
model's reasoning and never as the reason for a score (the embedding barely moves with it), and
it is shown in plain-text boxes so `<think>`/`<answer>` tags stay visible instead of being taken
for HTML.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image, ImageOps

from app.context import AppContext
from app.files import FileAccessError
from app.hits import IndexedItem, SearchHit
from app.ui.display_media import original_image, page_image, video_html
from model.media import MediaError

log = logging.getLogger(__name__)

DETAIL_PIXELS = 1600  # longest side sent to the browser for a photo or page
NO_REASONING = "(no reasoning stored: this item was indexed with disc embeddings only)"
NO_SUMMARY = "(no summary stored)"
UNKNOWN_REASONING = "(no reasoning stored)"  # items from before indexes listed their vectors
NO_THINK = "(the model reasoned about this item, but its generation held no <think> … </think> part)"
NO_ANSWER = "(the model reasoned about this item, but its generation held no <answer> summary)"
REASONING_LABEL = "The model's reasoning about this item (written when it was indexed)"
REASONING_NOTE = (
    "This is what the model wrote while embedding the item. It is not an explanation of why "
    "the item matched: the score comes from the vectors."
)


@dataclass
class DetailPane:
    """The pane's components; `outputs` is the order `Detail.as_outputs` fills them in."""

    header: gr.HTML
    image: gr.Image
    video: gr.HTML
    summary: gr.Textbox
    reasoning: gr.Textbox

    @property
    def outputs(self) -> list[Any]:
        return [self.header, self.image, self.video, self.summary, self.reasoning]


@dataclass
class Detail:
    """Values for the detail pane's components, in `DetailPane.outputs` order."""

    header: str
    image: Any
    video: Any
    summary: str
    reasoning: str

    def as_outputs(self) -> tuple[Any, ...]:
        return (self.header, self.image, self.video, self.summary, self.reasoning)


def detail_pane(reasoning_id: str, empty_message: str) -> DetailPane:
    """Header, media (image or video), summary and reasoning of the selected item."""
    empty = empty_detail(empty_message)
    pane = DetailPane(
        header=gr.HTML(empty.header),
        image=gr.Image(visible=False, interactive=False, height=420, show_label=False),
        video=gr.HTML(visible=False),
        summary=gr.Textbox(label="The model's summary", interactive=False, lines=1),
        reasoning=gr.Textbox(
            label=REASONING_LABEL,
            interactive=False,
            lines=8,
            max_lines=24,
            elem_id=reasoning_id,
            buttons=["copy"],
        ),
    )
    gr.HTML(f'<div class="ume-note">{html.escape(REASONING_NOTE)}</div>')
    return pane


def empty_detail(message: str) -> Detail:
    return Detail(
        header=f'<div class="ume-detail-empty">{html.escape(message)}</div>',
        image=gr.update(value=None, visible=False),
        video=gr.update(value="", visible=False),
        summary="",
        reasoning="",
    )


def item_detail(ctx: AppContext, item: IndexedItem) -> Detail:
    """Everything the pane shows for one item; a refused or vanished file gives a clear line."""
    try:
        image, video = _media(ctx, item)
    except (FileAccessError, MediaError, OSError) as error:
        log.info("cannot show %s: %s", item.path, error)
        image = gr.update(value=None, visible=False)
        video = gr.update(value=f'<div class="ume-error">{html.escape(str(error))}</div>', visible=True)
    return Detail(
        header=header_html(ctx, item),
        image=image,
        video=video,
        summary=item.summary or (NO_ANSWER if "gen" in item.vectors else NO_SUMMARY),
        reasoning=item.reasoning or missing_reasoning(item),
    )


def missing_reasoning(item: IndexedItem) -> str:
    """Why an item shows no reasoning: disc only, or a generation without a `<think>` part.

    An item with a gen vector was generated for; what is missing then is the model's format.
    """
    if "gen" in item.vectors:
        return NO_THINK
    return NO_REASONING if item.vectors else UNKNOWN_REASONING


def _media(ctx: AppContext, item: IndexedItem) -> tuple[Any, Any]:
    """(image update, video update): a clip plays in the video element, the rest is a picture."""
    if item.kind == "video":
        player = video_html(item, ctx.files)
        return gr.update(value=None, visible=False), gr.update(value=player, visible=True)
    picture = _for_browser(_picture(ctx, item))
    image = gr.update(value=picture, visible=True, label=_media_label(item))
    return image, gr.update(value="", visible=False)


def _picture(ctx: AppContext, item: IndexedItem) -> Image.Image:
    if item.kind == "document":
        return page_image(item, ctx.files)
    return original_image(item, ctx.files)


def _for_browser(picture: Image.Image) -> Image.Image:
    return ImageOps.contain(picture, (DETAIL_PIXELS, DETAIL_PIXELS))


def _media_label(item: IndexedItem) -> str:
    return f"{item.name}, {item.where}" if item.where else item.name


def header_html(ctx: AppContext, item: IndexedItem) -> str:
    """File name, score, kind, page or time span, date, full path and a link to the original."""
    badges = [f'<span class="ume-badge">{html.escape(item.kind)}</span>']
    if isinstance(item, SearchHit):
        badges.insert(0, f'<span class="ume-badge ume-score">score {item.score:.3f}</span>')
    if item.where:
        badges.append(f'<span class="ume-badge">{html.escape(item.where)}</span>')
    badges.append(f'<span class="ume-badge ume-date">{html.escape(item.date)}</span>')  # when made
    return (
        '<div class="ume-detail-header">'
        f'<div class="ume-detail-name">{html.escape(item.name)}</div>'
        f'<div class="ume-badges">{"".join(badges)}{original_link(ctx, item)}</div>'
        f'<div class="ume-path">{html.escape(item.path)}</div></div>'
    )


def original_link(ctx: AppContext, item: IndexedItem) -> str:
    """A link to the file itself, at the page (PDF viewers) or time (media fragment) of the hit."""
    try:
        url = ctx.files.url(item.path)
    except FileAccessError:
        return ""
    if item.page:
        url += f"#page={item.page}"
    elif item.start is not None:
        url += f"#t={item.start:.2f}"
    attributes = f'class="ume-open" href="{html.escape(url)}" target="_blank" rel="noopener"'
    return f"<a {attributes}>open the original</a>"
