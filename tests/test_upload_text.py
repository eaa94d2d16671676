"""uploadEventBatch with a jsonBody of JSON text longer than one request: read as a stream,
every batch checked before anything is sent, then sent by the backfill engine.

Real HTTP against the sandbox. The texts are padded with whitespace (valid JSON between array
items) past the 256 KiB from which text is streamed.
"""

from __future__ import annotations

import json

import pytest

from connector_core import Engine, InvalidInput

PAD = " " * 300_000


def batch(customer: str, **extra) -> dict:
    event = {"event_type": "custom_event", "data": {"event_name": "Viewed", "custom_event_type": "navigation"}}
    return {"environment": "development", "user_identities": {"customer_id": customer}, "events": [event, event], **extra}


def text(*items) -> str:
    return "[" + PAD + ",".join(json.dumps(item) for item in items) + "]"


@pytest.fixture(scope="module")
def engine():
    with Engine() as engine:
        yield engine


def test_every_bad_item_of_a_streamed_body_is_reported_and_nothing_is_sent(engine, mparticle_sandbox):
    with pytest.raises(InvalidInput) as caught:
        engine.execute("uploadEventBatch", {"jsonBody": text(1, {"events": "not a list"}, batch("u1"))}, mparticle_sandbox.config)
    assert caught.value.message == "2 problem(s) in the event batches; nothing was sent"
    assert [(f.path, f.message) for f in caught.value.faults] == [
        ("$.jsonBody[0]", "must be a batch object, not int"),
        ("$.jsonBody[1].events", "'events' must be an array of events, not string"),
    ]
    assert mparticle_sandbox.state()["batches_accepted"] == 0


def test_a_streamed_body_may_repeat_one_batch_under_its_id(engine, mparticle_sandbox):
    same = batch("u1", source_request_id="same-id")
    output = engine.execute("uploadEventBatch", {"jsonBody": text(same, same)}, mparticle_sandbox.config).output
    assert output["status"] == "accepted" and output["sourceRequestIds"] == ["same-id", "same-id"]
    assert (output["acknowledged"]["count"], output["acknowledged"]["events"]) == (2, 4)
    assert mparticle_sandbox.state()["batches_accepted"] == 1  # mParticle keeps the first batch of an id


def test_a_streamed_body_may_not_give_two_different_batches_one_id(engine, mparticle_sandbox):
    with pytest.raises(InvalidInput) as caught:
        engine.execute("uploadEventBatch", {"jsonBody": text(batch("u1", source_request_id="one-id"), batch("u2", source_request_id="one-id"))},
                       mparticle_sandbox.config)
    assert caught.value.message.endswith("; nothing was sent")
    assert [f.path for f in caught.value.faults] == ["$.jsonBody[0].source_request_id", "$.jsonBody[1].source_request_id"]
    assert "is also the source_request_id of $.jsonBody[1], a different batch" in caught.value.faults[0].message
    assert mparticle_sandbox.state()["batches_accepted"] == 0


LIMIT = 256 * 1024  # bytes in one Events API request body


def sized(total: int, request_id: str) -> dict:
    """A batch whose request body ("[" + the batch as compact JSON + "]") is ``total`` bytes."""
    b = batch("big", source_request_id=request_id)
    b["events"] = [{"event_type": "custom_event",
                    "data": {"event_name": "x", "custom_event_type": "other", "custom_attributes": {"pad": ""}}}]
    base = len(json.dumps(b, separators=(",", ":"))) + 2
    b["events"][0]["data"]["custom_attributes"]["pad"] = "x" * (total - base)
    assert len(json.dumps(b, separators=(",", ":"))) + 2 == total
    return b


@pytest.mark.parametrize("as_text", [False, True], ids=["list", "streamed-text"])
def test_a_batch_of_exactly_one_request_body_is_sent_and_one_byte_more_is_refused(engine, mparticle_sandbox, as_text):
    small = batch("small", source_request_id="small-id")

    def body(*batches):
        return json.dumps(list(batches)) + " " * 10 if as_text else list(batches)

    output = engine.execute("uploadEventBatch", {"jsonBody": body(sized(LIMIT, "fits-id"), small)}, mparticle_sandbox.config).output
    assert output["acknowledged"]["count"] == 2
    mparticle_sandbox.reset()
    with pytest.raises(InvalidInput) as caught:
        engine.execute("uploadEventBatch", {"jsonBody": body(sized(LIMIT + 1, "over-id"), small)}, mparticle_sandbox.config)
    ((path, message),) = [(f.path, f.message) for f in caught.value.faults]
    assert path == "$.jsonBody[0]"
    assert message.startswith("this batch is 262,145 bytes as a request body, over the 262,144-byte")
    assert mparticle_sandbox.state()["batches_accepted"] == 0


# -------------------------------------------------------------------- when the upload fails


def small(i: int) -> dict:
    return {"environment": "development", "user_identities": {"customer_id": f"cust-{i}"},
            "events": [{"event_type": "custom_event", "data": {"event_name": "Tap", "custom_event_type": "navigation"}}]}


