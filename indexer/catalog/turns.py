"""Searches take turns in the order they arrive.

qdrant-edge holds the GIL for most of a query, so concurrent searches of the embedded engine run
one after another whatever happens. Left to the GIL and an ordinary lock, which favour whichever
thread last ran, some searches wait for many others: measured with 8 searchers on 20k int8
points on 2 cores (`benchmarks/search_turns.py`), p95 22-46 ms for a 0.6 ms query. Queued first
come, first served, no search waits for more than the ones ahead of it: p95 6 ms.
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType


class Turns:
    """A first-come, first-served lock (not reentrant): `with turns: ...`."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._taken = False

    def __enter__(self) -> None:
        with self._guard:
            if not self._taken and not self._waiting:
                self._taken = True
                return
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # the holder hands the turn over directly: `_taken` stays True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._taken = False

    def waiting(self) -> int:
        """How many are queued behind the holder."""
        with self._guard:
            return len(self._waiting)
