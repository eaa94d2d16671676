"""The fast yes/no check agrees with jsonschema: it never passes what jsonschema rejects.

Differential test with hypothesis: for the input and output schemas of every built-in
manifest and a few hand-made ones, arbitrary JSON-like values are judged by
``validation.fast_check`` and by jsonschema's own validator.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector_core.validation import fast_check, schema_faults, validator_for

ROOT = Path(__file__).resolve().parents[1]


def _schemas() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((ROOT / "manifests").glob("*.json")):
        data = json.loads(path.read_text("utf-8"))
        if "inputSchema" in data:
            raw = data["inputSchema"]
            found.append((f"{path.stem}.input", raw.get("default", raw)))
            found.append((f"{path.stem}.output", data["outputSchema"]))
    found.append(("numbers", {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "exclusiveMaximum": 10}, "x": {"type": ["number", "null"]}}}))
    found.append(("strings", {"type": "array", "minItems": 1, "items": {"enum": ["a", "b", None], "minLength": 1}}))
    found.append(("open", {"type": "object", "required": ["a"], "additionalProperties": {"type": "boolean"}, "properties": {"a": {"const": "x"}}}))
    found.append(("flags", {"type": "array", "items": {"enum": [True, None, "1"]}}))
    return found


SCHEMAS = _schemas()
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**19), 10**19), st.floats(allow_nan=False), st.sampled_from(["", "a", "1001", "x", "US1", "ok", "b"]), st.text(max_size=5)
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["accountId", "a", "n", "x", "properties", "account", "id", "name", "displayName", "workspace", "jsonBody"]) | st.text(max_size=3), children, max_size=4),
    ),
    max_leaves=12,
)


# Each value drawn is judged against every schema: 100 values per schema (hypothesis's cost is
# the drawing, not the judging), where one test per schema drew 40 values each at twice the cost.
JUDGES = [(name, fast_check(schema), jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER))
          for name, schema in SCHEMAS]


@settings(max_examples=100, deadline=None)
@given(value=values)
def test_fast_check_never_passes_what_jsonschema_rejects(value):
    for name, check, validator in JUDGES:
        assert check is not None, f"{name} has no fast check"  # see the test below
        assert check(value) == validator.is_valid(value), (name, value)


def test_the_built_in_schemas_get_a_fast_check():
    missing = [name for name, schema in SCHEMAS if fast_check(schema) is None]
    assert missing == []


@pytest.mark.parametrize("schema", [{"format": "email"}, {"$ref": "#/x"}, {"uniqueItems": True}, {"enum": [1, True]}, {"const": 0},
                                    {"patternProperties": {}, "additionalProperties": False}, {"patternProperties": {"^x": {"type": "string"}}},
                                    {"multipleOf": 0.1}, {"enum": [1.0]}, {"const": {"a": 1}}, {"items": False}])
def test_keywords_outside_the_subset_get_no_fast_check(schema):
    assert fast_check(schema) is None


# -- each keyword's edges, judged by fast_check and by the validator a manifest uses ------


def judged(schema, value) -> bool:
    """fast_check's answer for ``value``, after checking that jsonschema gives the same."""
    check = fast_check(schema)
    assert check is not None, schema
    answer = check(value)
    assert answer == validator_for(schema).is_valid(value), (schema, value)
    return answer


@pytest.mark.parametrize("schema, value, valid", [
    ({"minimum": 1}, 1, True), ({"minimum": 1}, 1.0, True), ({"minimum": 1}, 0.999, False),
    ({"maximum": 10}, 10, True), ({"maximum": 10}, 9, True), ({"maximum": 10}, -(10**30), True), ({"maximum": 10}, 10.5, False),
    ({"maximum": 9007199254740992.0}, 2**53 + 1, False),  # an integer beyond a float's precision is compared exactly
    ({"exclusiveMinimum": 0}, 0, False), ({"exclusiveMinimum": 0}, -0.0, False), ({"exclusiveMinimum": 0}, 1e-300, True),
    ({"exclusiveMaximum": 10}, 10, False), ({"exclusiveMaximum": 10}, 10.0, False), ({"exclusiveMaximum": 10}, 9.999, True),
    ({"minimum": 1}, None, True), ({"maximum": 0}, "5", True), ({"maximum": 0}, True, True),  # bounds apply to numbers only
])
def test_number_bounds_agree_with_jsonschema_at_their_edges(schema, value, valid):
    assert judged(schema, value) is valid


