"""uploadEventBatch: send event batches to the Events API, each event exactly once.

One batch goes to ``POST /v2/events``; several go to ``POST /v2/bulkevents`` in requests of
at most 100 batches and 256 KB. Every batch is checked before anything is sent.

Exactly once rests on mParticle's de-duplication by ``source_request_id``:

* batches without one get an id first (``request_ids.assign_ids``): derived from the
  ``idempotencyKey`` input, the batch's content and its position when a key is given, so a
  host repeating a failed call with the same key and body sends the same ids; random
  otherwise. Different batches sharing an id are refused before sending.
* the HTTP layer repeats a request whose answer was lost with the same bytes, so a copy
  that landed is dropped by mParticle.
* the output (``upload_report.UploadReport``) says which batches mParticle acknowledged,
  refused or may or may not have, with their ids; when any batch is neither acknowledged
  nor refused the call raises one typed error carrying that report, whose message says
  what to resend.
"""

from connector_core import AuthenticationFailed, ConnectorError, InvalidInput, hookimpl

from .common import manifest

MANIFEST = manifest("uploadEventBatch")
__all__ = ["MANIFEST", "execute"]


@hookimpl
def execute(ctx, properties):
    # The checker, the chunker and the report load on the first upload, not on every start
    # of the host (listing plugins needs none of them).
    from .upload_report import ACKNOWLEDGED, REFUSED, Sent, UploadReport, post_batches

    try:
        batches, single, key, requests, warnings = _prepare(properties)
        client = ctx.http("events")
    except ConnectorError as exc:  # nothing went out: say so, so the host knows repeating is safe
        raise exc if "nothing was sent" in exc.message else exc.copy(f"{exc.message}; nothing was sent") from None

    report = UploadReport(
        [b["source_request_id"] for b in batches],
        [len(b.get("events") or ()) for b in batches],
        keyed=key is not None,
        single=single,
        warnings=warnings,
    )
    for n, (path, indexes, body) in enumerate(requests):
        sent = post_batches(client, path, body, indexes, lambda: ctx.attempts)
        if isinstance(sent.error, AuthenticationFailed):
            sent = Sent(sent.indexes, sent.fate, _credentials_error(ctx, sent.error), sent.attempts)
        report.add(sent)
        if sent.fate not in (ACKNOWLEDGED, REFUSED):  # the service is in trouble: stop here
            for _, rest, _ in requests[n + 1:]:
                report.skip(rest, sent.error)
            break
    error = report.error()
    if error is not None:
        raise error
    return report.output()


def _prepare(properties):
    """Parse, check, identify and pack the batches: ``(batches, single, key, requests, warnings)``;
    ``warnings`` lists what the checker passes but doubts, as ``{"path", "message"}``."""
    from .batches import check_batches, chunk_batches, encode_single, parse_batches
    from .request_ids import assign_ids, duplicate_id_faults

    batches, single = parse_batches(properties["jsonBody"])
    doubts = []
    faults = check_batches(batches, single=single, warnings=doubts)
    warnings = [{"path": w.path, "message": w.message} for w in doubts]
    if faults:
        raise InvalidInput(f"{len(faults)} problem(s) in the event batches; nothing was sent", faults=faults)
    key = properties.get("idempotencyKey") or None  # "" is how a flow passes an unset field
    batches = assign_ids(batches, key)
    faults = duplicate_id_faults(batches)
    if faults:
        raise InvalidInput("different batches share a source_request_id; nothing was sent", faults=faults)
    if len(batches) == 1:
        return batches, single, key, [("/events", range(1), encode_single(batches[0]))], warnings
    requests, start = [], 0
    for members, body in chunk_batches(batches):
        requests.append(("/bulkevents", range(start, start + len(members)), body))
        start += len(members)
    return batches, single, key, requests, warnings


def _credentials_error(ctx, exc: AuthenticationFailed) -> AuthenticationFailed:
    """Say which credentials the Events API refused (401: none sent, 403: wrong ones)."""
    pair = "apiKey/apiSecret" if ctx.config.get("apiKey") else "clientID/clientSecret (used because no apiKey is set)"
    return exc.copy(
        f"the Events API refused the input credentials {pair} ({exc.details.get('status')}); "
        "check them: they are the key and secret of a server-to-server input in mParticle"
    )
