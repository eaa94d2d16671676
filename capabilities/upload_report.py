"""What happened to each batch of an upload, and the one error a host can act on.

An upload sends its batches in requests. Each request ends in one *fate*, shared by its
batches:

``acknowledged``
    mParticle answered 2xx (202). mParticle processes batches asynchronously and may still
    drop invalid ones; for ``/v2/bulkevents`` it documents a 202 even when some batches of the
    request fail, so "acknowledged" is all a client can know, never "processed".
``refused``
    mParticle answered 400 for the whole request, with its message. Sending it again
    unchanged will be refused again.
``unknown``
    The request was sent (or may have been) and no answer was read: a connection reset or
    closed after sending, a read timeout, a cut-off answer. mParticle may have the batches.
    Resending them with the *same* ids is safe: mParticle drops batches whose id it has.
``failed``
    mParticle answered every attempt with an error status other than 400 (429, 401/403,
    5xx, ...), or the request was never sent because an earlier one stopped the upload
    (``code: not_sent``). A 429 or a credentials error means mParticle did not take them; a
    5xx says nothing certain. Either way, resending them with the same ids once the cause is
    gone is safe.

:class:`UploadReport` collects the fates (of one call, or summed over a backfill) and gives the output of ``uploadEventBatch``
(:meth:`UploadReport.output`) or, when a batch is neither acknowledged nor refused, the
error to raise (:meth:`UploadReport.error_to_raise`), which carries the same report in
``details["report"]``. ``status`` is ``accepted`` (every batch acknowledged), ``unknown``
(some batch's fate is unknown) or ``partial`` (otherwise).

The error's category is the first of :data:`CATEGORY_ORDER` that applies to a batch that
was not acknowledged (unknown batches count as ``outcome_unknown``, refused ones as
``input``; a category not listed there comes just before ``input``): the most urgent thing
for the host to know comes first.

:func:`post_batches` sends one request and tells its fate from the HTTP layer's attempt records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from connector_core import (
    ConnectorError,
    Fault,
    HttpClient,
    InvalidInput,
    OutcomeUnknown,
)
from connector_core.http import ANSWER_LOST, EXECUTED, NOT_SENT, Attempt

__all__ = [
    "ACKNOWLEDGED",
    "CATEGORY_ORDER",
    "FAILED",
    "REFUSED",
    "UNKNOWN",
    "Sent",
    "UploadReport",
    "post_batches",
]

ACKNOWLEDGED = "acknowledged"
REFUSED = "refused"
UNKNOWN = "unknown"
FAILED = "failed"
FATES = (ACKNOWLEDGED, REFUSED, UNKNOWN, FAILED)

# When batches stay unresolved for different reasons, the error of the upload has the first
# of these categories that applies to one of them (any other just before "input").
CATEGORY_ORDER = ("outcome_unknown", "network", "upstream", "rate_limited", "auth", "config", "not_found", "conflict", "input")


def _urgency(category: str) -> float:
    # "input" is kept for batches mParticle refused: an error of any other kind outranks it.
    return CATEGORY_ORDER.index(category) if category in CATEGORY_ORDER else CATEGORY_ORDER.index("input") - 0.5

_JSON = {"Content-Type": "application/json"}


@attrs.frozen
class Sent:
    """The fate of one request: its batches (input indexes), the fate and, unless
    acknowledged, the error that explains it."""

    indexes: Sequence[int]
    fate: str = attrs.field(validator=attrs.validators.in_(FATES))
    error: ConnectorError | None = None
    attempts: int = 1  # HTTP attempts that left the machine; 0 when nothing was sent

    @property
    def category(self) -> str | None:
        """The error category these batches contribute to the upload's error."""
        if self.fate == ACKNOWLEDGED:
            return None
        if self.fate == UNKNOWN:
            return "outcome_unknown"
        if self.fate == REFUSED:
            return "input"
        return self.error.category if self.error is not None else "upstream"


