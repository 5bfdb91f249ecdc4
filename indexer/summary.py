"""What a run did: file counts, failures with reasons, and busy seconds per stage.

Stages overlap (decoding runs ahead of the model, writes trail it), so stage seconds are the
time each stage was busy, summed over its threads; they add up to more than the wall time
(`seconds["total"]`) when the overlap works. `seconds["wait"]` is how long the model sat
idle for want of decoded input: near zero when decoding keeps up.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

STAGES = ("scan", "decode", "encode", "store")
# Besides the stages: "model" is loading the model (only when something needed embedding),
# "wait" the time the model sat idle for want of decoded input, "total" the run's wall time.


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str


@dataclass
class RunSummary:
    """Counts are files, except `embedded`, `filled`, `points`, `with_reasoning` and `pending`,
    which are items."""

    indexed: int = 0  # files embedded by the model this run
    unchanged: int = 0  # files already indexed as they are
    reused: int = 0  # files that took the vectors of identical content (moved, copied, touched)
    removed: int = 0  # files deleted from disk, removed from the index
    failed: int = 0
    embedded: int = 0  # item points encoded this run
    points: int = 0  # item points in the whole collection after the run (all searchable)
    filled: dict[str, int] = field(default_factory=dict)  # items given a vector they lacked, by name
    with_reasoning: int = 0  # items of the collection holding gen vectors after the run
    pending: int = 0  # items of the collection still lacking a vector of its mode after the run
    graph: str = ""  # the search graph when the run ended: exact, building or ready
    advice: str = ""  # one line on where the collection would be better kept, if anywhere
    failures: list[Failure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def merge(self, other: RunSummary) -> RunSummary:
        """Add another process's share of the same run (sharded indexing)."""
        counts = ("indexed", "unchanged", "reused", "removed", "failed", "embedded")
        merged = RunSummary(**{name: getattr(self, name) + getattr(other, name) for name in counts})
        merged.points = max(self.points, other.points)
        merged.with_reasoning = max(self.with_reasoning, other.with_reasoning)
        merged.pending = min(self.pending, other.pending)
        names = {*self.filled, *other.filled}
        merged.filled = {name: self.filled.get(name, 0) + other.filled.get(name, 0) for name in names}
        merged.failures = self.failures + other.failures
        merged.graph = self.graph or other.graph
        merged.advice = self.advice or other.advice
        stages = [*self.seconds, *(stage for stage in other.seconds if stage not in self.seconds)]
        merged.seconds = {
            stage: self.seconds.get(stage, 0.0) + other.seconds.get(stage, 0.0) for stage in stages
        }
        merged.seconds["total"] = max(self.seconds.get("total", 0.0), other.seconds.get("total", 0.0))
        return merged

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = {stage: round(value, 3) for stage, value in self.seconds.items()}
        return data

    def format_text(self) -> str:
        """The end-of-run lines a person reads."""
        lines = [
            f"indexed {self.indexed}, unchanged {self.unchanged}, reused {self.reused}, "
            f"removed {self.removed}, failed {self.failed} files; "
            f"{self.embedded} items embedded, {self.points} in the collection",
            f"reasoning: {self.filled.get('gen', 0)} items given it this run, {self.with_reasoning} "
            f"have it, {self.pending} pending",
            *([f"search graph: {self.graph}"] if self.graph else []),
            *([self.advice] if self.advice else []),
            "seconds: " + ", ".join(f"{stage} {value:.1f}" for stage, value in self.seconds.items()),
        ]
        lines += [f"failed: {failure.path}: {failure.reason}" for failure in self.failures]
        return "\n".join(lines)


class StageClock:
    """Thread-safe busy-time accumulator, one entry per stage."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - started)


def summary_from_json(data: dict[str, Any]) -> RunSummary:
    """The inverse of `RunSummary.to_json` (summaries cross process boundaries as JSON)."""
    summary = RunSummary(**{k: v for k, v in data.items() if k not in ("failures", "seconds", "filled")})
    summary.filled = dict(data.get("filled", {}))
    summary.failures = [Failure(**failure) for failure in data.get("failures", [])]
    summary.seconds = dict(data.get("seconds", {}))
    return summary


def print_summary(summary: RunSummary, as_json: bool) -> None:
    """The end of a run on stdout: one JSON object, or lines for a person."""
    if as_json:
        print(json.dumps(summary.to_json(), ensure_ascii=False))
    else:
        print(summary.format_text())
    sys.stdout.flush()
