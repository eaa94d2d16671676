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

from connector_core.validation import fast_check

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


@pytest.mark.parametrize("schema", [{"format": "email"}, {"$ref": "#/x"}, {"uniqueItems": True}, {"enum": [1, True]}, {"const": 0}, {"patternProperties": {}, "additionalProperties": False}])
def test_keywords_outside_the_subset_get_no_fast_check(schema):
    assert fast_check(schema) is None
