"""Tests of connector_mparticle.batches: checking, parsing, request ids, JSON and chunking."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys

import pytest
from connector_mparticle import batches
from connector_mparticle.batches import (
    EVENT_TYPES,
    MAX_BATCHES_PER_REQUEST,
    MAX_REQUEST_BYTES,
    check_batch,
    check_batches,
    chunk_batches,
    decode,
    encode,
    encode_single,
    parse_batches,
)
from batch_mutants import batch_mutants
from shared_folder import needs_shared, shared_path

from connector_core.errors import Fault, InvalidInput

needs_specs = needs_shared("reference/specs")
OFFICIAL_SAMPLES = ("events-batch.sample.2021.json", "events-batch.sample.2026.json")

TS = 1_700_000_000_000


def event(event_type: str, **data) -> dict:
    return {"event_type": event_type, "data": {"timestamp_unixtime_ms": TS, **data}}


def realistic_batch() -> dict:
    """A batch as a server-side integration would send it, with every event type."""
    product = {"id": "SKU-1", "name": "Trail shoe", "brand": "Acme", "price": 89.5,
               "quantity": 1, "custom_attributes": {"size": "42"}}
    events = [
        event("session_start", session_uuid="0f8e4c52-9a55-4d8c-8d52-2f1f0b6b4a11"),
        event("application_state_transition", application_transition_type="application_initialized",
              is_first_run=True, is_upgrade=False, launch_referral=None),
        event("first_run"),
        event("screen_view", screen_name="Home", custom_attributes={"tab": "featured"}),
        event("custom_event", event_name="Viewed Article", custom_event_type="navigation",
              custom_attributes={"section": "sports", "words": 812, "premium": False},
              custom_flags={"Google.Category": "content"},
              location={"latitude": 40.7142, "longitude": -74.0064}),
        event("commerce_event", product_action={"action": "purchase", "transaction_id": "T-9",
                                                "total_amount": 89.5, "products": [product]},
              currency_code="EUR", custom_event_type="purchase", promotion_action=None),
        event("commerce_event", promotion_action={"action": "view", "promotions": [
            {"id": "PROMO-1", "name": "Spring sale", "creative": "banner", "position": "top"}]}),
        event("commerce_event", product_impressions=[
            {"product_impression_list": "Search results", "products": [product]}]),
        event("push_registration", register=True, registration_token="fcm-token-123"),
        event("push_message", push_message_type="received", push_message_token="fcm-token-123",
              push_notification_payload="{}", application_state="background"),
        event("push_reaction"),
        event("pre_attribution"),
        event("network_performance", http_verb="GET", url="https://api.example.com/feed",
              response_code=200, time_elapsed=120, bytes_in=2048, bytes_out=512),
        event("breadcrumb", label="opened settings", session_number=3),
        event("crash_report", severity="fatal", message="NullPointerException",
              exception_handled=False, device_current_state={"battery_level": 0.5}),
        event("opt_out", is_opted_out=False),
        event("profile", profile_event_type="login", previous_mpid=0, current_mpid=42),
        event("user_attribute_change", user_attribute_name="tier", new="gold", old="silver",
              deleted=False, is_new_attribute=False),
        event("user_identity_change", new={"identity_type": "email", "identity": "ada@example.com",
                                           "timestamp_unixtime_ms": TS}, old=None),
        event("session_end", session_duration_ms=65_000),
        event("uninstall"),
    ]
    for i, item in enumerate(events):
        item["data"]["source_message_id"] = f"00000000-0000-4000-8000-{i:012d}"
    return {
        "source_request_id": "7fa67be4-f83a-429f-9d73-38b660c50825",
        "environment": "production",
        "schema_version": 2,
        "mpid": 7346244611012968789,
        "ip": "2001:db8::7",
        "user_identities": {"customer_id": "C-1001", "email": "ada@example.com",
                            "other_id_10": None},
        "user_attributes": {"$firstname": "Ada", "tier": "gold", "interests": ["running", "maps"],
                            "age": 36, "newsletter": True, "nickname": None},
        "deleted_user_attributes": ["legacy_segment"],
        "device_info": {"platform": "Android", "android_advertising_id":
                        "38400000-8cf0-11bd-b23e-10b96e40000d", "os_version": "14"},
        "application_info": {"application_name": "Runner", "application_version": "3.2.0"},
        "context": {"data_plan": {"plan_id": "runner_plan", "plan_version": 2}},
        "consent_state": {"gdpr": {"location": {"consented": True, "document": "v4",
                                                "timestamp_unixtime_ms": TS}}},
        "integration_attributes": {"92": {"appsflyer_id": "1558328425529-6235588"}},
        "partner_identities": {"partner_id": "P-1"},
        "events": events,
    }


def one_event(event_type: str, **data) -> dict:
    return {"events": [event(event_type, **data)]}


def first(event_type: str) -> dict:
    """A deep copy of the realistic batch's first event of ``event_type``."""
    found = next(e for e in realistic_batch()["events"] if e["event_type"] == event_type)
    return copy.deepcopy(found)


def paths(faults: list[Fault]) -> list[str]:
    return [f.path for f in faults]


def only(faults: list[Fault]) -> Fault:
    assert len(faults) == 1, faults
    return faults[0]


