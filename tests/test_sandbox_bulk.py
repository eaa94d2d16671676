"""The sandbox's fast path for bulk bodies (capabilities/sandbox/bulk.py) against its ordinary path.

(The same batches also hold the ordinary path's yes/no pass, ``validation._batch_ok``, to the
walk it stands in front of: the same verdict, hence the same problems in the same order.)

The fast path may decline any body (the ordinary path then answers), but a body it accepts
must be one the ordinary path accepts whole, with the same batches: the same
``source_request_id`` and number of events for each, read by the ordinary parser
(``parse_events_body``) and the precise walk (``walk_batch``). These tests check that on the
SDK corpora, thousands of mutants of them, hypothesis-built values spliced into them, and
JSON texts built to tell parsers apart (duplicate keys, big and out-of-range numbers,
surrogates, invalid UTF-8, deep nesting); then through HTTP, that what a test sees of an
accepted body (kept batches, counters, duplicates, markers) is what it saw before.
"""

from __future__ import annotations

import copy
import json
import random

import orjson
import pytest
import requests
import sdk_corpus
from batch_mutants import batch_mutants, splice
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("msgspec", reason="the sandbox's fast path needs msgspec (the extras 'sandbox' and 'test')")

from connector_mparticle.sandbox import Sandbox, bulk  # noqa: E402
from connector_mparticle.sandbox.app import parse_events_body  # noqa: E402
from connector_mparticle.sandbox.state import Rejected, _markers  # noqa: E402
from connector_mparticle.sandbox.validation import (  # noqa: E402
    _EVENT_RULES, BATCH, EVENT_DATA, MAX_BATCHES, _batch_ok, walk_batch,
)


def ordinary(body: bytes) -> tuple[list, list, bool]:
    """How the ordinary path reads ``body``: its batches (none when it is not a JSON array),
    each batch's problems as the walk words them, and whether it accepts every batch."""
    try:
        batches = parse_events_body(body)
    except Rejected:
        return [], [], False
    if type(batches) is not list:
        return [], [], False
    problems = [walk_batch(batch, f"$[{i}]") for i, batch in enumerate(batches)]
    return batches, problems, 1 <= len(batches) <= MAX_BATCHES and not any(problems)


MARKERS = (None, "marker", "price", "k")  # none, a string, a float, a key hypothesis sets


def fast_agrees(body: bytes) -> bool:
    """Check the fast path on ``body`` against the ordinary path (without and with a marker
    attribute to count), and the ordinary path's own yes/no pass against its walk; return
    whether the fast path accepted the body."""
    batches, problems, accepted = ordinary(body)
    for batch, walked in zip(batches, problems):
        # validate_batch is [] when _batch_ok passes, else the walk: the same problems, paths and order
        assert _batch_ok(batch) is (walked == []), batch
    taken = False
    for marker in MARKERS:
        fast = bulk.batch_summaries(body, marker)
        if fast is not None:
            assert accepted, body[:400]
            assert fast == [(batch.get("source_request_id"), len(batch.get("events") or ()),
                             None if marker is None else _markers(batch, marker)) for batch in batches], body[:400]
        taken = taken or (marker is None and fast is not None)
    return taken


def connector_shaped(n: int = 0) -> dict:
    """A batch as ``connector upload-events`` sends the bench's events (sorted keys, an id)."""
    return {
        "device_info": {"platform": "web"}, "environment": "production",
        "events": [{"data": {"custom_attributes": {"campaign": "spring", "marker": f"{n}.{j}", "price": 325.82},
                             "custom_event_type": "navigation", "event_name": "Viewed product",
                             "timestamp_unixtime_ms": 1_700_000_000_000 + j}, "event_type": "custom_event"}
                   for j in range(3)],
        "source_request_id": f"b06bb920-d931-53c9-ba65-{n:012d}",
        "user_attributes": {"country": "FR", "plan": "pro", "tags": ["a", 1, None]},
        "user_identities": {"customer_id": f"customer-{n}", "email": f"user{n}@example.com"},
    }


