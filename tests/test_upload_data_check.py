"""uploadEventBatch checks its jsonBody as JSON data itself (the manifest's ``checksInputData``).

The engine checks every input as JSON data (``data_faults``) before the call, then the
capability's checker walks the same batches again. For uploadEventBatch the engine leaves
``jsonBody`` to the capability, whose one pass (``batches.plain_data_batches``, plus one
``orjson.dumps`` for keys and strings) answers both questions for batches given as objects;
whenever it is in doubt, the capability asks the engine for its check
(``ctx.check_input_data()``) and runs the checker, as before.

What must hold: a body the one pass accepts is one ``data_faults`` and ``check_batch`` both
accept without a warning (checked on the SDK corpora, the benchmark's shape, thousands of
mutants with hostile values, hypothesis values spliced in, nesting at the depth limit); and
through ``Engine.execute`` against the sandbox, input that is not JSON data fails exactly as
when the engine checked it first (same error, same faults, in the same order of precedence
over the checker's and the schema's faults), with nothing sent.
"""

from __future__ import annotations

import copy
import enum
import math
import random
import uuid

import pytest
import sdk_corpus
from batch_mutants import batch_mutants, splice
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_batches_fast_pass import HOSTILE, PLAIN, STRAY, Items, Kind, Level, Mapping, Number, Text, bench_batch, same_answer

from connector_core import ConnectorError, Engine, InvalidInput
from connector_core.errors import ManifestError
from connector_core.manifest import CapabilityManifest
from connector_core.validation import MAX_DEPTH, data_faults
from connector_mparticle import batches
from connector_mparticle.request_ids import assign_ids, with_id
from connector_mparticle.upload_event_batch import MANIFEST, _plain_input


def reference(body) -> tuple[list, list, list]:
    """The engine's data faults of an input holding ``body``, then (when there are none and
    ``body`` holds batch objects) the checker's faults and warnings, as before the one pass."""
    found = data_faults({"jsonBody": body})
    if found or not isinstance(body, (dict, list)):
        return found, [], []
    items = [body] if isinstance(body, dict) else body
    warnings: list = []
    faults = [f for i, b in enumerate(items) for f in batches.check_batch(b, f"$.jsonBody[{i}]", warnings)]
    return found, faults, warnings


def sound(body) -> bool:
    """Assert that what the one pass accepts, the engine's check and the checker accept
    without a warning, and that it hands over each batch as ``encode`` writes it; return
    whether it accepted ``body``."""
    encoded = _plain_input(body)
    if encoded is not None:
        assert reference(body) == ([], [], []), body
        assert encoded == [batches.encode(b) for b in ([body] if isinstance(body, dict) else body)]
    return encoded is not None


def sdk_batches() -> list[dict]:
    py = [sdk_corpus.python_sdk_json(b) for b in sdk_corpus.python_sdk_batches().values()]
    return py + list(sdk_corpus.java_sdk_batches().values())


class Colour(enum.Enum):
    RED = "red"


# Values data_faults refuses, or that the one pass must leave to it (subclasses, big integers).
NOT_DATA = [math.nan, math.inf, -math.inf, Colour.RED, uuid.UUID(int=3), b"x", {1, 2}, object(), "x\ud800",
            {1: "a"}, {Text("k"): 1}, {("t",): 1}, {"k\udfff": 1}, Text("s"), Number(7), Mapping(k=1), Items([1]),
            (1, 2), 2**64, -(2**63) - 1, 1.5, [math.nan], {"k": [{"j": math.inf}]}]


def test_the_one_pass_accepts_the_shapes_it_should():
    assert sound([bench_batch(n) for n in range(20)])
    assert sound(bench_batch())  # one batch object
    for batch in PLAIN:
        assert sound([batch]) and sound(batch), batch
    for context in ({}, {"data_plan": {"plan_id": "checkout", "plan_version": 2}}, {"data_plan": {"plan_id": "checkout"}}):
        assert sound([{**bench_batch(), "context": context}]), context  # with or without a data plan
    settled = 0
    for batch in sdk_batches():
        settled += sound([batch])
        settled += sum(sound({"events": [event]}) for event in batch.get("events") or [])
    assert settled > 30


