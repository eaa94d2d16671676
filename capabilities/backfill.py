"""Backfills: upload a stream of event batches to mParticle within its rate budget.

:func:`upload` takes any iterable of batches (a generator over a file, a warehouse cursor,
a list) and an open :class:`connector_core.Connection`, and returns an :class:`UploadReport`.
Memory does not grow with the input: batches are read, checked, given ids and packed into
requests one at a time, and a bounded queue holds at most ``2 * concurrency`` requests
that wait for a sending thread.

* Every batch is checked as it streams (``batches.check_batch``, the connector's checker). A
  refused batch goes to the ``dead_letter`` sink (its index, the batch and the reasons) and
  the rest continue, unless ``fail_fast``.
* Batches are packed, in order, into ``/v2/bulkevents`` requests of at most 100 batches and
  256 KB, sent by ``concurrency`` threads sharing the connection's pool.
* A :class:`Pacer` keeps the batches sent per second within ``rate`` (mParticle's documented
  default budget is 270 batches/s), slows down on 429 and when
  ``X-mp-rate-limit-percentage-used`` says the budget is nearly used, and pauses every
  thread for a ``Retry-After``.
* ``historical`` (``never``, ``auto``, ``always``) routes batches with events older than 30
  days to ``/v2/bulkevents/historical``, after checking that endpoint's rules (events, each
  with ``timestamp_unixtime_ms``, none under 72 hours old).
* Ids: a batch without ``source_request_id`` gets one derived from ``idempotency_key``, its
  position in the stream and a hash of its canonical JSON (:func:`derive_request_id`), so
  the same input always gets the same ids and mParticle's de-duplication by
  ``source_request_id`` drops whatever a resumed upload sends twice.
* ``state`` (:class:`StateFile`) records, atomically, which positions mParticle acknowledged
  or that were refused and the ids of batches sent without an answer, tied to a
  fingerprint of the inputs and options. Rerunning the same upload skips what is recorded
  and sends the rest with the same ids: every event arrives exactly once.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from connector_core import (
    AuthenticationFailed,
    ConnectorError,
    Fault,
    InvalidConfig,
    InvalidInput,
    OutcomeUnknown,
    RateLimited,
)
from connector_core.http import CallStats, parse_retry_after
from connector_core.validation import data_faults

from .batches import MAX_BATCHES_PER_REQUEST, MAX_REQUEST_BYTES, check_batch, encode
from .upload_report import ACKNOWLEDGED, FAILED, REFUSED, UNKNOWN, NotSent, Sent, UploadReport, post_batches
from .request_ids import canonical_json
from .request_ids import id_from_canonical as derive_request_id

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_RATE",
    "HISTORICAL_MODES",
    "Pacer",
    "Progress",
    "StateFile",
    "UploadReport",
    "combine_reports",
    "derive_request_id",
    "historical_faults",
    "send_batches",
    "upload",
]

log = logging.getLogger("connector_mparticle.backfill")

DEFAULT_RATE = 270.0  # batches per second: mParticle's documented default Events API budget
DEFAULT_CONCURRENCY = 8
HISTORICAL_MODES = ("never", "auto", "always")
HISTORICAL_AFTER_MS = 30 * 24 * 3600 * 1000  # /v2/events and /v2/bulkevents take newer data only
HISTORICAL_MIN_AGE_MS = 72 * 3600 * 1000  # /v2/bulkevents/historical refuses newer events
BULK_PATH = "/bulkevents"
HISTORICAL_PATH = "/bulkevents/historical"
_JSON = {"Content-Type": "application/json"}
_MAX_LISTED = 1000  # ids and refusals listed in a report; counts are always complete
# Sending threads: two start with the first request, the others (up to ``concurrency``) once
# a request has been in flight longer than _SLOW_ANSWER while others wait. Against a service
# close by, two requests in flight keep it busy and more only contend for the interpreter
# lock in both processes (100 x 100 events against the sandbox: 17.5 against 20.2 ms per
# uploadEventBatch call, 2 against 4 threads); one tens of ms away gets every thread within a
# few ms, for about one request's worth of time lost.
_FIRST_THREADS = 2
_SLOW_ANSWER = 0.004  # seconds


# --------------------------------------------------------------------------- ids


def _with_id(batch: Mapping, index: int, key: str) -> tuple[str, bytes]:
    """``(source_request_id, request item bytes)`` of one checked batch."""
    given = batch.get("source_request_id")
    if isinstance(given, str) and given:
        return given, encode(batch)
    body = canonical_json(batch)  # without source_request_id, so a null or "" one is replaced
    request_id = derive_request_id(key, index, body)
    tail = f'"source_request_id":"{request_id}"}}'.encode("ascii")
    # The canonical text ends with "}": append the id as its last member (one encoding per
    # batch, copied once: a slice of the text would be a copy of its own).
    return request_id, b"".join((memoryview(body)[:-1], b"," if len(body) > 2 else b"", tail))


# --------------------------------------------------------------------------- historical


def _event_times(batch: Mapping) -> list[Any]:
    times = []
    for event in batch.get("events") or ():
        data = event.get("data") if isinstance(event, dict) else None
        times.append(data.get("timestamp_unixtime_ms") if isinstance(data, dict) else None)
    return times


def _is_old(batch: Mapping, now_ms: int) -> bool:
    cutoff = now_ms - HISTORICAL_AFTER_MS
    return any(type(t) is int and t < cutoff for t in _event_times(batch))


def historical_faults(batch: Mapping, path: str = "$", now_ms: int | None = None) -> list[Fault]:
    """Why ``/v2/bulkevents/historical`` would refuse ``batch`` (``[]`` when it would not).

    mParticle refuses there a batch without events, an event without
    ``data.timestamp_unixtime_ms``, and any timestamp less than 72 hours old.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    events = batch.get("events") or ()
    if not events:
        return [Fault(f"{path}.events", "the historical endpoint refuses a batch without events; drop it or send it to /v2/bulkevents (--historical never)")]
    faults = []
    newest = now_ms - HISTORICAL_MIN_AGE_MS
    for i, stamp in enumerate(_event_times(batch)):
        where = f"{path}.events[{i}].data.timestamp_unixtime_ms"
        if stamp is None:
            faults.append(Fault(where, "the historical endpoint needs every event's timestamp_unixtime_ms (epoch milliseconds)"))
        elif stamp > newest:
            faults.append(Fault(where, (
                f"{stamp} is less than 72 hours old, which the historical endpoint refuses; send this event in "
                "another batch to /v2/bulkevents (only events older than 30 days need the historical endpoint)"
            )))
    return faults


