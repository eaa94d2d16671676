"""uploadEventBatch end to end against the mParticle sandbox over real HTTP.

Input forms, checking before sending, source_request_id handling, the official sample
batches, packing into requests at the 100-batch and 256 KB limits, and partial failures.
The sandbox checks every batch it receives with the same rules, so "accepted by the
sandbox" means the batch reached it intact and valid; ``sb.batches`` is compared with
what was given.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import jsonschema
import pytest
import requests
from connector_mparticle.batches import (
    MAX_BATCHES_PER_REQUEST,
    MAX_REQUEST_BYTES,
    encode,
)
from connector_mparticle.sandbox import Sandbox
from shared_folder import shared_path

from connector_core import (
    AuthenticationFailed,
    Conflict,
    Connection,
    ConnectorError,
    Engine,
    InvalidInput,
    NotFound,
    OutcomeUnknown,
    RateLimited,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT_SCHEMA = json.loads((REPO_ROOT / "manifests" / "uploadEventBatch.json").read_text("utf-8"))["outputSchema"]

assert MAX_REQUEST_BYTES == 262144 and MAX_BATCHES_PER_REQUEST == 100  # the documented limits


class Wire:
    """Runs callbacks after each answer the connector gets (a ``requests`` response hook)."""

    def __init__(self) -> None:
        self.on_response: list[Callable[[requests.Response], None]] = []

    def session(self) -> requests.Session:
        session = Connection._new_session()
        session.hooks["response"].append(self._hook)
        return session

    def _hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        for callback in list(self.on_response):
            callback(response)


SLEEPS: list[float] = []
WIRE = Wire()


@pytest.fixture(scope="module")
def engine() -> Engine:
    with Engine(sleep=SLEEPS.append, session_factory=WIRE.session) as built:
        yield built


@pytest.fixture
def sb(mparticle_sandbox: Sandbox, engine: Engine) -> Sandbox:
    engine.close()
    SLEEPS.clear()
    WIRE.on_response.clear()
    return mparticle_sandbox


def upload(engine: Engine, sb: Sandbox, body: Any, **inputs: Any) -> dict:
    output = engine.execute("uploadEventBatch", {"jsonBody": body, **inputs}, sb.config).output
    problems = [e.message for e in jsonschema.Draft202012Validator(OUTPUT_SCHEMA).iter_errors(output)]
    assert not problems, problems
    return output


def acked(output: dict) -> int:
    return output["acknowledged"]["count"]


def upload_error(engine: Engine, sb: Sandbox, body: Any, error_type=InvalidInput, **inputs: Any) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        engine.execute("uploadEventBatch", {"jsonBody": body, **inputs}, sb.config)
    assert type(caught.value) is error_type, repr(caught.value)
    return caught.value


def event_requests(sb: Sandbox) -> list[dict]:
    return [r for r in sb.requests if r["endpoint"] in ("uploadEvents", "uploadBulkEvents")]


def in_input_order(items: list[dict], ids: list[str]) -> list[dict]:
    """Logged requests (by their first batch) or kept batches, in the input order of the
    batches ``ids`` lists: concurrent requests reach the sandbox in any order."""
    position = {request_id: i for i, request_id in enumerate(ids)}

    def first_id(item: dict) -> str:
        batch = item["json"][0] if "json" in item else item
        return batch["source_request_id"]

    return sorted(items, key=lambda item: position[first_id(item)])


def customer(i: int) -> str:
    """Text only the body of the request holding ``small_batch(i)`` contains (a fault's ``match``)."""
    return f'"customer_id":"cust-{i}"'


def small_batch(i: int = 0, **fields: Any) -> dict:
    return {
        "environment": "development",
        "user_identities": {"customer_id": f"cust-{i}"},
        "events": [{"event_type": "custom_event", "data": {"event_name": "Tap", "custom_event_type": "navigation"}}],
        **fields,
    }


def realistic_batch(user: int = 1, n_events: int | None = None) -> dict:
    """One user's batch with every common event type, identities, attributes, consent and
    a data plan (project-owned, so acceptance does not depend on ../shared)."""
    t = 1_764_000_000_000 + user * 1000
    session = str(uuid.UUID(int=user))
    events = [
        {"event_type": "session_start", "data": {"session_uuid": session, "timestamp_unixtime_ms": t, "session_id": user}},
        {"event_type": "application_state_transition", "data": {
            "application_transition_type": "application_initialized", "is_first_run": user % 2 == 0,
            "is_upgrade": False, "timestamp_unixtime_ms": t + 1}},
        {"event_type": "screen_view", "data": {"screen_name": "Home", "session_uuid": session, "timestamp_unixtime_ms": t + 2,
                                               "custom_attributes": {"referrer": "push", "ab_group": "B"}}},
        {"event_type": "custom_event", "data": {
            "event_name": "Search", "custom_event_type": "search", "source_message_id": str(uuid.uuid4()),
            "timestamp_unixtime_ms": t + 3, "custom_attributes": {"query": "running shoes", "results": 42, "filtered": True},
            "custom_flags": {"Google.Category": "Search"}, "location": {"latitude": 52.52, "longitude": 13.405, "accuracy": 12.5}}},
        {"event_type": "commerce_event", "data": {"product_impressions": [{"product_impression_list": "Search results", "products": [
            {"id": "SKU-1", "name": "Trail Runner", "price": 89.99, "quantity": 1}, {"id": "SKU-2", "name": "Road Runner", "price": 119.0}]}],
            "currency_code": "EUR", "timestamp_unixtime_ms": t + 4}},
        {"event_type": "commerce_event", "data": {"product_action": {
            "action": "purchase", "transaction_id": f"T-{user}", "total_amount": 89.99, "tax_amount": 14.37, "shipping_amount": 0,
            "products": [{"id": "SKU-1", "name": "Trail Runner", "brand": "Acme", "category": "Shoes", "price": 89.99, "quantity": 1}]},
            "currency_code": "EUR", "is_non_interactive": False, "timestamp_unixtime_ms": t + 5}},
        {"event_type": "commerce_event", "data": {"promotion_action": {"action": "click", "promotions": [
            {"id": "PROMO-7", "name": "Spring sale", "creative": "banner-top", "position": "1"}]}, "timestamp_unixtime_ms": t + 6}},
        {"event_type": "user_attribute_change", "data": {"user_attribute_name": "tier", "new": "gold", "old": "silver",
                                                          "deleted": False, "is_new_attribute": False, "timestamp_unixtime_ms": t + 7}},
        {"event_type": "user_identity_change", "data": {"new": {"identity_type": "email", "identity": f"user{user}@example.com",
                                                                 "timestamp_unixtime_ms": t + 8, "created_this_batch": True},
                                                         "old": None, "timestamp_unixtime_ms": t + 8}},
        {"event_type": "push_registration", "data": {"register": True, "registration_token": f"apns-{user:08d}", "timestamp_unixtime_ms": t + 9}},
        {"event_type": "push_message", "data": {"push_message_type": "received", "push_message_token": f"apns-{user:08d}",
                                                 "push_notification_payload": "{\"aps\":{\"alert\":\"Hi\"}}", "application_state": "background",
                                                 "timestamp_unixtime_ms": t + 10}},
        {"event_type": "network_performance", "data": {"http_verb": "GET", "url": "https://api.example.com/v1/cart", "time_elapsed": 182,
                                                        "bytes_in": 5120, "bytes_out": 312, "response_code": 200, "timestamp_unixtime_ms": t + 11}},
        {"event_type": "breadcrumb", "data": {"label": "Opened cart", "session_number": 3, "timestamp_unixtime_ms": t + 12}},
        {"event_type": "crash_report", "data": {"severity": "fatal", "message": "NullPointerException", "class_name": "CartActivity",
                                                 "stack_trace": "at CartActivity.onCreate(CartActivity.java:42)", "timestamp_unixtime_ms": t + 13}},
        {"event_type": "opt_out", "data": {"is_opted_out": False, "timestamp_unixtime_ms": t + 14}},
        {"event_type": "profile", "data": {"profile_event_type": "login", "previous_mpid": 0, "current_mpid": 8_000_000_000 + user,
                                            "timestamp_unixtime_ms": t + 15}},
        {"event_type": "first_run", "data": {"timestamp_unixtime_ms": t + 16}},
        {"event_type": "uninstall", "data": {"timestamp_unixtime_ms": t + 17}},
        {"event_type": "session_end", "data": {"session_uuid": session, "session_duration_ms": 61_000, "timestamp_unixtime_ms": t + 61_000}},
    ]
    if n_events is not None:
        events = [copy.deepcopy(events[3 + (i % 4)]) for i in range(n_events)]
    return {
        "environment": "production",
        "mpid": 8_000_000_000 + user,
        "ip": "203.0.113.7" if user % 2 else "2001:db8::7",
        "user_identities": {"customer_id": f"cust-{user}", "email": f"user{user}@example.com", "other_id_2": "loyalty-77",
                            "mobile_number": "+4915112345678"},
        "user_attributes": {"$firstname": "Ada", "$city": "Berlin", "tier": "gold", "interests": ["running", "hiking"], "age": 36, "vip": True},
        "deleted_user_attributes": ["legacy_segment"],
        "device_info": {"platform": "Android", "android_advertising_id": str(uuid.UUID(int=user + 10**6)), "os_version": "14",
                        "device_model": "Pixel 8", "locale_language": "de", "locale_country": "DE", "is_dst": False},
        "application_info": {"application_name": "Acme Shop", "application_version": "5.2.1", "package": "com.acme.shop", "os": "Android"},
        "consent_state": {"gdpr": {"marketing": {"consented": True, "document": "privacy-v3", "timestamp_unixtime_ms": t,
                                                 "location": "https://acme.example/privacy", "hardware_id": "hw-1"}},
                          "ccpa": {"data_sale_opt_out": {"consented": False, "timestamp_unixtime_ms": t}}},
        "context": {"data_plan": {"plan_id": "acme_shop", "plan_version": 3}},
        "integration_attributes": {"1111": {"campaign": "spring"}},
        "events": events,
    }


# --------------------------------------------------------------------------- input forms


def test_one_batch_as_json_text(sb, engine):
    batch = small_batch(source_request_id="text-1")
    output = upload(engine, sb, "\n  " + json.dumps(batch, indent=2) + "\n")
    assert (output["status"], output["batches"], acked(output), output["acknowledged"]["events"], output["requests"]) == ("accepted", 1, 1, 1, 1)
    assert sb.batches == [batch]
    (request,) = event_requests(sb)
    assert request["path"] == "/v2/events" and request["json"] == batch


def test_one_batch_as_object(sb, engine):
    batch = realistic_batch()
    original = copy.deepcopy(batch)
    output = upload(engine, sb, batch)
    assert batch == original  # the caller's object is not changed
    (request_id,) = output["sourceRequestIds"]
    assert sb.batches == [{**batch, "source_request_id": request_id}]
    assert output["acknowledged"]["events"] == len(batch["events"])
    assert [r["path"] for r in event_requests(sb)] == ["/v2/events"]


def test_array_of_batches(sb, engine):
    batches = [small_batch(i) for i in range(3)]
    output = upload(engine, sb, batches)
    assert (output["batches"], acked(output), output["acknowledged"]["events"], output["requests"]) == (3, 3, 3, 1)
    (request,) = event_requests(sb)
    assert request["path"] == "/v2/bulkevents"
    assert request["json"] == [{**b, "source_request_id": rid} for b, rid in zip(batches, output["sourceRequestIds"])]
    assert sb.batches == request["json"]


def test_array_of_one_batch_as_text_goes_to_events(sb, engine):
    output = upload(engine, sb, json.dumps([small_batch()]))
    assert output["batches"] == 1
    (request,) = event_requests(sb)
    assert request["path"] == "/v2/events" and isinstance(request["json"], dict)


@pytest.mark.parametrize("text", [
    '{\n  "events": [\n    {"event_type": "custom_event",}\n  ]\n}',
    '\n\n   [{"events": []}, {"events": [}]',
    '{"environment": "production", "events": []',
    '{"mpid": NaN, "events": []}',
    "{'events': []}",
])
def test_invalid_json_gives_line_and_column(sb, engine, text):
    try:
        json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(json.JSONDecodeError(name, text, text.index(name))))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
    error = upload_error(engine, sb, text)
    ((path, message),) = [(f.path, f.message) for f in error.faults]
    assert path == "$.jsonBody"
    assert where in message, (where, message)
    assert sb.requests == []