@pytest.mark.parametrize("value", NOT_DATA, ids=range(len(NOT_DATA)))
@pytest.mark.parametrize("where", ["application_info", "custom_flags", "product", "event", "custom_attributes",
                                   "schema_version", "user_attributes", "data"])
def test_a_value_anywhere_is_left_to_the_engine_when_in_doubt(value, where):
    batch = bench_batch()
    data = batch["events"][0]["data"]
    commerce = batch["events"][9]["data"]
    if where == "application_info":
        batch["application_info"]["x"] = value
    elif where == "custom_flags":
        data["custom_flags"] = {"f": value}
    elif where == "product":
        commerce["product_action"]["products"][0]["x"] = value
    elif where == "event":
        batch["events"][1]["x"] = value
    elif where == "custom_attributes":
        data["custom_attributes"]["x"] = value
    elif where == "schema_version":
        batch["schema_version"] = value
    elif where == "user_attributes":
        batch["user_attributes"]["x"] = value
    else:
        data["x"] = value
    sound([batch, bench_batch(1)])
    sound(batch)


# One event of every type, plainly valid, with every field of its rules and every common
# field: the compiled data checks (batches._DATA_OK, one per type) are held to the reference
# on each, field by field.
COMMON = {
    "timestamp_unixtime_ms": 1_764_000_000_000, "session_id": 7, "event_id": 8, "event_num": 9,
    "source_message_id": "m-1", "session_uuid": "s-1", "custom_flags": {"f": [1, "a", None]},
    "location": {"lat": 52.5, "lng": 13.4}, "device_current_state": {"cpu": "5", "ok": True},
    "custom_attributes": {"a": "x", "n": 1, "f": 1.5, "b": True, "z": None},
}
EVENT_DATA = {
    "custom_event": {"event_name": "Add", "custom_event_type": "navigation"},
    "commerce_event": {"custom_event_type": "purchase", "event_name": "Buy", "screen_name": "Cart",
                       "currency_code": "EUR", "is_non_interactive": False, "shopping_cart": {"products": []},
                       "product_action": {"action": "purchase", "products": [{"id": "SKU", "price": 9.5}]}},
    "screen_view": {"screen_name": "Home"},
    "session_start": {},
    "session_end": {"session_duration_ms": 1000},
    "uninstall": {},
    "crash_report": {"severity": "fatal", "message": "boom"},
    "opt_out": {"is_opted_out": True},
    "push_registration": {"register": True, "registration_token": "tok"},
    "application_state_transition": {"application_transition_type": "application_initialized",
                                     "is_first_run": True, "is_upgrade": False},
    "push_message": {"push_message_type": "received", "application_state": "background"},
    "network_performance": {"url": "https://example.com", "response_code": 200},
    "breadcrumb": {"label": "step", "session_number": 2},
    "first_run": {},
    "pre_attribution": {},
    "profile": {"profile_event_type": "login", "previous_mpid": 1, "current_mpid": 2},
    "push_reaction": {},
    "user_attribute_change": {"user_attribute_name": "plan", "new": "gold", "old": None},
    "user_identity_change": {"new": {"identity_type": "email", "value": "a@example.com"},
                             "old": {"identity_type": "email"}},
}
# A field's odd values: wrong types, subclasses, bools for integers, NaN and infinities,
# enums, empty strings, numbers beyond 64 bits, the allowed values of other fields.
FIELD_VALUES = [
    None, "", "x", "purchase", "navigation", "login", "received", "background", "application_exit", "email",
    0, 5, -1, 2**63, 2**64, True, False, 1.5, math.nan, math.inf, -math.inf, [], ["x"], (), ("x", 1), {}, {"k": 1},
    {"k": math.nan}, {"identity_type": "email"}, {"identity_type": Text("email")}, Text("x"), Text("navigation"),
    Number(1), Mapping(), Mapping(identity_type="email"), Items(), Colour.RED, Level.ONE, Kind.CUSTOM, b"x",
]