RICH = {
    "environment": "development", "mpid": -7, "ip": "2001:db8::1", "schema_version": 2,
    "context": {"data_plan": {"plan_id": "p", "plan_version": 2}},
    "consent_state": {"gdpr": {"analytics": {"consented": True, "timestamp_unixtime_ms": 1}}},
    "integration_attributes": {"123": {"k": "v"}}, "deleted_user_attributes": ["old"], "api_keys": ["k"],
    "events": [
        {"event_type": "commerce_event", "data": {
            "product_action": {"action": "purchase", "products": [{"id": "1", "price": 2.5}]},
            "product_impressions": [], "promotion_action": None, "currency_code": "EUR",
            "location": {"latitude": 1.5, "longitude": -2}, "custom_flags": {"f": ["x", 1]}}},
        {"event_type": "screen_view", "data": {"screen_name": "Home", "session_uuid": "s"}},
        {"event_type": "push_registration", "data": {"register": None, "registration_token": "t"}},
        {"event_type": "user_identity_change", "data": {"new": {"identity_type": "email"}, "old": None}},
        {"event_type": "session_end", "data": {"session_duration_ms": 10}},
        {"event_type": "unknown", "data": {}},
    ],
}

# A batch as apps send them (bench/bench_connector.py's shape): device details and a purchase's
# transaction beside the declared fields of objects the rules leave open.
APP_SHAPED = {
    "source_request_id": "0b7e6a4e-5d4c-4c1b-9a65-1b2c3d4e5f60", "environment": "production", "mpid": 8_000_000_001,
    "user_identities": {"email": "user1@example.com", "other_id_2": "loyalty-1"},
    "user_attributes": {"$country": "DE", "plan": "gold"},
    "device_info": {"platform": "Android", "os_version": "14", "device_model": "Pixel 8", "locale_country": "DE"},
    "application_info": {"application_name": "Acme Shop", "package": "com.acme.shop"},
    "events": [
        {"event_type": "screen_view", "data": {"timestamp_unixtime_ms": 1, "screen_name": "Product 1",
                                                "custom_attributes": {"referrer": "search"}}},
        {"event_type": "commerce_event", "data": {"timestamp_unixtime_ms": 2, "product_action": {
            "action": "purchase", "transaction_id": "T-1-9", "total_amount": 119.8, "tax_amount": 19.13,
            "products": [{"id": "SKU-00009", "name": "Trail Runner", "price": 59.9, "quantity": 2}]}}},
    ],
}


def declared_only(value, spec):
    """``value`` without the keys its rules leave open (which the fast path leaves to the ordinary one)."""
    if spec == "event":
        rules = _EVENT_RULES.get(value.get("event_type"), _EVENT_RULES["unknown"])
        return {**value, "data": declared_only(value["data"], rules)} if isinstance(value.get("data"), dict) else value
    if isinstance(value, dict) and spec.get("fields"):
        return {k: declared_only(v, spec["fields"][k]) for k, v in value.items() if k in spec["fields"]}
    if isinstance(value, list) and "items" in spec:
        return [declared_only(item, spec["items"]) for item in value]
    return value


CORPUS = [*sdk_corpus.python_sdk_batches().values(), *sdk_corpus.java_sdk_batches().values()]
CORPUS = [sdk_corpus.python_sdk_json(b) if not isinstance(b, dict) else b for b in CORPUS]
CORPUS += [connector_shaped(), RICH, APP_SHAPED]

DECLARED = [declared_only(batch, BATCH) for batch in CORPUS]

# Values that tell the rules' types apart, and numbers at the parsers' edges.
REPLACEMENTS = [None, "", "zzz", "email", "purchase", 0, -1, 2**63, 2**64, -(2**63) - 1, 10**25, 1.0, -1.5, 1e300,
                True, False, [], [None], ["x"], [{}], {}, {"k": 1}, {"action": "view"}, {"k": {"k": {"k": [1]}}}]


def bodies_of(batches: list) -> list[bytes]:
    """The same batches as compact UTF-8 and as ASCII-escaped text with spaces."""
    return [json.dumps(batches, separators=(",", ":"), ensure_ascii=False).encode(), json.dumps(batches).encode()]


def test_the_fast_path_accepts_what_the_connector_and_the_sdks_send():
    assert fast_agrees(orjson.dumps([connector_shaped(n) for n in range(MAX_BATCHES)]))
    assert fast_agrees(orjson.dumps([RICH]))
    assert fast_agrees(orjson.dumps([APP_SHAPED] * 7))  # undeclared keys of open objects: the fast path too
    for batch in CORPUS:
        assert ordinary(orjson.dumps([batch]))[2]
        fast_agrees(orjson.dumps([batch]))  # most SDK batches hold keys the rules leave open: the ordinary path's
        for body in bodies_of([declared_only(batch, BATCH)]):
            assert fast_agrees(body), body


