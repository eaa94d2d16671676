"""Manifests: meta-schemas, loading, fault reports with file and JSON path, schema checks."""

from __future__ import annotations

import json
import zipfile
from importlib import resources

import jsonschema
import pytest
from toy import ECHO_INPUT, TOY_CONNECTOR, capability_manifest, variant

from connector_core import CapabilityManifest, ConnectorManifest, Fault, ManifestError
from connector_core.manifest import meta_validator
from connector_core.validation import compile_schema, faults, json_path, validator_for


def paths(error: ManifestError) -> list[str]:
    return [f.path for f in error.faults]


# -- meta-schemas ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["connector", "capability"])
def test_meta_schema_is_a_valid_draft_2020_12_schema(kind):
    text = resources.files("connector_core.schemas").joinpath(f"{kind}.schema.json").read_text("utf-8")
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert meta_validator(kind) is meta_validator(kind)  # compiled once


def test_connector_meta_schema_rejects_what_capability_meta_schema_needs():
    assert faults(meta_validator("connector"), TOY_CONNECTOR) == []
    assert faults(meta_validator("capability"), capability_manifest("x")) == []
    assert "$.inputSchema" in [f.path for f in faults(meta_validator("capability"), TOY_CONNECTOR)]


# -- loading valid manifests -----------------------------------------------------------


def test_valid_connector_manifest_loads_from_a_file(write_json):
    path = write_json("toy.json", TOY_CONNECTOR)
    connector = ConnectorManifest.load(path)
    assert connector.id == "toy"
    assert connector.secret_fields == {"clientSecret", "apiSecret"}
    assert set(connector.endpoints) == {"api", "basic"}
    assert connector.endpoints["api"].override_field == "apiUrl"
    assert connector.endpoints["api"].auth == "oauth"
    assert connector.source == str(path)


def test_valid_capability_manifest_loads_from_a_resource_traversable(tmp_path):
    # A zip archive stands in for a zipped package: importlib.resources hands out such paths.
    archive = tmp_path / "plugin.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("plugin/manifests/toyEcho.json", json.dumps(capability_manifest("toyEcho", input_schema=ECHO_INPUT)))
    manifest = CapabilityManifest.load(zipfile.Path(archive, "plugin/manifests/toyEcho.json"))
    assert manifest.id == "toyEcho"
    assert manifest.connector == "toy"
    assert manifest.effect == "read"
    assert manifest.retry_safe is True
    assert manifest.seed_form is False
    assert manifest.input_schema == ECHO_INPUT
    assert manifest.source.endswith("toyEcho.json")


def test_capability_manifest_fields():
    data = capability_manifest("toyCreate", effect="write", retry_safe=False, requiredConfig=["accountId"], endpoints=["api"])
    manifest = CapabilityManifest.from_dict(data)
    assert (manifest.effect, manifest.retry_safe) == ("write", False)
    assert manifest.required_config == ("accountId",)
    assert manifest.endpoints == ("api",)
    assert manifest.check_connector(ConnectorManifest.from_dict(TOY_CONNECTOR)) == []


def test_base_url_by_config_values_are_matched_case_insensitively():
    data = variant(
        TOY_CONNECTOR,
        endpoints={"events": {"baseUrlByConfig": {"field": "region", "values": {"EU": "https://eu.toy.example"}}}},
        auth={},
    )
    connector = ConnectorManifest.from_dict(data)
    assert connector.endpoints["events"].base_url_by_config == ("region", {"eu": "https://eu.toy.example"})


# -- fault reports ---------------------------------------------------------------------


def test_every_capability_fault_is_reported_with_file_and_path(write_json):
    data = capability_manifest("toyEcho")
    del data["title"]
    data.update(id="1bad id", effect="mutate", retrySafe="yes", exmaples=[])
    path = write_json("echo.json", data)
    with pytest.raises(ManifestError) as caught:
        CapabilityManifest.load(path)
    error = caught.value
    assert paths(error) == ["$.effect", "$.exmaples", "$.id", "$.retrySafe", "$.title"]
    assert str(path) in error.message
    assert error.details["file"] == str(path)
    assert "(5 problem(s))" in error.message
    by_path = {f.path: f.message for f in error.faults}
    assert by_path["$.title"] == "is required"
    assert "did you mean 'examples'?" in by_path["$.exmaples"]
    assert "mutate" in by_path["$.effect"]
    for fault in error.faults:  # str() lists every fault under the summary
        assert f"  {fault.path}: {fault.message}" in str(error)