def post_batches(
    client: HttpClient,
    path: str,
    body: bytes,
    indexes: Sequence[int],
    attempts: Callable[[], Sequence[Attempt]],
    hooks: Sequence[Callable[..., Any]] = (),
) -> Sent:
    """POST one Events API request and tell the fate of its batches from its attempts.

    ``attempts`` returns the call's attempt records so far (``ctx.attempts``); the HTTP
    layer repeats attempts that got no answer or a 429/5xx, since the ids make the request
    safe to repeat. A 2xx in any attempt means acknowledged; a final 400, refused; an
    attempt that was sent and lost its answer (reset, timeout, cut-off answer) leaves the
    fate unknown unless a later attempt settled it; otherwise the batches failed, and when
    no attempt left the machine at all (refused connection, credentials not obtained) the
    report says nothing was sent. ``hooks`` are ``requests`` response hooks for this request
    (they replace the session's, so pass those along too).
    """
    first = len(attempts())
    extra = {"hooks": {"response": list(hooks)}} if hooks else {}
    try:
        client.post(path, data=body, headers=_JSON, **extra)
    except ConnectorError as exc:
        made = [a for a in attempts()[first:] if not a.credentials]
        sent = sum(a.phase != NOT_SENT for a in made)
        if any(a.outcome == EXECUTED for a in made):
            return Sent(indexes, ACKNOWLEDGED, attempts=sent)
        if made and made[-1].status == 400:
            return Sent(indexes, REFUSED, exc, sent)
        if any(a.phase == ANSWER_LOST for a in made):
            return Sent(indexes, UNKNOWN, exc, sent)
        return Sent(indexes, FAILED, exc, sent)
    return Sent(indexes, ACKNOWLEDGED, attempts=len(attempts()) - first)


class NotSent(ConnectorError):
    """Batches left unsent because an earlier request stopped the upload."""

    code = "not_sent"