@pytest.mark.parametrize("body, path, words", [
    ("", "$.jsonBody", "empty"),
    ("   \n", "$.jsonBody", "empty"),
    ("42", "$.jsonBody", "batch object"),
    ('"text"', "$.jsonBody", "batch object"),
    ("[]", "$.jsonBody", "empty array"),
    ([], "$.jsonBody", "empty array"),
    ('[{"events": []}, 7]', "$.jsonBody[1]", "batch object"),
    ([{"events": []}, "x"], "$.jsonBody[1]", "batch object"),
])
def test_bodies_that_are_not_batches(sb, engine, body, path, words):
    error = upload_error(engine, sb, body)
    assert [f.path for f in error.faults] == [path]
    assert words in error.faults[0].message
    assert sb.requests == []


def test_invalid_batches_report_every_fault_with_its_path(sb, engine):
    batches = [
        small_batch(0),
        {"events": [{"event_type": "custom_event", "data": {"custom_event_type": "other"}},
                    {"event_type": "screen_view", "data": {"screen_name": 5}}]},
        {"environment": "staging", "user_identities": {"mpid": "1", "email": ["a@example.com"]}, "events": [{"event_type": "clicked", "data": {}}],
         "event_name": "stray"},
        small_batch(3, mpid="12345"),
        {"events": [{"event_type": "commerce_event", "data": {"currency_code": "EUR", "product_action": {"action": "click"},
                                                              "promotion_action": {"action": "view"}}}]},
    ]
    error = upload_error(engine, sb, batches)
    paths = [f.path for f in error.faults]
    assert paths == [
        "$.jsonBody[1].events[0].data.event_name",
        "$.jsonBody[1].events[1].data.screen_name",
        "$.jsonBody[2].environment",
        "$.jsonBody[2].event_name",
        "$.jsonBody[2].events[0].event_type",
        "$.jsonBody[2].user_identities.email",
        "$.jsonBody[2].user_identities.mpid",
        "$.jsonBody[3].mpid",
        "$.jsonBody[4].events[0].data",
    ]
    messages = {f.path: f.message for f in error.faults}
    assert "event_name" in messages["$.jsonBody[1].events[0].data.event_name"]
    assert "production" in messages["$.jsonBody[2].environment"]
    assert "JSON number" in messages["$.jsonBody[3].mpid"]
    assert "nothing was sent" in error.message and f"{len(paths)} problem" in error.message
    assert sb.requests == []