def load_official(name: str) -> dict:
    return json.loads(shared_path(f"reference/specs/{name}").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- acceptance

# Written out, not read from the checker: the 13 event types of mParticle's JSON reference,
# the 4 more its batch schemas accept and the 2 only the schemas' enum lists
# (../shared/reference/mparticle-api.md, "event_type").
DOCUMENTED_EVENT_TYPES = {
    "custom_event", "commerce_event", "session_start", "session_end", "screen_view", "uninstall", "crash_report",
    "opt_out", "push_registration", "application_state_transition", "push_message", "network_performance", "breadcrumb",
    "first_run", "profile", "user_attribute_change", "user_identity_change",
    "pre_attribution", "push_reaction",
}


def test_the_checker_accepts_exactly_the_documented_event_types():
    assert EVENT_TYPES == DOCUMENTED_EVENT_TYPES


def test_realistic_batch_is_accepted_and_covers_every_event_type():
    batch = realistic_batch()
    assert {e["event_type"] for e in batch["events"]} == DOCUMENTED_EVENT_TYPES
    assert check_batch(batch) == []


@pytest.mark.parametrize("event_type", sorted(DOCUMENTED_EVENT_TYPES))
def test_each_realistic_event_is_accepted_alone(event_type):
    assert check_batch({"events": [first(event_type)]}) == []


def test_minimal_batches_are_accepted():
    assert check_batch({}) == []
    assert check_batch({"events": []}) == []
    nulls = {"events": None, "user_attributes": None, "deleted_user_attributes": None}
    assert check_batch(nulls) == []


@needs_specs
@pytest.mark.parametrize("name", OFFICIAL_SAMPLES)
def test_official_sample_batch_is_accepted_unchanged(name):
    sample = load_official(name)
    before = copy.deepcopy(sample)
    assert check_batch(sample) == []
    assert sample == before


@needs_specs
@pytest.mark.parametrize("name", OFFICIAL_SAMPLES)
def test_each_official_sample_event_is_accepted(name):
    for item in load_official(name)["events"]:
        assert check_batch({"events": [item]}) == [], item["event_type"]


# --------------------------------------------------------------------------- batch shape

@pytest.mark.parametrize("value, kind", [
    ([], "array"), ("{}", "string"), (None, "null"), (3, "integer")])
def test_batch_must_be_an_object(value, kind):
    fault = only(check_batch(value, "$[2]"))
    assert fault.path == "$[2]"
    assert kind in fault.message and "object" in fault.message


def test_unknown_batch_field_is_a_fault_with_a_suggestion():
    fault = only(check_batch({"enviroment": "production"}))
    assert fault.path == "$.enviroment"
    assert "did you mean 'environment'?" in fault.message
    assert "rejects unknown fields" in fault.message


def test_unknown_batch_field_without_close_match_has_no_suggestion():
    fault = only(check_batch({"zzqx": 1}))
    assert fault.path == "$.zzqx"
    assert "did you mean" not in fault.message


def test_batch_context_is_not_accepted_and_points_to_context():
    fault = only(check_batch({"batch_context": {"data_plan": {"plan_id": "p"}}}))
    assert fault.path == "$.batch_context"
    assert "did you mean 'context'?" in fault.message
    assert check_batch({"context": {"data_plan": {"plan_id": "p"}}}) == []


def test_event_field_at_batch_level_says_where_it_belongs():
    fault = only(check_batch({"event_name": "Signup"}))
    assert fault.path == "$.event_name"
    assert "inside an event's 'data'" in fault.message


def test_odd_keys_are_quoted_in_paths():
    assert paths(check_batch({"user-id": 1})) == ["$['user-id']"]


@pytest.mark.parametrize("value", [2, "2", None, {"v": 2}])
def test_schema_version_is_tolerated(value):
    assert check_batch({"schema_version": value}) == []


# --------------------------------------------------------------------------- batch fields

@pytest.mark.parametrize("value", ["production", "development", "unknown"])
def test_environment_values_accepted(value):
    assert check_batch({"environment": value}) == []


@pytest.mark.parametrize("value, expected", [
    ("prod", "'prod' is not a known environment"),
    ("Production", "did you mean 'production'?"),
    (None, "not null"),
    (1, "must be a string"),
])
def test_environment_values_rejected(value, expected):
    fault = only(check_batch({"environment": value}))
    assert fault.path == "$.environment"
    assert expected in fault.message


def test_user_identities_accept_every_known_key_and_null():
    identities = {name: "x" for name in batches.IDENTITY_TYPES}
    identities["email"] = None
    assert check_batch({"user_identities": identities}) == []
    assert len(batches.IDENTITY_TYPES) == 22
    assert {"other_id_10", "mobile_number", "phone_number_3"} <= batches.IDENTITY_TYPES


def test_unknown_identity_key_is_rejected_with_a_suggestion():
    fault = only(check_batch({"user_identities": {"emial": "a@example.com"}}))
    assert fault.path == "$.user_identities.emial"
    assert "did you mean 'email'?" in fault.message
    assert "customer_id" in fault.message


def test_mpid_as_identity_points_to_top_level_mpid():
    fault = only(check_batch({"user_identities": {"mpid": "123"}}))
    assert fault.path == "$.user_identities.mpid"
    assert "top-level 'mpid'" in fault.message


@pytest.mark.parametrize("value, kind", [(["a"], "array"), ({"id": "a"}, "object")])
def test_identity_values_must_be_strings(value, kind):
    fault = only(check_batch({"user_identities": {"customer_id": value}}))
    assert fault.path == "$.user_identities.customer_id"
    assert f"must be strings, not {kind}" in fault.message


@pytest.mark.parametrize("value, kind", [(123, "integer"), (True, "boolean")])
def test_scalar_identity_values_pass_with_a_warning(value, kind):
    # The official schema's "String" admits numbers and booleans; D-JSON documents strings.
    warnings = []
    assert check_batch({"user_identities": {"customer_id": value}}, warnings=warnings) == []
    warning = only(warnings)
    assert warning.path == "$.user_identities.customer_id"
    assert f"documented as strings, not {kind}" in warning.message


def test_user_identities_must_be_an_object():
    assert paths(check_batch({"user_identities": ["customer_id"]})) == ["$.user_identities"]


def test_user_attributes_values():
    good = {"a": "x", "b": 1, "c": 1.5, "d": True, "e": None, "f": ["x", "y"], "$city": "Oslo"}
    assert check_batch({"user_attributes": good}) == []
    faults = check_batch({"user_attributes": {"nested": {"x": 1}, "deep": [["x"]], "ok": "y"}})
    assert paths(faults) == ["$.user_attributes.deep", "$.user_attributes.nested"]
    assert paths(check_batch({"user_attributes": "tier=gold"})) == ["$.user_attributes"]
    # Good values (a scalar, a list) before a bad one do not end the check.
    for good in ({"plan": "gold"}, {"tags": ["a", "b"]}):
        faults = check_batch({"user_attributes": {**good, "address": {"city": "Oslo"}}})
        assert paths(faults) == ["$.user_attributes.address"]


def test_deleted_user_attributes_must_be_an_array_of_strings():
    assert check_batch({"deleted_user_attributes": ["a", "b"]}) == []
    assert paths(check_batch({"deleted_user_attributes": ["a", 2, None]})) == [
        "$.deleted_user_attributes[1]", "$.deleted_user_attributes[2]"]
    assert paths(check_batch({"deleted_user_attributes": "a"})) == ["$.deleted_user_attributes"]


@pytest.mark.parametrize("field", [
    "device_info", "application_info", "consent_state", "context", "integration_attributes",
    "partner_identities", "source_info", "attribution_info", "user_attributes", "user_identities",
])
def test_object_fields(field):
    assert check_batch({field: {}}) == []
    assert check_batch({field: None}) == []
    fault = only(check_batch({field: ["x"]}))
    assert fault.path == f"$.{field}"
    assert "must be an object, not array" in fault.message


def test_integration_attributes_are_keyed_by_module():
    assert check_batch({"integration_attributes": {"92": {"k": "v"}}}) == []
    assert paths(check_batch({"integration_attributes": {"92": "v"}})) == [
        "$.integration_attributes['92']"]


def test_device_info_platform():
    assert check_batch({"device_info": {"platform": "iOS"}}) == []
    fault = only(check_batch({"device_info": {"platform": "ios"}}))
    assert fault.path == "$.device_info.platform"
    assert "did you mean 'iOS'?" in fault.message


def test_context_data_plan_types():
    assert check_batch({"context": {"data_plan": {"plan_id": "p", "plan_version": 3}}}) == []
    assert paths(check_batch({"context": {"data_plan": {"plan_id": [1], "plan_version": "3"}}})) == [
        "$.context.data_plan.plan_id", "$.context.data_plan.plan_version"]
    warnings = []  # the schema's loose "String" admits a number; D-JSON says string
    assert check_batch({"context": {"data_plan": {"plan_id": 1}}}, warnings=warnings) == []
    assert paths(warnings) == ["$.context.data_plan.plan_id"]
    assert paths(check_batch({"context": {"data_plan": "p"}})) == ["$.context.data_plan"]


@pytest.mark.parametrize("value", [
    0, 7346244611012968789, -7636538281262557000, -(2**63), 2**63 - 1])
def test_mpid_integers_accepted(value):
    assert check_batch({"mpid": value}) == []


@pytest.mark.parametrize("value, expected", [
    ("7346244611012968789", "send it as a JSON number"),
    (1.5, "must be an integer, not number"),
    (True, "must be an integer, not boolean"),
    (2**63, "signed 64-bit"),
    (-(2**63) - 1, "signed 64-bit"),
])
def test_mpid_rejected(value, expected):
    fault = only(check_batch({"mpid": value}))
    assert fault.path == "$.mpid"
    assert expected in fault.message


@pytest.mark.parametrize("field", ["timestamp_unixtime_ms", "batch_id", "origin_mpid"])
def test_batch_integer_fields(field):
    assert check_batch({field: TS}) == []
    assert paths(check_batch({field: str(TS)})) == [f"$.{field}"]


@pytest.mark.parametrize("field", ["source_request_id", "mp_deviceid"])
def test_batch_string_fields(field):
    assert check_batch({field: "3fb44a79-df2d-446d-acf1-e87eda854ae1"}) == []
    fault = only(check_batch({field: 12}))
    assert fault.path == f"$.{field}"
    assert "must be a string, not integer" in fault.message


@pytest.mark.parametrize("value", ["100.38.5.94", "2001:db8::1", "::1"])
def test_ip_accepted(value):
    assert check_batch({"ip": value}) == []


@pytest.mark.parametrize("value", ["100.38.5", "localhost", "300.1.1.1", 1684407646])
def test_ip_rejected(value):
    assert paths(check_batch({"ip": value})) == ["$.ip"]


def test_api_keys_must_be_strings():
    assert check_batch({"api_keys": ["k1"]}) == []
    assert paths(check_batch({"api_keys": [1]})) == ["$.api_keys[0]"]


# --------------------------------------------------------------------------- events

def test_events_must_be_an_array():
    fault = only(check_batch({"events": {"event_type": "custom_event"}}))
    assert fault.path == "$.events"
    assert "array" in fault.message


@pytest.mark.parametrize("value", ["custom_event", None, 3, ["x"]])
def test_each_event_must_be_an_object(value):
    fault = only(check_batch({"events": [first("uninstall"), value]}))
    assert fault.path == "$.events[1]"


def test_event_needs_event_type():
    fault = only(check_batch({"events": [{"data": {}}]}))
    assert fault.path == "$.events[0].event_type"
    assert "needs 'event_type'" in fault.message and "custom_event" in fault.message


@pytest.mark.parametrize("value, expected", [
    ("custom_evnt", "did you mean 'custom_event'?"),
    ("pageview", "'pageview' is not a known event_type"),
    (7, "must be a string"),
    (["custom_event"], "must be a string"),
])
def test_unknown_event_type(value, expected):
    fault = only(check_batch({"events": [{"event_type": value, "data": {}}]}))
    assert fault.path == "$.events[0].event_type"
    assert expected in fault.message
    assert "use one of" in fault.message or "one of:" in fault.message


@pytest.mark.parametrize("event_type", sorted(DOCUMENTED_EVENT_TYPES))
def test_every_documented_event_type_is_known(event_type):
    faults = check_batch({"events": [{"event_type": event_type, "data": {}}]})
    assert "$.events[0].event_type" not in paths(faults)


def test_event_needs_data_object():
    # SCH21 allows an event without data: a warning, and required fields still apply.
    warnings = []
    assert check_batch({"events": [{"event_type": "uninstall"}]}, warnings=warnings) == []
    assert paths(warnings) == ["$.events[0].data"]
    fault = only(check_batch({"events": [{"event_type": "breadcrumb"}]}))
    assert fault.path == "$.events[0].data.label"
    fault = only(check_batch({"events": [{"event_type": "uninstall", "data": "x"}]}))
    assert fault.path == "$.events[0].data"
    assert "must be an object, not string" in fault.message


def test_every_event_is_checked_after_one_whose_data_is_not_an_object():
    events = [{"event_type": "uninstall", "data": "x"}, {"event_type": "breadcrumb", "data": {}},
              {"event_type": "no_such_type", "data": {}}]
    assert paths(check_batch({"events": events})) == [
        "$.events[0].data", "$.events[1].data.label", "$.events[2].event_type"]


def test_fields_beside_data_are_pointed_out():
    fault = only(check_batch({"events": [{"event_type": "screen_view", "screen_name": "Home"}]}))
    assert "move 'screen_name' inside 'data'" in fault.message
    bad = {"event_type": "custom_event", "event_name": "Signup",
           "data": {"custom_event_type": "other"}}
    fault = only(check_batch({"events": [bad]}))
    assert fault.path == "$.events[0].data.event_name"
    assert "belongs inside it" in fault.message


REQUIRED = [
    ("custom_event", "event_name"),
    ("custom_event", "custom_event_type"),
    ("push_registration", "register"),
    ("push_registration", "registration_token"),
    ("application_state_transition", "application_transition_type"),
    ("push_message", "push_message_type"),
    ("breadcrumb", "label"),
    ("user_attribute_change", "user_attribute_name"),
    ("user_identity_change", "new"),
]


@pytest.mark.parametrize("event_type, field", REQUIRED)
def test_required_event_field_missing(event_type, field):
    item = first(event_type)
    assert check_batch({"events": [item]}) == []
    del item["data"][field]
    fault = only(check_batch({"events": [first("uninstall"), item]}))
    assert fault.path == f"$.events[1].data.{field}"
    assert fault.message.startswith(f"{event_type} needs '{field}' (")


# Required, but the official schemas admit null for them (SCH21/26 ``Boolean`` is boolean or
# null; SCH26's "new" has no type), and JAVA writes an unset register as null.
NULL_ADMITTED = [("push_registration", "register"), ("user_identity_change", "new")]


@pytest.mark.parametrize("event_type, field", [r for r in REQUIRED if r not in NULL_ADMITTED])
def test_required_event_field_null(event_type, field):
    item = first(event_type)
    item["data"][field] = None
    fault = only(check_batch({"events": [item]}))
    assert fault.path == f"$.events[0].data.{field}"
    assert "not null" in fault.message


@pytest.mark.parametrize("event_type, field", NULL_ADMITTED)
def test_a_required_field_the_schema_lets_be_null_is_a_warning_when_null(event_type, field):
    item = first(event_type)
    item["data"][field] = None
    warnings: list = []
    assert check_batch({"events": [item]}, warnings=warnings) == []
    (warning,) = warnings
    assert warning.path == f"$.events[0].data.{field}"
    assert f"{event_type} has {field!r} null" in warning.message and "schema admits null" in warning.message


@pytest.mark.parametrize("field", ["profile_event_type", "previous_mpid", "current_mpid"])
def test_profile_fields_the_python_sdk_cannot_send_are_warnings(field):
    # SCH26 requires them; mparticle/models/profile_event.py has no previous/current_mpid.
    item = first("profile")
    del item["data"][field]
    warnings = []
    assert check_batch({"events": [item]}, warnings=warnings) == []
    assert paths(warnings) == [f"$.events[0].data.{field}"]


def test_custom_event_message_matches_documented_wording():
    item = first("custom_event")
    del item["data"]["event_name"]
    fault = only(check_batch({"events": [item]}))
    assert fault.message == "custom_event needs 'event_name' (string)"


@pytest.mark.parametrize("event_type, field", [
    ("custom_event", "event_name"),
    ("push_registration", "registration_token"),
    ("breadcrumb", "label"),
    ("user_attribute_change", "user_attribute_name"),
])
def test_required_strings_must_not_be_empty(event_type, field):
    item = first(event_type)
    item["data"][field] = ""
    fault = only(check_batch({"events": [item]}))
    assert fault.path == f"$.events[0].data.{field}"
    assert "non-empty" in fault.message


# Required by the schemas but optional in D-JSON: the checker follows D-JSON.
@pytest.mark.parametrize("event_type, field", [
    ("screen_view", "screen_name"),
    ("session_end", "session_duration_ms"),
    ("session_start", "session_uuid"),
    ("opt_out", "is_opted_out"),
    ("network_performance", "url"),
    ("network_performance", "response_code"),
    ("crash_report", "severity"),
    ("crash_report", "message"),
    ("push_message", "push_message_token"),
    ("push_message", "push_notification_payload"),
    ("application_state_transition", "is_first_run"),
    ("user_attribute_change", "new"),
    ("user_identity_change", "old"),
])
def test_fields_only_the_schemas_require_are_optional(event_type, field):
    item = first(event_type)
    del item["data"][field]
    assert check_batch({"events": [item]}) == []


@pytest.mark.parametrize("event_type, field", [
    # Optional in both official schemas (events-batch.schema.2021.json and .2026.json): their
    # data objects do not list these under "required".
    ("push_message", "application_state"),
    ("application_state_transition", "is_upgrade"),
    ("breadcrumb", "session_number"),
    ("commerce_event", "currency_code"),
])
def test_fields_no_schema_requires_may_be_left_out(event_type, field):
    item = first(event_type)
    assert field in item["data"]
    del item["data"][field]
    assert check_batch({"events": [item]}) == []
    assert check_batches([{"events": [item]}, {"events": [first(event_type)]}]) == []


@pytest.mark.parametrize("event_type, field, value, expected", [
    ("custom_event", "event_name", 5, "must be a string, not integer"),
    ("screen_view", "screen_name", ["Home"], "must be a string, not array"),
    ("session_end", "session_duration_ms", "65000", "must be an integer, not string"),
    ("session_start", "session_id", 1.5, "must be an integer, not number"),
    ("opt_out", "is_opted_out", "false", "must be true or false, not string"),
    ("push_registration", "register", 1, "must be true or false, not integer"),
    ("application_state_transition", "is_upgrade", "no", "must be true or false"),
    ("breadcrumb", "session_number", "3", "must be an integer"),
    ("network_performance", "url", 5, "must be a string"),
    ("commerce_event", "currency_code", 978, "must be a string"),
    ("commerce_event", "is_non_interactive", "yes", "must be true or false"),
    ("user_identity_change", "new", "email", "must be an object, not string"),
    ("user_identity_change", "old", "email", "must be an object or null"),
])
def test_event_field_types(event_type, field, value, expected):
    item = first(event_type)
    item["data"][field] = value
    fault = only(check_batch({"events": [item]}))
    assert fault.path == f"$.events[0].data.{field}"
    assert expected in fault.message


@pytest.mark.parametrize("event_type, field, value", [
    ("application_state_transition", "application_transition_type", "application_start"),
    ("push_message", "push_message_type", "opened"),
    ("push_message", "application_state", "running"),
    ("profile", "profile_event_type", "signin"),
    ("custom_event", "custom_event_type", "Navigation"),
    ("custom_event", "custom_event_type", "purchase"),
    ("commerce_event", "custom_event_type", "bogus"),
])
def test_event_enums_rejected(event_type, field, value):
    item = first(event_type)
    item["data"][field] = value
    fault = only(check_batch({"events": [item]}))
    assert fault.path == f"$.events[0].data.{field}"
    assert f"{value!r} is not a known {field}" in fault.message
    assert "use one of:" in fault.message


@pytest.mark.parametrize("value", [
    "navigation", "location", "search", "transaction", "user_content", "user_preference",
    "social", "other", "media", "attribution", "unknown",
])
def test_custom_event_types_accepted(value):
    assert check_batch(one_event("custom_event", event_name="e", custom_event_type=value)) == []


@pytest.mark.parametrize("value", [
    "add_to_cart", "purchase", "promotion_view", "impression", "remove_from_wishlist",
    "consent_granted", "other", "unknown",
])
def test_commerce_custom_event_types_accepted(value):
    item = first("commerce_event")
    item["data"]["custom_event_type"] = value
    assert check_batch({"events": [item]}) == []


def test_commerce_event_without_any_kind_passes_with_a_warning():
    # The Python SDK sends its crash reports as commerce_event without any of the three.
    warnings = []
    assert check_batch(one_event("commerce_event", product_impressions=[], promotion_action=None),
                       warnings=warnings) == []
    assert paths(warnings) == ["$.events[0].data"]


def test_java_sdk_commerce_shape_passes_without_warnings():
    # mparticle-java-events-sdk CommerceEventData: an empty impressions list and a null
    # promotion_action beside the product_action.
    warnings = []
    batch = one_event("commerce_event", product_action={"action": "purchase", "products": []},
                      product_impressions=[], promotion_action=None)
    assert check_batch(batch, warnings=warnings) == []
    assert warnings == []


@pytest.mark.parametrize("kinds", [
    ("product_action", "promotion_action"),
    ("product_action", "product_impressions"),
    ("product_action", "promotion_action", "product_impressions"),
])
def test_commerce_event_needs_exactly_one_kind(kinds):
    values = {"product_action": {"action": "click"}, "promotion_action": {"action": "click"},
              "product_impressions": [{"products": []}]}
    data = {k: values[k] for k in kinds}
    fault = only(check_batch(one_event("commerce_event", **data)))
    assert fault.path == "$.events[0].data"
    assert "exactly one of" in fault.message


@pytest.mark.parametrize("kind, value", [
    ("product_action", {"action": "click"}),
    ("promotion_action", {"action": "view"}),
    ("product_impressions", []),
])
def test_commerce_event_with_one_kind_and_nulls_is_accepted(kind, value):
    data = {"product_action": None, "promotion_action": None, "product_impressions": None}
    data[kind] = value
    assert check_batch(one_event("commerce_event", **data)) == []


@pytest.mark.parametrize("action", [
    "add_to_cart", "remove_from_cart", "checkout", "checkout_option", "click", "view_detail",
    "purchase", "refund", "add_to_wishlist", "remove_from_wish_list",
])
def test_product_actions_accepted(action):
    assert check_batch(one_event("commerce_event", product_action={"action": action})) == []


def test_product_action_rejected():
    batch = one_event("commerce_event", product_action={"action": "remove_from_wishlist"})
    fault = only(check_batch(batch))
    assert fault.path == "$.events[0].data.product_action.action"
    assert "did you mean 'remove_from_wish_list'?" in fault.message
    fault = only(check_batch(one_event("commerce_event", product_action={"products": []})))
    assert fault.path == "$.events[0].data.product_action.action"
    assert "needs 'action'" in fault.message
    fault = only(check_batch(one_event("commerce_event", product_action="purchase")))
    assert fault.path == "$.events[0].data.product_action"


@pytest.mark.parametrize("action", ["view", "click"])
def test_promotion_actions_accepted(action):
    assert check_batch(one_event("commerce_event", promotion_action={"action": action})) == []


def test_promotion_action_rejected():
    batch = one_event("commerce_event", promotion_action={"action": "impression"})
    fault = only(check_batch(batch))
    assert fault.path == "$.events[0].data.promotion_action.action"
    assert "'impression' is not a known promotion_action action" in fault.message


def test_commerce_lists_hold_objects():
    faults = check_batch(one_event("commerce_event", product_action={
        "action": "purchase", "products": [{"id": "a"}, "SKU-2"]}))
    assert paths(faults) == ["$.events[0].data.product_action.products[1]"]
    faults = check_batch(one_event("commerce_event", product_impressions={"products": []}))
    assert paths(faults) == ["$.events[0].data.product_impressions"]
    faults = check_batch(one_event("commerce_event", product_impressions=[{}, 3]))
    assert paths(faults) == ["$.events[0].data.product_impressions[1]"]
    faults = check_batch(one_event("commerce_event", product_impressions=[], shopping_cart=[]))
    assert paths(faults) == ["$.events[0].data.shopping_cart"]


def test_identity_change_identity_type():
    item = first("user_identity_change")
    item["data"]["new"]["identity_type"] = "phone"
    fault = only(check_batch({"events": [item]}))
    assert fault.path == "$.events[0].data.new.identity_type"


@pytest.mark.parametrize("value, ok", [
    (TS, True), (None, True), (str(TS), False), (1.7e12, False), (True, False)])
def test_event_timestamp_must_be_an_integer(value, ok):
    faults = check_batch(one_event("uninstall", timestamp_unixtime_ms=value))
    assert paths(faults) == ([] if ok else ["$.events[0].data.timestamp_unixtime_ms"])


@pytest.mark.parametrize("field", [
    "custom_attributes", "custom_flags", "location", "device_current_state"])
def test_common_event_objects(field):
    assert check_batch(one_event("uninstall", **{field: {}})) == []
    assert check_batch(one_event("uninstall", **{field: None})) == []
    faults = check_batch(one_event("uninstall", **{field: "x"}))
    assert paths(faults) == [f"$.events[0].data.{field}"]


def test_custom_attribute_values_are_scalars():
    ok = {"a": "x", "b": 2, "c": 2.5, "d": False, "e": None}
    assert check_batch(one_event("uninstall", custom_attributes=ok)) == []
    attributes = {"list": ["x"], "obj": {}, "k y": []}
    faults = check_batch(one_event("uninstall", custom_attributes=attributes))
    assert paths(faults) == [
        "$.events[0].data.custom_attributes.list",
        "$.events[0].data.custom_attributes.obj",
        "$.events[0].data.custom_attributes['k y']",
    ]


def test_source_message_id_must_be_a_string():
    assert check_batch(one_event("uninstall", source_message_id=None)) == []
    assert paths(check_batch(one_event("uninstall", source_message_id=5))) == [
        "$.events[0].data.source_message_id"]


# --------------------------------------------------------------------------- reporting

def test_mappings_and_tuples_are_checked_as_the_objects_and_arrays_they_stand_for():
    """A host's batches need not be plain dicts and lists (OrderedDict from an
    object_pairs_hook, tuples): the checker treats them as JSON objects and arrays."""
    from collections import OrderedDict

    def custom(name):
        return OrderedDict(event_type="custom_event", data=OrderedDict(event_name=name, custom_event_type="other"))

    batch = OrderedDict(environment="development", user_identities=OrderedDict(customer_id="u"),
                        user_attributes=OrderedDict(tags=("a", "b")), events=(custom("x"), custom("y")))
    assert check_batch(batch) == []
    assert check_batches([batch, dict(batch)]) == []
    batch["events"] = (custom("x"), OrderedDict(event_type="custom_event", data=OrderedDict(event_name="y")))
    assert paths(check_batch(batch)) == ["$.events[1].data.custom_event_type"]


def test_all_faults_are_reported_sorted_by_path_in_natural_order():
    events = [first("uninstall") for _ in range(12)]
    events[10] = {"event_type": "custom_event", "data": {}}
    events[2] = {"event_type": "nope", "data": {"timestamp_unixtime_ms": "x"}}
    batch = {"user_identities": {"emial": "x"}, "events": events, "mpid": "1",
             "environment": "prod"}
    assert paths(check_batch(batch)) == [
        "$.environment",
        "$.events[2].data.timestamp_unixtime_ms",
        "$.events[2].event_type",
        "$.events[10].data.custom_event_type",
        "$.events[10].data.event_name",
        "$.mpid",
        "$.user_identities.emial",
    ]


def test_path_prefix_is_used():
    faults = check_batch({"mpid": "1", "events": [{"event_type": "x", "data": {}}]}, path="$[2]")
    assert paths(faults) == ["$[2].events[0].event_type", "$[2].mpid"]


def test_check_batches_paths():
    good, bad = realistic_batch(), {"mpid": "1"}
    assert paths(check_batches([good, bad, bad])) == ["$.jsonBody[1].mpid", "$.jsonBody[2].mpid"]
    assert paths(check_batches([bad], single=True)) == ["$.jsonBody.mpid"]
    assert paths(check_batches([bad], path="$.body")) == ["$.body[0].mpid"]
    assert check_batches([good, good]) == []


# --------------------------------------------------------------------------- parse_batches

def test_parse_single_object_text():
    text = '\n  {"environment": "production", "events": []}  \n\t'
    assert parse_batches(text) == ([{"environment": "production", "events": []}], True)


def test_parse_array_text():
    assert parse_batches('[{"mpid": 1}, {"mpid": 2}]') == ([{"mpid": 1}, {"mpid": 2}], False)


def test_parse_dict_and_list_inputs():
    batch = {"mpid": 1}
    result, single = parse_batches(batch)
    assert single is True and result == [batch] and result[0] is batch
    items = [{"mpid": 1}, {"mpid": 2}]
    result, single = parse_batches(items)
    assert single is False and result == items and result[1] is items[1]


def test_parse_bytes_and_bom():
    assert parse_batches('\ufeff{"mpid": 1}'.encode()) == ([{"mpid": 1}], True)


def test_parse_keeps_big_integers_exact():
    result, _ = parse_batches('{"mpid": 123456789012345678901234567890}')
    assert result[0]["mpid"] == 123456789012345678901234567890


def invalid_json_fault(text, path="$.jsonBody") -> Fault:
    with pytest.raises(InvalidInput) as info:
        parse_batches(text, path)
    return only(list(info.value.faults))


def test_invalid_json_reports_line_and_column():
    text = '{\n  "events": [\n    {"event_type": "custom_event" "data": {}}\n  ]\n}'
    fault = invalid_json_fault(text)
    assert fault.path == "$.jsonBody"
    assert fault.message == "invalid JSON at line 3, column 35: Expecting ',' delimiter"


def test_invalid_json_position_counts_leading_blank_lines():
    fault = invalid_json_fault("\n\n   {'mpid': 1}")
    assert fault.message.startswith("invalid JSON at line 3, column 5: Expecting property name")


def test_invalid_json_position_on_the_line_after_a_single_newline():
    # The first line is empty: the column counts from the newline at the very start.
    fault = invalid_json_fault("\n   {'mpid': 1}")
    assert fault.message.startswith("invalid JSON at line 2, column 5: Expecting property name")


def test_invalid_json_trailing_comma_and_custom_path():
    text = '[{"mpid": 1},]'
    fault = invalid_json_fault(text, path="$.body")
    assert fault.path == "$.body"
    # The wording and column are the json module's own, and newer Pythons word it better.
    with pytest.raises(json.JSONDecodeError) as parsed:
        json.loads(text)
    assert fault.message == f"invalid JSON at line 1, column {parsed.value.colno}: {parsed.value.msg}"


def test_nan_is_not_json():
    fault = invalid_json_fault('{"note": "NaN here", "mpid": NaN}')
    assert fault.message == (
        "invalid JSON at line 1, column 30: NaN is not a JSON value (use null or a number)")


@pytest.mark.parametrize("text, said", [
    ("[" * 100_000, "maximum recursion depth exceeded"),  # deeper than the parser can go
    ("[" + "1" * 5000 + "]", "Exceeds the limit (4300 digits)"),  # Python's int conversion limit
])
def test_text_the_parser_cannot_read_is_invalid_json_not_a_crash(text, said):
    fault = invalid_json_fault(text)
    assert fault.path == "$.jsonBody" and fault.message.startswith("invalid JSON: ")
    assert said in fault.message


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text(text):
    fault = invalid_json_fault(text)
    assert fault.path == "$.jsonBody" and "empty" in fault.message


@pytest.mark.parametrize("value, kind", [("42", "integer"), ('"batch"', "string"), ("null", "null"),
                                          (None, "null"), (3.5, "number")])
def test_scalars_are_rejected(value, kind):
    fault = invalid_json_fault(value)
    assert fault.path == "$.jsonBody"
    assert f"not {kind}" in fault.message


@pytest.mark.parametrize("value", ["[]", []])
def test_empty_array_is_rejected(value):
    fault = invalid_json_fault(value)
    assert fault.path == "$.jsonBody" and "empty array" in fault.message


@pytest.mark.parametrize("value", ['[{}, {"mpid": 1}, "x", [], 3]', [{}, {"mpid": 1}, "x", [], 3]])
def test_array_items_must_be_objects(value):
    with pytest.raises(InvalidInput) as info:
        parse_batches(value)
    assert paths(list(info.value.faults)) == ["$.jsonBody[2]", "$.jsonBody[3]", "$.jsonBody[4]"]
    assert "not string" in info.value.faults[0].message


# --------------------------------------------------------------------------- encode / decode

def load_without_orjson():
    """A separate copy of the batches module, imported as if orjson were not installed."""
    saved = sys.modules.get("orjson")
    sys.modules["orjson"] = None  # makes `import orjson` raise ImportError
    try:
        spec = importlib.util.spec_from_file_location("_batches_without_orjson", batches.__file__)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["orjson"]
        else:
            sys.modules["orjson"] = saved
    assert module._orjson is None
    return module


STDLIB = load_without_orjson()
IMPLEMENTATIONS = [pytest.param(batches, id="default"), pytest.param(STDLIB, id="stdlib")]

ROUND_TRIP = {
    "big": 2**64 + 1,
    "negative_big": -(2**70),
    "int64": [2**63 - 1, -(2**63), 2**64 - 1],
    "unicode": "Grüße, 東京, emoji 😀, quote \" backslash \\ newline \n",
    "floats": [0.1, 1e16, -2.5, 1e-7],
    "nested": {"list": [True, False, None, {}, []]},
}


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
def test_encode_decode_round_trip(module):
    data = module.encode(ROUND_TRIP)
    assert isinstance(data, bytes)
    assert module.decode(data) == ROUND_TRIP
    assert module.decode(data.decode("utf-8")) == ROUND_TRIP
    assert json.loads(data) == ROUND_TRIP


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
def test_encode_is_compact_utf8(module):
    assert module.encode({"a": [1, "é😀"], "b": None}) == '{"a":[1,"é😀"],"b":null}'.encode()


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
def test_encode_replaces_non_finite_floats_with_null(module):
    data = {"a": float("nan"), "b": [float("inf")], "c": 1.5}
    assert module.encode(data) == b'{"a":null,"b":[null],"c":1.5}'


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
def test_encode_lone_surrogate_gives_valid_json(module):
    data = module.encode({"s": "a\ud800b"})
    data.decode("utf-8")
    assert json.loads(data) == {"s": "a\ud800b"}


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
def test_encode_non_string_keys_like_the_stdlib(module):
    assert module.encode({1: "a"}) == b'{"1":"a"}'


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
def test_encode_rejects_unserialisable_values(module):
    with pytest.raises(TypeError):
        module.encode({"when": object()})


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
@pytest.mark.parametrize("text", [
    b'{"n": 18446744073709551616}', b'{"n": -9223372036854775809}',
    b'{"n": 123456789012345678901234567890}',
])
def test_decode_keeps_integers_beyond_64_bits_exact(module, text):
    value = module.decode(text)["n"]
    assert type(value) is int and value == int(text.split(b":")[1].rstrip(b"}"))


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
def test_decode_keeps_64_bit_integers(module):
    ids = [-(2**63), 2**63 - 1, 2**64 - 1, -2271448330363288817, -7636538281262557000]
    text = json.dumps({"ids": ids, "events": [{"session_id": -6518616552181726857}] * 50})
    value = module.decode(text)
    assert value["ids"] == ids and all(type(v) is int for v in value["ids"])
    assert value["events"][49]["session_id"] == -6518616552181726857


# orjson reads integers outside [-2**63, 2**64) as floats; such text must go to the stdlib.
@pytest.mark.parametrize("text, expected", [
    (b"[-9223372036854775808]", False),
    (b"[-9223372036854775809]", True),
    (b"[-9300000000000000000]", True),
    (b"[-999999999999999999]", False),
    (b"[-7636538281262557000, -2271448330363288817]", False),
    (b"[18446744073709551615]", True),  # 20 digits: in range, but sent to the stdlib anyway
    (b"[1844674407370955161]", False),
    (b'["12345678901234567890"]', True),  # digits in strings only cost speed
    (b"[123456789012345678901234567890]", True),
    (b'{"a": 1.5, "b": "x"}', False),
])
def test_big_integer_guard(text, expected):
    assert batches._may_hold_big_int(text) is expected


@pytest.mark.parametrize("module", IMPLEMENTATIONS)
@pytest.mark.parametrize("text", ['{"a": 1,}', "NaN", '{"a": Infinity}', "[1] x"])
def test_decode_rejects_invalid_json(module, text):
    with pytest.raises(json.JSONDecodeError) as info:
        module.decode(text)
    assert info.value.lineno == 1


@needs_specs
@pytest.mark.parametrize("name", OFFICIAL_SAMPLES)
def test_encoders_agree_on_the_official_samples(name):
    sample = load_official(name)
    assert decode(encode(sample)) == sample
    assert STDLIB.decode(STDLIB.encode(sample)) == sample


def test_orjson_output_matches_stdlib_values():
    pytest.importorskip("orjson")
    assert batches._orjson is not None
    batch = realistic_batch()
    assert json.loads(encode(batch)) == json.loads(STDLIB.encode(batch)) == batch


# --------------------------------------------------------------------------- chunking

def test_limits():
    assert MAX_REQUEST_BYTES == 262_144
    assert MAX_BATCHES_PER_REQUEST == 100


def small_batches(n: int) -> list[dict]:
    return [{"source_request_id": f"r{i}", "mpid": i} for i in range(n)]


def test_chunk_100_batches_is_one_request():
    items = small_batches(100)
    chunks = chunk_batches(items)
    assert len(chunks) == 1
    members, body = chunks[0]
    assert members == items
    assert json.loads(body) == items


def test_chunk_101_batches_is_two_requests_in_order():
    items = small_batches(101)
    chunks = chunk_batches(items)
    assert [len(members) for members, _ in chunks] == [100, 1]
    assert [b for members, _ in chunks for b in members] == items
    assert [json.loads(body) for _, body in chunks] == [items[:100], items[100:]]


def test_chunk_respects_max_batches():
    chunks = chunk_batches(small_batches(7), max_batches=3)
    assert [len(m) for m, _ in chunks] == [3, 3, 1]


def padded(size: int, char: str = "a") -> dict:
    """A batch whose compact encoding is exactly ``size`` bytes (``char`` is one byte)."""
    batch = {"source_request_id": ""}
    batch["source_request_id"] = char * (size - len(encode(batch)))
    assert len(encode(batch)) == size
    return batch


def test_chunk_body_exactly_at_the_limit_is_one_request():
    first_size = 100_000
    second_size = MAX_REQUEST_BYTES - first_size - 3  # "[", ",", "]"
    chunks = chunk_batches([padded(first_size), padded(second_size)])
    assert len(chunks) == 1
    assert len(chunks[0][1]) == MAX_REQUEST_BYTES


def test_chunk_body_one_byte_over_the_limit_is_split():
    first_size = 100_000
    second_size = MAX_REQUEST_BYTES - first_size - 3 + 1
    items = [padded(first_size), padded(second_size)]
    chunks = chunk_batches(items)
    assert [m for m, _ in chunks] == [[items[0]], [items[1]]]
    assert all(len(body) <= MAX_REQUEST_BYTES for _, body in chunks)


def test_chunk_counts_bytes_not_characters():
    item = {"source_request_id": "é" * 40}  # 64 characters, 104 bytes
    assert len(encode(item)) == 104
    chunks = chunk_batches([item, item], max_bytes=150)  # 131 characters but 211 bytes
    assert len(chunks) == 2
    assert len(chunk_batches([item, item], max_bytes=211)) == 1


def test_chunk_single_batch_at_the_limit_is_accepted():
    chunks = chunk_batches([padded(MAX_REQUEST_BYTES - 2)])
    assert len(chunks) == 1 and len(chunks[0][1]) == MAX_REQUEST_BYTES


def test_chunk_oversize_batch_is_an_input_error():
    items = [padded(100), padded(MAX_REQUEST_BYTES - 1)]
    with pytest.raises(InvalidInput) as info:
        chunk_batches(items)
    fault = only(list(info.value.faults))
    assert fault.path == "$.jsonBody[1]"
    assert "262,145 bytes" in fault.message
    assert "256 KB" in fault.message
    assert "split" in fault.message


def test_chunk_many_mid_size_batches_fill_requests_without_exceeding():
    items = [padded(30_000) for _ in range(20)]
    chunks = chunk_batches(items)
    assert [len(m) for m, _ in chunks] == [8, 8, 4]  # 8 * 30,001 + 1 <= 262,144 < 9 * 30,001 + 1
    assert all(len(body) <= MAX_REQUEST_BYTES for _, body in chunks)
    assert [json.loads(body) for _, body in chunks] == [items[:8], items[8:16], items[16:]]


def test_chunk_nothing():
    assert chunk_batches([]) == []


def test_chunk_rejects_impossible_limits():
    with pytest.raises(ValueError, match="max_batches must be >= 1 and max_bytes >= 2"):
        chunk_batches(small_batches(1), max_batches=0)
    with pytest.raises(ValueError, match="max_batches must be >= 1 and max_bytes >= 2"):
        chunk_batches(small_batches(1), max_bytes=1)


def test_the_smallest_chunk_limits_are_one_batch_and_an_empty_array():
    assert chunk_batches([], max_batches=1, max_bytes=2) == []
    with pytest.raises(InvalidInput) as info:  # "[{}]" is 4 bytes
        chunk_batches([{}], max_batches=1, max_bytes=2)
    assert only(list(info.value.faults)).path == "$.jsonBody[0]"


def test_encode_single():
    batch = realistic_batch()
    assert encode_single(batch) == encode(batch)
    assert len(encode_single(padded(MAX_REQUEST_BYTES))) == MAX_REQUEST_BYTES
    with pytest.raises(InvalidInput) as info:
        encode_single(padded(MAX_REQUEST_BYTES + 1))
    fault = only(list(info.value.faults))
    assert fault.path == "$.jsonBody"
    assert "262,145 bytes" in fault.message and "256 KB" in fault.message


# --------------------------------------------------------------------------- the fast pass

_ODD_VALUES = [None, "", "zzz", "unknown", "customerid", 0, -1, 2**63, True, 1.5, float("nan"), [], [None], ["x"], {}, {"k": None},
               {"action": "purchase"}, {"identity_type": "email"}, ("x",), "Unknown", "production", "purchase"]


def _mutants(batch: dict, rng, count: int):
    """``count`` copies of ``batch``, each with one or two nodes deleted, replaced or given a stray key."""
    stray = ["zz_unknown", "ip", "environment", "data", "new", "old", "products"]
    for _, mutant in batch_mutants(batch, rng, count, replacements=_ODD_VALUES, edits=(1, 1, 2), stray_keys=stray,
                                   stray_values=_ODD_VALUES, list_head=4):
        yield mutant


def test_the_fast_pass_never_passes_what_the_checks_fault_or_warn():
    """check_batch answers plainly valid batches from a fast pass: it must be at least as
    strict as the checks that word faults and warnings, or a fault would go unreported."""
    import random

    rng = random.Random(12)
    plain = realistic_batch()
    del plain["ip"]  # an address is left to the checks that parse it
    corpus = [plain, minimal := one_event("custom_event", event_name="x", custom_event_type="other")]
    assert batches._plainly_valid(plain) and batches._plainly_valid(minimal)
    verdicts = {True: 0, False: 0}
    for batch in corpus:
        for mutant in _mutants(batch, rng, 400):
            warnings: list = []
            clean = batches._check_batch(mutant, "$", warnings) == [] and warnings == []
            fast = batches._plainly_valid(mutant)
            assert clean or not fast, mutant
            verdicts[fast] += 1
    assert verdicts[True] > 50 and verdicts[False] > 300, verdicts
    # Near misses the random mutants may not reach: each has a fault or a warning.
    near_misses = [
        one_event("commerce_event"), one_event("commerce_event", product_action={}),
        one_event("commerce_event", product_action={"action": "purchase"}, product_impressions=[{}]),
        one_event("profile", profile_event_type="login", current_mpid=1),
        one_event("push_registration", registration_token="t", register=None), one_event("push_registration", register=True),
        one_event("user_identity_change", new=None), one_event("user_identity_change", new={"identity_type": "mpid"}),
        one_event("custom_event", event_name="", custom_event_type="other"),
        one_event("custom_event", event_name="x", custom_event_type="unknown"),
        one_event("custom_event", event_name="x", custom_event_type="other", custom_attributes={"a": [1]}),
        one_event("screen_view", timestamp_unixtime_ms=True), one_event("session_end", session_duration_ms="5"),
        {"events": [{"event_type": "custom_event"}]}, {"events": [{"event_type": "opt_out", "data": None}]},
        {"user_identities": {"customerid": "x"}}, {"user_identities": {"email": 5}}, {"environment": None},
        {"environment": "unknown"}, {"device_info": {"platform": "Unknown"}}, {"context": {"data_plan": {"plan_id": 5}}},
        {"mpid": 2**63}, {"user_attributes": {"a": [{}]}}, {"ip": "1.2.3"}, {"batch_context": {}},
    ]
    for batch in near_misses:
        warnings = []
        assert batches._check_batch(batch, "$", warnings) or warnings, batch
        assert not batches._plainly_valid(batch), batch


def test_a_request_body_holds_exactly_as_many_bytes_as_allowed_and_one_batch_per_body_is_allowed():
    a = {"environment": "development", "user_identities": {"customer_id": "a"}, "events": []}
    b = {"environment": "development", "user_identities": {"customer_id": "b"}, "events": []}
    size = len(json.dumps(a, separators=(",", ":")).encode())  # both encode to the same length
    together = size * 2 + 3  # "[" + a + "," + b + "]"
    assert [len(body) for _, body in chunk_batches([a, b], max_bytes=together)] == [together]
    c = {**b, "user_identities": {"customer_id": "c"}}
    assert [len(body) for _, body in chunk_batches([a, b, c], max_bytes=together - 1)] == [size + 2] * 3
    assert [[m["user_identities"]["customer_id"] for m in members] for members, _ in chunk_batches([a, b], max_batches=1)] == [["a"], ["b"]]


def test_every_comma_of_a_body_counts_toward_its_limit():
    same = [{"environment": "development", "user_identities": {"customer_id": k}, "events": []} for k in "abcd"]
    size = len(json.dumps(same[0], separators=(",", ":")).encode())  # all encode to the same length
    three = size * 3 + 4  # "[" + a + "," + b + "," + c + "]"
    assert [len(body) for _, body in chunk_batches(same[:3], max_bytes=three)] == [three]
    assert [len(body) for _, body in chunk_batches(same[:3], max_bytes=three - 1)] == [size * 2 + 3, size + 2]
    assert [len(body) for _, body in chunk_batches(same, max_bytes=three)] == [three, size + 2]
