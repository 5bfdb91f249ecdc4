"""Searches of the embedded engine queue in arrival order; those waiting run as one batch."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest

from indexer.catalog.batches import Batches, Interrupted


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


@pytest.fixture
def ctrl_c() -> Iterator[Callable[[], None]]:
    """Pressing Ctrl-C: SIGINT raises KeyboardInterrupt in the main thread (a process started in
    the background, as by `make` from a script, inherits SIGINT ignored)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield lambda: os.kill(os.getpid(), signal.SIGINT)
    signal.signal(signal.SIGINT, before)


def behind_a_held_one(limit: int, names: Sequence[str]) -> tuple[Engine, dict[str, object]]:
    """Search "a" (held by the engine), queue `names` behind it in that order, release "a", and
    wait for all: the engine's batches and every search's answer."""
    engine, answers = Engine(), {}
    batches = Batches(engine, limit=limit)
    first = hold_first(batches, engine, answers)
    queued = [ask(batches, name, answers) for name in names]
    engine.release.set()
    for thread in [first, *queued]:
        thread.join(10)
    return engine, answers


def test_searches_queued_behind_a_running_one_run_together_in_arrival_order() -> None:
    engine, answers = behind_a_held_one(16, ("b", "c", "d", "e"))
    assert engine.batches == [["a"], ["b", "c", "d", "e"]]
    assert answers == {"a": "a!", "b": "b!", "c": "c!", "d": "d!", "e": "e!"}


def test_a_batch_holds_at_most_its_limit_and_the_rest_follow_in_order() -> None:
    engine, answers = behind_a_held_one(2, ("b", "c", "d", "e", "f"))
    assert engine.batches == [["a"], ["b", "c"], ["d", "e"], ["f"]]
    assert len(answers) == 6


def test_with_a_limit_of_one_searches_take_turns_first_come_first_served() -> None:
    engine, _ = behind_a_held_one(1, ("b", "c", "d"))
    assert engine.batches == [["a"], ["b"], ["c"], ["d"]]


def test_a_bad_search_fails_alone_and_the_others_of_its_batch_are_answered() -> None:
    engine, answers = behind_a_held_one(16, ("b", "bad", "c"))
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


def test_a_search_interrupted_while_it_waits_leaves_the_queue_moving(ctrl_c: Callable[[], None]) -> None:
    """Ctrl-C in a search waiting behind others: the searches after it are still answered."""
    engine, answers = Engine(), {}
    batches = Batches(engine, limit=1)
    first = hold_first(batches, engine, answers)
    interrupter = threading.Timer(0.2, ctrl_c)  # Ctrl-C
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        batches.submit("interrupted")  # waits behind "a" until the interrupt
    later = ask(batches, "later", answers)
    engine.release.set()
    for thread in (first, later):
        thread.join(10)
    assert answers == {"a": "a!", "later": "later!"}
    assert batches.submit("after") == "after!"


def test_an_interrupted_search_leaves_the_queue_even_when_requests_do_not_compare(
    ctrl_c: Callable[[], None],
) -> None:
    """Search requests hold numpy vectors, which refuse `==`: withdrawing one must not compare."""
    released, running = threading.Event(), threading.Event()

    def engine(requests: Sequence[np.ndarray]) -> list[float | Exception]:
        running.set()
        released.wait(10)
        return [float(r.sum()) for r in requests]

    batches: Batches[np.ndarray, float] = Batches(engine, limit=1)
    answers: dict[str, object] = {}
    first = threading.Thread(target=lambda: answers.update(a=batches.submit(np.ones(3))))
    first.start()
    assert running.wait(10)
    second = threading.Thread(target=lambda: answers.update(b=batches.submit(np.full(3, 2.0))))
    second.start()
    until(lambda: batches.waiting() == 1)
    threading.Timer(0.2, ctrl_c).start()  # Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        batches.submit(np.zeros(3))
    released.set()
    for thread in (first, second):
        thread.join(10)
    assert answers == {"a": 3.0, "b": 6.0}
    assert batches.submit(np.ones(2)) == 2.0


def test_ctrl_c_in_the_caller_running_a_batch_fails_the_others_with_an_ordinary_error(
    ctrl_c: Callable[[], None],
) -> None:
    """Other threads of the batch get an error they can handle, not the KeyboardInterrupt."""
    held = {"x": threading.Event(), "a": threading.Event()}
    entered = {name: threading.Event() for name in held}

    def engine(requests: Sequence[str]) -> list[str | Exception]:
        for name in held:
            if name in requests:
                entered[name].set()
                held[name].wait(10)
        return [f"{r}!" for r in requests]

    batches: Batches[str, str] = Batches(engine, limit=16)
    answers: dict[str, object] = {}
    first = submit_from_thread(batches, "x", answers)
    assert entered["x"].wait(10)
    others: list[threading.Thread] = []

    def direct() -> None:
        """Once this thread has queued "a": queue "b", finish "x" (this thread then runs "a" and
        "b" as one batch), and press Ctrl-C while that batch runs."""
        until(lambda: batches.waiting() == 1)
        others.append(submit_from_thread(batches, "b", answers))
        until(lambda: batches.waiting() == 2)
        held["x"].set()
        until(entered["a"].is_set)
        ctrl_c()

    director = threading.Thread(target=direct)
    director.start()
    with pytest.raises(KeyboardInterrupt):
        batches.submit("a")
    for thread in (first, director, *others):
        thread.join(10)
    assert answers["x"] == "x!"
    assert isinstance(answers["b"], Interrupted)
    assert batches.submit("c") == "c!"