def event_batch(event_type: str, data: dict) -> dict:
    return {"environment": "production", "events": [{"event_type": "screen_view", "data": {"screen_name": "a"}},
                                                     {"event_type": event_type, "data": data}]}


def test_every_event_type_and_rule_is_covered_by_the_field_tests():
    assert set(EVENT_DATA) == batches.EVENT_TYPES
    assert batches._event_check("zz", True) is batches._event_check(Text("profile"), False) is None
    assert set(COMMON) == set(batches._EVENT_FIELD_TYPES)
    kinds = set()
    for event_type, rules in batches._RULES.items():
        for field, required, kind, _ in rules:
            assert field in EVENT_DATA[event_type], (event_type, field)
            kinds.add((kind, required))
    assert {kind for kind, _ in kinds} == {batches._STR, batches._ENUM, batches._BOOL, batches._INT, batches._OBJ}
    assert {required for _, required in kinds} == {False, True, batches._WARN, batches._NULL_WARN}
    for event_type, data in EVENT_DATA.items():  # each plainly valid, and settled by the one pass
        body = [event_batch(event_type, {**COMMON, **data})]
        assert sound(body) and sound(body[0]), event_type


def test_the_generated_checks_read_as_their_tables():
    # Built from the rule tables at import: the source names every field it checks, in a
    # stable order, and each form compiles to the function the passes call.
    for event_type in batches._EVENT_TYPE_ORDER:
        for data in (True, False):
            source = batches._event_check_source(event_type, data)
            assert source == batches._event_check_source(event_type, data)
            for field in [*batches._EVENT_FIELD_TYPES, *(r[0] for r in batches._RULES.get(event_type, ()))]:
                assert repr(field) in source, (event_type, field)
            check = batches._event_check(event_type, data)
            assert source.startswith(f"def {check.__name__}(")
            assert (batches._DATA_OK if data else batches._PLAIN_OK)[event_type] is check


@pytest.mark.parametrize("event_type", sorted(EVENT_DATA))
def test_each_field_of_each_event_type_with_odd_values(event_type):
    # Each field of the type's rules, each common field, the extra checks' fields and an
    # unknown field, deleted or set to each odd value: what the one pass accepts, the
    # engine's check and the checker accept without a warning; the checker's fast pass
    # agrees with its full checks.
    valid = {**COMMON, **EVENT_DATA[event_type]}
    rules = {field: required for field, required, _, _ in batches._RULES.get(event_type, ())}
    verdicts = {True: 0, False: 0}
    for field in [*valid, "zz_unknown"]:
        deleted = {k: v for k, v in valid.items() if k != field}
        accepted = sound([event_batch(event_type, deleted)])
        same_answer(event_batch(event_type, deleted))
        if field in rules:
            assert accepted == (not rules[field]), (event_type, field)  # a required field is missed, exactly
        for value in FIELD_VALUES:
            batch = event_batch(event_type, {**valid, field: copy.deepcopy(value)})
            verdicts[sound([batch])] += 1
            sound(batch)
            same_answer(batch)
    assert verdicts[True] > 40 and verdicts[False] > 200, verdicts


def test_nesting_is_counted_from_the_root_of_the_input():
    # $ (the properties) is depth 0, $.jsonBody 1, a batch 2 (1 when jsonBody is the batch),
    # its values 3: an object in schema_version at depth d holds d - 3 levels more.
    def deep(levels: int) -> dict:
        value: object = "leaf"
        for _ in range(levels):
            value = [value]
        return value

    for where in ("schema_version", "location", "unknown", "new"):
        for levels in range(MAX_DEPTH - 9, MAX_DEPTH - 1):
            for single in (False, True):
                batch = bench_batch()
                if where == "schema_version":
                    batch["schema_version"] = deep(levels)
                elif where == "location":  # a common field's object
                    batch["events"][0]["data"]["location"] = {"k": deep(levels)}
                elif where == "unknown":  # a field no rule names, an array
                    batch["events"][0]["data"]["zz"] = deep(levels + 1)
                else:  # a rule's object (user_identity_change.new)
                    batch["events"].append({"event_type": "user_identity_change",
                                            "data": {"new": {"identity_type": "email", "k": deep(levels)}}})
                body = batch if single else [batch]
                found = data_faults({"jsonBody": body})
                assert sound(body) == (found == []), (where, levels, single)  # exact at the limit, both ways
    assert _plain_input([{"schema_version": deep(10_000)}]) is None  # no recursion error, the engine decides


