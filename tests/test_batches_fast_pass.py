"""The batch checker's fast pass against the checks that word faults and warnings.

``check_batch`` answers ``[]`` at once for a batch its fast pass (``_plainly_valid``) finds
plainly valid, and otherwise runs the full checks (``_check_batch``). The two must give the
same answer, faults and warnings alike, on every input: batches the official SDKs send (the
``mparticle`` package and the Java SDK's shapes, tests/sdk_corpus.py), the official samples
under ``../shared`` when present, the benchmark's batches, thousands of their mutants with
hostile values (subclasses, NaN, tuples, enums, big integers, ...) and hypothesis values
spliced into them.
"""

from __future__ import annotations

import copy
import decimal
import enum
import json
import math
import random
import uuid

import pytest
import sdk_corpus
from batch_mutants import batch_mutants, splice
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shared_folder import shared_path

from connector_mparticle import batches
from connector_mparticle.batches import check_batch

TS = 1_764_000_000_000


class Text(str):
    pass


class Number(int):
    pass


class Mapping(dict):
    pass


class Items(list):
    pass


class Kind(str, enum.Enum):
    CUSTOM = "custom_event"


class Level(enum.IntEnum):
    ONE = 1


def same_answer(batch) -> bool:
    """Assert that check_batch (with its fast pass) answers as the full checks; return
    whether the fast pass settled it."""
    fast_warnings: list = []
    full_warnings: list = []
    answer = check_batch(batch, "$[0]", fast_warnings)
    assert answer == batches._check_batch(batch, "$[0]", full_warnings), batch
    assert fast_warnings == full_warnings, batch
    return type(batch) is dict and batches._plainly_valid(batch)


def bench_batch(user: int = 0) -> dict:
    """A batch in the shape of bench/bench_connector.py's: screen views, custom events, a purchase."""
    events = []
    for i in range(10):
        common = {"timestamp_unixtime_ms": TS + i, "source_message_id": f"m-{user}-{i}", "session_uuid": "s-1"}
        if i % 10 == 9:
            events.append({"event_type": "commerce_event", "data": {**common, "product_action": {
                "action": "purchase", "transaction_id": f"T-{i}", "total_amount": 119.8,
                "products": [{"id": "SKU-1", "name": "Trail Runner", "price": 59.9, "quantity": 2}]}}})
        elif i % 4 == 0:
            events.append({"event_type": "screen_view", "data": {
                **common, "screen_name": f"Product {i}", "custom_attributes": {"referrer": "search", "position": str(i)}}})
        else:
            events.append({"event_type": "custom_event", "data": {
                **common, "event_name": "Add to Wishlist", "custom_event_type": "user_preference",
                "custom_attributes": {"sku": "SKU-1", "price": "59.90", "n": 3, "ok": True, "none": None, "x": 1.5}}})
    return {"source_request_id": f"r-{user}", "environment": "production", "mpid": 8_000_000_000 + user,
            "user_identities": {"email": "user@example.com", "other_id_2": "loyalty"},
            "user_attributes": {"$country": "DE", "plan": "gold", "tags": ["a", 1, None]},
            "device_info": {"platform": "Android", "os_version": "14"},
            "application_info": {"application_name": "Acme Shop"}, "events": events}


def sdk_batches() -> list[dict]:
    py = [sdk_corpus.python_sdk_json(b) for b in sdk_corpus.python_sdk_batches().values()]
    return py + list(sdk_corpus.java_sdk_batches().values())


# Each one plainly valid, one per branch of the fast pass that accepts.
PLAIN = [
    bench_batch(),
    {"events": [{"event_type": "commerce_event", "data": {"promotion_action": {
        "action": "view", "promotions": [{"id": "P"}]}, "shopping_cart": {"products": []}}}]},
    {"events": [{"event_type": "commerce_event", "data": {"product_impressions": [{"products": []}],
                                                          "product_action": None, "promotion_action": None}}]},
    {"events": [{"event_type": "commerce_event", "data": {"product_action": {"action": "click"},
                                                          "product_impressions": []}}]},
    {"events": [{"event_type": "user_identity_change", "data": {"new": {"identity_type": "email"}, "old": {}}}]},
    {"events": [{"event_type": "push_registration", "data": {"register": False, "registration_token": "t"}}]},
    {"events": [{"event_type": "session_end", "data": {"session_duration_ms": 5, "session_id": 1, "event_num": 2,
                                                       "custom_flags": {}, "location": {}, "device_current_state": {}}}]},
    {"events": [{"event_type": "application_state_transition", "data": {
        "application_transition_type": "application_exit", "is_first_run": False, "unknown_field": [1]}}]},
    {"events": [{"event_type": "profile", "data": {"profile_event_type": "login", "previous_mpid": 1,
                                                   "current_mpid": 2}}], "schema_version": {"any": "thing"}},
    {"events": [], "user_identities": {"email": None}, "deleted_user_attributes": ["a"], "api_keys": ["k"],
     "context": {"data_plan": {"plan_id": "p", "plan_version": 3}}, "integration_attributes": {"1": {}, "2": None},
     "mpid": 2**63 - 1, "timestamp_unixtime_ms": 1, "api_key": 1.5, "environment": "development"},
]

# Odd values for the mutants: each tells some rule apart, or is not what it looks like.
HOSTILE = [
    None, "", "zzz", "unknown", "Unknown", "customerid", "purchase", "custom_event", "email", 0, -1, 2**63, 2**64,
    -(2**63) - 1, 10**30, True, False, 1.5, math.nan, math.inf, -math.inf, [], [None], ["x"], [{}], ({},), ("x",), {},
    {"k": None}, {"k": [1]}, {"action": "purchase"}, {"action": "view", "promotions": ({},)}, {"identity_type": "email"},
    Text("custom_event"), Text("production"), Number(5), Mapping(action="purchase"), Items([{}]), Kind.CUSTOM,
    Level.ONE, decimal.Decimal("1"), uuid.UUID(int=1), b"bytes",
]
STRAY = ["zz_unknown", "ip", "environment", "data", "event_type", "new", "old", "products", "product_action",
         "promotion_action", "product_impressions", "shopping_cart", "custom_attributes", "event_name"]