def test_every_connector_fault_is_reported_including_cross_references(write_json):
    data = variant(
        TOY_CONNECTOR,
        endpoints={
            "api": {"baseUrl": "https://api.toy.example", "overrideField": "apiUrll", "auth": "oauth2"},
            "other": {"baseUrl": "https://other.toy.example"},
        },
        auth={
            "oauth": dict(TOY_CONNECTOR["auth"]["oauth"], clientIdField="clientID"),
            "basic": {"type": "basic", "usernameFields": ["apiKey", "clientId"], "passwordFields": ["apiSecret"]},
        },
    )
    path = write_json("toy.json", data)
    with pytest.raises(ManifestError) as caught:
        ConnectorManifest.load(path)
    assert sorted(paths(caught.value)) == [
        "$.auth.basic",
        "$.auth.oauth.clientIdField",
        "$.endpoints.api.auth",
        "$.endpoints.api.overrideField",
    ]
    assert str(path) in caught.value.message


def test_connector_meta_schema_faults_point_into_the_endpoint(write_json):
    data = variant(TOY_CONNECTOR, endpoints={"api": {"baseUrl": "ftp://api.toy.example", "overrideField": ""}})
    with pytest.raises(ManifestError) as caught:
        ConnectorManifest.from_dict(data, "toy.json")
    assert "$.endpoints.api.baseUrl" in paths(caught.value)
    assert "$.endpoints.api.overrideField" in paths(caught.value)


def test_invalid_json_reports_line_and_column(write_json):
    path = write_json("broken.json", '{\n  "id": "x",\n  "title": oops\n}')
    with pytest.raises(ManifestError) as caught:
        CapabilityManifest.load(path)
    assert "line 3, column 12" in caught.value.message
    assert str(path) in caught.value.message
    assert caught.value.faults[0].path == "$"


def test_manifest_must_be_an_object_and_readable(write_json, tmp_path):
    with pytest.raises(ManifestError, match="must be a JSON object"):
        ConnectorManifest.load(write_json("list.json", [1]))
    with pytest.raises(ManifestError, match="cannot read manifest") as caught:
        ConnectorManifest.load(tmp_path / "missing.json")
    assert caught.value.details["file"] == str(tmp_path / "missing.json")


# -- the seed form of input schemas ----------------------------------------------------

SEED_INPUT = {
    "default": {
        "type": "object",
        "properties": {
            "properties": {
                "type": "object",
                "required": ["displayName"],
                "additionalProperties": False,
                "properties": {
                    "displayName": {"type": "string", "minLength": 1},
                    "size": {"type": "integer"},
                },
            }
        },
    },
    "example": {"properties": {"displayName": "Acme"}},  # the example wraps the properties like the schema
}


def test_seed_form_loads_as_is_and_reports_faults_relative_to_the_properties():
    manifest = CapabilityManifest.from_dict(capability_manifest("toySeed", input_schema=SEED_INPUT))
    assert manifest.seed_form is True
    assert manifest.data["inputSchema"] == SEED_INPUT  # kept as written
    assert manifest.input_schema == SEED_INPUT["default"]["properties"]["properties"]
    assert manifest.input_faults({"displayName": "Acme", "size": 3}) == []
    assert manifest.input_faults({"displayName": 5, "sise": 1}) == [
        Fault("$.displayName", "5 is not of type 'string'"),
        Fault("$.sise", "is not an allowed property (did you mean 'size'?)"),
    ]
    assert manifest.input_faults({}) == [Fault("$.displayName", "is required")]
    assert manifest.input_faults([]) == [Fault("$", "[] is not of type 'object'")]


def test_seed_form_example_must_match_its_schema():
    seed = dict(SEED_INPUT, example={"properties": {"displayName": ""}})
    with pytest.raises(ManifestError) as caught:
        CapabilityManifest.from_dict(capability_manifest("toySeed", input_schema=seed))
    assert paths(caught.value) == ["$.inputSchema.example.properties.displayName"]