def test_an_error_before_sending_says_once_that_nothing_was_sent(sb, engine):
    not_json = upload_error(engine, sb, '{"events": [}')
    not_a_batch = upload_error(engine, sb, [{"events": [{"event_type": "custom_event", "data": {"event_name": "x"}}]}])
    for error in (not_json, not_a_batch):
        assert error.message.endswith("nothing was sent"), error.message
        assert error.message.count("nothing was sent") == 1, error.message
    assert sb.requests == []


def test_invalid_single_batch_faults_are_at_json_body(sb, engine):
    error = upload_error(engine, sb, {"events": [{"event_type": "custom_event", "data": {"event_name": "x"}}]})
    assert [f.path for f in error.faults] == ["$.jsonBody.events[0].data.custom_event_type"]
    assert sb.requests == []


# --------------------------------------------------------------------------- acceptance


def test_realistic_batches_covering_every_event_type_are_accepted(sb, engine):
    batches = [realistic_batch(user) for user in range(1, 6)]
    types = {e["event_type"] for e in batches[0]["events"]}
    assert len(types) >= 17
    output = upload(engine, sb, json.dumps(batches))
    assert output["status"] == "accepted" and acked(output) == 5
    assert output["acknowledged"]["events"] == sum(len(b["events"]) for b in batches) == sb.state()["events_accepted"]
    assert sb.batches == [{**b, "source_request_id": rid} for b, rid in zip(batches, output["sourceRequestIds"])]