# --------------------------------------------------------------------------- preparing


@attrs.frozen
class Settings:
    """What preparing a batch depends on besides the batch and its position."""

    key: str
    historical: str
    now_ms: int
    max_request_bytes: int
    from_text: bool = False  # every batch was parsed from JSON text (see upload)


# One prepared batch: (index, events, batch, route, request_id, item, faults). ``route`` is
# None for a batch an earlier run settled (skipped); ``item`` is the encoded batch with its
# id, to send to ``route``, when ``faults`` is empty; ``batch`` is what the dead letter gets.
Record = tuple


def batch_events(batch: Any) -> int:
    events = batch.get("events") if isinstance(batch, dict) else None
    return len(events) if isinstance(events, list) else 0


def prepare(batch: Any, index: int, settings: Settings, *, parsed: bool = False) -> tuple[str, str | None, bytes | None, list[Fault]]:
    """Check one batch and give it its id: ``(route, source_request_id, item, faults)``;
    ``item`` (the request bytes of the batch) is None when there are faults.

    ``parsed`` (or ``settings.from_text``): the batch was parsed from JSON text, so it is
    JSON data. Anything else (a batch a Python caller built) is first checked to be JSON
    data, as the engine checks a capability's input: the batch checker does not look inside
    every value (custom flags are free-form), and the encoder must never meet an object
    that is not JSON."""
    path = f"$[{index}]"
    faults = [] if parsed or settings.from_text else data_faults(batch, path)
    faults = faults or check_batch(batch, path)
    route = BULK_PATH
    historical = settings.historical
    if not faults and (historical == "always" or (historical == "auto" and _is_old(batch, settings.now_ms))):
        route = HISTORICAL_PATH
        faults = historical_faults(batch, path, settings.now_ms)
    if faults:
        return route, None, None, faults
    try:
        request_id, item = _with_id(batch, index, settings.key)
    except ValueError as exc:  # NaN or Infinity, which JSON cannot carry
        return route, None, None, [Fault(path, f"holds a number JSON cannot carry ({exc}); use null or a finite number")]
    if len(item) + 2 > settings.max_request_bytes:
        return route, request_id, None, [Fault(path, (
            f"this batch is {len(item) + 2:,} bytes as a request body, over the {settings.max_request_bytes:,}-byte "
            "limit of one Events API request; split its events into several batches for the same user"))]
    return route, request_id, item, []


def record(index: int, batch: Any, settings: Settings, skip: bool = False, *, parsed: bool = False) -> Record:
    """The record of the batch at ``index`` (``skip``: an earlier run settled it; ``parsed``:
    see :func:`prepare`)."""
    events = batch_events(batch)
    if skip:
        return index, events, batch, None, None, None, None
    route, request_id, item, faults = prepare(batch, index, settings, parsed=parsed)
    return index, events, batch, route, request_id, item, faults


