"""Searches of the embedded engine are served in the order they arrive."""

from __future__ import annotations

import threading
import time

from indexer.catalog.turns import Turns


def queue_up(turns: Turns, name: str, served: list[str]) -> threading.Thread:
    """Start a thread that takes a turn, and return once it is queued."""
    before = turns.waiting()

    def take_turn() -> None:
        with turns:
            served.append(name)

    thread = threading.Thread(target=take_turn)
    thread.start()
    while turns.waiting() == before:  # it has joined the queue
        time.sleep(0.001)
    return thread


def test_waiting_searches_are_served_first_come_first_served() -> None:
    turns, served = Turns(), []
    with turns:  # a search in progress
        threads = [queue_up(turns, name, served) for name in ("b", "c", "d", "e")]
        served.append("a")
    for thread in threads:
        thread.join(timeout=10)
    assert served == ["a", "b", "c", "d", "e"]


def test_a_search_that_fails_passes_its_turn_on() -> None:
    turns, served = Turns(), []
    try:
        with turns:
            thread = queue_up(turns, "next", served)
            raise ValueError("engine error")
    except ValueError:
        pass
    thread.join(timeout=10)
    assert served == ["next"]
    with turns:  # free again
        served.append("later")
    assert served == ["next", "later"]