@pytest.mark.parametrize("drop_id", [False, True], ids=["as-is", "without-source_request_id"])
@pytest.mark.parametrize("year", ["2021", "2026"])
def test_official_sample_batches_are_accepted_unchanged(sb, engine, year, drop_id):
    text = shared_path(f"reference/specs/events-batch.sample.{year}.json").read_text("utf-8")
    sample = json.loads(text)
    if drop_id:
        del sample["source_request_id"]
        text = json.dumps(sample, indent=2)
    output = upload(engine, sb, text)
    (request_id,) = output["sourceRequestIds"]
    if drop_id:
        assert str(uuid.UUID(request_id)) == request_id
        assert sb.batches == [{**sample, "source_request_id": request_id}]
    else:
        assert request_id == sample["source_request_id"]
        assert sb.batches == [sample]
    assert output["acknowledged"]["events"] == len(sample["events"])


def test_batches_built_from_mappings_and_tuples_are_sent_as_the_json_they_stand_for(sb, engine):
    from collections import OrderedDict

    event = OrderedDict(event_type="custom_event", data=OrderedDict(event_name="Tap", custom_event_type="navigation"))
    built = OrderedDict(environment="development", user_identities=OrderedDict(customer_id="cust-1"),
                        user_attributes=OrderedDict(tags=("a", "b")), events=(event, event))
    output = upload(engine, sb, [built, built], idempotencyKey="mappings")
    assert output["status"] == "accepted" and output["acknowledged"]["events"] == 4
    (kept, _) = in_input_order(sb.batches, output["sourceRequestIds"])
    assert {k: v for k, v in kept.items() if k != "source_request_id"} == {
        "environment": "development", "user_identities": {"customer_id": "cust-1"}, "user_attributes": {"tags": ["a", "b"]},
        "events": [{"event_type": "custom_event", "data": {"event_name": "Tap", "custom_event_type": "navigation"}}] * 2}


def test_source_request_ids_are_added_when_missing_and_kept_when_present(sb, engine):
    batches = [small_batch(0, source_request_id="keep-me"), small_batch(1), small_batch(2, source_request_id=""),
               small_batch(3, source_request_id=None)]
    originals = copy.deepcopy(batches)
    output = upload(engine, sb, batches)
    ids = output["sourceRequestIds"]
    assert ids[0] == "keep-me"
    for new in ids[1:]:
        assert str(uuid.UUID(new)) == new
    assert len(set(ids)) == 4
    assert [b["source_request_id"] for b in sb.batches] == ids
    assert batches == originals