def prepared(batches: Iterable[Any], settings: Settings, done: Callable[[int], bool] | None) -> Iterator[Record]:
    """The records of ``batches``, prepared in this process (``done(index)``: settled earlier)."""
    from .batch_files import Line

    for index, batch in enumerate(batches):
        parsed = type(batch) is Line
        if parsed:
            batch = batch.parse()
        yield record(index, batch, settings, done is not None and done(index), parsed=parsed)


# --------------------------------------------------------------------------- pacing


class Pacer:
    """A batch-rate budget shared by every sending thread.

    :meth:`acquire` reserves ``n`` batches and sleeps until they fit within ``rate`` batches
    per second (reservations are spaced, so there is no burst beyond one request). A 429
    halves the current rate and pauses everyone for its ``Retry-After`` (1 s without one);
    a success whose ``X-mp-rate-limit-percentage-used`` is 95 or more lowers the rate by 5%,
    and one under 80 raises it back by 5% up to the budget.
    """

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        floor: float = 1.0,
    ) -> None:
        if not rate > 0:
            raise InvalidInput("the rate must be a positive number of batches per second",
                               faults=[Fault("$.rate", f"must be > 0, got {rate!r}")])
        self.budget = float(rate)
        self.rate = float(rate)
        self.floor = min(floor, self.budget)
        self.rate_limited = 0
        self._clock = clock
        self._sleep = sleep
        self._next = clock()
        self._lock = threading.Lock()

    def acquire(self, n: int) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + n / self.rate
        if start > now:
            self._sleep(start - now)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Adjust to one answer of the Events API (status and headers)."""
        with self._lock:
            if status == 429:
                self.rate_limited += 1
                self.rate = max(self.floor, self.rate / 2)
                wait = parse_retry_after(headers.get("Retry-After"))
                self._next = max(self._next, self._clock() + (1.0 if wait is None else wait))
                return
            if not 200 <= status < 300:
                return
            used = headers.get("X-mp-rate-limit-percentage-used")
            try:
                percent = float(used) if used is not None else None
            except ValueError:
                percent = None
            if percent is None:
                return
            if percent >= 95:
                self.rate = max(self.floor, self.rate * 0.95)
            elif percent < 80 and self.rate < self.budget:
                self.rate = min(self.budget, self.rate * 1.05)

    def hook(self, response, *args, **kwargs) -> None:
        """A ``requests`` response hook: every attempt, retries included, informs the pacer."""
        self.observe(response.status_code, response.headers)


# --------------------------------------------------------------------------- state


class IndexSet:
    """A set of non-negative integers kept as sorted, merged ``[start, end)`` ranges."""

    def __init__(self, ranges: Iterable[Iterable[int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges:
            for i in range(start, end):  # loaded ranges are few; merging keeps them canonical
                self.add(i)

    def __contains__(self, i: int) -> bool:
        k = bisect.bisect_right(self._starts, i) - 1
        return k >= 0 and i < self._ends[k]

    def __len__(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends))

    def add(self, i: int) -> None:
        starts, ends = self._starts, self._ends
        k = bisect.bisect_right(starts, i) - 1
        if k >= 0 and i < ends[k]:
            return
        joins_left = k >= 0 and ends[k] == i
        joins_right = k + 1 < len(starts) and starts[k + 1] == i + 1
        if joins_left and joins_right:
            ends[k] = ends[k + 1]
            del starts[k + 1], ends[k + 1]
        elif joins_left:
            ends[k] = i + 1
        elif joins_right:
            starts[k + 1] = i
        else:
            starts.insert(k + 1, i)
            ends.insert(k + 1, i + 1)

    def ranges(self) -> list[list[int]]:
        return [[s, e] for s, e in zip(self._starts, self._ends)]


STATE_FORMAT = "connector-mparticle-backfill/1"


class StateFile:
    """Where a resumable upload records its progress (JSON, replaced atomically).

    ``fingerprint`` ties the file to the inputs and options (any string; the CLI hashes the
    input files and the options that change what is sent). A file written for another
    fingerprint is refused, so a changed input never skips batches it did not send.
    Holds: positions acknowledged by mParticle, positions refused (sent to the dead letter),
    the ids of batches sent without a definite answer, and the key the ids derive from.
    """

    def __init__(self, path: str | os.PathLike, fingerprint: str, *, min_interval: float = 0.5) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.min_interval = min_interval
        self.acknowledged = IndexSet()
        self.refused = IndexSet()
        self.unknown: dict[int, str] = {}
        self.resumed = False
        self._written = 0.0
        self._lock = threading.Lock()

    def load(self) -> StateFile:
        """Read the file if it exists; raise ``InvalidInput`` when it belongs to another upload."""
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return self
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read the state file {self.path}: {exc}; delete it to start over",
                               faults=[Fault("$.state", str(exc))]) from None
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise InvalidInput(f"{self.path} is not a state file of this command; pass another --state path",
                               faults=[Fault("$.state", "not a backfill state file")])
        if data.get("fingerprint") != self.fingerprint:
            raise InvalidInput(
                f"the state file {self.path} belongs to another upload (other input files or options); "
                "rerun with the same files and options to resume, or pass a new --state path to start over",
                faults=[Fault("$.state", "was written for other inputs or options")],
            )
        self.acknowledged = IndexSet(data.get("acknowledged", ()))
        self.refused = IndexSet(data.get("refused", ()))
        self.unknown = {int(k): v for k, v in data.get("unknown", {}).items()}
        self.resumed = True
        return self

    def done(self, index: int) -> bool:
        return index in self.acknowledged or index in self.refused

    def save(self, *, force: bool = False) -> None:
        """Write the file atomically (a temporary file renamed over it), at most every ``min_interval`` s."""
        now = time.monotonic()
        if not force and now - self._written < self.min_interval:
            return
        with self._lock:
            self._written = now
            data = {
                "format": STATE_FORMAT,
                "fingerprint": self.fingerprint,
                "acknowledged": self.acknowledged.ranges(),
                "refused": self.refused.ranges(),
                "unknown": {str(k): v for k, v in sorted(self.unknown.items())},
            }
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)


# --------------------------------------------------------------------------- report


@attrs.frozen
class Progress:
    """A snapshot given to the progress callback after each request."""

    batches_read: int
    batches_acknowledged: int
    events_acknowledged: int
    batches_refused: int
    batches_skipped: int
    requests: int
    elapsed: float
    rate: float  # the pacer's current batches/s


def combine_reports(reports: Iterable[UploadReport]) -> UploadReport:
    """One summed report for uploads of consecutive parts of one input (e.g. partitions);
    see :meth:`UploadReport.combine`."""
    return UploadReport.combine(reports, _MAX_LISTED)


# --------------------------------------------------------------------------- requests


@attrs.define
class _Request:
    path: str
    indexes: list[int]
    ids: list[str]
    events: list[int]
    items: list[bytes]

    @property
    def body(self) -> bytes:
        # One allocation of the whole body: b"[" + b",".join(items) + b"]" copied it three times.
        items = self.items
        if len(items) < 2:
            return b"[" + b"".join(items) + b"]"
        return b",".join([b"[" + items[0], *items[1:-1], items[-1] + b"]"])

    def split(self) -> tuple[_Request, _Request]:
        h = len(self.items) // 2
        return (
            _Request(self.path, self.indexes[:h], self.ids[:h], self.events[:h], self.items[:h]),
            _Request(self.path, self.indexes[h:], self.ids[h:], self.events[h:], self.items[h:]),
        )


class _Packer:
    """Packs encoded batches of one endpoint into requests of at most 100 batches and 256 KB."""

    def __init__(self, path: str, max_batches: int, max_bytes: int) -> None:
        self.path = path
        self.max_batches = max_batches
        self.max_bytes = max_bytes
        self._new()

    def _new(self) -> None:
        self.current = _Request(self.path, [], [], [], [])
        self.size = 1  # "[" and the items with their commas; "]" is counted when checking

    def add(self, index: int, request_id: str, events: int, item: bytes) -> _Request | None:
        """Add one batch; returns the full request it pushed out, if any."""
        full = None
        cur = self.current
        if cur.items and (len(cur.items) >= self.max_batches or self.size + 1 + len(item) + 1 > self.max_bytes):
            full = cur
            self._new()
            cur = self.current
        self.size += len(item) + (1 if cur.items else 0)
        cur.indexes.append(index)
        cur.ids.append(request_id)
        cur.events.append(events)
        cur.items.append(item)
        return full

    def flush(self) -> _Request | None:
        cur = self.current
        self._new()
        return cur if cur.items else None


# --------------------------------------------------------------------------- the upload


class Interrupted(ConnectorError):
    """The user interrupted the upload (Ctrl-C); what was sent is recorded."""

    code = "interrupted"
    category = "interrupted"


class _Stop(Exception):
    """Ends the reading loop: a sending thread hit an error that ends the upload."""


class _Upload:
    """One upload's shared state: the report, the state file and the sending threads.

    ``pacer`` None sends without a budget; ``split_refused`` halves a request mParticle
    refused (400) until the refused batches are alone (the backfill), else the whole request
    is refused (``uploadEventBatch``); ``reword`` rewrites a request's error before it is
    recorded. Each sending thread has its own attempt records, with ``stats``' deadline.
    """

    def __init__(self, connection, *, pacer: Pacer | None, concurrency: int, state: StateFile | None = None,
                 dead_letter: Callable[[dict], None] | None = None, fail_fast: bool = False,
                 progress: Callable[[Progress], None] | None = None, max_rounds: int = 0,
                 sleep: Callable[[float], None] = time.sleep, report: UploadReport | None = None,
                 stats: CallStats | None = None, split_refused: bool = True,
                 reword: Callable[[ConnectorError], ConnectorError] | None = None,
                 slow_answer: float = _SLOW_ANSWER) -> None:
        self.connection = connection
        self.pacer = pacer
        self.split_refused = split_refused
        self.reword = reword
        self.state = state
        self.dead_letter = dead_letter
        self.fail_fast = fail_fast
        self.progress = progress
        self.max_rounds = max_rounds
        self.sleep = sleep
        self.report = report if report is not None else UploadReport(limit=_MAX_LISTED)
        self.stats = stats
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.started = time.perf_counter()
        self.queue: queue.Queue[_Request | None] = queue.Queue(maxsize=2 * concurrency)
        # A request's hooks replace the session's: keep the session's own after the pacer's.
        self.hooks = [pacer.hook, *connection.session.hooks.get("response", [])] if pacer is not None else []
        self.threads = [threading.Thread(target=self._work, name=f"backfill-{n}", daemon=True) for n in range(concurrency)]
        self.running = 0  # sending threads started: two with the first request (submit), more while answers are slow
        self.slow_answer = slow_answer
        self.submitted = 0  # requests put in the queue, and taken from it by a thread
        self.taken = 0
        self.sending: dict[int, float] = {}  # thread id -> when its request went out

    # -- outcomes (any thread) --------------------------------------------------------

    def refuse(self, index: int, batch: Any, events: int, faults: list[Fault]) -> None:
        reasons = [f.to_dict() for f in faults]
        with self.lock:
            self.report.refuse(index, events, faults)
            if self.dead_letter is not None:
                self.dead_letter({"index": index, "batch": batch, "reasons": reasons})
            if self.state is not None:
                self.state.refused.add(index)
                self.state.unknown.pop(index, None)
                self.state.save()
        if self.fail_fast:
            self.fail(InvalidInput(
                f"batch {index} was refused and --fail-fast is set; nothing after it was sent",
                faults=[Fault(f["path"], f["message"]) for f in reasons],
            ))

    def acknowledged(self, request: _Request, attempts: int) -> None:
        with self.lock:
            report = self.report
            report.record(Sent(request.indexes, ACKNOWLEDGED, attempts=attempts), request.ids, request.events)
            if request.path == HISTORICAL_PATH:
                report.historical += len(request.indexes)
            if self.state is not None:
                for index in request.indexes:
                    self.state.acknowledged.add(index)
                    self.state.unknown.pop(index, None)
                self.state.save()
            self._tell()

    def sent_unanswered(self, request: _Request, error: ConnectorError) -> None:
        with self.lock:
            self.report.record(Sent(request.indexes, UNKNOWN, error), request.ids, request.events)
            if self.state is not None:
                for index, request_id in zip(request.indexes, request.ids):
                    self.state.unknown[index] = request_id
                self.state.save(force=True)

    def unsent(self, request: _Request, error: ConnectorError | None = None, attempts: int = 0) -> None:
        """Batches mParticle did not take (never sent, or ``attempts`` answered an error)."""
        with self.lock:
            if error is None:
                cause = self.report.error
                error = NotSent("not sent: the upload stopped before this request"
                                + (f" ({cause.code})" if cause is not None else ""),
                                **({"stopped_by": cause.code} if cause is not None else {}))
                if cause is not None:
                    error.category = cause.category
            self.report.record(Sent(request.indexes, FAILED, error, attempts=attempts), request.ids, request.events)

    def refused_whole(self, request: _Request, error: ConnectorError, attempts: int) -> None:
        """mParticle refused (400) every batch of the request."""
        with self.lock:
            self.report.record(Sent(request.indexes, REFUSED, error, attempts), request.ids, request.events)

    def fail(self, error: ConnectorError) -> None:
        with self.lock:
            if self.report.error is None:
                self.report.error = error
        self.stop.set()

    def _tell(self) -> None:
        if self.progress is None:
            return
        r = self.report
        self.progress(Progress(r.batches, r.acknowledged_batches, r.acknowledged_events, r.refused_batches,
                               r.skipped, r.requests, time.perf_counter() - self.started, self.pacer.rate))

    # -- sending threads ---------------------------------------------------------------

    def _work(self) -> None:
        # Attempts are told apart per thread: post_batches reads the records of its own request.
        stats = CallStats(deadline=self.stats.deadline if self.stats is not None else None)
        client = self.connection.client("events", retry_safe=True, stats=stats)
        try:
            self._loop(client, stats)
        finally:
            with self.lock:
                self.report.retries += stats.retries
                if self.stats is not None:
                    self.stats.requests += stats.requests
                    self.stats.retries += stats.retries
                    self.stats.attempts.extend(stats.attempts)

    def _loop(self, client, stats: CallStats) -> None:
        while True:
            request = self.queue.get()
            if request is None:
                return
            with self.lock:
                self.taken += 1
            if self.stop.is_set():
                self.unsent(request)
                continue
            try:
                self._send(client, stats, request)
            except Exception as exc:  # a bug must not leave the reading loop waiting forever
                log.exception("backfill sender failed")
                error = OutcomeUnknown(f"the upload stopped on an unexpected error: {type(exc).__name__}: {exc}")
                self.sent_unanswered(request, error)
                self.fail(error)

    def _send(self, client, stats: CallStats, request: _Request) -> None:
        """Send one request until mParticle settles it (the fate as ``upload_report`` tells it)."""
        rounds = 0
        while True:
            if self.stop.is_set():
                self.unsent(request)
                return
            if self.pacer is not None:
                self.pacer.acquire(len(request.items))
            with self.lock:
                self.report.requests += 1
            me = threading.get_ident()
            self.sending[me] = time.monotonic()
            try:
                sent = post_batches(client, request.path, request.body, request.indexes, lambda: stats.attempts, self.hooks)
            finally:
                del self.sending[me]
            if sent.fate == ACKNOWLEDGED:
                self.acknowledged(request, sent.attempts)
                return
            exc = sent.error if self.reword is None else self.reword(sent.error)
            if sent.fate == REFUSED:  # 400: mParticle refused the whole request
                if self.split_refused:
                    self._refused(client, stats, request, exc)
                else:
                    self.refused_whole(request, exc, sent.attempts)
                return
            status = exc.details.get("status")
            if status == 413 and len(request.items) > 1:
                for half in request.split():
                    self._send(client, stats, half)
                return
            def settle(request: _Request, exc: ConnectorError) -> None:
                if sent.fate == UNKNOWN:
                    self.sent_unanswered(request, exc)
                else:
                    self.unsent(request, exc, sent.attempts)

            if isinstance(exc, AuthenticationFailed) or status in (404, 413) or exc.category in ("config", "plugin"):
                settle(request, exc)
                self.fail(exc)
                return
            rounds += 1
            if rounds > self.max_rounds:
                settle(request, exc)
                self.fail(_unknown(exc) if sent.fate == UNKNOWN else exc)
                return
            with self.lock:
                self.report.retries += 1
            if not isinstance(exc, RateLimited):  # the pacer already waits out a 429's Retry-After
                self.sleep(min(30.0, 2.0 ** rounds))

    def _refused(self, client, stats: CallStats, request: _Request, exc: ConnectorError) -> None:
        """A 400 for a request: halve it until the refused batches are alone, send the rest."""
        if len(request.items) > 1:
            for half in request.split():
                self._send(client, stats, half)
            return
        batch = json.loads(request.items[0])
        self.refuse(request.indexes[0], batch, request.events[0],
                    [Fault("$", f"mParticle refused this batch: {exc.message}")])

    # -- the reading loop (caller's thread) ----------------------------------------------

    def submit(self, request: _Request | None) -> None:
        if request is None:
            return
        with self.lock:
            self.submitted += 1
        if not self.running:
            # Started with the first request, not before: worker processes start at the first
            # line, and a fork is safe only while this process runs one thread. The request is
            # queued first (unless the upload already stopped), so the first thread sends it
            # while the second starts.
            queued = not self.stop.is_set()
            if queued:
                self.queue.put_nowait(request)
            for _ in range(min(_FIRST_THREADS, len(self.threads))):
                self._start()
            if queued:
                return
        while True:
            if self.stop.is_set():
                with self.lock:
                    self.submitted -= 1
                self.unsent(request)
                raise _Stop
            self._grow()
            try:
                self.queue.put(request, timeout=min(self.slow_answer, 0.1) if self.running < len(self.threads) else 0.1)
                return
            except queue.Full:
                continue

    def _start(self) -> None:
        self.threads[self.running].start()
        self.running += 1

    def _grow(self) -> int:
        """When requests wait and one in flight has waited for its answer longer than
        ``slow_answer`` seconds, start a thread for each waiting request (up to ``concurrency`` in all);
        return how many started. The caller's thread watches: the sending threads are busy."""
        if self.running >= len(self.threads) or self.stop.is_set():
            return 0
        with self.lock:
            waiting = self.submitted - self.taken
        sent = list(self.sending.values())
        if waiting <= 0 or not sent or time.monotonic() - min(sent) <= self.slow_answer:
            return 0
        more = min(waiting, len(self.threads) - self.running)
        for _ in range(more):
            self._start()
        return more

    def finish(self) -> None:
        for _ in range(self.running):  # behind every request
            self.queue.put(None)
        joined = 0
        while joined < self.running:
            if self.running < len(self.threads):
                self.threads[joined].join(min(self.slow_answer, 0.1))
                for _ in range(self._grow()):
                    self.queue.put(None)  # for each new thread
            else:
                self.threads[joined].join()
            if not self.threads[joined].is_alive():
                joined += 1


