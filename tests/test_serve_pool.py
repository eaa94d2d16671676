"""``CallPool``: the threads behind ``connector serve``'s capability calls."""

from __future__ import annotations

import threading
import time

import pytest

from connector_core.serve.pool import CallPool


def wait_for(predicate, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_one_caller_at_a_time_reuses_the_thread_that_finished_last():
    pool = CallPool(8, "t-pool")
    names: list[str] = []
    try:
        for _ in range(20):
            done = threading.Event()
            pool.submit(lambda: (names.append(threading.current_thread().name), done.set()))
            assert done.wait(10)
            wait_for(lambda: len(pool._idle) == 1)  # the thread is back on the idle stack
        assert pool.threads == 1 and set(names) == {"t-pool-0"}
        # Two at once need two threads; afterwards the last one to finish is the next one woken.
        gates = {"a": threading.Event(), "b": threading.Event()}
        started = []
        threads = {}

        def blocked(name: str) -> None:
            started.append(name)
            threads[name] = threading.current_thread()
            gates[name].wait(10)

        pool.submit(lambda: blocked("a"))
        pool.submit(lambda: blocked("b"))
        wait_for(lambda: len(started) == 2)
        assert pool.threads == 2 and threads["a"] is not threads["b"]
        for name in ("b", "a"):  # b finishes first, then a
            gates[name].set()
            wait_for(lambda: len(pool._idle) == ("b", "a").index(name) + 1)
        ran = []
        done = threading.Event()
        pool.submit(lambda: (ran.append(threading.current_thread()), done.set()))
        assert done.wait(10)
        assert ran == [threads["a"]]  # the thread that finished last ran it
    finally:
        pool.shutdown(10)


def test_jobs_beyond_the_threads_wait_in_order_and_a_raising_job_keeps_its_thread(caplog):
    pool = CallPool(1)
    gate = threading.Event()
    order: list[int] = []

    def job(n: int) -> None:
        gate.wait(10)
        order.append(n)

    try:
        pool.submit(lambda: job(0))
        pool.submit(lambda: 1 / 0)  # waits for the thread, then raises there
        for n in range(1, 5):
            pool.submit(lambda n=n: job(n))
        assert pool.threads == 1 and len(pool._waiting) == 5
        gate.set()
        wait_for(lambda: len(order) == 5)
        assert order == [0, 1, 2, 3, 4] and pool.threads == 1
        assert any("a job of the call pool raised" in r.getMessage() and r.exc_info[0] is ZeroDivisionError
                   for r in caplog.records)
        done = threading.Event()
        pool.submit(done.set)  # the pool still runs jobs after one raised
        assert done.wait(10)
    finally:
        pool.shutdown(10)


def test_shutdown_lets_every_submitted_job_finish_then_refuses_new_ones():
    pool = CallPool(1)
    finished: list[int] = []

    def slow(n: int) -> None:
        time.sleep(0.2)
        finished.append(n)

    pool.submit(lambda: slow(1))
    pool.submit(lambda: slow(2))  # waiting behind the first
    started = time.monotonic()
    pool.shutdown()
    assert finished == [1, 2] and time.monotonic() - started >= 0.35
    assert not any(t.is_alive() for t in pool._threads)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: None)


def test_shutdown_stops_idle_threads():
    pool = CallPool(4)
    done = threading.Barrier(4, timeout=10)
    for _ in range(3):
        pool.submit(done.wait)
    done.wait()
    wait_for(lambda: len(pool._idle) == 3)
    threads = list(pool._threads)
    pool.shutdown(10)
    assert threads and not any(t.is_alive() for t in threads)


def test_a_pool_needs_a_thread():
    with pytest.raises(ValueError):
        CallPool(0)
