"""Worker processes that parse, check, identify and encode NDJSON batches for :func:`backfill.upload`.

Why: in one process, reading a line, checking the batch, deriving its id and encoding it run
under the same interpreter lock as the threads that send, about 60 µs of CPU per batch; at
20 ms from mParticle with the budget raised, that lock, not the network, sets the pace, and a
sending thread whose answer has arrived waits for it. With ``workers``, this process only
reads lines, sends and records; the CPU-heavy steps run in other processes.

How: ``workers`` child processes: forks of this process while it runs a single thread (they
start in milliseconds, with everything imported), else new interpreters (``python -m
connector_mparticle.backfill_workers``, whose imports take a few hundred milliseconds of CPU).
Each gets chunks of raw lines (with their positions in the input) through one pipe and
answers each chunk with its records (``backfill.record``, the same function the in-process
path uses) through another, as length-prefixed pickles. Chunks go to the least busy worker
and are read back in the order they were made, so records come out in input order; at most
``2 * workers`` chunks are out at once, so memory stays bounded. Until a worker is ready
this process prepares the chunks itself. A worker ignores Ctrl-C (this process handles it
and records what was sent), holds no other descriptor of this process open, and exits when
its input pipe closes, which happens however this process ends, killed included.
"""

from __future__ import annotations

import collections
import fcntl
import gc
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from connector_core import ConnectorError

from .backfill import Record, Settings, record
from .batch_files import Line
from .lean_gc import THRESHOLD

__all__ = ["WorkerFailed", "prepared_by_workers"]

CHUNK_LINES = 200
CHUNK_BYTES = 256 * 1024
# Linux pipes hold 64 KB by default: a chunk would then cross in several reads, each waking
# the worker's reading thread, which must wait for the interpreter lock its busy main thread
# holds. Pipes of 1 MB (the default most a user may ask for) take two chunks or their
# answers at once.
_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031) if sys.platform.startswith("linux") else None
_LENGTH = struct.Struct("!I")
_READY = b"ready"


class WorkerFailed(ConnectorError):
    """A worker process ended before answering (a crash, or killed on its own)."""

    code = "worker_failed"
    category = "internal"


def prepared_by_workers(
    batches: Iterable[Any], settings: Settings, done: Callable[[int], bool] | None, workers: int,
    *, wait: bool = False, fork: bool | None = None,
) -> Iterator[Record]:
    """The records of ``batches`` in input order, :class:`Line` items prepared by ``workers``
    processes and anything else in this process. Closing the iterator ends the workers.

    The records are those of ``backfill.prepared``, except that a batch that was not
    refused comes without its parsed form (None). ``wait`` waits for the workers to start
    instead of preparing the first chunks here (for tests). ``fork``: whether workers are
    forks of this process or new interpreters; by default forks when this process runs a
    single thread at the first NDJSON line (the backfill starts its sending threads only
    when it has a request to send), else new interpreters."""
    pool = _Pool(workers, settings, wait, fork)
    try:
        yield from pool.records(batches, done)
    finally:
        pool.close()


def _write(stream, payload: Any) -> None:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _read(stream) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    size = _LENGTH.unpack(head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class _Forked:
    """A worker made by ``os.fork``: it has this process's modules already imported, so it
    starts in milliseconds where a new interpreter spends a few hundred of CPU importing.
    Only made while this process runs one thread (a lock another thread held at the fork
    would stay held in the child); the subset of ``subprocess.Popen`` that ``_Worker`` uses."""

    def __init__(self, settings: Settings) -> None:
        to_child, from_child = os.pipe(), os.pipe()
        try:
            pid = os.fork()
        except OSError:
            for fd in (*to_child, *from_child):
                os.close(fd)
            raise
        if pid == 0:  # pragma: no cover - runs in the child, which ends with os._exit
            code = 1
            try:
                os.setsid()  # a Ctrl-C at the terminal is for the parent alone
                _keep_only(to_child[0], from_child[1])
                _serve(os.fdopen(to_child[0], "rb"), os.fdopen(from_child[1], "wb"), settings)
                code = 0
            except BaseException:  # said on stderr, as a new interpreter would; the parent reports the exit
                traceback.print_exc()
                sys.stderr.flush()
            finally:
                os._exit(code)  # never the parent's clean-up (atexit, buffers, finally blocks)
        os.close(to_child[0])
        os.close(from_child[1])
        self.pid = pid
        self.stdin = os.fdopen(to_child[1], "wb")
        self.stdout = os.fdopen(from_child[0], "rb")
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, 0 if deadline is None else os.WNOHANG)
            except ChildProcessError:  # a host ignoring SIGCHLD has it reaped already (Popen says 0 too)
                self.returncode = 0
                break
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
            elif time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"backfill worker {self.pid}", timeout)
            else:
                time.sleep(delay)
                delay = min(2 * delay, 0.05)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)


def _keep_only(*fds: int) -> None:
    """Close every file descriptor above 2 but ``fds``: the parent's other pipes (a worker
    holding another's input open would keep it from ever seeing the end of it), sockets and files."""
    start = 3
    for fd in sorted(fds):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, _MAX_FD)


_MAX_FD = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536


def _can_fork() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1


