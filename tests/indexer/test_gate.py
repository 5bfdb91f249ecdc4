"""The gate between interactive searches and background indexing (`indexer.gate`)."""

from __future__ import annotations

import threading

from indexer.gate import Gate


def in_thread(gate: Gate, results: list[bool], **kwargs: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.append(gate.wait_turn(**kwargs)))
    thread.start()
    return thread


def test_background_goes_at_once_when_no_search_runs() -> None:
    assert Gate().wait_turn(timeout=0)


def test_a_pause_holds_background_work_until_resumed() -> None:
    gate, results = Gate(), []
    gate.pause()
    assert gate.paused and not gate.wait_turn(timeout=0.05)
    waiting = in_thread(gate, results)
    waiting.join(0.2)
    assert waiting.is_alive()  # still held
    gate.resume()
    waiting.join(5)
    assert results == [True]


def test_background_waits_for_a_running_search_to_finish() -> None:
    gate, results, order = Gate(patience_s=30), [], []
    with gate.foreground():
        waiting = in_thread(gate, results)
        waiting.join(0.2)
        assert waiting.is_alive()
        order.append("search done")
    waiting.join(5)
    assert results == [True] and order == ["search done"]


def test_a_stream_of_searches_cannot_starve_background_work() -> None:
    gate, results = Gate(patience_s=0.1), []
    with gate.foreground():  # a search that outlasts the gate's patience
        waiting = in_thread(gate, results)
        waiting.join(10)
        assert not waiting.is_alive() and gate.searching  # went ahead for one step meanwhile
    assert results == [True]
