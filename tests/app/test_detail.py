"""The detail pane says why an item shows no reasoning, and never blames the wrong cause."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from app.context import make_context
from app.search import SearchService
from app.ui.detail import NO_ANSWER, NO_REASONING, NO_THINK, item_detail
from indexer.catalog.open import open_store
from indexer.config import DEFAULT_COLLECTION, IndexConfig
from indexer.run import index_folders
from model.encoder import Encoder


def indexed_item_detail(model_dir: Path, tmp_path: Path, mode: str) -> tuple[str, str]:
    """(summary, reasoning) the pane shows for one image indexed in `mode` by the random model."""
    media = tmp_path / "media"
    media.mkdir()
    Image.new("RGB", (56, 56), "red").save(media / "red.png")
    encoder = Encoder.from_pretrained(model_dir, device="cpu")
    config = IndexConfig(
        roots=[media],
        collection=DEFAULT_COLLECTION,
        model=encoder.model_id,
        mode=mode,  # type: ignore[arg-type]
        data_dir=tmp_path / "data",
        max_new_tokens=4,
    )
    index_folders(config, encoder=encoder)
    with open_store(data_dir=tmp_path / "data") as store:
        ctx = make_context(store, DEFAULT_COLLECTION, encoder)
        assert isinstance(ctx.service, SearchService)
        (item,) = ctx.service.browse()
        detail = item_detail(ctx, item)
    return detail.summary, detail.reasoning


def test_an_item_reasoned_about_without_think_tags_does_not_claim_disc_only(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # The random model's 4 tokens hold no <think> or <answer>, but the item has its gen vector.
    summary, reasoning = indexed_item_detail(tiny_model_dir, tmp_path, "both")
    assert reasoning == NO_THINK and summary == NO_ANSWER
    assert "disc embeddings only" not in reasoning


def test_a_disc_only_item_says_it_holds_no_reasoning(tiny_model_dir: Path, tmp_path: Path) -> None:
    _, reasoning = indexed_item_detail(tiny_model_dir, tmp_path, "disc")
    assert reasoning == NO_REASONING