@pytest.mark.parametrize("schema, value, valid", [
    ({"minLength": 2}, "ab", True), ({"minLength": 2}, "a", False), ({"maxLength": 2}, "ab", True), ({"maxLength": 2}, "abc", False),
    ({"maxLength": 0}, "", True),
    ({"minLength": 2}, "\U0001F600", False), ({"maxLength": 1}, "\U0001F600", True),  # one code point, two UTF-16 units
    ({"maxLength": 1}, "e\u0301", False),  # two code points, one character on screen
    ({"maxLength": 1}, 12345, True), ({"maxLength": 1}, ["a", "b"], True), ({"minLength": 1}, None, True),
])
def test_string_lengths_count_code_points_as_jsonschema_does(schema, value, valid):
    assert judged(schema, value) is valid


@pytest.mark.parametrize("schema, value, valid", [
    ({"enum": [True]}, True, True), ({"enum": [True]}, 1, False), ({"enum": [True]}, 1.0, False),
    ({"enum": [False, None]}, 0, False), ({"enum": [False, None]}, None, True), ({"enum": [False, None]}, False, True),
    ({"enum": ["1"]}, 1, False), ({"enum": ["a", None]}, "a", True), ({"enum": ["a", None]}, "b", False), ({"enum": ["a", None]}, ["a"], False),
    ({"const": "x"}, "x", True), ({"const": "x"}, "X", False), ({"const": None}, False, False), ({"const": False}, 0, False),
    ({"const": True}, True, True),
])
def test_enum_and_const_tell_booleans_from_numbers_as_jsonschema_does(schema, value, valid):
    assert judged(schema, value) is valid


@pytest.mark.parametrize("schema, value, valid", [
    ({"required": ["a", "b"]}, {"a": 1, "b": None}, True), ({"required": ["a", "b"]}, {"a": 1}, False), ({"required": ["a"]}, {}, False),
    ({"required": []}, {}, True), ({"required": ["a"]}, ["a"], True), ({"required": ["a"]}, "a", True),  # required applies to objects only
])
def test_required_fails_on_a_missing_key(schema, value, valid):
    assert judged(schema, value) is valid


CLOSED = {"properties": {"a": {"type": "string"}}, "additionalProperties": False}
TYPED_EXTRAS = {"properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "boolean"}}


@pytest.mark.parametrize("schema, value, valid", [
    (CLOSED, {"a": "x"}, True), (CLOSED, {}, True), (CLOSED, {"a": "x", "b": 1}, False), (CLOSED, {"a": 1}, False), (CLOSED, [1], True),
    ({"additionalProperties": False}, {"a": 1}, False),
    (TYPED_EXTRAS, {"a": "x", "b": True}, True), (TYPED_EXTRAS, {"b": 1}, False), (TYPED_EXTRAS, {"a": True}, False),
    ({"properties": {"a": {}}, "additionalProperties": {"type": "boolean"}}, {"a": 5}, True),  # a known property is not an extra
    (TYPED_EXTRAS, "x", True),
])
def test_additional_properties_closes_an_object_or_types_its_extras(schema, value, valid):
    assert judged(schema, value) is valid


MATRIX = {"type": "array", "items": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "integer"}}}


@pytest.mark.parametrize("schema, value, valid", [
    (MATRIX, [[1, 2], [3]], True), (MATRIX, [], True), (MATRIX, [[1, 2, 3]], False), (MATRIX, [[]], False), (MATRIX, [[1, "2"]], False),
    (MATRIX, [[1.0]], True), (MATRIX, [[True]], False), (MATRIX, [1], False),
    ({"maxItems": 2}, "abc", True), ({"minItems": 1}, {}, True), ({"maxItems": 2}, [1, 2], True), ({"minItems": 2}, [1], False),
])
def test_nested_arrays_check_every_item_and_their_lengths(schema, value, valid):
    assert judged(schema, value) is valid


@pytest.mark.parametrize("schema, value, valid", [
    ({"type": "integer"}, 1, True), ({"type": "integer"}, 1.0, True), ({"type": "integer"}, -0.0, True), ({"type": "integer"}, 1e20, True),
    ({"type": "integer"}, 10**20, True), ({"type": "integer"}, 1.5, False), ({"type": "integer"}, True, False), ({"type": "integer"}, "1", False),
    ({"type": "number"}, True, False), ({"type": "number"}, 10**30, True), ({"type": "number"}, 0.5, True),
    ({"type": ["string", "null"]}, None, True), ({"type": ["string", "null"]}, "", True), ({"type": ["string", "null"]}, 0, False),
    ({"type": ["string", "null"]}, False, False), ({"type": ["integer", "boolean"]}, 1.5, False), ({"type": ["integer", "boolean"]}, True, True),
    ({"type": ["array", "object"]}, {}, True), ({"type": ["array", "object"]}, [], True), ({"type": ["array", "object"]}, "x", False),
])
def test_types_and_type_lists_read_integer_valued_floats_as_integers(schema, value, valid):
    assert judged(schema, value) is valid


