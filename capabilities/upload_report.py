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

:class:`UploadReport` collects the fates and gives the output of ``uploadEventBatch``
(:meth:`UploadReport.output`) or, when a batch is neither acknowledged nor refused, the
error to raise (:meth:`UploadReport.error`), which carries the same report in
``details["report"]``. ``status`` is ``accepted`` (every batch acknowledged), ``unknown``
(some batch's fate is unknown) or ``partial`` (otherwise).

The error's category is the first of :data:`CATEGORY_ORDER` that applies to a batch that
was not acknowledged (unknown batches count as ``outcome_unknown``, refused ones as
``input``): the most urgent thing for the host to know comes first.

:func:`post_batches` sends one request and tells its fate from the HTTP layer's attempt records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
# of these categories that applies to one of them.
CATEGORY_ORDER = ("outcome_unknown", "network", "upstream", "rate_limited", "auth", "config", "input")

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
    """The fates of an upload's batches; see the module docstring.

    ``ids`` are the ``source_request_id`` of every batch by input index, ``events`` the
    number of events of each, ``keyed`` whether the call had an ``idempotencyKey`` (it
    changes what the error tells the host to do), ``single`` whether the input was one
    batch object (fault paths are then ``$.jsonBody`` rather than ``$.jsonBody[i]``).
    """

    def __init__(
        self, ids: Sequence[str], events: Sequence[int], *, keyed: bool, single: bool = False,
        warnings: Sequence[dict[str, str]] = (),
    ) -> None:
        self.ids = list(ids)
        self.events = list(events)
        self.keyed = keyed
        self.single = single
        self.warnings = list(warnings)  # the checker's doubts, {"path", "message"} each
        self.sent: list[Sent] = []
        self.requests = 0

    def add(self, sent: Sent) -> Sent:
        """Record the fate of one request that was sent."""
        self.requests += 1
        self.sent.append(sent)
        return sent

    def skip(self, indexes: Sequence[int], cause: ConnectorError) -> None:
        """Record batches not sent because ``cause`` stopped the upload."""
        error = NotSent(
            f"not sent: the upload stopped at an earlier request ({cause.code})",
            stopped_by=cause.code,
        )
        error.category = cause.category  # the stop cause decides what the host must fix
        self.sent.append(Sent(indexes, FAILED, error, attempts=0))

    # -- reading ---------------------------------------------------------------------------

    def indexes(self, fate: str) -> list[int]:
        return sorted(i for sent in self.sent if sent.fate == fate for i in sent.indexes)

    @property
    def status(self) -> str:
        fates = {sent.fate for sent in self.sent}
        if UNKNOWN in fates:
            return "unknown"
        return "accepted" if fates == {ACKNOWLEDGED} else "partial"

    def _group(self, fate: str) -> dict[str, Any]:
        indexes = self.indexes(fate)
        return {
            "count": len(indexes),
            "events": sum(self.events[i] for i in indexes),
            "batches": indexes,
            "sourceRequestIds": [self.ids[i] for i in indexes],
        }

    def to_dict(self) -> dict[str, Any]:
        """The report: the output of ``uploadEventBatch`` and ``details["report"]`` of its errors."""
        errors = []
        for sent in self.sent:
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
        return {
            "status": self.status,
            "batches": len(self.ids),
            "requests": self.requests,
            "sourceRequestIds": self.ids,
            **{fate: self._group(fate) for fate in FATES},
            "errors": errors,
            "warnings": self.warnings,
        }

    def output(self) -> dict[str, Any]:
        """The output; call only when :meth:`error` is None."""
        return self.to_dict()

    def error(self) -> ConnectorError | None:
        """The error to raise, or None when every batch was acknowledged or refused and at
        least one acknowledged (the output then says ``accepted`` or ``partial``)."""
        unresolved = [sent for sent in self.sent if sent.fate != ACKNOWLEDGED]
        if not unresolved:
            return None
        acknowledged = len(self.indexes(ACKNOWLEDGED))
        if acknowledged and all(sent.fate == REFUSED for sent in unresolved):
            return None
        category = min((sent.category for sent in unresolved), key=CATEGORY_ORDER.index)
        report = self.to_dict()
        if category == "input":
            return self._all_refused(report)
        cause = next(sent.error for sent in unresolved if sent.category == category)
        message = f"{self._what_happened(cause, category)} {self._what_to_do(acknowledged)}"
        # Batches mParticle refused keep their faults whatever else stopped the upload.
        faults = self._refused_faults()
        if category == "outcome_unknown":
            return OutcomeUnknown(message, faults=faults, report=report, **_cause_details(cause))
        return cause.copy(message, faults=faults, report=report)

    # -- wording ---------------------------------------------------------------------------

    def _counts(self) -> str:
        parts = [f"{len(self.indexes(fate))} {fate}" for fate in FATES if self.indexes(fate)]
        return f"of {len(self.ids)} batch(es): " + ", ".join(parts)

    def _what_happened(self, cause: ConnectorError, category: str) -> str:
        if category == "outcome_unknown":
            unknown = len(self.indexes(UNKNOWN))
            return (
                f"no answer was read for {unknown} batch(es) ({cause.message}), so mParticle may or may "
                f"not have them ({self._counts()})."
            )
        return f"{cause.message} ({self._counts()})."

    def _what_to_do(self, acknowledged: int) -> str:
        unknown = len(self.indexes(UNKNOWN))
        if not any(sent.attempts for sent in self.sent):
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
        return [
            Fault("$.jsonBody" if self.single else f"$.jsonBody[{i}]", sent.error.message)
            for sent in self.sent
            if sent.fate == REFUSED and sent.error is not None
            for i in sent.indexes
        ]

    def _all_refused(self, report: dict[str, Any]) -> InvalidInput:
        faults = self._refused_faults()
        return InvalidInput(
            f"mParticle refused every request of this upload (400), so it accepted none of the "
            f"{len(self.ids)} batch(es); the faults say why. Fix the batches and send them again.",
            faults=faults,
            report=report,
        )


def _cause_details(cause: ConnectorError) -> dict[str, Any]:
    """The facts of the underlying failure worth keeping on the upload's error."""
    keep = ("status", "url", "attempts", "retry_after")
    return {key: cause.details[key] for key in keep if key in cause.details} | {"cause": cause.code}
