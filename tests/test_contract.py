"""The contract check for plugin authors (connector_core.testing): near misses derived from
input schemas, the check over the seven mParticle capabilities (offline and against the
sandbox), and broken contracts it must catch."""

from __future__ import annotations

import pytest

from connector_core import Engine, hookimpl
from connector_core.testing import ContractBroken, check_contract, example_config, near_misses

MPARTICLE = ["createAccount", "deleteAccount", "getAccount", "getAudiences", "getCalculatedAttributes", "updateAccount", "uploadEventBatch"]

CONNECTOR = {
    "manifestVersion": 1,
    "id": "shop",
    "title": "Shop",
    "config": {
        "type": "object",
        "required": ["apiKey"],
        "additionalProperties": False,
        "properties": {
            "apiKey": {"type": "string", "minLength": 8, "secret": True},
            "region": {"type": "string"},
            "apiUrl": {"type": "string"},
        },
    },
    "endpoints": {
        "api": {"baseUrlByConfig": {"field": "region", "values": {"EU": "https://eu.shop.invalid", "US": "https://us.shop.invalid"}}, "overrideField": "apiUrl", "auth": "basic"}
    },
    "auth": {"basic": {"type": "basic", "usernameFields": ["apiKey"], "passwordFields": ["apiKey"]}},
}

ORDER_SCHEMA = {
    "type": "object",
    "required": ["sku", "quantity"],
    "additionalProperties": False,
    "properties": {
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$(?!\\n)"},
        "quantity": {"type": "integer", "minimum": 1, "exclusiveMaximum": 100},
        "gift": {"type": "boolean"},
        "speed": {"enum": ["slow", "fast"]},
        "note": {"type": "string", "minLength": 2, "maxLength": 5},
        "lines": {
            "type": "array",
            "minItems": 1,
            "maxItems": 2,
            "uniqueItems": True,
            "items": {"type": "object", "required": ["n"], "properties": {"n": {"const": 1}}},
        },
    },
}