def closed_port_url() -> str:
    """An Events API URL on loopback where nothing listens: every connection is refused."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v2"


def test_a_streamed_body_mparticle_refuses_names_every_refused_batch_by_its_index(engine, mparticle_sandbox):
    # The backfill engine halves a refused request until each refused batch is alone: 3 requests.
    mparticle_sandbox.fail_next("uploadBulkEvents", 3, status=400)
    with pytest.raises(InvalidInput) as caught:
        engine.execute("uploadEventBatch", {"jsonBody": text(batch("u1"), batch("u2"))}, mparticle_sandbox.config)
    assert caught.value.message.startswith("mParticle refused every request of this upload (400), so it accepted none of the 2 batch(es)")
    assert [f.path for f in caught.value.faults] == ["$.jsonBody[0]", "$.jsonBody[1]"]
    report = caught.value.details["report"]
    assert (report["refused"]["count"], report["refused"]["events"], report["refused"]["batches"]) == (2, 4, [0, 1])
    assert mparticle_sandbox.state()["batches_accepted"] == 0


def test_a_streamed_body_with_concurrency_1_sends_one_request_at_a_time_in_input_order(engine, mparticle_sandbox):
    # Every request takes at least 450 ms; at the streamed path's pace of 270 batches/s a
    # request of 100 batches may start every 370 ms, so they would overlap if sent together.
    mparticle_sandbox.set_latency(450)  # survives reset: set back below
    try:
        customers = [f"one-at-a-time-{i}" for i in range(150)]
        output = engine.execute("uploadEventBatch", {"jsonBody": text(*(batch(c) for c in customers)), "concurrency": 1},
                                mparticle_sandbox.config).output
    finally:
        mparticle_sandbox.set_latency(0)
    assert (output["status"], output["acknowledged"]["count"], output["requests"]) == ("accepted", 150, 2)
    first, second = [r["time"] for r in mparticle_sandbox.requests if r["path"].endswith("/bulkevents")]
    assert second - first >= 0.45, "the second request was sent before the first was answered"
    assert [b["user_identities"]["customer_id"] for b in mparticle_sandbox.batches] == customers


@pytest.mark.parametrize("key", [None, "key-1"], ids=["no-key", "key"])
def test_a_streamed_body_whose_answer_was_lost_says_how_to_resend_it(engine, mparticle_sandbox, key):
    from connector_core import OutcomeUnknown

    mparticle_sandbox.fail_next("uploadBulkEvents", effect="drop")
    properties = {"jsonBody": text(batch("u1"), batch("u2")), **({"idempotencyKey": key} if key else {})}
    with pytest.raises(OutcomeUnknown) as caught:
        engine.execute("uploadEventBatch", properties, {**mparticle_sandbox.config, "maxRetries": 0})
    message = caught.value.message
    assert message.startswith("no answer was read for 2 batch(es) (")
    assert "(of 2 batch(es): 2 unknown)." in message
    if key:
        assert message.endswith("Repeat this call with the same idempotencyKey and jsonBody, which sends the same ids, or resend the "
                                "batches listed in details.report.unknown and details.report.failed with the source_request_ids "
                                "listed there (mParticle drops any batch whose id it already has).")
    else:
        assert "Do not repeat this call unchanged: it has no idempotencyKey" in message
    report = caught.value.details["report"]
    assert (report["status"], report["unknown"]["count"], report["unknown"]["events"]) == ("unknown", 2, 4)
    assert report["unknown"]["sourceRequestIds"] == report["sourceRequestIds"]
    # No rounds beyond the retry policy's (maxRetries 0): the request went out once.
    assert [r["endpoint"] for r in mparticle_sandbox.requests] == ["uploadBulkEvents"]


def test_a_streamed_body_that_reached_no_one_is_reported_not_sent_with_every_id(engine, mparticle_sandbox):
    """Every connection refused: 5000 batches (50 requests), the upload stops at the first
    refusal, so the engine leaves batches unread (it reads at most 25 requests ahead); each is reported failed with its id, stopped
    by the network error, and the error says nothing was sent."""
    from connector_core import NetworkError

    config = {**mparticle_sandbox.config, "eventsUrl": closed_port_url(), "maxRetries": 0}
    with pytest.raises(NetworkError) as caught:
        engine.execute("uploadEventBatch", {"jsonBody": json.dumps([small(i) for i in range(5000)])}, config)
    assert caught.value.message.endswith("Nothing was sent, so the call can be repeated as it is once the cause is fixed.")
    report = caught.value.details["report"]
    assert (report["status"], report["batches"]) == ("partial", 5000)
    assert (report["failed"]["count"], report["failed"]["events"]) == (5000, 5000)
    assert report["failed"]["batches"] == list(range(5000))
    assert report["failed"]["sourceRequestIds"] == report["sourceRequestIds"]
    assert len(set(report["sourceRequestIds"])) == 5000
    # The requests in flight when the first refusal came (one per sending thread, at most 8)
    # failed on their own; the rest were not sent: requests the engine had packed, then
    # batches it never read, each stopped by the network error.
    refused = [e for e in report["errors"] if e["code"] == "network_error"]
    assert 1 <= len(refused) <= 8
    assert {e["message"] for e in report["errors"] if e not in refused} == {
        "not sent: the upload stopped before this request (network_error)",
        "not sent: the upload stopped at an earlier request (network_error)"}
    assert mparticle_sandbox.requests == []
