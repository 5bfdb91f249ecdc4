"""A batch of searches waits for the catch-up piece in progress, once, and never for long."""

from __future__ import annotations

import threading

from indexer.catalog.give_way import GiveWay

WAIT_S = 30


def batch_in_thread(give_way: GiveWay, holding_lock: bool = False) -> tuple[threading.Thread, list[bool]]:
    waited: list[bool] = []
    check = give_way.before_queries if holding_lock else give_way.before_batch
    thread = threading.Thread(target=lambda: waited.append(check()), daemon=True)
    thread.start()
    return thread, waited


def test_a_batch_waits_for_the_catch_up_piece_in_progress() -> None:
    give_way, inside, release = GiveWay(most_s=WAIT_S), threading.Event(), threading.Event()

    def piece() -> None:
        with give_way.piece():
            inside.set()
            release.wait(WAIT_S)

    catch_up = threading.Thread(target=piece, daemon=True)
    catch_up.start()
    assert inside.wait(WAIT_S)
    batch, waited = batch_in_thread(give_way)
    batch.join(0.3)
    assert batch.is_alive(), "the batch ran while the catch-up was copying its piece"
    release.set()
    batch.join(WAIT_S)
    assert waited == [True]


def test_a_batch_waits_for_one_piece_only_however_many_follow() -> None:
    """The catch-up starts its next piece at once; the batch still goes after the first."""
    give_way, pieces_done, release = GiveWay(most_s=WAIT_S), threading.Semaphore(0), threading.Event()
    inside = threading.Event()

    def pieces() -> None:
        with give_way.piece():
            inside.set()
            release.wait(WAIT_S)
        with give_way.piece():  # the next one, which the batch must not wait for
            pieces_done.acquire(timeout=WAIT_S)

    catch_up = threading.Thread(target=pieces, daemon=True)
    catch_up.start()
    assert inside.wait(WAIT_S)
    batch, waited = batch_in_thread(give_way)
    release.set()
    batch.join(WAIT_S)
    assert not batch.is_alive() and waited == [True]
    pieces_done.release()
    catch_up.join(WAIT_S)


def test_a_stalled_piece_holds_a_batch_up_for_at_most_the_limit() -> None:
    give_way, inside, release = GiveWay(most_s=0.05), threading.Event(), threading.Event()

    def stalled() -> None:
        with give_way.piece():
            inside.set()
            release.wait(WAIT_S)

    threading.Thread(target=stalled, daemon=True).start()
    assert inside.wait(WAIT_S)
    batch, waited = batch_in_thread(give_way)
    batch.join(WAIT_S)
    release.set()
    assert not batch.is_alive(), "a stalled catch-up held searches up"
    assert waited == [True]


def test_without_a_catch_up_a_batch_does_not_wait() -> None:
    assert GiveWay(most_s=WAIT_S).before_batch() is False
    assert GiveWay(most_s=WAIT_S).before_queries() is False


def test_a_batch_holding_the_lock_waits_only_for_a_piece_already_read() -> None:
    """A piece still waiting for the store's lock cannot write while the batch holds it; one that
    read its points before the batch got the lock is being written: the queries wait for it."""
    give_way, marked, release = GiveWay(most_s=WAIT_S), threading.Event(), threading.Event()
    started, read = threading.Event(), threading.Event()

    def piece() -> None:
        with give_way.piece() as writing:
            started.set()
            read.wait(WAIT_S)  # "waiting for the lock", then reading
            writing()
            marked.set()
            release.wait(WAIT_S)

    threading.Thread(target=piece, daemon=True).start()
    assert started.wait(WAIT_S)
    assert give_way.before_queries() is False  # not read yet: the batch goes ahead
    read.set()
    assert marked.wait(WAIT_S)
    batch, waited = batch_in_thread(give_way, holding_lock=True)
    batch.join(0.3)
    assert batch.is_alive(), "the queries ran while a piece was written"
    release.set()
    batch.join(WAIT_S)
    assert waited == [True]
