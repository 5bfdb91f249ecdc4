"""Searches that arrive together run together, in the order they arrived.

qdrant-edge holds the GIL for most of a query, so concurrent searches of the embedded engine run
one after another whatever happens; but `EdgeShard.query_batch` scores several queries in one
pass over the segments. So a search that arrives while others run waits, and when they are done
the first of those waiting runs every search queued (up to `limit`, oldest first) as one batch
for all of them: a search waits for the batch in progress and its own, never for searches that
arrived after it. With `limit=1` they simply take turns, first come, first served (a plain lock
favours whichever thread ran last, so some searches waited several turns). Batching pays most
when searches scan exactly, as they do over points no graph holds yet.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")


class Interrupted(Exception):
    """The caller running a batch was interrupted before the batch was done."""


@dataclass(eq=False)  # tickets are told apart by identity: their requests may not compare
class Ticket(Generic[Request, Result]):
    """One request waiting in the queue, and what came of it once its batch ran."""

    request: Request
    outcome: Result | BaseException | None = None
    done: bool = False
    woken: threading.Event = field(default_factory=threading.Event)  # done, or to run the next batch

    def finish(self, outcome: Result | BaseException) -> None:
        self.outcome, self.done = outcome, True
        self.woken.set()

    def result(self) -> Result:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome  # type: ignore[return-value]


class Batches(Generic[Request, Result]):
    """`submit(request)` from any thread; `run(requests)` is called for batches of them, one batch
    at a time, in the thread of one of the callers, and returns one outcome per request: its
    result, or the error to raise in the thread that asked (so one bad request does not fail the
    others of its batch).

    Each waiting thread sleeps on its own event: a finished batch wakes its own callers and the
    oldest caller still queued, which runs the next batch (waking every waiter to race for it
    costs the GIL's hand-overs, which are slower than a short search). A caller
    interrupted (Ctrl-C) leaves the queue and passes on a turn it held, so no one waits for it.
    """

    def __init__(self, run: Callable[[Sequence[Request]], Sequence[Result | Exception]], limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a batch holds at least one request, got limit={limit}")
        self._run, self._limit = run, limit
        self._guard = threading.Lock()
        self._queue: deque[Ticket[Request, Result]] = deque()
        self._running = False  # a caller is running a batch, or has been woken to run the next

    def submit(self, request: Request) -> Result:
        """The outcome of `request`, once a batch holding it has run (raised if an error)."""
        ticket: Ticket[Request, Result] = Ticket(request)
        with self._guard:
            self._queue.append(ticket)
            fresh = not self._running
            if fresh:  # nothing runs: this caller runs the next batch at once
                self._running = True
                ticket.woken.set()
        try:
            ticket.woken.wait()
            if not ticket.done:  # this caller is the oldest queued: it runs the next batch
                self._lead(fresh)
        except BaseException:  # an interrupt: the queue must not stall on this caller
            self._withdraw(ticket)
            raise
        return ticket.result()

    def waiting(self) -> int:
        """How many requests are queued, not yet taken into a batch."""
        with self._guard:
            return len(self._queue)

    def _lead(self, fresh: bool) -> None:
        """Run the next batch (the leader's own request first), then hand the turn over."""
        batch: list[Ticket[Request, Result]] = []
        try:
            if fresh:
                self._gather()
            with self._guard:
                while self._queue and len(batch) < self._limit:
                    batch.append(self._queue.popleft())
            self._run_batch(batch)
        finally:
            for ticket in batch:  # an interrupt of this caller fails its batch, not the callers
                if not ticket.done:
                    ticket.finish(Interrupted("the search was interrupted before it ran; search again"))
            self._hand_over()

    def _gather(self) -> None:
        """Before a batch starts afresh, let callers that are about to queue (those of the batch
        just done, woken together) join it: yield the GIL until a turn brings no one new."""
        queued = 0
        while (now := self.waiting()) > queued and now < self._limit:
            queued = now
            time.sleep(0)

    def _withdraw(self, ticket: Ticket[Request, Result]) -> None:
        """Take back a request whose caller stopped waiting: out of the queue, and if it held the
        turn to run the next batch, that turn passes to the next caller."""
        with self._guard:
            if ticket in self._queue:
                self._queue.remove(ticket)
            held_turn = ticket.woken.is_set() and not ticket.done
        if held_turn:
            self._hand_over()

    def _hand_over(self) -> None:
        """Wake the oldest caller still queued to run the next batch, or stand down."""
        with self._guard:
            if self._queue:
                self._queue[0].woken.set()
            else:
                self._running = False

    def _run_batch(self, batch: list[Ticket[Request, Result]]) -> None:
        outcomes: list[Result | Exception]
        try:
            outcomes = list(self._run([t.request for t in batch]))
            if len(outcomes) != len(batch):
                error = RuntimeError(f"{len(batch)} requests came back as {len(outcomes)} outcomes")
                outcomes = [error] * len(batch)
        except Exception as error:  # raised in every thread of the batch, the one running it too
            outcomes = [error] * len(batch)
        for ticket, outcome in zip(batch, outcomes, strict=True):
            ticket.finish(outcome)