class UploadReport:
    """The fates of an upload's batches; see the module docstring. One type for every upload:
    ``uploadEventBatch`` (one call) and the backfill engine (a stream, summed).

    ``ids`` are the ``source_request_id`` of every batch by input index and ``events`` the
    number of events of each, when known up front (``uploadEventBatch``); ``keyed`` whether
    the call had an ``idempotencyKey`` (it changes what the error tells the host to do),
    ``single`` whether the input was one batch object (fault paths are then ``$.jsonBody``
    rather than ``$.jsonBody[i]``).

    ``limit`` makes it a summed report of a stream (the backfill): counts stay complete, but
    each list (positions and ids per fate, errors, refusal reasons) keeps its first
    ``limit`` entries, so memory does not grow with the input; batches are counted as they
    are read (:meth:`read`), and :meth:`to_dict` adds what a long upload reports (events read,
    skipped, historical, retries, rate limiting, duration and throughput, the ``error`` that
    stopped it).
    """

    def __init__(
        self, ids: Sequence[str] = (), events: Sequence[int] = (), *, keyed: bool = True, single: bool = False,
        warnings: Sequence[dict[str, str]] = (), limit: int | None = None,
    ) -> None:
        self.ids = list(ids)
        self.batch_events = list(events)
        self.keyed = keyed
        self.single = single
        self.warnings = list(warnings)  # the checker's doubts, {"path", "message"} each
        self.limit = limit
        self.batches = len(self.ids)
        self.events = sum(self.batch_events)
        self._preset = bool(self.ids)
        self.requests = 0
        self.counts = dict.fromkeys(FATES, 0)
        self.fate_events = dict.fromkeys(FATES, 0)
        self.listed: dict[str, list[tuple[int, str | None]]] = {fate: [] for fate in FATES}
        self.sent: list[Sent] = []  # the requests not acknowledged (at most ``limit``), for the error
        self.causes: dict[str, ConnectorError | None] = {}  # first cause per category, complete
        self.attempted = False  # whether any attempt left the machine
        self.reasons: list[dict[str, Any]] = []  # why the checker refused batches (the backfill)
        # A summed report's own counts.
        self.skipped = 0
        self.historical = 0
        self.retries = 0
        self.rate_limited = 0
        self.duration = 0.0
        self.interrupted = False
        self.error: ConnectorError | None = None  # what stopped a backfill

    # -- recording -------------------------------------------------------------------------

    def _room(self, items: list) -> bool:
        return self.limit is None or len(items) < self.limit

    def read(self, request_id: str | None, events: int) -> None:
        """Count one batch of a stream as read (a summed report; a report made with the ids of
        every batch up front has counted them already)."""
        if self._preset:
            return
        self.batches += 1
        self.events += events
        if self._room(self.ids):
            self.ids.append(request_id)

    def record(self, sent: Sent, ids: Sequence[str | None], events: Sequence[int]) -> Sent:
        """Record the fate of ``sent.indexes``, whose ids and event counts are ``ids`` and ``events``."""
        fate = sent.fate
        self.counts[fate] += len(sent.indexes)
        self.fate_events[fate] += sum(events)
        listed = self.listed[fate]
        for pair in zip(sent.indexes, ids):
            if not self._room(listed):
                break
            listed.append(pair)
        self.attempted = self.attempted or sent.attempts > 0
        if fate != ACKNOWLEDGED:
            self.causes.setdefault(sent.category, sent.error)
            if self._room(self.sent):
                self.sent.append(sent)
        return sent

    def add(self, sent: Sent) -> Sent:
        """Record the fate of one request that was sent (batches known up front)."""
        self.requests += 1
        return self.record(sent, [self.ids[i] for i in sent.indexes], [self.batch_events[i] for i in sent.indexes])

    def skip(self, indexes: Sequence[int], cause: ConnectorError, ids: Sequence[str | None] | None = None,
             events: Sequence[int] | None = None) -> None:
        """Record batches not sent because ``cause`` stopped the upload."""
        error = NotSent(
            f"not sent: the upload stopped at an earlier request ({cause.code})",
            stopped_by=cause.code,
        )
        error.category = cause.category  # the stop cause decides what the host must fix
        self.record(Sent(indexes, FAILED, error, attempts=0),
                    [self.ids[i] for i in indexes] if ids is None else ids,
                    [self.batch_events[i] for i in indexes] if events is None else events)

    def refuse(self, index: int, events: int, faults: Sequence[Fault]) -> None:
        """Record one batch refused before sending (the backfill's checker), with the reasons."""
        reasons = [f.to_dict() for f in faults]
        self.record(Sent([index], REFUSED, InvalidInput(faults[0].message if faults else "refused", faults=list(faults)),
                         attempts=0), [None], [events])
        if self._room(self.reasons):
            self.reasons.append({"index": index, "reasons": reasons[:20]})

    # -- reading ---------------------------------------------------------------------------

    def indexes(self, fate: str) -> list[int]:
        """The positions of the batches with ``fate`` (the first ``limit`` recorded, sorted)."""
        return sorted(i for i, _ in self.listed[fate])

    @property
    def status(self) -> str:
        """``accepted``, ``partial``, ``unknown``, or (a backfill that an error ended) ``stopped``."""
        if self.counts[UNKNOWN]:
            return "unknown"
        # What stopped a backfill; a call's report (no limit) tells the fates alone.
        if self.limit is not None and self.error is not None and not isinstance(self.error, OutcomeUnknown):
            return "stopped"
        return "partial" if self.counts[REFUSED] or self.counts[FAILED] else "accepted"

    def _group(self, fate: str) -> dict[str, Any]:
        pairs = sorted(self.listed[fate], key=lambda pair: pair[0])
        return {
            "count": self.counts[fate],
            "events": self.fate_events[fate],
            "batches": [i for i, _ in pairs],
            "sourceRequestIds": [r for _, r in pairs],
        }

    def to_dict(self) -> dict[str, Any]:
        """The report: the output of ``uploadEventBatch`` and ``details["report"]`` of its
        errors; for a summed report (``limit``) also the JSON summary of a backfill."""
        errors = []
        for sent in sorted(self.sent, key=lambda sent: min(sent.indexes, default=0)):
            if sent.error is None:
                continue
            entry: dict[str, Any] = {
                "fate": sent.fate,
                "batches": list(sent.indexes),
                "code": sent.error.code,
                "message": sent.error.message,
            }
            if isinstance(sent.error.details.get("status"), int):
                entry["status"] = sent.error.details["status"]
            errors.append(entry)
        out: dict[str, Any] = {
            "status": self.status,
            "batches": self.batches,
            "requests": self.requests,
            "sourceRequestIds": self.ids,
            **{fate: self._group(fate) for fate in FATES},
            "errors": errors,
            "warnings": self.warnings,
        }
        if self.limit is None:
            return out
        seconds = max(self.duration, 1e-9)
        out["refused"]["reasons"] = self.reasons
        out.update({
            "events": self.events,
            "listLimit": self.limit,
            "skipped": {"count": self.skipped},
            "historical": {"count": self.historical},
            "retries": self.retries,
            "rateLimited": self.rate_limited,
            "durationSeconds": round(self.duration, 3),
            "eventsPerSecond": round(self.fate_events[ACKNOWLEDGED] / seconds, 1),
            "batchesPerSecond": round(self.counts[ACKNOWLEDGED] / seconds, 1),
        })
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out

    def output(self) -> dict[str, Any]:
        """The output; call only when :meth:`error_to_raise` is None."""
        return self.to_dict()

    @classmethod
    def combine(cls, reports: Iterable[UploadReport], limit: int = 1000) -> UploadReport:
        """One summed report for uploads of consecutive parts of one input (e.g. partitions):
        counts summed, positions shifted by the batches of the parts before, the first error kept."""
        total = cls(limit=limit)
        offset = 0
        for report in reports:
            for name in ("batches", "events", "requests", "skipped", "historical", "retries", "rate_limited"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            for fate in FATES:
                total.counts[fate] += report.counts[fate]
                total.fate_events[fate] += report.fate_events[fate]
                total.listed[fate] += [(i + offset, r) for i, r in report.listed[fate]][: limit - len(total.listed[fate])]
            total.ids += report.ids[: limit - len(total.ids)]
            total.sent += [Sent([i + offset for i in s.indexes], s.fate, s.error, s.attempts) for s in report.sent][: limit - len(total.sent)]
            for category, cause in report.causes.items():
                total.causes.setdefault(category, cause)
            total.reasons += [{**r, "index": r["index"] + offset, "reasons": [_shifted(x, offset) for x in r["reasons"]]}
                              for r in report.reasons][: limit - len(total.reasons)]
            total.attempted = total.attempted or report.attempted
            total.duration = max(total.duration, report.duration)
            total.interrupted = total.interrupted or report.interrupted
            total.error = total.error or report.error
            offset += report.batches
        return total

    # Counts by name, for the Python API of the backfill.
    acknowledged_batches = property(lambda self: self.counts[ACKNOWLEDGED])
    acknowledged_events = property(lambda self: self.fate_events[ACKNOWLEDGED])
    refused_batches = property(lambda self: self.counts[REFUSED])
    refused_events = property(lambda self: self.fate_events[REFUSED])

    def error_to_raise(self) -> ConnectorError | None:
        """The error to raise, or None when every batch was acknowledged or refused and at
        least one acknowledged (the output then says ``accepted`` or ``partial``)."""
        unresolved = [fate for fate in (REFUSED, UNKNOWN, FAILED) if self.counts[fate]]
        if not unresolved:
            return None
        acknowledged = self.counts[ACKNOWLEDGED]
        if acknowledged and unresolved == [REFUSED]:
            return None
        category = min(self.causes, key=_urgency)
        report = self.to_dict()
        if category == "input":
            return self._all_refused(report)
        cause = self.causes[category]
        message = f"{self._what_happened(cause, category)} {self._what_to_do(acknowledged)}"
        # Batches mParticle refused keep their faults whatever else stopped the upload.
        faults = self._refused_faults()
        if category == "outcome_unknown":
            return OutcomeUnknown(message, faults=faults, report=report, **_cause_details(cause))
        return cause.copy(message, faults=faults, report=report)

    # -- wording ---------------------------------------------------------------------------

    def _counts(self) -> str:
        parts = [f"{self.counts[fate]} {fate}" for fate in FATES if self.counts[fate]]
        return f"of {self.batches} batch(es): " + ", ".join(parts)

    def _what_happened(self, cause: ConnectorError, category: str) -> str:
        if category == "outcome_unknown":
            unknown = self.counts[UNKNOWN]
            return (
                f"no answer was read for {unknown} batch(es) ({cause.message}), so mParticle may or may "
                f"not have them ({self._counts()})."
            )
        return f"{cause.message} ({self._counts()})."

    def _what_to_do(self, acknowledged: int) -> str:
        unknown = self.counts[UNKNOWN]
        if not self.attempted:
            return "Nothing was sent, so the call can be repeated as it is once the cause is fixed."
        if not acknowledged and not unknown:
            return "mParticle took none of the batches, so the call can be repeated as it is once the cause is fixed."
        resend = (
            "resend the batches listed in details.report.unknown and details.report.failed with the "
            "source_request_ids listed there (mParticle drops any batch whose id it already has)"
        )
        if self.keyed:
            return (
                f"Repeat this call with the same idempotencyKey and jsonBody, which sends the same ids, or {resend}."
            )
        return (
            f"To finish the upload, {resend}. Do not repeat this call unchanged: it has no idempotencyKey, so "
            "every batch would get a new id and the events mParticle already has would be doubled."
        )

    def _refused_faults(self) -> list[Fault]:
        """One fault per refused batch, with mParticle's message."""
        refused = [(i, sent.error.message) for sent in self.sent if sent.fate == REFUSED and sent.error is not None
                   for i in sent.indexes]
        # In input order, whatever order concurrent requests were answered in.
        return [Fault("$.jsonBody" if self.single else f"$.jsonBody[{i}]", message) for i, message in sorted(refused)]

    def _all_refused(self, report: dict[str, Any]) -> InvalidInput:
        faults = self._refused_faults()
        return InvalidInput(
            f"mParticle refused every request of this upload (400), so it accepted none of the "
            f"{self.batches} batch(es); the faults say why. Fix the batches and send them again.",
            faults=faults,
            report=report,
        )


def _shifted(reason: dict[str, Any], offset: int) -> dict[str, Any]:
    """A refusal reason of a part with its JSON path (``$[i]...``) pointing into the whole input."""
    index, sep, rest = reason.get("path", "").removeprefix("$[").partition("]")
    return {**reason, "path": f"$[{int(index) + offset}]{rest}"} if sep and index.isdigit() else reason


def _cause_details(cause: ConnectorError) -> dict[str, Any]:
    """The facts of the underlying failure worth keeping on the upload's error."""
    keep = ("status", "url", "attempts", "retry_after")
    return {key: cause.details[key] for key in keep if key in cause.details} | {"cause": cause.code}
