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
pause button), without losing the batch in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Gate:
    """Searches in the foreground, indexing in the background; see the module docstring."""

    def __init__(self) -> None:
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
        """Block while a search runs or the background is paused; False if `timeout` ran out."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._searches and not self._paused, timeout)

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