class OddKey:
    """A key that compares with nothing: the pass must not ask it whether it is a field's name."""

    def __init__(self, name: str = "") -> None:
        self.name = name

    def __hash__(self) -> int:  # a field's own hash when named: a set or dict lookup then compares it with the field
        return hash(self.name) if self.name else 1

    def __eq__(self, other):
        raise TypeError("not comparable")


@pytest.mark.parametrize("value", [{"k": 1}, "x", 1, [1], None, True, 1.5], ids=str)
def test_an_odd_key_beside_the_fields_is_left_to_the_engine(value):
    batch = bench_batch()
    for event in batch["events"][:3]:
        event["data"][OddKey()] = copy.deepcopy(value)
    assert not sound([batch]) and not sound(batch)


@pytest.mark.parametrize("where, name", [("batch", "job_id"), ("batch", "ip"), ("batch", "schema_version"),
                                         ("data", "event_id"), ("data", "custom_flags"), ("data", "event_name")])
def test_a_key_that_hashes_like_a_field_and_cannot_be_compared_is_invalid_input(engine, mparticle_sandbox, where, name):
    # Fields of the rules the batch does not have (a dict holding the field itself could not
    # even take such a key): every lookup of the field's name now compares it with the key.
    batch = bench_batch()
    target = batch if where == "batch" else batch["events"][0]["data"]
    assert name not in target
    target[OddKey(name)] = "x"
    if where == "batch":  # the pass asks the batch's rules about it, which raises: in doubt, so False
        assert not batches.plain_data_batches([batch], 1) and not batches.plain_data_batches([batch], 2)
    assert _plain_input([batch]) is None and _plain_input(batch) is None
    with pytest.raises(InvalidInput) as caught:
        engine.execute("uploadEventBatch", {"jsonBody": [batch]}, mparticle_sandbox.config)
    assert [f.path for f in caught.value.faults] == ["$.jsonBody[0]" if where == "batch" else "$.jsonBody[0].events[0].data"]
    assert "has a key that is not a string (OddKey" in caught.value.faults[0].message
    assert mparticle_sandbox.batches == []


@pytest.mark.parametrize("single", [False, True], ids=["array", "object"])
def test_a_null_environment_is_refused_by_the_checker_not_let_through(engine, mparticle_sandbox, single):
    batch = bench_batch()
    batch["environment"] = None  # null is not production: mParticle's schemas allow the two names only
    assert not sound(batch if single else [batch])
    with pytest.raises(InvalidInput) as caught:
        engine.execute("uploadEventBatch", {"jsonBody": batch if single else [batch]}, mparticle_sandbox.config)
    assert [f.path for f in caught.value.faults] == ["$.jsonBody.environment" if single else "$.jsonBody[0].environment"]
    assert mparticle_sandbox.batches == []


def test_the_pass_counts_depth_from_where_the_batches_are():
    # plain_data_batches takes the batches' depth: placed deeper (in arrays), each of their
    # containers reaches the limit in turn, the events' objects and the rules' objects too.
    full = bench_batch()
    full["events"].append({"event_type": "user_identity_change", "data": {"new": {"identity_type": "email"}}})
    full["events"][0]["data"]["custom_flags"] = {}
    for batch in (full, {"events": [{"event_type": "screen_view", "data": {"custom_attributes": {"a": "x"}}}]},
                  {"events": [{"event_type": "user_identity_change", "data": {"new": {"identity_type": "email"}}}]},
                  {"events": [{"event_type": "screen_view", "data": {"location": {}}}]},
                  {"events": [{"event_type": "screen_view", "data": {}, "extra": {"a": {"b": {}}}}]}):  # beside data
        answers = set()
        for depth in range(MAX_DEPTH - 9, MAX_DEPTH + 2):
            body: object = [batch]
            for _ in range(depth - 2):
                body = [body]
            answer = batches.plain_data_batches([batch], depth)
            assert answer == (data_faults({"jsonBody": body}) == []), (depth, batch)  # the rules pass: depth decides
            answers.add(answer)
        assert answers == {True, False}


