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
* bulk requests go out ``concurrency`` at a time (default 4) through the backfill engine's
  sending threads (``backfill.send_batches``); once one ends neither acknowledged nor
  refused, the requests in flight end and are recorded as they end, and the rest are
  reported not sent (``concurrency: 1`` sends them one after another, in input order).
* the output (``upload_report.UploadReport``) says which batches mParticle acknowledged,
  refused or may or may not have, with their ids; when any batch is neither acknowledged
  nor refused the call raises one typed error carrying that report, whose message says
  what to resend.
"""

import uuid

from connector_core import AuthenticationFailed, ConnectorError, Fault, InvalidInput, hookimpl

from .common import manifest

MANIFEST = manifest("uploadEventBatch")
__all__ = ["MANIFEST", "STREAM_TEXT_BYTES", "execute"]
# A text jsonBody longer than one request (a JSON array) is read as a stream, twice (check,
# then send through the backfill engine), so memory stays near the text's own size.
STREAM_TEXT_BYTES = 256 * 1024  # batches.MAX_REQUEST_BYTES, written out to keep the import lazy
# Bulk requests in flight at once: enough to keep the service busy while the next request is
# sent, few enough to stay far below mParticle's rate budget for one call.
DEFAULT_CONCURRENCY = 4


@hookimpl
def execute(ctx, properties):
    # The checker, the chunker and the report load on the first upload, not on every start
    # of the host (listing plugins needs none of them).
    from .upload_report import UploadReport

    body = properties["jsonBody"]
    # The manifest's checksInputData: the engine left jsonBody's JSON-data check to this pass,
    # which checks batches given as objects in the same walk as the batch rules.
    encoded = _plain_input(body)
    if encoded is None:
        ctx.check_input_data()
    if isinstance(body, (str, bytes)) and len(body) > STREAM_TEXT_BYTES and _is_array_text(body):
        return _upload_text(ctx, body, properties.get("idempotencyKey") or None,
                            properties.get("concurrency") or DEFAULT_CONCURRENCY)
    try:
        batches, single, key, items, warnings = _prepare(properties, encoded)
    except ConnectorError as exc:  # nothing went out: say so, so the host knows repeating is safe
        raise exc if "nothing was sent" in exc.message else exc.copy(f"{exc.message}; nothing was sent") from None

    report = UploadReport(
        [b["source_request_id"] for b in batches],
        [len(b.get("events") or ()) for b in batches],
        keyed=key is not None,
        single=single,
        warnings=warnings,
    )
    if len(items) == 1:
        _send_one(ctx, report, items[0][3])
    else:
        from .backfill import send_batches

        send_batches(ctx.connection, items, report, concurrency=properties.get("concurrency") or DEFAULT_CONCURRENCY,
                     stats=ctx.stats, reword=lambda exc: _credentials_error(ctx, exc))
    error = report.error_to_raise()
    if error is not None:
        raise error
    return report.output()


def _send_one(ctx, report, body: bytes) -> None:
    """One batch: one ``/v2/events`` request."""
    from .upload_report import Sent, post_batches

    sent = post_batches(ctx.http("events"), "/events", body, range(1), lambda: ctx.attempts)
    if sent.error is not None:
        sent = Sent(sent.indexes, sent.fate, _credentials_error(ctx, sent.error), sent.attempts)
    report.add(sent)


def _is_array_text(body: str | bytes) -> bool:
    head = body[:64].lstrip(" \t\r\n\ufeff" if isinstance(body, str) else b" \t\r\n")
    return head[:1] in ("[", b"[")


def _upload_text(ctx, text: str | bytes, key: str | None, concurrency: int):
    """A large JSON array given as text: read it as a stream to check every batch and give
    it its id (nothing is sent when any batch is refused), then again to send it through the
    backfill engine. Holds the text, one batch at a time and the ids."""
    from .backfill import upload
    from .batch_files import iter_text_batches
    from .batches import MAX_REQUEST_BYTES, check_batch, encode
    from .request_ids import content_hash, derive_id, has_id, shared_id_faults
    from .upload_report import UploadReport

    ctx.log.info("jsonBody is %d characters of JSON text: read as a stream, checked, then sent by the backfill engine", len(text))

    ids: list[str] = []
    events: list[int] = []
    faults: list[Fault] = []
    doubts: list = []
    first: dict[str, tuple[int, str]] = {}  # a given id -> (its first index, that batch's hash)
    for i, batch in enumerate(iter_text_batches(text)):
        path = f"$.jsonBody[{i}]"
        if not isinstance(batch, dict):
            faults.append(Fault(path, f"must be a batch object, not {type(batch).__name__}"))
            ids.append("")
            events.append(0)
            continue
        faults.extend(check_batch(batch, path, doubts))
        if has_id(batch):
            request_id = batch["source_request_id"]
            if isinstance(request_id, str):
                at, digest = first.setdefault(request_id, (i, content_hash(batch)))
                if at != i and digest != content_hash(batch):
                    faults.extend(shared_id_faults("$.jsonBody", at, i))
        else:
            request_id = derive_id(key, i, batch) if key else str(uuid.uuid4())
        size = len(encode({**batch, "source_request_id": request_id})) + 2
        if size > MAX_REQUEST_BYTES:
            faults.append(Fault(path, f"this batch is {size:,} bytes as a request body, over the {MAX_REQUEST_BYTES:,}-byte "
                                      "limit of one Events API request; split its events into several batches for the same user"))
        ids.append(request_id)
        events.append(len(batch.get("events") or ()))
    if not ids:
        raise InvalidInput("no batches to send; nothing was sent", faults=[Fault(
            "$.jsonBody", "is an empty array; give at least one batch object")])
    if faults:
        faults.sort(key=lambda f: f.path)
        raise InvalidInput(f"{len(faults)} problem(s) in the event batches; nothing was sent", faults=faults)

    def with_ids():
        for i, batch in enumerate(iter_text_batches(text)):
            batch["source_request_id"] = ids[i]
            yield batch

    warnings = [{"path": w.path, "message": w.message} for w in doubts]
    report = UploadReport(ids, events, keyed=key is not None, warnings=warnings)
    upload(ctx.connection, with_ids(), report=report, stats=ctx.stats, max_rounds=0, concurrency=concurrency, from_text=True)
    recorded = {i for fate in report.listed.values() for i, _ in fate}
    missing = [i for i in range(len(ids)) if i not in recorded]
    if missing:  # an error stopped the engine before it read them
        report.skip(missing, report.error or InvalidInput("not sent"))
    error = report.error_to_raise()
    if error is not None:
        raise error
    return report.output()


def _plain_input(body) -> list[bytes] | None:
    """Each batch of ``body`` encoded (``batches.encode``) when ``body``, batch objects, is
    certainly JSON data (no fault of the engine's ``data_faults``) and plainly valid (no
    fault or warning of the checker), settled in one pass (``batches.plain_data_batches``)
    and the encoding, whose orjson refuses a key that is not exactly a str and a lone
    surrogate. None whenever in doubt: the engine's check and the checker then decide, as
    before."""
    if type(body) is dict:
        batches, depth = (body,), 1  # $ is the properties, $.jsonBody the batch
    elif type(body) is list and body:
        batches, depth = body, 2
    else:
        return None
    from .batches import _ORJSON_OPTIONS, _orjson, plain_data_batches

    if _orjson is None:
        return None
    dumps = _orjson.dumps
    encoded = []
    for batch in batches:  # each batch encoded right after its check, while its values are in the cache
        if not plain_data_batches((batch,), depth):
            return None
        try:
            encoded.append(dumps(batch, option=_ORJSON_OPTIONS))
        except TypeError:  # (or an integer beyond 64 bits, which is JSON data: the engine's check says)
            return None
    return encoded


def _prepare(properties, encoded: list[bytes] | None = None):
    """Parse, check, identify and encode the batches: ``(batches, single, key, items, warnings)``;
    ``items`` are ``(index, source_request_id, events, encoded batch)`` and ``warnings``
    lists what the checker passes but doubts, as ``{"path", "message"}``. Every batch is
    encoded here, before anything is sent, so one too large to send fails the call whole.
    ``encoded``: what ``_plain_input`` answered for the batches, which are then plainly
    valid (no fault, no warning) and already encoded."""
    from .batches import MAX_REQUEST_BYTES, _too_large, check_batches, encode, parse_batches
    from .request_ids import assign_ids, duplicate_id_faults, with_id

    given, single = parse_batches(properties["jsonBody"])
    doubts = []
    faults = [] if encoded is not None else check_batches(given, single=single, warnings=doubts)
    warnings = [{"path": w.path, "message": w.message} for w in doubts]
    if faults:
        raise InvalidInput(f"{len(faults)} problem(s) in the event batches; nothing was sent", faults=faults)
    key = properties.get("idempotencyKey") or None  # "" is how a flow passes an unset field
    batches = assign_ids(given, key)
    faults = duplicate_id_faults(batches)
    if faults:
        raise InvalidInput("different batches share a source_request_id; nothing was sent", faults=faults)
    items = []
    extra = 0 if len(batches) == 1 else 2  # a bulk request's "[" and "]"
    for i, batch in enumerate(batches):
        if encoded is None:
            item = encode(batch)
        elif batch is given[i]:  # it had its id
            item = encoded[i]
        else:
            item = with_id(encoded[i], given[i], batch)
        if len(item) + extra > MAX_REQUEST_BYTES:
            raise _too_large(len(item) + extra, MAX_REQUEST_BYTES, "$.jsonBody" if not extra else f"$.jsonBody[{i}]")
        items.append((i, batch["source_request_id"], len(batch.get("events") or ()), item))
    return batches, single, key, items, warnings


def _credentials_error(ctx, exc: ConnectorError) -> ConnectorError:
    """Say which credentials the Events API refused (401: none sent, 403: wrong ones); any
    other error is returned as it is."""
    if not isinstance(exc, AuthenticationFailed):
        return exc
    pair = "apiKey/apiSecret" if ctx.config.get("apiKey") else "clientID/clientSecret (used because no apiKey is set)"
    return exc.copy(
        f"the Events API refused the input credentials {pair} ({exc.details.get('status')}); "
        "check them: they are the key and secret of a server-to-server input in mParticle"
    )