class _Worker:
    def __init__(self, settings: Settings, fork: bool) -> None:
        if fork:
            self.process = _Forked(settings)
        else:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C at the terminal is for the parent alone, even while this starts
            )
        if _F_SETPIPE_SZ is not None:
            for pipe in (self.process.stdin, self.process.stdout):
                try:
                    fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
                except OSError:  # a lower limit in /proc/sys/fs/pipe-max-size: the reading thread copes
                    pass
        self.ready = False
        self.busy = 0  # chunks sent and not read back
        if not fork:
            _write(self.process.stdin, settings)

    def poll_ready(self, wait: bool = False) -> bool:
        if not self.ready and (wait or select.select([self.process.stdout], [], [], 0)[0]):
            if self._read() != _READY:
                raise WorkerFailed("a backfill worker process answered out of turn")
            self.ready = True
        return self.ready

    def send(self, chunk: list[tuple[int, bool, bytes]]) -> None:
        try:
            _write(self.process.stdin, chunk)
        except OSError:  # it ended: say so as reading from it would
            raise self._failed() from None
        self.busy += 1

    def receive(self) -> list:
        records = self._read()
        self.busy -= 1
        return records

    def _read(self) -> Any:
        try:
            return _read(self.process.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            raise self._failed() from None

    def _failed(self) -> WorkerFailed:
        try:
            code = self.process.wait(timeout=1)  # its pipe closes a moment before it is seen to exit
        except subprocess.TimeoutExpired:
            code = None
        return WorkerFailed(
            f"a backfill worker process ended before answering (exit code {code}); none of the batches "
            "it had were sent: rerun the same upload to resume", worker_exit=code,
        )

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


class _Pool:
    def __init__(self, workers: int, settings: Settings, wait: bool = False, fork: bool | None = None) -> None:
        self.settings = settings
        self.wait = wait
        self.fork = fork
        self.size = workers
        self.workers: list[_Worker] = []  # started at the first NDJSON line: a JSON array needs none
        self.window = 2 * workers

    def _start(self) -> None:
        try:
            while len(self.workers) < self.size:
                self.workers.append(_Worker(self.settings, self.fork if self.fork is not None else _can_fork()))
        except OSError as exc:
            raise WorkerFailed(
                f"cannot start a backfill worker process ({exc}); pass --workers 0 to upload without"
            ) from None

    def records(self, batches: Iterable[Any], done: Callable[[int], bool] | None) -> Iterator[Record]:
        # Each entry: ("local", records) prepared here, or ("worker", worker, lines) out there.
        pending: collections.deque = collections.deque()
        chunk: list[tuple[int, Line]] = []
        size = 0
        failure = None
        items = iter(batches)
        index = -1
        while True:
            try:
                item = next(items)
            except StopIteration:
                break
            except ConnectorError as exc:  # the source stopped being JSON: after every batch before it
                failure = exc
                break
            index += 1
            if type(item) is Line:
                chunk.append((index, item))
                size += len(item.text)
                if len(chunk) < CHUNK_LINES and size < CHUNK_BYTES:
                    continue
            else:
                chunk.append((index, item))
            while len(pending) >= self.window:
                yield from self._settle(pending.popleft())
            pending.append(self._dispatch(chunk, done))
            chunk, size = [], 0
        if chunk:
            pending.append(self._dispatch(chunk, done))
        while pending:
            yield from self._settle(pending.popleft())
        if failure is not None:
            raise failure

    def _dispatch(self, chunk: list[tuple[int, Any]], done: Callable[[int], bool] | None) -> tuple:
        worker = None
        if type(chunk[-1][1]) is Line:  # all lines: anything else ends its chunk at once
            if not self.workers:
                self._start()
            ready = [w for w in self.workers if w.poll_ready(self.wait) and w.busy < 2]
            worker = min(ready, key=lambda w: w.busy, default=None)
        if worker is None:  # no worker free yet, or a parsed batch: prepare it here
            return "local", done, chunk
        worker.send([(index, done is not None and done(index), line.text) for index, line in chunk])
        return "worker", worker, chunk

    def _settle(self, entry: tuple) -> Iterator[Record]:
        kind, how, chunk = entry
        if kind == "local":
            for index, item in chunk:
                parsed = type(item) is Line
                batch = item.parse() if parsed else item
                yield record(index, batch, self.settings, how is not None and how(index), parsed=parsed)
            return
        for found in how.receive():
            if len(found) == 2:  # (index, reason): the line is not JSON
                raise dict(chunk)[found[0]].error(found[1])
            yield found

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


# --------------------------------------------------------------------------- the worker


def _main() -> None:
    """A worker started as ``python -m connector_mparticle.backfill_workers``: the settings
    come first on its standard input."""
    source = os.fdopen(os.dup(0), "rb")
    sink = os.fdopen(os.dup(1), "wb")
    try:
        settings = _read(source)
    except EOFError:  # the parent ended before sending anything
        return
    _serve(source, sink, settings)


def _serve(source, sink, settings: Settings) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    os.dup2(2, 1)  # anything printed goes to stderr, never into the answers
    import orjson

    tasks: collections.deque = collections.deque()
    arrived = threading.Semaphore(0)

    def take() -> None:  # read ahead, so the parent's writes never wait for this worker's answers
        try:
            while True:
                tasks.append(_read(source))
                arrived.release()
        except (EOFError, OSError):
            tasks.append(None)
            arrived.release()

    threading.Thread(target=take, daemon=True).start()
    gc.freeze()  # see lean_gc: this process lives for the upload and makes no cycles
    gc.set_threshold(*THRESHOLD)
    _write(sink, _READY)
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    while True:
        arrived.acquire()
        chunk = tasks.popleft()
        if chunk is None:
            return
        out = []
        for index, skip, text in chunk:
            try:
                batch = loads(text)
            except decode_error as exc:
                out.append((index, str(exc)))
                break
            found = record(index, batch, settings, skip, parsed=True)
            # Only a refused batch goes back whole (for the dead letter); the rest as bytes.
            out.append(found if found[6] else found[:2] + (None,) + found[3:])
        _write(sink, out)


if __name__ == "__main__":
    _main()
