"""uploadEventBatch: send event batches to the Events API.

One batch goes to ``POST /v2/events``; several go to ``POST /v2/bulkevents`` in requests
of at most 100 batches and 256 KB. Every batch is checked before anything is sent, and
batches without ``source_request_id`` get a UUID first: mParticle drops batches whose id
it has seen, so retries (same ids) cannot duplicate events.

When a request fails after others were accepted, the batches already accepted stay
accepted; the output lists the ones that were not (``status: "partial"``) so the host
can send those again with the same ids.
"""

from connector_core import AuthenticationFailed, ConnectorError, Fault, InvalidInput, hookimpl

from .batches import (
    check_batches,
    chunk_batches,
    encode_single,
    ensure_request_ids,
    parse_batches,
)
from .common import CONNECTOR_MANIFEST, manifest

MANIFEST = manifest("uploadEventBatch")
__all__ = ["CONNECTOR_MANIFEST", "MANIFEST", "execute"]

_JSON = {"Content-Type": "application/json"}


@hookimpl
def execute(ctx, properties):
    batches, single = parse_batches(properties["jsonBody"])
    faults = check_batches(batches, single=single)
    if faults:
        raise InvalidInput(f"{len(faults)} problem(s) in the event batches; nothing was sent", faults=faults)
    batches = ensure_request_ids(batches)
    if len(batches) == 1:
        requests = [("/events", [0], encode_single(batches[0]))]
    else:
        requests, start = [], 0
        for members, body in chunk_batches(batches):
            requests.append(("/bulkevents", range(start, start + len(members)), body))
            start += len(members)

    client = ctx.http("events")
    ids = [b["source_request_id"] for b in batches]
    accepted, events, errors, sent = 0, 0, [], 0
    refused: list[dict] = []  # the errors of batches mParticle refused (400)
    stopped_by: ConnectorError | None = None
    for n, (path, indexes, body) in enumerate(requests):
        try:
            client.post(path, data=body, headers=_JSON)
        except InvalidInput as exc:  # mParticle refused these batches; the others may still go
            sent += 1
            refusals = [_error(i, ids[i], exc) for i in indexes]
            refused += refusals
            errors += refusals
            continue
        except ConnectorError as exc:
            if isinstance(exc, AuthenticationFailed):
                exc = _credentials_error(ctx, exc)
            if accepted == 0 and not errors:
                raise exc from None  # nothing was accepted: the typed error says it all
            sent += 1
            stopped_by = exc
            errors += [_error(i, ids[i], exc) for _, rest, _ in requests[n:] for i in rest]
            break
        sent += 1
        accepted += len(indexes)
        events += sum(len(batches[i].get("events") or ()) for i in indexes)
    if accepted == 0:
        faults = [_fault(e, single) for e in refused]
        if stopped_by is not None:
            # Refused batches, then a failure that is not about the input (network, rate
            # limit, credentials): the failure's own error, so the host acts on it, still
            # carrying the refused batches' faults.
            raise stopped_by.copy(
                f"{stopped_by.message} (before that, mParticle refused {len(refused)} batch(es), see faults; "
                "it accepted none)",
                faults=faults,
            ) from None
        raise InvalidInput("mParticle accepted none of the batches; the faults say why", faults=faults)
    return {
        "status": "partial" if errors else "accepted",
        "batches": len(batches),
        "accepted": accepted,
        "events": events,
        "requests": sent,
        "sourceRequestIds": ids,
        "errors": errors,
    }


def _credentials_error(ctx, exc: AuthenticationFailed) -> AuthenticationFailed:
    """Say which credentials the Events API refused (401: none sent, 403: wrong ones)."""
    pair = "apiKey/apiSecret" if ctx.config.get("apiKey") else "clientID/clientSecret (used because no apiKey is set)"
    return exc.copy(
        f"the Events API refused the input credentials {pair} ({exc.details.get('status')}); "
        "check them: they are the key and secret of a server-to-server input in mParticle"
    )


def _error(index: int, request_id: str, exc: ConnectorError) -> dict:
    error = {"batch": index, "sourceRequestId": request_id, "code": exc.code, "message": exc.message}
    if "status" in exc.details:
        error["status"] = exc.details["status"]
    return error


def _fault(error: dict, single: bool):
    return Fault("$.jsonBody" if single else f"$.jsonBody[{error['batch']}]", error["message"])
