"""The query service: turn words, an example image or a video clip into ranked hits.

Three ways to rank, each named by what it compares:

- **fast**: the query's disc embedding (one forward pass) against the index's disc vectors.
- **reasoning**: the model first writes its reasoning about the query; the gen embedding that
  follows is compared with the index's gen vectors.
- **rerank**: a fast shortlist of N, re-ordered by gen cosine (the query's gen embedding against
  the shortlist's stored gen vectors), so only one query generation is paid for.

Design decisions:
- A search never loads a file the query did not name: hits come from stored payloads only.
- Generation is serialised by one lock shared by every caller of a service (UI and API), so
  concurrent reasoning requests queue instead of thrashing the accelerator; fast searches never
  wait on it.
- Searches come first: while one runs, the server's background indexing waits at its gate
  (`indexer.gate`) after its current decode step.
- Items still waiting for their gen vector (progressive indexing) are left out of reasoning and
  rerank results, and the result says how many there are.
- Modes that need vectors the index lacks are reported by `available_modes` with the reason, so
  the UI and CLI can say why instead of failing mid-search.
- Dates (`app.search_dates`) are one more filter on the store, and sorting by date re-orders the
  best matches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from app.hits import IndexedItem, SearchHit, SearchResult, hit_from_store, item_from_payload
from app.limits import check_request
from app.search_dates import SortOrder, check_sort, in_order
from app.search_request import (
    SEARCH_MODES,
    SearchError,
    SearchMode,
    SearchRequest,
    date_errors,
    item_filter,
)
from indexer.catalog import schema
from indexer.catalog.collection import (
    collection_mode,
    indexed_roots,
    open_collection,
    outdated_files,
    outdated_notice,
    resolved_model_id,
    weights_differ,
    weights_revision,
)
from indexer.catalog.schema import MODE_VECTORS
from indexer.catalog.store import CollectionInfo, Hit, Match, Store, StoredPoint, StoreError
from indexer.gate import Gate
from model.encoder import Encoded, Encoder
from model.engine import strip_trailers
from model.inputs import EmbedInput

# The named vectors each search mode reads from the index.
SEARCH_VECTORS: dict[SearchMode, tuple[str, ...]] = {
    "fast": ("disc",),
    "reasoning": ("gen",),
    "rerank": ("disc", "gen"),
}
MODE_DESCRIPTIONS: dict[SearchMode, str] = {
    "fast": "the query's disc embedding against the index's disc vectors (instant).",
    "reasoning": "the model reasons about the query first, then its gen embedding is compared "
    "with the index's gen vectors (slow: one generation).",
    "rerank": "a fast shortlist of N, re-ordered by gen similarity to the query's reasoning "
    "embedding (one generation).",
}

TextCallback = Callable[[str], None]  # the query's generated text so far


def cosine_rank(query: np.ndarray, vectors: dict[str, np.ndarray]) -> list[tuple[str, float]]:
    """(id, cosine) sorted best first; vectors are L2-normalised, so cosine is a dot product."""
    scores = [(point_id, float(np.dot(query, vector))) for point_id, vector in vectors.items()]
    return sorted(scores, key=lambda pair: pair[1], reverse=True)


class SearchService:
    """Searches one collection of a store with one loaded encoder; safe to share across threads."""

    def __init__(
        self, store: Store, collection: str, encoder: Encoder | None, gate: Gate | None = None
    ) -> None:
        self.store = store
        self.collection = collection
        self.encoder = encoder
        self.gate = gate  # the server's background indexing waits here while a search runs
        self._generation = threading.Lock()
        # The loaded weights' fingerprint, read now: files replaced later do not change the model.
        self._revision = weights_revision(resolved_model_id(encoder.model_id)) if encoder else ""

    def collection_info(self) -> CollectionInfo:
        info = open_collection(self.store, self.collection)
        if info is None:
            raise StoreError(f"no collection {self.collection!r}: index some folders first")
        return info

    def available_modes(self) -> dict[SearchMode, str | None]:
        """For each mode: None when it can run, else one line saying why not."""
        try:
            info = self.collection_info()
        except StoreError as error:
            return dict.fromkeys(SEARCH_MODES, str(error))
        held = self._vectors_held(info)
        reasons: dict[SearchMode, str | None] = {}
        for mode, needed in SEARCH_VECTORS.items():
            missing = [name for name in needed if name not in held]
            reasons[mode] = (
                f"{mode} mode needs {' and '.join(missing)} vectors, which this index lacks: "
                "re-index with `ume index --mode both` to use it"
                if missing
                else None
            )
        return reasons

    def _vectors_held(self, info: CollectionInfo) -> set[str]:
        """The vectors the collection's mode fills, and any other that some item holds already."""
        held = set(MODE_VECTORS[collection_mode(info)])
        others = [name for name in info.vectors if name not in held]
        count = self.store.count
        return held | {name for name in others if count(self.collection, schema.items(vector=name))}

    def check_mode(self, mode: str) -> SearchMode:
        if mode not in SEARCH_MODES:
            raise SearchError(f"unknown mode {mode!r}: use one of {', '.join(SEARCH_MODES)}")
        reason = self.available_modes()[mode]  # type: ignore[index]
        if reason is not None:
            raise SearchError(reason)
        return mode  # type: ignore[return-value]

    def search(
        self,
        request: SearchRequest,
        on_text: TextCallback | None = None,
        sample: tuple[float, int] | None = None,
    ) -> SearchResult:
        """Rank stored items against the query; `on_text` sees the query's reasoning stream.

        `sample` = (temperature, seed) samples the query's reasoning instead of greedy decoding
        (pass@k evaluation); the fast mode generates nothing and ignores it."""
        began = time.perf_counter()
        check_request(request)
        checked = self.check_mode(request.mode)
        match = request.item_filter()
        with date_errors():
            order: SortOrder = check_sort(request.sort)
        query = request.query_input()
        encoder = self.ready_encoder()
        kind, top_k = request.kind, request.top_k
        pending = 0
        with self.gate.foreground() if self.gate is not None else nullcontext():
            if checked == "fast":
                encoded = encoder.encode_query([query], target_kind=kind or "image", mode="disc")
                hits = [hit_from_store(h) for h in self._nearest("disc", encoded.disc, top_k, match)]
            else:
                encoded = self._generate(query, kind, checked, request.max_new_tokens, on_text, sample)
                shortlist = max(request.shortlist, top_k)
                hits = self._rank_generated(checked, encoded, top_k, shortlist, match)
                pending = self.store.count(self.collection, schema.lacking(match, "gen"))
        return SearchResult(
            hits=in_order(hits, order),
            mode=checked,
            query_reasoning=encoded.reasoning[0],
            query_summary=encoded.summary[0],
            seconds=time.perf_counter() - began,
            pending=pending,
        )

    def item(self, item_id: str) -> IndexedItem | None:
        """One stored item by id, or None when the id names nothing (or a file record)."""
        found = self.store.retrieve(self.collection, [item_id])
        if not found or not schema.is_item(found[0][1]):
            return None
        return item_from_payload(found[0][0], found[0][1])

    def browse(
        self,
        kind: str | None = None,
        folder: str | Path | None = None,
        contains: str | None = None,
        limit: int = 200,
    ) -> list[IndexedItem]:
        """Stored items in path order, filtered by kind, folder and words in their reasoning."""
        needle = (contains or "").strip().lower()
        found: list[IndexedItem] = []
        for point_id, payload, _ in self.store.scroll(self.collection, item_filter(kind, folder)):
            item = item_from_payload(point_id, payload)
            text = f"{item.reasoning or ''}\n{item.summary or ''}\n{item.path}".lower()
            if needle in text:
                found.append(item)
        found.sort(key=lambda i: (i.path, i.page or 0, i.start or 0.0))
        return found[:limit]

    def is_indexed(self, path: str) -> bool:
        """Whether `path` (as the indexer recorded it) holds stored items."""
        return self.store.count(self.collection, schema.items(paths=path)) > 0

    def indexed_roots(self) -> list[Path]:
        """Every folder the collection was indexed from (the only places files are served from)."""
        return indexed_roots(self.store, self.collection)

    def outdated_notice(self) -> str | None:
        """A warning when some indexed files were embedded under an older recipe, else None."""
        return outdated_notice(outdated_files(self.store, self.collection))

    def ready_encoder(self) -> Encoder:
        """The loaded encoder, once it is known to match the collection's model."""
        if self.encoder is None:
            raise SearchError("no model is loaded, so searching is off: start with --model NAME")
        info = self.collection_info()
        if info.dim != self.encoder.hidden_size:
            raise SearchError(
                f"collection {self.collection!r} was indexed with {info.model_id} "
                f"({info.dim}-d) but the loaded model makes {self.encoder.hidden_size}-d "
                f"vectors: start with --model {info.model_id}"
            )
        if info.model_id != resolved_model_id(self.encoder.model_id):
            raise SearchError(
                f"collection {self.collection!r} was indexed with {info.model_id}, not "
                f"{self.encoder.model_id}: start with --model {info.model_id}"
            )
        if weights_differ(info.model_revision, self._revision):
            raise SearchError(
                f"collection {self.collection!r} was indexed with other weights in {info.model_id} "
                "(its weight files changed since): re-index it with `ume index --reembed`, or put "
                "the old weights back"
            )
        return self.encoder

    def _nearest(self, vector: str, query: np.ndarray | None, limit: int, match: Match) -> list[Hit]:
        assert query is not None
        return self.store.search(self.collection, vector, query[0], limit, match)

    def _generate(
        self,
        query: EmbedInput,
        kind: str | None,
        mode: SearchMode,
        max_new_tokens: int,
        on_text: TextCallback | None,
        sample: tuple[float, int] | None = None,
    ) -> Encoded:
        """One query generation at a time per service; others wait their turn."""
        encoder = self.ready_encoder()
        on_tokens = _text_stream(encoder, on_text) if on_text else None
        with self._generation:
            return encoder.encode_query(
                [query],
                target_kind=kind or "image",
                mode="gen" if mode == "reasoning" else "both",
                max_new_tokens=max_new_tokens,
                on_tokens=on_tokens,
                do_sample=sample is not None,
                temperature=sample[0] if sample else 1.0,
                seed=sample[1] if sample else None,
            )

    def _rank_generated(
        self, mode: SearchMode, encoded: Encoded, top_k: int, shortlist: int, match: Match
    ) -> list[SearchHit]:
        if mode == "reasoning":
            return [hit_from_store(h) for h in self._nearest("gen", encoded.gen, top_k, match)]
        assert encoded.gen is not None
        with_gen = schema.holding(match, "gen")  # the shortlist's items can all be re-ranked
        candidates = {hit.id: hit for hit in self._nearest("disc", encoded.disc, shortlist, with_gen)}
        stored = self.store.retrieve(self.collection, list(candidates), with_vectors=True)
        ranked = cosine_rank(encoded.gen[0], dict(_gen_vectors(stored)))
        return [hit_from_store(candidates[i], score) for i, score in ranked[:top_k]]


def _gen_vectors(stored: list[StoredPoint]) -> Iterator[tuple[str, np.ndarray]]:
    """Stored gen vectors by id; points indexed without one cannot be re-ranked and are left out."""
    for point_id, _, vectors in stored:
        if "gen" in vectors:
            yield point_id, np.asarray(vectors["gen"], dtype=np.float32)


def _text_stream(encoder: Encoder, on_text: TextCallback) -> Callable[[int, list[int]], None]:
    """Turn the encoder's per-token callback into the decoded text so far."""
    tokenizer = encoder.processor.tokenizer

    def on_tokens(_index: int, token_ids: list[int]) -> None:
        on_text(strip_trailers(tokenizer.decode(token_ids, skip_special_tokens=True)))

    return on_tokens