def test_mutated_batches_are_never_let_through_wrongly():
    rng = random.Random(12)
    verdicts = {True: 0, False: 0}
    for batch in [*PLAIN, bench_batch(), *sdk_batches()[::3]]:
        for _, mutant in batch_mutants(batch, rng, 30, replacements=HOSTILE + NOT_DATA, edits=(1, 1, 2),
                                       stray_keys=STRAY, stray_values=HOSTILE + NOT_DATA, list_head=3):
            verdicts[sound([mutant])] += 1
            sound(mutant)
    assert verdicts[True] > 30 and verdicts[False] > 500, verdicts  # both kinds were tried


_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**65), 2**65), st.floats(), st.text(max_size=4),
    st.sampled_from(["production", "web", "Android", "navigation", "other", "view", "click", "\ud800"]),
    st.sampled_from([Text("x"), Number(1), Colour.RED, uuid.UUID(int=2), b"b", frozenset()]),
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.lists(inner, max_size=2).map(tuple),
        st.dictionaries(st.sampled_from(["action", "data", "event_type", "k", "products", *STRAY]), inner, max_size=3),
        st.dictionaries(st.one_of(st.integers(0, 2), st.text(max_size=2)), inner, max_size=2),
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hypothesis_values_spliced_into_plain_batches(data):
    batch = copy.deepcopy(data.draw(st.sampled_from([*PLAIN[:4], bench_batch()])))
    splice(data, batch, _VALUES, keys=("zz", *STRAY), depth=5)
    sound([batch])
    sound(batch)


@pytest.mark.parametrize("request_id", ["a", "é\u2028\n\"\\/\x7f\x00", "x\ud800"], ids=["plain", "escapes", "surrogate"])
def test_an_id_written_into_the_encoded_batch_is_what_encoding_it_gives(request_id):
    # (as _plain_input hands them over: batches orjson encodes)
    for batch in [{}, bench_batch(), {"events": []}, {"source_request_id": None, "mpid": 1},
                  {"source_request_id": "", "mpid": 1}, {"x": "é\u2028"}]:
        identified = {**batch, "source_request_id": request_id}
        assert with_id(batches.encode(batch), batch, identified) == batches.encode(identified), batch
    for key in (None, "k"):  # the ids assign_ids gives
        given = [bench_batch(), {"events": []}, {}]
        for batch in given:
            batch.pop("source_request_id", None)
        for before, after in zip(given, assign_ids(given, key)):
            assert with_id(batches.encode(before), before, after) == batches.encode(after)


# -------------------------------------------------------------------- through the engine


@pytest.fixture(scope="module")
def engine() -> Engine:
    with Engine() as built:
        yield built


def failure(engine: Engine, sb, properties: dict) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        engine.execute("uploadEventBatch", properties, sb.config)
    assert [r for r in sb.requests if r["endpoint"] in ("uploadEvents", "uploadBulkEvents")] == []  # nothing sent
    return caught.value


def as_engine_says(properties: dict) -> tuple[str, list]:
    found = data_faults(properties)
    return f"invalid input for uploadEventBatch ({len(found)} problem(s))", [f.to_dict() for f in found]


def with_value(value, where: str, single: bool):
    batch = bench_batch()
    if where == "flag":
        batch["events"][2]["data"]["custom_flags"] = {"f": value}
    elif where == "attribute":
        batch["events"][2]["data"]["custom_attributes"]["x"] = value
    else:  # where the checker also finds a fault: an unknown batch field
        batch["zz_unknown"] = {"x": value}
    return batch if single else [bench_batch(1), batch]


