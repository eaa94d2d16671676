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