def capability(execute, *, examples=None, schema=None, name="placeOrder", output=None):
    """A capability plugin of the shop connector (``execute(ctx, properties)`` given)."""

    class Plugin:
        MANIFEST = {
            "manifestVersion": 1,
            "id": name,
            "connector": "shop",
            "title": "Place an order",
            "description": "Orders an item.",
            "effect": "write",
            "retrySafe": False,
            "endpoints": ["api"],
            "inputSchema": schema or ORDER_SCHEMA,
            "outputSchema": output or {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
            "examples": [{"input": {"sku": "ABC-123", "quantity": 2, "lines": [{"n": 1}]}, "output": {"id": 1}}] if examples is None else examples,
        }

    Plugin.execute = staticmethod(hookimpl(execute))
    return Plugin()


def posting(ctx, properties):
    response = ctx.http("api").post("/orders", json=properties)
    return {"id": response.json()["id"]}


def test_near_misses_cover_each_keyword_once_each():
    plugin = capability(posting)
    found = {(m.path, m.change) for m in near_misses(plugin.MANIFEST)}
    assert found == {
        ("$", "not an object"),
        ("$", "wrong type (string)"),
        ("$", "wrong type (null)"),
        ("$.sku", "missing required property"),
        ("$.quantity", "missing required property"),
        ("$.unexpectedProperty", "a property the schema does not allow"),
        ("$.sku", "wrong type (number)"),
        ("$.sku", "wrong type (null)"),
        ("$.sku", "pattern (trailing newline)"),
        ("$.sku", "pattern"),
        ("$.sku", "not valid Unicode (a lone surrogate)"),
        ("$.quantity", "wrong type (string)"),
        ("$.quantity", "wrong type (null)"),
        ("$.quantity", "below minimum"),
        ("$.quantity", "at exclusiveMaximum"),
        ("$.gift", "wrong type (string)"),
        ("$.gift", "wrong type (null)"),
        ("$.speed", "not one of the enum"),
        ("$.speed", "not valid Unicode (a lone surrogate)"),
        ("$.note", "wrong type (number)"),
        ("$.note", "wrong type (null)"),
        ("$.note", "shorter than minLength"),
        ("$.note", "longer than maxLength"),
        ("$.note", "not valid Unicode (a lone surrogate)"),
        ("$.lines", "wrong type (string)"),
        ("$.lines", "wrong type (null)"),
        ("$.lines", "fewer items than minItems"),
        ("$.lines", "more items than maxItems"),
        ("$.lines", "duplicate items"),
        ("$.lines[0]", "wrong type (string)"),
        ("$.lines[0]", "wrong type (null)"),
        ("$.lines[0].n", "missing required property"),
        ("$.lines[0].n", "not the const"),
        ("$.lines[0].n", "not valid Unicode (a lone surrogate)"),
    }
    by_change = {(m.path, m.change): m.properties for m in near_misses(plugin.MANIFEST)}
    assert by_change[("$.sku", "pattern (trailing newline)")]["sku"] == "ABC-123\n"
    assert by_change[("$.quantity", "at exclusiveMaximum")]["quantity"] == 100
    assert by_change[("$.lines", "more items than maxItems")]["lines"] == [{"n": 1}] * 3
    assert by_change[("$.lines[0].n", "missing required property")] == {"sku": "ABC-123", "quantity": 2, "lines": [{}]}
    assert by_change[("$.lines[0].n", "not the const")] == {"sku": "ABC-123", "quantity": 2, "lines": [{"n": 2}]}


def test_near_misses_follow_refs_and_the_branches_of_any_of_and_all_of():
    schema = {
        "type": "object",
        "required": ["item"],
        "$defs": {
            "sku": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "item": {
                "type": "object",
                "required": ["sku"],
                "properties": {"sku": {"$ref": "#/$defs/sku"}, "parts": {"type": "array", "items": {"$ref": "#/$defs/item"}}},
            },
        },
        "properties": {
            "item": {"$ref": "#/$defs/item"},
            "size": {"anyOf": [{"type": "integer", "minimum": 1}, {"enum": ["S", "M"]}]},
            "tag": {"allOf": [{"type": "string"}, {"maxLength": 3}]},
        },
    }
    example = {"item": {"sku": "ABC", "parts": [{"sku": "DEF"}]}, "size": 2, "tag": "ab"}
    plugin = capability(posting, schema=schema, examples=[{"input": example, "output": {"id": 1}}])
    by_change = {(m.path, m.change): m.properties for m in near_misses(plugin.MANIFEST)}
    # Inside the referenced item, and inside the item the item's own parts refer to.
    assert by_change[("$.item.sku", "missing required property")] == {**example, "item": {"parts": [{"sku": "DEF"}]}}
    assert by_change[("$.item.sku", "pattern")] == {**example, "item": {"sku": " ", "parts": [{"sku": "DEF"}]}}
    assert by_change[("$.item.parts[0].sku", "pattern")] == {**example, "item": {"sku": "ABC", "parts": [{"sku": " "}]}}
    assert by_change[("$.item.parts[0].sku", "missing required property")] == {**example, "item": {"sku": "ABC", "parts": [{}]}}
    # Each branch is mutated; what another branch still accepts is dropped.
    assert by_change[("$.size", "below minimum")]["size"] == 0
    assert by_change[("$.size", "not one of the enum")]["size"] == "S-not-a-choice"
    assert by_change[("$.tag", "longer than maxLength")]["tag"] == "xxxx"
    assert ("$.size", "wrong type (string)") in by_change  # "7" is neither an integer nor S or M
    assert example == {"item": {"sku": "ABC", "parts": [{"sku": "DEF"}]}, "size": 2, "tag": "ab"}  # untouched


def test_a_recursive_ref_ends():
    schema = {"$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}, "n": {"type": "integer"}}}}, "$ref": "#/$defs/node"}
    found = {(m.path, m.change) for m in near_misses(capability(posting, schema=schema).MANIFEST, {"child": {"n": 1}})}
    assert ("$.child.n", "wrong type (string)") in found
    assert ("$.child.child", "wrong type (string)") in found
    assert ("$.n", "wrong type (null)") in found


def test_a_change_the_schema_still_accepts_is_no_near_miss():
    # An array is as welcome as an object here, so wrapping the input in one breaks nothing.
    schema = {"type": ["object", "array"], "properties": {"x": {"type": "integer"}}}
    found = {(m.path, m.change) for m in near_misses(capability(posting, schema=schema).MANIFEST, {"x": 1})}
    assert found == {("$", "wrong type (string)"), ("$", "wrong type (null)"), ("$.x", "wrong type (string)"), ("$.x", "wrong type (null)")}


def test_a_config_is_made_up_from_the_schema():
    engine = Engine(strict=False, only=["uploadEventBatch"])
    connector = engine.registry.connector("mparticle")
    config = example_config(connector, engine.registry.get("mparticle.uploadEventBatch").manifest)
    assert set(config) == {"clientID", "clientSecret", "apiKey", "apiSecret", "pod"}
    assert config["pod"] == "US1"
    engine.close()


@pytest.mark.parametrize("name", MPARTICLE)
def test_the_mparticle_capabilities_keep_their_contracts(name):
    report = check_contract(f"mparticle.{name}")
    assert report.capability == f"mparticle.{name}"
    assert len(report.near_misses) >= 8
    assert report.near_miss_requests == 0
    # Example inputs reach the capability, whose requests the check refuses to send.
    assert report.example_requests >= 1


def test_against_the_sandbox_the_near_misses_reach_nothing(mparticle_sandbox):
    engine = Engine()
    try:
        for name in MPARTICLE:
            mparticle_sandbox.reset()
            report = check_contract(f"mparticle.{name}", engine=engine, config=mparticle_sandbox.config)
            # The server's own log: exactly the examples' requests, none for the near misses.
            assert len(mparticle_sandbox.requests) == report.example_requests >= 1, name
    finally:
        engine.close()


def test_a_capability_that_keeps_its_contract_passes(make_engine):
    engine = make_engine(capability(posting), connectors=[CONNECTOR])
    report = check_contract("shop.placeOrder", engine=engine)
    assert (report.examples, report.near_miss_requests, report.example_requests) == (1, 0, 1)


def test_an_example_whose_output_breaks_the_schema_at_run_time_is_caught(make_engine):
    engine = make_engine(capability(lambda ctx, properties: {"id": "one"}), connectors=[CONNECTOR])
    with pytest.raises(ContractBroken, match=r"(?s)\$\.examples\[0\]\.input: the capability failed with a bug \(invalid_output.*\$\.id"):
        check_contract("shop.placeOrder", engine=engine)


def test_a_capability_that_crashes_on_its_example_is_caught(make_engine):
    engine = make_engine(capability(lambda ctx, properties: properties["missing"]), connectors=[CONNECTOR])
    with pytest.raises(ContractBroken, match=r"plugin_error.*KeyError"):
        check_contract("shop.placeOrder", engine=engine)


def test_a_capability_without_examples_is_caught(make_engine):
    engine = make_engine(capability(posting, examples=[]), connectors=[CONNECTOR])
    with pytest.raises(ContractBroken, match="has no example"):
        check_contract("shop.placeOrder", engine=engine)


def test_a_rejected_capability_is_caught_with_the_reason(make_engine):
    plugin = capability(posting)
    plugin.MANIFEST["endpoints"] = ["apj"]  # not an endpoint of the connector
    engine = make_engine(plugin, connectors=[CONNECTOR], strict=False)
    with pytest.raises(ContractBroken, match="not loaded.*'apj' is not declared by connector 'shop'; did you mean 'api'"):
        check_contract("shop.placeOrder", engine=engine)


def test_an_unknown_capability_is_caught(make_engine):
    with pytest.raises(ContractBroken, match="shop.nothing: not loaded"):
        check_contract("shop.nothing", engine=make_engine(capability(posting), connectors=[CONNECTOR]))


def test_a_config_that_cannot_be_made_up_asks_for_one(make_engine):
    connector = {**CONNECTOR, "config": {**CONNECTOR["config"], "properties": {**CONNECTOR["config"]["properties"], "apiKey": {"type": "string", "pattern": "^ZZ[0-9]{30}$", "secret": True}}}}
    engine = make_engine(capability(posting), connectors=[connector])
    with pytest.raises(ContractBroken, match="config field 'apiKey'.*pass config="):
        check_contract("shop.placeOrder", engine=engine)
    report = check_contract("shop.placeOrder", engine=engine, config={"apiKey": "ZZ" + "1" * 30, "apiUrl": "http://127.0.0.1:9"})
    assert report.near_miss_requests == 0


def test_the_fixture_is_the_function(check_contract):
    assert check_contract.__name__ == "check_contract"


def _self_checking(check: bool):
    """A placeOrder that checks its ``comment`` (any string) as JSON data itself (``checksInputData``), or forgets to."""
    def execute(ctx, properties):
        if check:
            ctx.check_input_data()
        return posting(ctx, properties)

    schema = {**ORDER_SCHEMA, "properties": {**ORDER_SCHEMA["properties"], "comment": {"type": "string"}}}
    plugin = capability(execute, schema=schema)
    type(plugin).MANIFEST = {**plugin.MANIFEST, "checksInputData": ["comment"]}
    return plugin


def test_a_capability_that_checks_an_input_as_json_data_itself_keeps_its_contract(make_engine):
    engine = make_engine(_self_checking(True), connectors=[CONNECTOR])
    report = check_contract("shop.placeOrder", engine=engine)
    assert report.near_miss_requests == 0 and any(m.path == "$.comment" and "Unicode" in m.change for m in report.near_misses)


def test_a_capability_that_forgets_the_json_data_check_it_took_on_is_caught(make_engine):
    engine = make_engine(_self_checking(False), connectors=[CONNECTOR])
    with pytest.raises(ContractBroken, match=r"near miss \$\.comment: not valid Unicode"):
        check_contract("shop.placeOrder", engine=engine)