def test_seed_form_example_given_bare_is_checked_too():
    seed = dict(SEED_INPUT, example={"displayName": 5})
    with pytest.raises(ManifestError) as caught:
        CapabilityManifest.from_dict(capability_manifest("toySeed", input_schema=seed))
    assert [f.path for f in caught.value.faults] == ["$.inputSchema.example.displayName"]


def test_invalid_seed_schema_is_reported_at_its_place_in_the_file():
    seed = {"default": {"type": "object", "properties": {"properties": {"type": "object", "properties": {"x": {"type": "strin"}}}}}}
    with pytest.raises(ManifestError) as caught:
        CapabilityManifest.from_dict(capability_manifest("toySeed", input_schema=seed), "seed.json")
    assert paths(caught.value) == ["$.inputSchema.default.properties.properties.properties.x.type"]


# -- schemas inside manifests ----------------------------------------------------------


@pytest.mark.parametrize(
    "schemas, path",
    [
        ({"input_schema": {"type": "objekt"}}, "$.inputSchema.type"),
        ({"output_schema": {"properties": {"count": {"minimum": "zero"}}}}, "$.outputSchema.properties.count.minimum"),
        ({"input_schema": {"properties": {"name": {"pattern": "^(a|b$"}}}}, "$.inputSchema.properties.name.pattern"),
        ({"input_schema": {"$schema": 2020}}, "$.inputSchema['$schema']"),
    ],
)
def test_an_invalid_json_schema_is_rejected_at_load(schemas, path):
    with pytest.raises(ManifestError, match="is not a valid JSON Schema") as caught:
        CapabilityManifest.from_dict(capability_manifest("toyBad", **schemas), "bad.json")
    assert paths(caught.value) == [path]
    assert caught.value.message.startswith("bad.json: ")


def test_every_fault_of_an_invalid_json_schema_is_reported():
    schema = {"type": "object", "properties": {"a": {"type": "strin"}, "b": {"minLength": -1}}, "required": "a"}
    with pytest.raises(ManifestError) as caught:
        CapabilityManifest.from_dict(capability_manifest("toyBad", input_schema=schema), "bad.json")
    assert paths(caught.value) == [
        "$.inputSchema.properties.a.type",
        "$.inputSchema.properties.b.minLength",
        "$.inputSchema.required",
    ]


def test_an_input_schema_in_draft_4_refuses_an_integer_valued_float_as_jsonschema_does():
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object", "properties": {"n": {"type": "integer"}}}
    manifest = CapabilityManifest.from_dict(capability_manifest("toyDraft4", input_schema=draft4), "draft4.json")
    assert manifest.input_faults({"n": 1}) == []
    assert manifest.input_faults({"n": 1.0}) == [Fault("$.n", "1.0 is not of type 'integer'")]


def test_an_invalid_config_schema_is_rejected_at_load():
    data = variant(TOY_CONNECTOR)
    data["config"]["properties"]["maxRetries"] = {"type": "integer", "minimum": "none"}
    with pytest.raises(ManifestError) as caught:
        ConnectorManifest.from_dict(data)
    assert paths(caught.value) == ["$.config.properties.maxRetries.minimum"]


def test_examples_that_fail_their_own_schemas_are_rejected():
    data = capability_manifest(
        "toyEcho",
        input_schema=ECHO_INPUT,
        output_schema={"type": "object", "required": ["echo"]},
        examples=[
            {"input": {"name": "ok"}, "output": {"echo": {}}},
            {"input": {"name": "", "count": -1}, "output": {"nope": 1}},
        ],
    )
    with pytest.raises(ManifestError, match="examples do not match") as caught:
        CapabilityManifest.from_dict(data)
    assert paths(caught.value) == ["$.examples[1].input.count", "$.examples[1].input.name", "$.examples[1].output.echo"]


def test_required_config_and_endpoints_must_exist_in_the_connector():
    manifest = CapabilityManifest.from_dict(capability_manifest("toyX", requiredConfig=["accountId", "acountId"], endpoints=["api", "events"]))
    problems = manifest.check_connector(ConnectorManifest.from_dict(TOY_CONNECTOR))
    assert [f.path for f in problems] == ["$.requiredConfig[1]", "$.endpoints[1]"]
    assert "'acountId'" in problems[0].message and "'toy'" in problems[0].message


