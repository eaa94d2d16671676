"""``CallPool``: the threads that run ``connector serve``'s capability calls.

A call blocks (the engine's HTTP is synchronous), so the event loop hands it to a thread and
goes on serving. With one caller making one call at a time, that hand-off and the one back
are on every call's critical path, so this pool does as little as it can around them:

- the loop hands a job to an idle thread directly (the thread's own lock, released), with no
  ``concurrent.futures.Future``, work item, shared queue or semaphore in between;
- the thread that finished last gets the next job (idle threads are a stack), so a call runs
  on a thread whose stack and objects are still in the core's caches;
- the job's last act is to wake the loop; right after it the thread takes the next job waiting,
  or goes back to sleep on its lock, holding the interpreter lock for a few bytecodes while the
  loop wakes up (``ThreadPoolExecutor``'s worker settles a future, notifies its waiters and
  releases a semaphore there, all in Python, while the loop waits for the interpreter lock).

Jobs beyond ``size`` threads wait in order. :meth:`shutdown` lets every job submitted so far
finish (graceful shutdown: calls in flight complete) and refuses new ones.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

log = logging.getLogger("connector_core.serve")


class _Worker:
    __slots__ = ("job", "wake")

    def __init__(self, job: Callable[[], None] | None) -> None:
        self.job = job
        self.wake = threading.Lock()
        self.wake.acquire()  # held while there is nothing to do; released to hand over a job


class CallPool:
    """Up to ``size`` threads named ``{name}-N`` running jobs (callables taking nothing)."""

    def __init__(self, size: int, name: str = "connector-call") -> None:
        if size < 1:
            raise ValueError("a pool needs at least one thread")
        self.size = size
        self.name = name
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []  # a stack: the thread that finished last is woken first
        self._waiting: collections.deque[Callable[[], None]] = collections.deque()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job()`` in a thread of the pool; it must not raise (it reports its own outcome).

        Called from one thread (the service's event loop): when starting a new thread fails,
        the error is this call's, and no other call can have queued a job behind that thread."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the call pool is shut down")
            if self._idle:
                worker = self._idle.pop()
                worker.job = job
                worker.wake.release()
                return
            if len(self._threads) >= self.size:
                self._waiting.append(job)
                return
            thread = threading.Thread(target=self._work, args=(_Worker(job),), name=f"{self.name}-{len(self._threads)}",
                                      daemon=True)
            self._threads.append(thread)
        try:
            thread.start()
        except BaseException:  # no thread to be had: the job was not taken
            with self._lock:
                self._threads.remove(thread)
            raise

    def _work(self, worker: _Worker) -> None:
        lock, idle, waiting = self._lock, self._idle, self._waiting
        job = worker.job
        while job is not None:
            worker.job = None
            try:
                job()
            except BaseException:  # noqa: BLE001 - a job reports its own outcome; this keeps the thread
                log.exception("a job of the call pool raised")
            del job  # nothing of the finished call stays alive while the thread waits
            with lock:
                if waiting:
                    job = waiting.popleft()
                    continue
                if self._closed:
                    return
                idle.append(worker)
            worker.wake.acquire()
            job = worker.job

    @property
    def threads(self) -> int:
        """How many threads the pool has started (they stay until :meth:`shutdown`)."""
        return len(self._threads)

    def shutdown(self, timeout: float | None = None) -> None:
        """Refuse new jobs, let every job submitted so far finish, then stop the threads."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            threads = list(self._threads)
        for worker in idle:
            worker.job = None
            worker.wake.release()
        for thread in threads:
            thread.join(timeout)