@pytest.mark.parametrize("schema, value, valid", [
    ({"pattern": "b"}, "abc", True), ({"pattern": "^b"}, "abc", False), ({"pattern": "^a"}, 5, True),
    ({"pattern": "^a$"}, "a\n", True),  # the leak lint_schema warns about: jsonschema lets it through, so does fast_check
    ({"pattern": "^a$(?!\\n)"}, "a\n", False),
])
def test_pattern_searches_strings_as_jsonschema_does(schema, value, valid):
    assert judged(schema, value) is valid


ANNOTATED = {"title": "Count", "description": "How many.", "default": 1, "x-note": None, "type": "integer", "minimum": 0}


def test_annotations_before_a_keyword_do_not_stop_its_check():
    annotated = {k: v for k, v in ANNOTATED.items() if k != "x-note"}
    assert [judged(annotated, v) for v in (3, -1, "x")] == [True, False, False]
    assert fast_check(ANNOTATED) is None  # an x- key is not one of the keywords it knows


@pytest.mark.parametrize("dialect", ["http://json-schema.org/draft-04/schema#", "http://json-schema.org/draft-03/schema#"])
def test_a_schema_in_a_dialect_that_reads_integers_differently_gets_no_fast_check(dialect):
    # In Drafts 3 and 4, 1.0 is not an integer: a fast check would pass what jsonschema refuses.
    schema = {"$schema": dialect, "type": "integer"}
    assert not validator_for(schema).is_valid(1.0)
    assert fast_check(schema) is None
    nested = {"type": "object", "properties": {"n": schema}}
    assert not validator_for(nested).is_valid({"n": 1.0})
    assert fast_check(nested) is None


@pytest.mark.parametrize("dialect", ["https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2019-09/schema",
                                     "http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-06/schema#"])
def test_a_schema_that_names_a_dialect_reading_the_subset_alike_gets_a_fast_check(dialect):
    schema = {"$schema": dialect, "type": "object", "properties": {"n": {"type": "integer", "exclusiveMaximum": 3}}}
    assert [judged(schema, v) for v in ({"n": 1.0}, {"n": 3}, {"n": "1"})] == [True, False, False]


@pytest.mark.parametrize("schema", [
    {"minLength": True}, {"maxLength": "2"}, {"minItems": True}, {"maxItems": 1.5}, {"required": "a"}, {"required": [1]},
    {"minimum": "1"}, {"exclusiveMaximum": True}, {"type": "strin"}, {"type": {"string": True}}, {"pattern": 5}, {"$schema": 5},
    {"properties": []}, {"items": [{}]}, {"enum": "ab"},
])
def test_a_keyword_argument_the_meta_schema_refuses_gets_no_fast_check(schema):
    # The host then goes to jsonschema, which reports the schema's fault, rather than to a
    # check that reads the argument some other way or raises on a value.
    assert schema_faults(schema) != []
    assert fast_check(schema) is None


@pytest.mark.parametrize("schema, value, valid", [
    ({"type": "object", "properties": {"a": True}, "additionalProperties": True}, {"a": [None], "b": {"c": 1.5}}, True),
    ({"type": "object", "properties": {"a": {}}, "additionalProperties": {}}, {"a": "x", "b": []}, True),
    ({"type": "array", "items": True}, [1, "a", None], True), ({"type": "array", "items": {}}, [{}], True),
    ({"type": "array", "items": True}, {}, False),
])
def test_true_and_empty_subschemas_accept_anything_and_keep_the_fast_check(schema, value, valid):
    assert judged(schema, value) is valid


def test_equal_schemas_written_in_another_key_order_share_one_compiled_check():
    a = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer", "minimum": 0}}}
    b = {"properties": {"n": {"minimum": 0, "type": "integer"}}, "required": ["n"], "type": "object"}
    assert fast_check(a) is fast_check(b)
    assert validator_for(a) is validator_for(b)
