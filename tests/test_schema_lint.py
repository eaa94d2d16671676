"""What ``connector validate`` tells a manifest author about a schema that is valid but most
likely wrong (``lint_schema``: unknown keywords, ``$`` anchors that let a trailing newline
through), and what loading refuses (``schema_faults``, ``compile_schema``)."""

from __future__ import annotations

import re

import jsonschema
import pytest

from connector_core import Fault
from connector_core.validation import compile_schema, leaky_end_anchor, lint_schema, schema_faults

LEAKY = "'$' also matches before a trailing newline (a value ending in \\n passes); end the pattern with '$(?!\\n)', which Python and JavaScript read alike"


def test_an_unknown_keyword_is_reported_with_the_known_one_it_is_closest_to():
    assert lint_schema({"type": "object", "requried": ["name"]}) == [
        Fault("$.requried", "unknown JSON Schema keyword 'requried' (JSON Schema ignores it); did you mean 'required'?"),
    ]


def test_an_unknown_keyword_close_to_none_is_told_to_take_the_extension_prefix():
    assert lint_schema({"uiOrder": 3}, "$.inputSchema") == [
        Fault("$.inputSchema.uiOrder", "unknown JSON Schema keyword 'uiOrder' (JSON Schema ignores it); prefix extensions with 'x-'"),
    ]


def test_extensions_annotations_and_property_names_are_not_reported_as_keywords():
    schema = {
        "type": "object",
        "x-ui": {"typ": "not a schema: never read"},
        "errorMessage": "say a name",
        "secret": True,
        "example": {},
        "properties": {"requried": {"type": "string"}, "patern": {}},
    }
    assert lint_schema(schema) == []


def test_a_typo_is_found_in_every_kind_of_subschema_with_its_path():
    typo = {"typ": "string"}
    schema = {
        "properties": {"a": typo},
        "patternProperties": {"^b": typo},
        "$defs": {"c": typo},
        "definitions": {"d": typo},
        "dependentSchemas": {"e": typo},
        "dependencies": {"f": typo, "g": ["a"]},
        "items": typo,
        "prefixItems": [{}, typo],
        "allOf": [typo],
        "anyOf": [{}, {}, typo],
        "oneOf": [typo],
        "not": typo,
        "if": typo,
        "then": typo,
        "else": typo,
        "additionalProperties": typo,
        "contains": typo,
        "propertyNames": typo,
        "unevaluatedItems": typo,
        "unevaluatedProperties": typo,
        "contentSchema": typo,
        "additionalItems": {"items": [typo]},
    }
    found = lint_schema(schema, "$.outputSchema")
    assert {f.message for f in found} == {"unknown JSON Schema keyword 'typ' (JSON Schema ignores it); did you mean 'type'?"}
    assert sorted(f.path for f in found) == sorted([
        "$.outputSchema.properties.a.typ",
        "$.outputSchema.patternProperties['^b'].typ",
        "$.outputSchema['$defs'].c.typ",
        "$.outputSchema.definitions.d.typ",
        "$.outputSchema.dependentSchemas.e.typ",
        "$.outputSchema.dependencies.f.typ",
        "$.outputSchema.items.typ",
        "$.outputSchema.not.typ",
        "$.outputSchema.if.typ",
        "$.outputSchema.then.typ",
        "$.outputSchema.else.typ",
        "$.outputSchema.additionalProperties.typ",
        "$.outputSchema.contains.typ",
        "$.outputSchema.propertyNames.typ",
        "$.outputSchema.unevaluatedItems.typ",
        "$.outputSchema.unevaluatedProperties.typ",
        "$.outputSchema.contentSchema.typ",
        "$.outputSchema.additionalItems.items[0].typ",
        "$.outputSchema.prefixItems[1].typ",
        "$.outputSchema.allOf[0].typ",
        "$.outputSchema.anyOf[2].typ",
        "$.outputSchema.oneOf[0].typ",
    ])


def test_a_leaky_pattern_and_a_leaky_pattern_properties_name_are_flagged_where_they_are():
    schema = {
        "type": "object",
        "patternProperties": {"^id_[0-9]+$": {"pattern": "^[a-z]+$"}, "^ok_[0-9]+$(?!\\n)": {"pattern": "^[a-z]+$(?!\\n)"}},
        "properties": {"price$": {"type": "number"}},  # a property's name, not a pattern
    }
    assert lint_schema(schema, "$.config") == [
        Fault("$.config.patternProperties['^id_[0-9]+$']", LEAKY),
        Fault("$.config.patternProperties['^id_[0-9]+$'].pattern", LEAKY),
    ]


def test_a_leaky_pattern_in_an_array_item_is_flagged():
    assert lint_schema({"type": "array", "items": {"type": "string", "pattern": "^[A-Z]{2}$"}}) == [Fault("$.items.pattern", LEAKY)]


@pytest.mark.parametrize(
    "pattern, leaky",
    [
        ("$", True),
        ("^ab$", True),
        ("a$|b", True),
        ("^(a|b$)", True),
        ("^a$(?!\\n)", False),  # the fix the lint asks for, as JSON text writes it
        ("^a$(?!\n)", False),  # the same with a real newline in the lookahead
        ("^a\\$", False),  # an escaped dollar is a literal
        ("^a\\\\$", True),  # an escaped backslash, then a real anchor
        ("^[$]+", False),  # a dollar in a class is a literal
        ("^[]$]+", False),  # a leading ] is a literal: the class holds ']' and '$'
        ("^[]$]+$", True),
        ("^[]$]+$(?!\\n)", False),
        ("^[^]$]+", False),  # likewise after ^
        ("^[^]$]+$", True),
        ("^[^]]+$", True),  # a class of anything but ']', then a leaky anchor
        ("^[^]]+$(?!\\n)", False),
        ("^[]]+$", True),
        ("^[a\\]$]+$(?!\\n)", False),
        ("", False),
        ("abc\\", False),
    ],
)
def test_end_anchors_that_let_a_trailing_newline_through_are_flagged(pattern, leaky):
    assert leaky_end_anchor(pattern) is leaky
    # What the flag stands for: in Python's re the pattern accepts some value ending in a newline.
    if pattern == "^[]$]+$":
        assert re.search(pattern, "$]\n") and not re.search(pattern + "(?!\\n)", "$]\n")


def test_a_pattern_that_is_not_a_regular_expression_is_a_schema_fault():
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a|b$"}}, "patternProperties": {"[": {}}}
    assert schema_faults(schema, "$.inputSchema") == [
        Fault("$.inputSchema.patternProperties", "'[' is not a 'regex'"),
        Fault("$.inputSchema.properties.name.pattern", "'^(a|b$' is not a 'regex'"),
    ]
    assert schema_faults({"pattern": "^(a|b)$(?!\\n)"}) == []


def test_compile_schema_refuses_an_invalid_schema_every_time_and_compiles_a_valid_one():
    for _ in range(2):  # a failure is never remembered
        with pytest.raises(jsonschema.exceptions.SchemaError):
            compile_schema({"type": "object", "properties": {"n": {"minimum": "zero"}}})
    validator = compile_schema({"type": "object", "properties": {"n": {"minimum": 0}}})
    assert validator.is_valid({"n": 0}) and not validator.is_valid({"n": -1})