@pytest.mark.parametrize("single", [False, True], ids=["array", "object"])
@pytest.mark.parametrize("where", ["flag", "attribute", "unknown field"])
@pytest.mark.parametrize("value", [Colour.RED, math.nan, {1: "a"}, "x\ud800", {"k\udfff": 1}, uuid.UUID(int=1), {1.5}],
                         ids=["enum", "nan", "int key", "surrogate", "surrogate key", "uuid", "set"])
def test_input_that_is_not_json_data_fails_as_when_the_engine_checked_it(engine, mparticle_sandbox, value, where, single):
    properties = {"jsonBody": with_value(value, where, single)}
    error = failure(engine, mparticle_sandbox, properties)
    assert type(error) is InvalidInput
    assert (error.message, [f.to_dict() for f in error.faults]) == as_engine_says(properties)
    assert "nothing was sent" not in error.message  # the engine's words, not the capability's


def test_a_data_fault_comes_before_the_schema_and_the_other_inputs_are_checked_too(engine, mparticle_sandbox):
    body = with_value(Colour.RED, "flag", False)
    for properties in ({"jsonBody": body, "concurrency": 99}, {"jsonBody": body, "idempotencyKey": "k\ud800"},
                       {"jsonBody": [bench_batch()], "idempotencyKey": "k\ud800"}, {"jsonBody": "[{}]\ud800"},
                       {"jsonBody": ([bench_batch()], math.inf)}):
        error = failure(engine, mparticle_sandbox, properties)
        assert (error.message, [f.to_dict() for f in error.faults]) == as_engine_says(properties), properties
    schema = failure(engine, mparticle_sandbox, {"jsonBody": [bench_batch()], "concurrency": 99})
    assert [f.path for f in schema.faults] == ["$.concurrency"]


def test_what_only_the_checker_refuses_is_still_refused_by_it(engine, mparticle_sandbox):
    batch = bench_batch()
    batch["events"][0]["data"]["timestamp_unixtime_ms"] = Number(5)  # JSON data (an int), left to the checks
    batch["zz_unknown"] = 1
    error = failure(engine, mparticle_sandbox, {"jsonBody": [batch]})
    assert error.message.endswith("nothing was sent") and [f.path for f in error.faults] == ["$.jsonBody[0].zz_unknown"]


def test_values_the_one_pass_leaves_to_the_engine_still_upload(engine, mparticle_sandbox):
    batch = bench_batch()
    batch["events"][0]["data"]["custom_attributes"]["big"] = 2**64  # orjson refuses it; JSON data all the same
    batch["events"][1]["data"]["custom_flags"] = {"t": ("a", 1)}  # a tuple is an array
    assert _plain_input([batch]) is None and reference([batch]) == ([], [], [])
    output = engine.execute("uploadEventBatch", {"jsonBody": [batch, bench_batch(1)]}, mparticle_sandbox.config).output
    assert output["acknowledged"]["count"] == 2
    sent = mparticle_sandbox.batches[0]
    assert sent["events"][0]["data"]["custom_attributes"]["big"] == 2**64
    assert sent["events"][1]["data"]["custom_flags"] == {"t": ["a", 1]}


# -------------------------------------------------------------------- the manifest field


def test_the_manifest_declares_it_and_it_must_name_an_input():
    manifest = CapabilityManifest.load(MANIFEST)
    assert manifest.checks_input_data == ("jsonBody",)
    data = copy.deepcopy(dict(manifest.data))
    data["checksInputData"] = ["jsonBdy"]
    with pytest.raises(ManifestError) as caught:
        CapabilityManifest.from_dict(data, "test")
    assert [f.path for f in caught.value.faults] == ["$.checksInputData[0]"]
    assert "did you mean 'jsonBody'" in caught.value.faults[0].message
    data["checksInputData"] = 1
    with pytest.raises(ManifestError):
        CapabilityManifest.from_dict(data, "test")
    del data["checksInputData"]
    assert CapabilityManifest.from_dict(data, "test").checks_input_data == ()