# -- validation messages ---------------------------------------------------------------


def test_error_message_replaces_the_jsonschema_message():
    validator = compile_schema(TOY_CONNECTOR["config"])
    assert faults(validator, {"clientId": "a", "clientSecret": "b", "region": "Europe"}) == [
        Fault("$.region", "must be a two-letter region such as eu")
    ]


def test_additional_properties_suggests_the_closest_name():
    validator = compile_schema(ECHO_INPUT)
    assert faults(validator, {"name": "x", "cuont": 1, "zzz": 2}) == [
        Fault("$.cuont", "is not an allowed property (did you mean 'count'?)"),
        Fault("$.zzz", "is not an allowed property"),
    ]


def test_faults_are_sorted_by_path_with_indexes_in_order():
    validator = compile_schema({"type": "array", "items": {"type": "integer"}})
    found = faults(validator, ["a"] * 12)
    assert [f.path for f in found] == [f"$[{i}]" for i in range(12)]


def test_json_path_quotes_keys_that_are_not_identifiers():
    assert json_path(["events", 0, "data", "odd key"]) == "$.events[0].data['odd key']"
    assert json_path([]) == "$"


DIGITS = "^[0-9]+$(?!\\n)"
ID = {"oneOf": [{"type": "string", "pattern": DIGITS}, {"type": "integer", "minimum": 1}]}


@pytest.mark.parametrize("schema, value, fault", [
    (ID, "12a", Fault("$", f"'12a' does not match {DIGITS!r}")),
    (ID, 0, Fault("$", "0 is less than the minimum of 1")),
    ({"anyOf": [{"type": "string", "minLength": 3}, {"type": "integer"}]}, "ab", Fault("$", "'ab' is too short")),
    ({"anyOf": [{"type": "string"}, {"type": "object", "required": ["id"]}]}, {}, Fault("$.id", "is required")),
    ({"properties": {"kind": {"oneOf": [{"const": "a"}, {"type": "object", "properties": {"n": {"type": "integer"}}}]}}},
     {"kind": {"n": "x"}}, Fault("$.kind.n", "'x' is not of type 'integer'")),
])
def test_a_failed_one_of_or_any_of_is_reported_by_the_branch_that_fits_the_value(schema, value, fault):
    # The branch jsonschema's best_match picks (a string is told about its pattern, not that it is no integer).
    assert faults(validator_for(schema), value) == [fault]


@pytest.mark.parametrize("schema, value, message", [
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1, "1 is valid under each of {'type': 'number'}, {'type': 'integer'}"),
    ({"anyOf": [{"minimum": 5}, {"maximum": 1}]}, 3, "3 is not valid under any of the given schemas"),  # no branch fits better
])
def test_a_one_of_that_no_single_branch_explains_is_reported_as_a_whole(schema, value, message):
    assert faults(validator_for(schema), value) == [Fault("$", message)]


def test_an_object_where_another_type_is_expected_is_reported_by_its_type():
    assert faults(validator_for({"type": "array", "items": {"type": "string"}}), {"a": 1}) == [Fault("$", "{'a': 1} is not of type 'array'")]
    closed = {"type": "object", "properties": {"a": {}}, "additionalProperties": False, "minProperties": 2}
    assert faults(validator_for(closed), {"a": 1}) == [Fault("$", "{'a': 1} does not have enough properties")]


def test_a_message_of_exactly_the_limit_is_kept_whole():
    # "'xxx...' was expected": 285 characters of const make a message of 300, the limit.
    (whole,) = faults(validator_for({"const": "x" * 285}), "y")
    (cut,) = faults(validator_for({"const": "x" * 286}), "y")
    assert (len(whole.message), whole.message.endswith("' was expected")) == (300, True)
    assert (len(cut.message), cut.message.endswith("...")) == (300, True)


def test_long_messages_are_shortened():
    validator = compile_schema({"enum": ["x" * 400]})
    (fault,) = faults(validator, "y")
    assert len(fault.message) == 300 and fault.message.endswith("...")