def _unknown(exc: ConnectorError) -> OutcomeUnknown:
    return OutcomeUnknown(
        f"the upload stopped: {exc.message}. Batches were sent without an answer, so mParticle may or may "
        "not have them; rerun the same upload (same inputs, options and state file) to resend them with "
        "the same source_request_ids, which mParticle de-duplicates",
        cause=exc.code,
        **{k: v for k, v in exc.details.items() if k in ("status", "url")},
    )


def upload(
    connection,
    batches: Iterable[Any],
    *,
    rate: float = DEFAULT_RATE,
    concurrency: int = DEFAULT_CONCURRENCY,
    historical: str = "never",
    idempotency_key: str = "",
    dead_letter: Callable[[dict], None] | None = None,
    fail_fast: bool = False,
    state: StateFile | None = None,
    progress: Callable[[Progress], None] | None = None,
    max_batches_per_request: int = MAX_BATCHES_PER_REQUEST,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    max_rounds: int = 5,
    pacer: Pacer | None = None,
    now_ms: Callable[[], int] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    report: UploadReport | None = None,
    stats: CallStats | None = None,
    workers: int = 0,
    from_text: bool = False,
    slow_answer: float = _SLOW_ANSWER,
) -> UploadReport:
    """Upload ``batches`` (any iterable of batch dicts) on ``connection``; return what happened.

    ``connection`` is an open mParticle :class:`connector_core.Connection` (needs the
    ``pod``, or an ``eventsUrl``). ``rate`` is the budget in batches per second, shared by
    ``concurrency`` sending threads. ``historical``: ``never`` sends everything to
    ``/v2/bulkevents``; ``auto`` sends batches holding events older than 30 days to
    ``/v2/bulkevents/historical``; ``always`` sends every batch there. ``idempotency_key``
    scopes the derived ids (an empty key: the same content at the same position always
    gets the same id, so uploading the same data twice delivers it once). ``dead_letter`` is
    called with ``{"index", "batch", "reasons"}`` for each refused batch; ``fail_fast``
    ends the upload at the first. ``state`` makes the upload resumable; ``progress`` is
    called with a :class:`Progress` after each request. ``report`` is the report to fill (by
    default a new summed one; ``uploadEventBatch`` passes one holding every batch's id), and
    ``stats``, when given, is credited with the HTTP requests and retries of the upload.
    Two sending threads start with the first request, the others (up to ``concurrency``) once
    a request has been in flight ``slow_answer`` seconds while requests wait.

    ``batches`` may also hold :class:`~connector_mparticle.batch_files.Line` items, the
    unparsed text of one batch (``batch_files.iter_batches(paths, raw=True)`` yields them for
    NDJSON files). With ``workers`` > 0, those are parsed, checked, given their ids and
    encoded by that many worker processes (see ``backfill_workers``), while this process
    only sends: the same requests, ids and report as without workers. ``from_text``: every
    batch was parsed from JSON text (``iter_batches``, ``iter_text_batches``), so none is
    checked to be JSON data again; batches built in Python are, before anything else.

    Returns an :class:`UploadReport` (see its ``status``). Interrupted by Ctrl-C, it waits
    for the requests in flight, saves the state and returns a report with
    ``interrupted`` set and status ``stopped``.
    """
    if historical not in HISTORICAL_MODES:
        raise InvalidInput(f"historical must be one of {', '.join(HISTORICAL_MODES)}",
                           faults=[Fault("$.historical", f"{historical!r} is not one of {', '.join(HISTORICAL_MODES)}")])
    if not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidInput("concurrency must be a positive whole number",
                           faults=[Fault("$.concurrency", f"must be >= 1, got {concurrency!r}")])
    if max_rounds < 0:
        raise InvalidInput("max_rounds must be >= 0")
    if not isinstance(workers, int) or workers < 0:
        raise InvalidInput("workers must be a whole number >= 0",
                           faults=[Fault("$.workers", f"must be >= 0, got {workers!r}")])
    if not 1 <= max_batches_per_request <= MAX_BATCHES_PER_REQUEST or not 2 < max_request_bytes <= MAX_REQUEST_BYTES:
        raise InvalidInput("request limits must be within mParticle's (100 batches, 256 KB)")
    if "events" not in connection.connector.endpoints:
        raise InvalidConfig(f"connector {connection.connector.id!r} has no events endpoint")
    connection.base_url("events")  # a missing pod fails here, before anything is read
    now_ms = now_ms or (lambda: int(time.time() * 1000))
    job = _Upload(connection, pacer=pacer or Pacer(rate), concurrency=concurrency, state=state,
                  dead_letter=dead_letter, fail_fast=fail_fast, progress=progress, max_rounds=max_rounds, sleep=sleep,
                  report=report, stats=stats, slow_answer=slow_answer)
    report = job.report
    packers = {path: _Packer(path, max_batches_per_request, max_request_bytes) for path in (BULK_PATH, HISTORICAL_PATH)}
    settings = Settings(idempotency_key, historical, now_ms(), max_request_bytes, from_text)
    done = state.done if state is not None else None
    if workers:
        from .backfill_workers import prepared_by_workers

        records = prepared_by_workers(batches, settings, done, workers)
    else:
        records = prepared(batches, settings, done)
    try:
        for index, events, batch, route, request_id, item, faults in records:
            report.read(None, events)
            if route is None:  # acknowledged or refused by an earlier run with the same state file
                report.skipped += 1
                continue
            if job.stop.is_set():
                # Its id when known up front (uploadEventBatch's streamed text), so the report
                # names it; a backfill derives ids as it sends, and this one was not sent.
                known = report.ids[index] if index < len(report.ids) else None
                job.unsent(_Request(BULK_PATH, [index], [known], [events], []))
                raise _Stop
            if request_id is not None and index < len(report.ids):
                report.ids[index] = request_id
            if faults:
                job.refuse(index, batch, events, faults)
                if job.stop.is_set():
                    raise _Stop
                continue
            job.submit(packers[route].add(index, request_id, events, item))
        for packer in packers.values():
            job.submit(packer.flush())
    except _Stop:
        for packer in packers.values():
            left = packer.flush()
            if left is not None:
                job.unsent(left)
    except KeyboardInterrupt:
        report.interrupted = True
        job.fail(Interrupted("interrupted before every batch was sent; rerun the same upload to resume"))
        for packer in packers.values():
            left = packer.flush()
            if left is not None:
                job.unsent(left)
    except ConnectorError as exc:  # the source failed (e.g. a file that stops being JSON)
        job.fail(exc)
        for packer in packers.values():
            left = packer.flush()
            if left is not None:
                job.unsent(left)
    finally:
        records.close()  # ends the worker processes, if any
        job.finish()
        report.rate_limited = job.pacer.rate_limited
        report.duration = time.perf_counter() - job.started
        if state is not None:
            state.save(force=True)
    return report


