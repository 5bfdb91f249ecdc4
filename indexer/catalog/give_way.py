"""Searches give way to the catch-up of a finished build, one piece per batch.

When a background build's child is done, a thread of the store copies what was written during
the build into the new copy (`EdgeGraph._catch_up`), while every point it has not yet copied is
still scanned exactly by each search of the live shard. Copying holds the GIL, and so does
qdrant-edge for a whole batch of searches; when a batch ends, its callers and the next leader
wake together, and a catch-up left to take its chances among searchers that never stop rarely
got the interpreter: it crawled, and searches paid for the unindexed points all that time.

So the catch-up copies in pieces (`piece()`), and the caller about to run the next batch of
searches first waits for a piece in progress to finish (`before_batch()`, before it takes the
store's lock): the two alternate, a batch then a piece. A piece reads its points with the store's
lock held and marks itself writing before it lets go; a batch checks again once it holds the lock
(`before_queries()`), so that a piece which slipped in between is never written while the batch's
queries run. A search waits for at most two pieces per batch, each for at most `most_s`, so a
catch-up that stalls (a slow disk) cannot hold searches up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class GiveWay:
    """Lets the next batch of searches wait for the catch-up's piece in progress."""

    def __init__(self, most_s: float) -> None:
        self._most_s = most_s
        self._changed = threading.Condition()
        self._running = 0  # pieces started: waiting for the store's lock, reading, or writing
        self._writing = 0  # pieces past their read (marked with the store's lock held)
        self._done = 0

    @contextmanager
    def piece(self) -> Iterator[Callable[[], None]]:
        """The catch-up's side: the block is one piece; call what it yields once the piece's
        points are read, before letting go of the store's lock."""
        marked = False

        def writing() -> None:
            nonlocal marked
            with self._changed:
                if not marked:
                    self._writing += 1
                    marked = True

        with self._changed:
            self._running += 1
        try:
            yield writing
        finally:
            with self._changed:
                self._running -= 1
                self._writing -= marked
                self._done += 1
                self._changed.notify_all()

    def before_batch(self) -> bool:
        """Before taking the store's lock: wait for the piece in progress (if any) to finish,
        for at most `most_s`; True when there was one."""
        return self._wait_for_piece(lambda: self._running > 0)

    def before_queries(self) -> bool:
        """Holding the store's lock: wait for a piece being written (if any) to finish, for at
        most `most_s`; True when there was one."""
        return self._wait_for_piece(lambda: self._writing > 0)

    def _wait_for_piece(self, in_progress: Callable[[], bool]) -> bool:
        with self._changed:
            if not in_progress():
                return False
            seen = self._done
            self._changed.wait_for(lambda: self._done > seen, timeout=self._most_s)
            return True