def official_samples() -> list[dict]:
    names = ("events-batch.sample.2021.json", "events-batch.sample.2026.json")
    return [json.loads(shared_path(f"reference/specs/{name}").read_text(encoding="utf-8")) for name in names]


def test_the_fast_pass_settles_each_plainly_valid_shape():
    for batch in PLAIN:
        assert batches._plainly_valid(batch), batch
        assert same_answer(batch)


def test_sdk_batches_and_each_of_their_events_get_the_same_answer():
    settled = 0
    for batch in [*sdk_batches(), bench_batch(1)]:
        settled += same_answer(batch)
        for event in batch.get("events") or []:
            settled += same_answer({"events": [event]})
    assert settled > 30  # the fast pass settled many of them, the checks the rest


def test_the_official_samples_get_the_same_answer():
    for sample in official_samples():  # skips, saying why, without ../shared
        same_answer(sample)
        for event in sample.get("events") or []:
            same_answer({**sample, "events": [event]})


def test_mutated_batches_get_the_same_answer():
    rng = random.Random(2026)
    verdicts = {True: 0, False: 0}
    corpus = [*PLAIN, *sdk_batches()[::3]]
    for batch in corpus:
        for _, mutant in batch_mutants(batch, rng, 30, replacements=HOSTILE, edits=(1, 1, 2), stray_keys=STRAY,
                                       stray_values=HOSTILE, list_head=3):
            verdicts[same_answer(mutant)] += 1
    assert verdicts[True] > 50 and verdicts[False] > 500, verdicts


def test_the_fast_pass_refuses_near_misses():
    near = [
        {"events": [{"data": {}}]},  # no event_type
        {"events": [{"event_type": "custom_event"}]},  # no data
        {"events": [{"event_type": Text("screen_view"), "data": {}}]},
        {"events": [{"event_type": "screen_view", "data": {"timestamp_unixtime_ms": Number(1)}}]},
        {"events": [{"event_type": "commerce_event", "data": {"product_action": {"action": "purchase"},
                                                              "promotion_action": {"action": "view"}}}]},
        {"events": [{"event_type": "commerce_event", "data": {"product_impressions": []}}]},
        {"events": [{"event_type": "commerce_event", "data": {"product_impressions": ({},)}}]},
        {"events": [{"event_type": "commerce_event", "data": {"product_action": {"action": "view"}}}]},
        {"events": [{"event_type": "commerce_event", "data": {"product_action": {"action": "purchase", "products": [1]}}}]},
        {"events": [{"event_type": "commerce_event", "data": {"promotion_action": ["view"]}}]},
        {"events": [{"event_type": "commerce_event", "data": {"product_action": Mapping(action="purchase")}}]},
        {"events": [{"event_type": "commerce_event", "data": {"product_action": {"action": "purchase"},
                                                              "shopping_cart": []}}]},
        {"events": [{"event_type": "breadcrumb", "data": {"label": "x", "session_number": True}}]},
        {"events": [{"event_type": "opt_out", "data": {"is_opted_out": 1}}]},
        {"events": [{"event_type": "user_identity_change", "data": {"new": [], "old": None}}]},
        {"events": [{"event_type": "custom_event", "data": {"event_name": "x", "custom_event_type": "other",
                                                            "custom_attributes": {"a": {}}}}]},
        {"events": ({"event_type": "first_run", "data": {}},)},
    ]
    for batch in near:
        assert not batches._plainly_valid(batch), batch
        same_answer(batch)


_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**65), 2**65), st.floats(), st.text(max_size=4),
    st.sampled_from(HOSTILE[:20] + ["production", "web", "Android", "navigation", "other", "view", "click"]),
    st.sampled_from([Text("x"), Number(1), Kind.CUSTOM, Level.ONE, decimal.Decimal(2), uuid.UUID(int=2)]),
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.lists(inner, max_size=2).map(tuple),
        st.dictionaries(st.sampled_from(["action", "data", "event_type", "k", "products", "identity_type", *STRAY]),
                        inner, max_size=3),
        st.dictionaries(st.text(max_size=2), inner, max_size=2).map(Mapping),
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hypothesis_values_spliced_into_valid_batches_get_the_same_answer(data):
    batch = copy.deepcopy(data.draw(st.sampled_from(PLAIN[:4])))
    splice(data, batch, _VALUES, keys=("zz", *STRAY), depth=5)
    same_answer(batch)


@pytest.mark.parametrize("value", [[], "x", 1, None, Mapping(), ()], ids=str)
def test_what_is_not_a_batch_gets_the_same_answer(value):
    assert not same_answer(value)


def test_subclasses_stand_for_what_they_subclass_in_the_full_checks():
    # The fast pass leaves them to the full checks, which accept them as the values they are.
    batch = {"user_attributes": {"a": Text("x"), "b": Number(2), "c": [Text("y"), Level.ONE], "d": Kind.CUSTOM},
             "user_identities": {"email": Text("ada@example.com")}, "source_request_id": Text("r"),
             "events": [{"event_type": "screen_view", "data": {"timestamp_unixtime_ms": Number(1),
                                                              "custom_attributes": {"k": Text("v"), "n": Level.ONE}}}]}
    assert not batches._plainly_valid(batch)
    assert check_batch(batch) == []
    assert same_answer(batch) is False