def test_a_new_upload_gets_new_ids(sb, engine):
    first = upload(engine, sb, small_batch())["sourceRequestIds"]
    second = upload(engine, sb, small_batch())["sourceRequestIds"]
    assert first != second
    assert sb.state()["batches_accepted"] == 2 and sb.state()["duplicates_dropped"] == 0


def test_resending_the_same_ids_is_deduplicated_by_mparticle(sb, engine):
    batches = [small_batch(i, source_request_id=f"fixed-{i}") for i in range(3)]
    upload(engine, sb, batches)
    again = upload(engine, sb, batches)
    assert again["status"] == "accepted"  # mParticle answers 202 and drops the copies
    state = sb.state()
    assert (state["batches_accepted"], state["duplicates_dropped"]) == (3, 3)


# --------------------------------------------------------------------------- packing into requests


@pytest.mark.parametrize("count, sizes", [(2, [2]), (100, [100]), (101, [100, 1]), (200, [100, 100]), (250, [100, 100, 50])])
def test_at_most_100_batches_per_request(sb, engine, count, sizes):
    batches = [small_batch(i) for i in range(count)]
    output = upload(engine, sb, batches)
    requests_seen = in_input_order(event_requests(sb), output["sourceRequestIds"])
    assert [r["path"] for r in requests_seen] == ["/v2/bulkevents"] * len(sizes)
    assert [len(r["json"]) for r in requests_seen] == sizes
    assert output["requests"] == len(sizes) and acked(output) == count
    kept = in_input_order(sb.batches, output["sourceRequestIds"])
    assert [b["user_identities"]["customer_id"] for b in kept] == [f"cust-{i}" for i in range(count)]


def padded(batch: dict, size: int) -> dict:
    """``batch`` with a custom attribute grown so that ``encode(batch)`` is ``size`` bytes."""
    batch = copy.deepcopy(batch)
    attributes = batch["events"][0]["data"].setdefault("custom_attributes", {})
    attributes["pad"] = ""
    attributes["pad"] = "x" * (size - len(encode(batch)))
    assert len(encode(batch)) == size
    return batch


def edge_batches(total: int) -> list[dict]:
    """Two batches whose bulk body (``[a,b]``) is exactly ``total`` bytes."""
    first = padded(small_batch(0, source_request_id="edge-0"), 100_000)
    second = padded(small_batch(1, source_request_id="edge-1"), total - 100_000 - 3)
    return [first, second]


def test_a_request_of_exactly_256_kb_is_one_request(sb, engine):
    batches = edge_batches(MAX_REQUEST_BYTES)
    output = upload(engine, sb, batches)
    (request,) = event_requests(sb)
    assert int(request["headers"]["content-length"]) == MAX_REQUEST_BYTES == len(request["body"].encode())
    assert request["status"] == 202  # the sandbox accepts up to and including 256 KB
    assert output["requests"] == 1 and sb.batches == batches


def test_one_byte_over_256_kb_is_two_requests(sb, engine):
    batches = edge_batches(MAX_REQUEST_BYTES + 1)
    output = upload(engine, sb, batches)
    requests_seen = in_input_order(event_requests(sb), output["sourceRequestIds"])
    assert [len(r["json"]) for r in requests_seen] == [1, 1]
    assert [int(r["headers"]["content-length"]) for r in requests_seen] == [100_002, MAX_REQUEST_BYTES + 1 - 100_001]
    assert output["requests"] == 2 and in_input_order(sb.batches, output["sourceRequestIds"]) == batches


def test_single_batch_of_exactly_256_kb_is_sent(sb, engine):
    batch = padded(small_batch(source_request_id="big-one"), MAX_REQUEST_BYTES)
    upload(engine, sb, batch)
    (request,) = event_requests(sb)
    assert request["path"] == "/v2/events" and int(request["headers"]["content-length"]) == MAX_REQUEST_BYTES


@pytest.mark.parametrize("as_list", [False, True, "alone"])
def test_a_batch_over_256_kb_is_rejected_before_sending(sb, engine, as_list):
    # (a list of one batch is sent as that batch to /v2/events: its limit and path are the object's)
    big = padded(small_batch(source_request_id="too-big"), MAX_REQUEST_BYTES + 1 - (2 if as_list is True else 0))
    body = [small_batch(), big] if as_list is True else [big] if as_list else big
    error = upload_error(engine, sb, body)
    ((path, message),) = [(f.path, f.message) for f in error.faults]
    assert path == ("$.jsonBody[1]" if as_list is True else "$.jsonBody")
    assert "262,144" in message and "256 KB" in message and "split" in message
    assert sb.requests == []


