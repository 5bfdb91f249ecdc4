"""Who may use the model now: interactive searches first, background indexing when none waits.

    gate = Gate()
    with gate.foreground():          # a search: never waits for background work
        encoder.encode_query(...)
    gate.wait_turn()                 # background work, between two model steps: waits while a
                                     # search runs or the person paused it

A server shares one model between people searching and the indexing it runs in the background
(the reasoning pass generates hundreds of tokens per item). The background work calls
`wait_turn` between decode steps and between batches, so a search waits at most one decode step
behind it; `pause`/`resume` hold the background work at the next such point (the Index tab's
pause button) — the reasoning pass, not the first pass that makes new files searchable
(`yield_to_searches`) — without losing the batch in flight.

Searches come first but cannot starve the background: when searches keep arriving, the
background still takes one step each `patience_s` (a search then waits at most that one step).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Gate:
    """Searches in the foreground, indexing in the background; see the module docstring."""

    def __init__(self, patience_s: float = 0.2) -> None:
        self.patience_s = patience_s
        self._changed = threading.Condition()
        self._searches = 0
        self._paused = False

    @contextmanager
    def foreground(self) -> Iterator[None]:
        """Hold background work at its next step while the body runs."""
        with self._changed:
            self._searches += 1
        try:
            yield
        finally:
            with self._changed:
                self._searches -= 1
                self._changed.notify_all()

    def wait_turn(self, timeout: float | None = None) -> bool:
        """Block while paused, and while searches run (for `patience_s` at most); False if
        `timeout` ran out first."""
        return self._wait(True, timeout)

    def yield_to_searches(self, timeout: float | None = None) -> bool:
        """`wait_turn` for work that a pause does not hold (making new files searchable)."""
        return self._wait(False, timeout)

    def _wait(self, honour_pause: bool, timeout: float | None) -> bool:
        now = time.monotonic()
        give_way_until = now + self.patience_s
        deadline = None if timeout is None else now + timeout
        with self._changed:
            while (honour_pause and self._paused) or (self._searches and time.monotonic() < give_way_until):
                wake = None if honour_pause and self._paused else give_way_until
                if deadline is not None:
                    wake = deadline if wake is None else min(wake, deadline)
                    if time.monotonic() >= deadline:
                        return False
                self._changed.wait(None if wake is None else max(wake - time.monotonic(), 0.0))
            return True

    def pause(self) -> None:
        with self._changed:
            self._paused = True

    def resume(self) -> None:
        with self._changed:
            self._paused = False
            self._changed.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def searching(self) -> bool:
        return self._searches > 0
