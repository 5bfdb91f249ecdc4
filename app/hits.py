"""What a search returns: stored items read back from their payloads, scored hits, a result.

Hits come from stored payloads only, so showing a result never opens the file it names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.search_dates import date_label
from app.search_request import SearchMode
from indexer.catalog.schema import ItemRecord
from indexer.catalog.store import Hit

# What `ume search --json` prints of each hit (`taken`: ISO wall-clock date, `taken_source`).
HIT_FIELDS = ("path", "kind", "page", "start", "end", "taken", "taken_source", "score", "summary",
              "reasoning")  # fmt: skip


@dataclass
class IndexedItem:
    """One stored item (image, video segment, document page) as read back from its payload."""

    id: str
    path: str
    kind: str
    page: int | None
    start: float | None
    end: float | None
    summary: str | None
    reasoning: str | None  # the model's reasoning about the item, written when it was indexed
    root: str | None
    # Names of the vectors the item holds ("disc", "gen"); empty for items from before schema 2.
    vectors: tuple[str, ...] = field(default=(), kw_only=True)
    taken: str | None = field(default=None, kw_only=True)  # when it was made (ISO), or unknown
    taken_source: str = field(default="unknown", kw_only=True)  # exif, container, pdf, mtime

    @property
    def date(self) -> str:
        """`2024-06-01`, or `2024-06-01 (file date)` when only the file's mtime is known."""
        return date_label(self.taken, self.taken_source)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def where(self) -> str:
        """Page or time span in words ("page 3", "0:12-0:24"), empty for a whole image."""
        if self.page is not None:
            return f"page {self.page}"
        if self.start is not None and self.end is not None:
            return f"{clock(self.start)}-{clock(self.end)}"
        return ""


@dataclass
class SearchHit(IndexedItem):
    score: float  # cosine similarity in the mode's vector space, higher is closer

    def to_json(self) -> dict[str, Any]:
        """The fields `ume search --json` prints for each hit."""
        record = asdict(self)
        return {key: record[key] for key in HIT_FIELDS}


@dataclass
class SearchResult:
    hits: list[SearchHit]
    mode: SearchMode
    query_reasoning: str | None  # what the model wrote about the query (generation modes)
    query_summary: str | None
    seconds: float
    pending: int = 0  # matching items this mode cannot rank yet: their reasoning is still coming

    def to_json(self) -> dict[str, Any]:
        return {
            "hits": [hit.to_json() for hit in self.hits],
            "mode": self.mode,
            "query_reasoning": self.query_reasoning,
            "query_summary": self.query_summary,
            "pending": self.pending,
        }

    def pending_notice(self) -> str | None:
        """One line about the items left out for want of reasoning, or None."""
        if not self.pending:
            return None
        return (
            f"{self.pending:,} matching items are still waiting for their reasoning and are not "
            f"ranked in {self.mode} mode yet (fast mode finds them)"
        )


def clock(seconds: float) -> str:
    """0:07, 1:02:03: a time in a video as people read it."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def item_from_payload(point_id: str, payload: dict[str, Any]) -> IndexedItem:
    record = ItemRecord.from_payload(payload)
    return IndexedItem(
        id=point_id,
        path=record.facts.path,
        kind=record.facts.kind,
        page=record.place.page,
        start=record.place.start,
        end=record.place.end,
        summary=record.summary,
        reasoning=record.reasoning,
        root=record.facts.root or None,
        vectors=record.vectors,
        taken=record.facts.taken.iso,
        taken_source=record.facts.taken.source,
    )


def hit_from_store(hit: Hit, score: float | None = None) -> SearchHit:
    item = item_from_payload(hit.id, hit.payload)
    return SearchHit(**asdict(item), score=hit.score if score is None else score)