def test_a_large_text_body_streams_through_the_backfill_engine_with_the_same_result(sb, engine, caplog):
    batches = [realistic_batch(user, n_events=10) for user in range(100)]
    text = json.dumps(batches, indent=1)
    assert len(text) > MAX_REQUEST_BYTES  # the size from which text is streamed
    properties = {"jsonBody": batches, "idempotencyKey": "stream-test"}
    with caplog.at_level("INFO", logger="connector_core.capability.uploadEventBatch"):
        listed = engine.execute("uploadEventBatch", properties, sb.config).output
        assert not [r for r in caplog.records if "read as a stream" in r.getMessage()]
        sb.reset()
        streamed = engine.execute("uploadEventBatch", {**properties, "jsonBody": text}, sb.config).output
        assert [r for r in caplog.records if "read as a stream" in r.getMessage()]
    assert not list(jsonschema.Draft202012Validator(OUTPUT_SCHEMA).iter_errors(streamed))
    assert {k: v for k, v in streamed.items() if k != "requests"} == {k: v for k, v in listed.items() if k != "requests"}
    assert streamed["acknowledged"]["count"] == 100 and streamed["acknowledged"]["events"] == sum(len(b["events"]) for b in batches)
    assert sb.state()["events_accepted"] == streamed["acknowledged"]["events"]
    # Several requests in flight at once: the sandbox gets them in any order.
    assert sorted(b["source_request_id"] for b in sb.batches) == sorted(streamed["sourceRequestIds"])


def test_a_large_text_body_with_a_bad_batch_sends_nothing(sb, engine):
    batches = [realistic_batch(user, n_events=10) for user in range(100)]
    batches[70]["events"][3]["event_type"] = "no_such_type"
    batches[90]["source_request_id"] = batches[10]["source_request_id"] = "shared"
    error = upload_error(engine, sb, json.dumps(batches))
    paths = [f.path for f in error.faults]
    assert "$.jsonBody[70].events[3].event_type" in paths
    assert {"$.jsonBody[10].source_request_id", "$.jsonBody[90].source_request_id"} <= set(paths)
    assert "nothing was sent" in error.message and sb.requests == []


def test_large_upload_is_packed_within_both_limits(sb, engine):
    batches = [realistic_batch(user, n_events=100) for user in range(100)]
    output = upload(engine, sb, batches)
    requests_seen = in_input_order(event_requests(sb), output["sourceRequestIds"])
    assert len(requests_seen) > 1
    for request in requests_seen:
        assert int(request["headers"]["content-length"]) <= MAX_REQUEST_BYTES
        assert len(request["json"]) <= MAX_BATCHES_PER_REQUEST
        assert request["status"] == 202
    # Each request was as full as the next batch allowed (greedy, in order).
    for request, following in zip(requests_seen, requests_seen[1:]):
        assert int(request["headers"]["content-length"]) + 1 + len(encode(following["json"][0])) > MAX_REQUEST_BYTES
    assert acked(output) == 100 and output["acknowledged"]["events"] == 10_000 == sb.state()["events_accepted"]
    assert [b["mpid"] for b in in_input_order(sb.batches, output["sourceRequestIds"])] == [b["mpid"] for b in batches]


# --------------------------------------------------------------------------- partial failures


def fail_after_first(sb: Sandbox, **failure: Any) -> None:
    """Script a failure for the second bulk request, once the first one was answered (for
    uploads with ``concurrency: 1``, whose requests go one after another)."""
    armed = threading.Event()

    def arm(response: requests.Response) -> None:
        if response.request.url.endswith("/bulkevents") and not armed.is_set():
            armed.set()
            sb.fail_next("uploadBulkEvents", **failure)

    WIRE.on_response.append(arm)


def test_second_request_refused_is_partial(sb, engine):
    batches = [small_batch(i) for i in range(250)]
    sb.fail_next("uploadBulkEvents", status=400, match=customer(100))  # the second request
    output = upload(engine, sb, batches)
    assert output["status"] == "partial"
    assert (output["batches"], acked(output), output["requests"]) == (250, 150, 3)
    ids = output["sourceRequestIds"]
    assert output["refused"] == {"count": 100, "events": 100, "batches": list(range(100, 200)), "sourceRequestIds": ids[100:200]}
    assert output["acknowledged"]["batches"] == list(range(100)) + list(range(200, 250))
    assert output["unknown"]["count"] == output["failed"]["count"] == 0
    ((error),) = output["errors"]
    assert (error["fate"], error["status"], error["code"], error["batches"]) == ("refused", 400, "rejected_by_service", list(range(100, 200)))
    assert "Injected fault" in error["message"]  # mParticle's own message
    # The first and third chunks were acknowledged; the refused ones must be fixed, not resent as they are.
    assert [b["source_request_id"] for b in in_input_order(sb.batches, ids)] == ids[:100] + ids[200:]
    assert [r["status"] for r in in_input_order(event_requests(sb), ids)] == [202, 400, 202]


