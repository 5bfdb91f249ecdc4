"""Searches of the embedded engine queue in arrival order; those waiting run as one batch."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from indexer.catalog.batches import Batches


class Engine:
    """A runner that records each batch, answers `name!`, fails requests named `bad`, and holds
    its first batch until released (so that others queue behind it)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.running = threading.Event()
        self.release = threading.Event()

    def __call__(self, requests: Sequence[str]) -> list[str | Exception]:
        if not self.batches:
            self.running.set()
            self.release.wait(10)
        self.batches.append(list(requests))
        return [ValueError(f"{r} query") if r == "bad" else f"{r}!" for r in requests]


def submit_from_thread(
    batches: Batches[str, str], request: str, answers: dict[str, object]
) -> threading.Thread:
    def submit() -> None:
        try:
            answers[request] = batches.submit(request)
        except Exception as error:
            answers[request] = error

    thread = threading.Thread(target=submit)
    thread.start()
    return thread


def hold_first(batches: Batches[str, str], engine: Engine, answers: dict[str, object]) -> threading.Thread:
    """Submit "a" and return once its batch is running, held by `engine`."""
    thread = submit_from_thread(batches, "a", answers)
    assert engine.running.wait(10)
    return thread


def ask(batches: Batches[str, str], request: str, answers: dict[str, object]) -> threading.Thread:
    """Submit `request` from a thread of its own; return once it is queued (behind a held batch)."""
    before = batches.waiting()
    thread = submit_from_thread(batches, request, answers)
    until(lambda: batches.waiting() > before)
    return thread


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_searches_queued_behind_a_running_one_run_together_in_arrival_order() -> None:
    engine, answers = Engine(), {}
    batches = Batches(engine, limit=16)
    first = hold_first(batches, engine, answers)
    queued = [ask(batches, name, answers) for name in ("b", "c", "d", "e")]
    engine.release.set()
    for thread in [first, *queued]:
        thread.join(10)
    assert engine.batches == [["a"], ["b", "c", "d", "e"]]
    assert answers == {"a": "a!", "b": "b!", "c": "c!", "d": "d!", "e": "e!"}


def test_a_batch_holds_at_most_its_limit_and_the_rest_follow_in_order() -> None:
    engine, answers = Engine(), {}
    batches = Batches(engine, limit=2)
    first = hold_first(batches, engine, answers)
    queued = [ask(batches, name, answers) for name in ("b", "c", "d", "e", "f")]
    engine.release.set()
    for thread in [first, *queued]:
        thread.join(10)
    assert engine.batches == [["a"], ["b", "c"], ["d", "e"], ["f"]]
    assert len(answers) == 6


def test_with_a_limit_of_one_searches_take_turns_first_come_first_served() -> None:
    engine, answers = Engine(), {}
    batches = Batches(engine, limit=1)
    first = hold_first(batches, engine, answers)
    queued = [ask(batches, name, answers) for name in ("b", "c", "d")]
    engine.release.set()
    for thread in [first, *queued]:
        thread.join(10)
    assert engine.batches == [["a"], ["b"], ["c"], ["d"]]


def test_a_bad_search_fails_alone_and_the_others_of_its_batch_are_answered() -> None:
    engine, answers = Engine(), {}
    batches = Batches(engine, limit=16)
    first = hold_first(batches, engine, answers)
    queued = [ask(batches, name, answers) for name in ("b", "bad", "c")]
    engine.release.set()
    for thread in [first, *queued]:
        thread.join(10)
    assert engine.batches[1] == ["b", "bad", "c"]
    assert isinstance(answers["bad"], ValueError)
    assert (answers["b"], answers["c"]) == ("b!", "c!")


def test_an_engine_error_fails_its_batch_and_later_searches_still_run() -> None:
    calls = []

    def broken_once(requests: Sequence[str]) -> list[str | Exception]:
        calls.append(list(requests))
        if len(calls) == 1:
            raise RuntimeError("engine gone")
        return [f"{r}!" for r in requests]

    batches = Batches(broken_once, limit=16)
    with pytest.raises(RuntimeError, match="engine gone"):
        batches.submit("a")
    assert batches.submit("b") == "b!"  # not left waiting behind the failed batch


def test_a_search_interrupted_while_it_waits_leaves_the_queue_moving() -> None:
    """Ctrl-C in a search waiting behind others: the searches after it are still answered."""
    engine, answers = Engine(), {}
    batches = Batches(engine, limit=1)
    first = hold_first(batches, engine, answers)
    interrupter = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))  # Ctrl-C
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        batches.submit("interrupted")  # waits behind "a" until the interrupt
    later = ask(batches, "later", answers)
    engine.release.set()
    for thread in (first, later):
        thread.join(10)
    assert answers == {"a": "a!", "later": "later!"}
    assert batches.submit("after") == "after!"