def send_batches(
    connection,
    items: Iterable[tuple[int, str, int, bytes]],
    report: UploadReport,
    *,
    concurrency: int = 1,
    stats: CallStats | None = None,
    reword: Callable[[ConnectorError], ConnectorError] | None = None,
    max_batches_per_request: int = MAX_BATCHES_PER_REQUEST,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    slow_answer: float = _SLOW_ANSWER,
) -> None:
    """Send batches already checked, identified and encoded, ``concurrency`` requests at a
    time, and record the fate of every one of them in ``report`` (``uploadEventBatch``).

    ``items`` are ``(index, source_request_id, events, encoded batch)`` in input order; each
    item must fit in one request. They are packed in order into ``/v2/bulkevents`` requests
    as the backfill packs them and sent by its threads, without a rate budget and with no
    rounds beyond the HTTP layer's retries (which repeat a request with the same bytes, so
    the same ids). A 400 refuses the whole request; the first request that ends neither
    acknowledged nor refused stops the upload: requests in flight end and are recorded as
    they end, and every batch not yet sent is recorded as failed with ``code: not_sent``.
    ``stats`` (the call's) gives the deadline and is credited with every attempt.
    ``slow_answer``: two threads send at first, the others once a request has been in flight
    that many seconds while requests wait.
    """
    job = _Upload(connection, pacer=None, concurrency=concurrency, report=report, stats=stats,
                  split_refused=False, reword=reword, slow_answer=slow_answer)
    packer = _Packer(BULK_PATH, max_batches_per_request, max_request_bytes)
    items = iter(items)
    try:
        for index, request_id, events, item in items:
            job.submit(packer.add(index, request_id, events, item))
        job.submit(packer.flush())
    except _Stop:  # a request stopped the upload: the rest is reported request by request, not sent
        for index, request_id, events, item in items:
            full = packer.add(index, request_id, events, item)
            if full is not None:
                job.unsent(full)
        left = packer.flush()
        if left is not None:
            job.unsent(left)
    finally:
        job.finish()