def test_auth_failure_midway_raises_with_the_report_and_stops(sb, engine):
    batches = [small_batch(i) for i in range(250)]
    fail_after_first(sb, status=401)
    error = upload_error(engine, sb, batches, AuthenticationFailed, concurrency=1)
    report = error.details["report"]
    assert report["status"] == "partial" and report["acknowledged"]["batches"] == list(range(100))
    assert report["requests"] == 2  # the refused one counts: it was sent
    assert report["failed"]["batches"] == list(range(100, 250))
    assert [(e["fate"], e["code"], e["batches"][0]) for e in report["errors"]] == [
        ("failed", "authentication_failed", 100), ("failed", "not_sent", 200)]
    assert [r["status"] for r in event_requests(sb)] == [202, 401]  # the third was not tried
    assert [b["source_request_id"] for b in sb.batches] == report["acknowledged"]["sourceRequestIds"]
    assert "credentials" in error.message and "100 acknowledged" in error.message
    assert "Do not repeat this call unchanged" in error.message


def test_rate_limit_midway_raises_rate_limited_with_retry_after(sb, engine):
    batches = [small_batch(i) for i in range(150)]
    sb.fail_next("uploadBulkEvents", 5, status=429, retry_after=120, match=customer(100))  # the second request
    error = upload_error(engine, sb, batches, RateLimited)
    assert error.details["retry_after"] == 120
    report = error.details["report"]
    assert report["acknowledged"]["count"] == 100 and report["failed"]["batches"] == list(range(100, 150))
    assert {e["code"] for e in report["errors"]} == {"rate_limited"}
    assert "120" in error.message


def test_first_request_failing_raises_the_typed_error(sb, engine):
    sb.fail_next("uploadBulkEvents", status=401)
    error = upload_error(engine, sb, [small_batch(i) for i in range(150)], AuthenticationFailed, concurrency=1)
    assert error.details["status"] == 401
    assert "can be repeated as it is" in error.message  # nothing was taken, so repeating cannot double
    assert len(event_requests(sb)) == 1 and sb.batches == []


def test_every_request_refused_is_invalid_input_per_batch(sb, engine):
    batches = edge_batches(MAX_REQUEST_BYTES + 1)  # two requests of one batch each
    sb.fail_next("uploadBulkEvents", 2, status=400)
    error = upload_error(engine, sb, batches)
    assert [f.path for f in error.faults] == ["$.jsonBody[0]", "$.jsonBody[1]"]
    assert "accepted none" in error.message
    assert sb.batches == []


def test_single_batch_refused_is_invalid_input(sb, engine):
    sb.fail_next("uploadEvents", status=400)
    error = upload_error(engine, sb, small_batch())
    assert [f.path for f in error.faults] == ["$.jsonBody"]
    assert "400" in error.faults[0].message


def test_a_batch_refused_after_a_retried_server_error_is_refused(sb, engine):
    sb.fail_next("uploadEvents", status=503)
    sb.fail_next("uploadEvents", status=400)  # the retry
    error = upload_error(engine, sb, small_batch())
    assert [f.path for f in error.faults] == ["$.jsonBody"]
    assert error.details["report"]["refused"]["batches"] == [0] and error.details["report"]["failed"]["count"] == 0
    assert [r["status"] for r in event_requests(sb)] == [503, 400]


@pytest.mark.parametrize("status, error_type, code", [(404, NotFound, "not_found"), (409, Conflict, "conflict")])
def test_an_events_api_status_without_a_fate_of_its_own_raises_its_typed_error(sb, engine, status, error_type, code):
    """Statuses the upload has no words for (404, 409) still end in the HTTP layer's typed
    error with the report, whatever else happened (here: the first request refused)."""
    batches = [small_batch(i) for i in range(150)]
    sb.fail_next("uploadBulkEvents", status=400, match=customer(0))
    sb.fail_next("uploadBulkEvents", status=status, match=customer(100))
    error = upload_error(engine, sb, batches, error_type, concurrency=1)
    assert (error.category, error.details["status"]) == (code, status)
    assert error.message.startswith(f"mParticle (events) answered {status} (")
    assert "(of 150 batch(es): 100 refused, 50 failed)." in error.message
    assert [f.path for f in error.faults] == [f"$.jsonBody[{i}]" for i in range(100)]  # the refused batches' faults kept
    report = error.details["report"]
    assert (report["refused"]["batches"], report["failed"]["batches"]) == (list(range(100)), list(range(100, 150)))
    sb.fail_next("uploadEvents", status=status)
    error = upload_error(engine, sb, small_batch(), error_type)
    assert error.details["report"]["failed"]["batches"] == [0] and error.category == code