def test_the_fast_path_agrees_with_the_walk_on_mutated_batches():
    rng = random.Random(12)
    verdicts = {True: 0, False: 0}
    for batch in [*CORPUS, *DECLARED]:
        for _, mutant in batch_mutants(batch, rng, 20, replacements=REPLACEMENTS, edits=(1, 2),
                                       stray_keys=("zz_unknown", "platform", "event_type"), list_head=4):
            for body in bodies_of([mutant]) + bodies_of([connector_shaped(1), mutant])[:1]:
                verdicts[fast_agrees(body)] += 1
    assert verdicts[True] > 800 and verdicts[False] > 2000, verdicts  # both kinds were tried


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4)
    | st.sampled_from(["email", "custom_event", "purchase", "web", "production", "1.2.3.4"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["action", "data", "event_type", "k", "marker", *BATCH["fields"], *EVENT_DATA["custom_event"]["fields"]]),
        inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_fast_path_agrees_with_the_walk_on_hypothesis_values(data):
    batch = copy.deepcopy(data.draw(st.sampled_from(DECLARED + CORPUS)))
    splice(data, batch, JSON_VALUES, keys=("zz", "data"))
    for body in bodies_of([batch]):
        fast_agrees(body)


def _text(batch: dict) -> str:
    return json.dumps([batch], separators=(",", ":"))


_VALID = _text(connector_shaped())
_DEEP = lambda depth: _text({"events": [{"event_type": "custom_event", "data": {  # noqa: E731
    "event_name": "e", "custom_event_type": "other", "location": {"k": "@"}}}]}).replace('"@"', "[" * depth + "]" * depth)

# JSON texts where parsers differ or a careless fast path would: each must get the ordinary path's answer.
TEXTS = {
    "valid": (_VALID, True),
    "whitespace around": (" \r\n\t" + _VALID + "\n", True),
    "a later duplicate key wins (valid last)": (_VALID.replace('"environment":"production"', '"environment":null,"environment":"production"'), False),
    "a later duplicate key wins (invalid last)": (_VALID.replace('"environment":"production"', '"environment":"production","environment":"bogus"'), False),
    "two event types": (_VALID.replace('"event_type":"custom_event"', '"event_type":"custom_event","event_type":"screen_view"', 1), False),
    "a duplicate id": (_VALID.replace('"source_request_id":', '"source_request_id":"a","source_request_id":'), True),
    "20 digits in a string": (_VALID.replace('"FR"', '"12345678901234567890"'), True),
    "a 20-digit integer where integers pass": (_VALID.replace("1700000000000", "12345678901234567890", 1), True),
    "a 20-digit integer among custom attributes": (_VALID.replace("325.82", "-12345678901234567890", 1), True),
    "mpid at the top of int64": (_VALID.replace('"environment"', '"mpid":9223372036854775807,"environment"'), True),
    "mpid past int64": (_VALID.replace('"environment"', '"mpid":9223372036854775808,"environment"'), False),
    "an integer written as a float": (_VALID.replace("1700000000000", "1700000000000.0", 1), False),
    "an exponent": (_VALID.replace("1700000000000", "17e11", 1), False),
    "a number out of range": (_VALID.replace("325.82", "1e400", 1), False),
    "a number out of range in an open object": (_DEEP(0).replace('"location":{"k":', '"location":{"k":1e400,"j":'), False),
    "a lone surrogate": (_VALID.replace('"FR"', '"\\ud800"'), False),
    "a surrogate pair": (_VALID.replace('"FR"', '"\\ud83d\\ude00"'), True),
    "NaN": (_VALID.replace("325.82", "NaN", 1), False),
    "Infinity in an open object": (_DEEP(0).replace('"@"', "Infinity").replace('"location":{"k":"@"}', '"location":{"k":Infinity}'), False),
    "nesting within reach": (_DEEP(bulk._DEPTH - 1), True),
    "nesting beyond the fast path": (_DEEP(bulk._DEPTH + 2), False),
    "nesting beyond every parser": (_DEEP(5000), False),
    "an empty required string": (_VALID.replace('"event_name":"Viewed product"', '"event_name":""', 1), False),
    "a null required string": (_VALID.replace('"event_name":"Viewed product"', '"event_name":null', 1), False),
    "a missing required string": (_VALID.replace('"event_name":"Viewed product",', "", 1), False),
    "null where null passes": (_VALID.replace('"platform":"web"', '"platform":null'), True),
    "an event without data": (_text({"events": [{"event_type": "session_start"}]}), False),
    "an event without data, a field beside it": (_text({"events": [{"event_type": "session_start", "x": 1}]}), False),
    "an event with null data, a field beside it": (_text({"events": [{"event_type": "opt_out", "data": None, "x": 1}]}), False),
    "an event with a stray key": (_VALID.replace('"event_type":"custom_event"', '"event_type":"custom_event","x":1', 1), False),
    "an open key the rules allow": (_VALID.replace('"platform":"web"', '"platform":"web","brand":"x"'), True),
    "open keys of every kind": (_VALID.replace('"platform":"web"', '"platform":"web","b":[1,{"k":null}],"n":-0.5e3,"t":true,"s":"\u00e9"'), True),
    "an open key before a bad declared field": (_VALID.replace('"platform":"web"', '"brand":"x","platform":"bogus"'), False),
    "a declared field escaped beside an open key": (_VALID.replace('"platform":"web"', '"brand":"x","pl\\u0061tform":"bogus"'), False),
    "an open object's duplicate key (valid last)": (_VALID.replace('"platform":"web"', '"brand":"x","platform":"bogus","platform":"web"'), True),
    "an open object's duplicate key (invalid last)": (_VALID.replace('"platform":"web"', '"brand":"x","platform":"web","platform":"bogus"'), False),
    "an open object's declared field of the wrong type": (_VALID.replace('"platform":"web"', '"brand":"x","platform":1'), False),
    "an open key out of range": (_VALID.replace('"platform":"web"', '"platform":"web","brand":1e400'), False),
    "an open key NaN": (_VALID.replace('"platform":"web"', '"platform":"web","brand":NaN'), False),
    "an open key nested beyond the fast path": (_VALID.replace('"platform":"web"', '"platform":"web","brand":' + "[" * (bulk._DEPTH + 2) + "]" * (bulk._DEPTH + 2)), False),
    "an open key with a lone surrogate": (_VALID.replace('"platform":"web"', '"platform":"web","brand":"\\udc00"'), False),
    "an open key's lone surrogate in its name": (_VALID.replace('"platform":"web"', '"platform":"web","\\ud800":1'), False),
    "an open key after a trailing comma": (_VALID.replace('"platform":"web"', '"platform":"web","brand":1,'), False),
    "a product action with open keys": (_text({"events": [{"event_type": "commerce_event", "data": {
        "product_action": {"action": "purchase", "transaction_id": "T-1", "total_amount": 119.8,
                           "products": [{"id": "SKU-1", "price": 59.9, "quantity": 2}]}}}]}), True),
    "a product action with open keys, without its action": (_text({"events": [{"event_type": "commerce_event", "data": {
        "product_action": {"transaction_id": "T-1", "products": [{"id": "SKU-1"}]}}}]}), False),
    "a product action with open keys, an empty action": (_text({"events": [{"event_type": "commerce_event", "data": {
        "product_action": {"action": "", "transaction_id": "T-1"}}}]}), False),
    "a product action with open keys, products not objects": (_text({"events": [{"event_type": "commerce_event", "data": {
        "product_action": {"action": "click", "transaction_id": "T-1", "products": [1]}}}]}), False),
    "a promotion action with open keys": (_text({"events": [{"event_type": "commerce_event", "data": {
        "promotion_action": {"action": "view", "id": "P", "promotions": [{"id": "p"}]}}}]}), True),
    "a new identity with open keys": (_text({"events": [{"event_type": "user_identity_change", "data": {
        "new": {"identity_type": "email", "value": "a@b.c", "created_this_batch": True}}}]}), True),
    "a new identity with open keys, a bad type": (_text({"events": [{"event_type": "user_identity_change", "data": {
        "new": {"identity_type": "bogus", "value": "a@b.c"}}}]}), False),
    "a data plan with open keys": (_VALID.replace('"environment"', '"context":{"x":1,"data_plan":{"plan_id":"p","plan_version":2,"y":[]}},"environment"'), True),
    "a data plan with open keys, a float version": (_VALID.replace('"environment"', '"context":{"x":1,"data_plan":{"plan_id":"p","plan_version":2.5}},"environment"'), False),
    "an undeclared key in an event's data (left to the ordinary path)": (_VALID.replace('"event_name":"Viewed product"', '"event_name":"Viewed product","zz":1', 1), False),
    "an empty array": ("[]", False),
    "an object": (_text(connector_shaped())[1:-1], False),
    "two commerce actions": (_text({"events": [{"event_type": "commerce_event", "data": {
        "product_action": {"action": "click"}, "promotion_action": {"action": "view"}}}]}), False),
    "a bad IP address": (_VALID.replace('"environment"', '"ip":"1.2.3","environment"'), False),
    "a trailing comma": (_VALID[:-2] + ",]]", False),
}


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_the_fast_path_agrees_on_texts_that_tell_parsers_apart(name):
    text, fast = TEXTS[name]
    body = text.encode()
    assert fast_agrees(body) is fast
    if not fast:  # and it declined what the ordinary path decides: the verdict came from there
        assert bulk.batch_summaries(body) is None


@pytest.mark.parametrize("body", [
    b"\xef\xbb\xbf" + _VALID.encode(), _VALID.replace("FR", "F\xffR").encode("latin-1"),
    _VALID.replace("FR", "\ud800").encode("utf-8", "surrogatepass"), _VALID.encode("utf-16"),
    _VALID.replace("FR", "Fé").encode(), _VALID.encode()[:-1], b"[" * 200_000,
    _VALID.replace('"platform":"web"', '"platform":"web","brand":"F\xffR"').encode("latin-1"),
    _VALID.replace('"platform":"web"', '"platform":"web","br\xffnd":1').encode("latin-1"),
    _VALID.replace('"event_name"', '"event\\u005fname"', 1).encode(),
    _VALID.replace('"event_name":"Viewed product"', '"event_name":"","event\\u005fname":"x"', 1).encode(),
    _VALID.replace('"navigation"', '"navig\\u0061tion"', 1).encode(),
    _VALID.replace('"custom_event"', '"\\u0063ustom_event"', 1).encode(),
], ids=["bom", "invalid utf-8", "encoded surrogate", "utf-16", "non-ascii", "cut", "deep", "escaped key",
        "escaped duplicate key", "escaped enumeration value", "escaped event type",
    "invalid utf-8 in an open key's value", "invalid utf-8 in an open key"])
def test_the_fast_path_agrees_on_bytes_that_are_not_plain_utf8(body):
    fast_agrees(body)


def test_too_many_batches_go_the_ordinary_way():
    assert bulk.batch_summaries(orjson.dumps([connector_shaped(n) for n in range(MAX_BATCHES + 1)])) is None


# -------------------------------------------------------------------- through HTTP


def _post(sb: Sandbox, body: bytes) -> requests.Response:
    return requests.post(f"{sb.config['eventsUrl']}/bulkevents", data=body, timeout=10,
                         headers={"Content-Type": "application/json"}, auth=(sb.config["apiKey"], sb.config["apiSecret"]))


def test_accepted_bodies_are_kept_counted_and_deduplicated_as_before(mparticle_sandbox: Sandbox):
    sb = mparticle_sandbox
    first = [connector_shaped(n) for n in range(3)]
    declined = [connector_shaped(7)]  # an undeclared key in an event's data: the ordinary path's
    declined[0]["events"][0]["data"]["zz"] = 1
    assert bulk.batch_summaries(orjson.dumps(first)) and bulk.batch_summaries(orjson.dumps(declined)) is None
    for body in (orjson.dumps(first), orjson.dumps(declined), orjson.dumps(first[:1] + [connector_shaped(9)])):
        assert _post(sb, body).status_code == 202
    assert sb.batches == [*first, *declined, connector_shaped(9)]
    state = sb.state()
    assert (state["batches_accepted"], state["events_accepted"], state["duplicates_dropped"]) == (5, 15, 1)
    admin = requests.get(f"{sb.admin_url}/batches", timeout=10).json()
    assert admin == sb.batches
    assert sb.events[0] == first[0]["events"][0]


def test_a_marker_attribute_is_counted_on_either_path(mparticle_sandbox: Sandbox):
    sb = mparticle_sandbox
    sb.configure(marker_attribute="marker")
    strings = orjson.dumps([connector_shaped(n) for n in range(4)])
    floats = json.dumps([{"events": [{"event_type": "custom_event", "data": {
        "event_name": "e", "custom_event_type": "other", "custom_attributes": {"marker": 0.5}}}] * 2}]).encode()
    assert bulk.batch_summaries(strings, "marker") and bulk.batch_summaries(floats, "marker") is None
    for body in (strings, floats, strings):
        assert _post(sb, body).status_code == 202
    assert sb.event_markers() == {"events": 14, "distinct": 13, "doubled": 1, "doubled_examples": {"0.5": 2}}
    assert sb.state()["duplicates_dropped"] == 4  # the second strings body: its ids were seen, its markers not counted


def test_the_rate_limit_counts_the_batches_of_a_fast_path_body(mparticle_sandbox: Sandbox):
    sb = mparticle_sandbox
    sb.set_rate_limit("events", limit=5)
    body = orjson.dumps([connector_shaped(n) for n in range(4)])
    assert _post(sb, body).status_code == 202
    refused = _post(sb, orjson.dumps([connector_shaped(n) for n in range(10, 14)]))
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert sb.state()["batches_accepted"] == 4