def test_rate_limit_on_first_request_raises(sb, engine):
    sb.fail_next("uploadEvents", 4, status=429, retry_after=1)
    error = upload_error(engine, sb, small_batch(), RateLimited)
    assert error.details["retry_after"] == 1.0
    assert SLEEPS == [1.0, 1.0, 1.0]
    assert sb.batches == []


def test_a_refusal_then_lost_answers_keeps_the_refused_batches_faults(sb, engine):
    batches = [small_batch(i) for i in range(250)]
    sb.fail_next("uploadBulkEvents", status=400)
    fail_after_first(sb, effect="drop", count=4)  # the second request and its three retries are cut off
    # The second request was sent each time and no answer came: mParticle may have it.
    error = upload_error(engine, sb, batches, OutcomeUnknown, concurrency=1)
    assert error.category == "outcome_unknown" and error.exit_code == 11
    assert [f.path for f in error.faults] == [f"$.jsonBody[{i}]" for i in range(100)]
    assert all("answered 400" in f.message for f in error.faults)
    report = error.details["report"]
    assert (report["refused"]["count"], report["unknown"]["count"], report["failed"]["count"]) == (100, 100, 50)
    assert "100 refused" in error.message and "0 acknowledged" not in error.message
    assert [r["status"] for r in event_requests(sb)][:1] == [400]
    assert len(event_requests(sb)) == 5  # the refused request, then four attempts at the second; the third never went
    assert sb.batches == []


def test_concurrent_requests_report_each_batch_exactly(sb, engine):
    """Requests in flight together, one refused its credentials: whatever order they went
    in and however many had started when the refusal came, the report names exactly the
    batches the sandbox kept as acknowledged, and no batch it lists as not sent reached it."""
    batches = [small_batch(i) for i in range(3000)]
    sb.fail_next("uploadBulkEvents", status=401, match=customer(300))
    error = upload_error(engine, sb, batches, AuthenticationFailed, concurrency=4)
    report = error.details["report"]
    ids = report["sourceRequestIds"]
    assert report["acknowledged"]["count"] + report["failed"]["count"] == 3000
    assert report["unknown"]["count"] == report["refused"]["count"] == 0
    assert set(report["acknowledged"]["sourceRequestIds"]) == {b["source_request_id"] for b in sb.batches}
    sent = {b["source_request_id"]: r["status"] for r in event_requests(sb) for b in r["json"]}
    assert {ids[i]: 401 for i in range(300, 400)}.items() <= sent.items()
    assert {status for request_id, status in sent.items() if request_id not in ids[300:400]} == {202}
    not_sent = [i for e in report["errors"] if e["code"] == "not_sent" for i in e["batches"]]
    assert not {ids[i] for i in not_sent} & set(sent)
    assert sorted(not_sent + list(range(300, 400))) == report["failed"]["batches"]
    assert report["requests"] == len(event_requests(sb)) == 30 - len(not_sent) // 100


def _senders(send: Callable[[], int]) -> tuple[set, float]:
    """The names of the threads that sent the bulk requests of ``send()`` (which returns the
    number of batches acknowledged, all of them), and its duration."""
    names: set = set()
    WIRE.on_response.append(lambda response: names.add(threading.current_thread().name))
    started = time.monotonic()
    try:
        assert send() == 800
    finally:
        WIRE.on_response.clear()
    return names, time.monotonic() - started


def test_two_requests_go_out_at_first_and_the_rest_while_answers_are_slow(sb, engine):
    # 800 small batches: 8 requests of 100, concurrency 4. Two threads send at first; the
    # others start once a request has been in flight longer than slow_answer (default 4 ms)
    # while requests wait: never, here, with an hour; 100 ms away, within a few ms of the first.
    from connector_mparticle.backfill import upload as backfill

    batches = [small_batch(i) for i in range(800)]
    connection = engine.connect(sb.config)
    try:
        names, _ = _senders(lambda: backfill(connection, batches, rate=1e9, concurrency=4,
                                             slow_answer=3600).acknowledged_batches)
        assert names <= {"backfill-0", "backfill-1"}, names
        sb.set_latency(100)
        names, elapsed = _senders(lambda: acked(upload(engine, sb, batches, concurrency=4)))
    finally:
        sb.set_latency(0)
        connection.close()
    assert len(names) == 4
    assert elapsed >= 0.2  # two rounds of four, each 100 ms away
    # The four threads sent their first requests together, not after the first answers came
    # back 100 ms later (as a third request does with two threads): the sandbox logged the
    # first four within less than the latency of one another.
    times = sorted(r["time"] for r in event_requests(sb))[8:]  # the first eight: the upload without latency
    assert len(times) == 8 and times[3] - times[0] < 0.1, times
