"""Fuzzing every capability's input schema and the connector config (hypothesis).

Inputs come from three sources: values generated from the manifests' own schemas
(:func:`from_manifest_schema`: objects and arrays here, scalar keywords such as ``pattern``
by hypothesis-jsonschema, which knows drafts 4 to 7, so :func:`to_draft7` translates the
2020-12 subset the manifests use), schema-derived near-misses (one required key dropped,
one value replaced by random JSON, an unknown key, a lone surrogate, nesting past the
limit) and random JSON. They go through the Python API and through the CLI's ``main(argv)``
in-process, against the sandbox. Every outcome must be a result or a typed error (never
``internal_error``, a plugin error or a traceback), and whatever the manifest's own
validator refuses must come back as ``invalid_input`` / ``invalid_config`` with no request
sent.

Profiles: ``ci`` (default; few examples, no deadline, well under a minute) and ``thorough``
(``CONNECTOR_FUZZ_PROFILE=thorough``).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from connector_mparticle.sandbox import Sandbox
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector_core import ConnectorError, Engine, HostPolicy, InvalidConfig, InvalidInput, Result
from connector_core.cli import main
from connector_core.validation import data_faults, faults

# The documented limit (docs/operators.md: "nesting deeper than 32 levels"), written out.
MAX_DEPTH = 32

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
PROFILE = settings.get_profile(os.environ.get("CONNECTOR_FUZZ_PROFILE", "ci"))

CAPABILITIES = (
    "createAccount", "getAccount", "updateAccount", "deleteAccount",
    "getAudiences", "getCalculatedAttributes", "uploadEventBatch",
)
_ANNOTATIONS = {"$schema", "errorMessage", "secret", "title", "description", "examples", "default", "$comment"}


def to_draft7(schema: Any) -> Any:
    """The 2020-12 schema as draft 7: the keywords the manifests use, renamed where draft 7 differs."""
    if isinstance(schema, list):
        return [to_draft7(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key == "dependentRequired":
            out["dependencies"] = value
        elif key == "$defs":
            out["definitions"] = {k: to_draft7(v) for k, v in value.items()}
        elif key == "$ref" and isinstance(value, str):
            out["$ref"] = value.replace("#/$defs/", "#/definitions/")
        elif key == "prefixItems":
            out["items"] = to_draft7(value)
            if "items" in schema:
                out["additionalItems"] = to_draft7(schema["items"])
        elif key == "items" and "prefixItems" in schema:
            continue
        elif key in ("properties", "patternProperties", "dependentSchemas"):
            out["dependencies" if key == "dependentSchemas" else key] = {k: to_draft7(v) for k, v in value.items()}
        else:
            out[key] = to_draft7(value)
    out["$schema"] = "http://json-schema.org/draft-07/schema#"
    return out


_CONTAINER_KEYWORDS = {"properties", "required", "additionalProperties", "dependentRequired", "items", "prefixItems",
                       "minItems", "maxItems", "patternProperties", "minProperties", "maxProperties"}
_ALL_TYPES = ["null", "boolean", "integer", "number", "string", "array", "object"]


def from_manifest_schema(schema: dict) -> st.SearchStrategy:
    """Values of ``schema``: objects and arrays built here, scalars by hypothesis-jsonschema.

    (hypothesis-jsonschema's own object strategy does not work with current hypothesis.)
    """
    from hypothesis_jsonschema import from_schema  # here, not at every xdist worker's collection

    types = schema.get("type", _ALL_TYPES)
    parts = []
    for kind in [types] if isinstance(types, str) else types:
        if kind == "object":
            props = schema.get("properties", {})
            if props:
                required = set(schema.get("required", ()))
                parts.append(st.fixed_dictionaries(
                    {k: from_manifest_schema(v) for k, v in props.items() if k in required},
                    optional={k: from_manifest_schema(v) for k, v in props.items() if k not in required},
                ))
            else:
                parts.append(st.dictionaries(st.text(max_size=8), RANDOM_JSON, max_size=4))
        elif kind == "array":
            items = schema.get("items")
            parts.append(st.lists(from_manifest_schema(items) if isinstance(items, dict) else RANDOM_JSON, max_size=4))
        else:
            leaf = {k: v for k, v in schema.items() if k not in _CONTAINER_KEYWORDS}
            parts.append(from_schema(to_draft7(dict(leaf, type=kind))))
    return st.one_of(parts)


SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | SURROGATES
RANDOM_JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | SURROGATES, inner, max_size=4),
    max_leaves=12,
)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def near_misses(draw, schema: dict, valid: st.SearchStrategy) -> Any:
    """A valid value broken in one schema-relevant way."""
    value = draw(valid)
    if not isinstance(value, dict):
        return draw(RANDOM_JSON)
    value = dict(value)
    keys = sorted(schema.get("properties", {}))
    how = draw(st.sampled_from(["drop", "replace", "unknown", "surrogate", "deep", "non-string key"]))
    if how == "drop" and value:
        value.pop(draw(st.sampled_from(sorted(value))))
    elif how == "replace" and keys:
        value[draw(st.sampled_from(keys))] = draw(RANDOM_JSON)
    elif how == "unknown":
        value[draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in keys))] = draw(RANDOM_JSON)
    elif how == "surrogate" and keys:
        value[draw(st.sampled_from(keys))] = "x" + draw(SURROGATES)
    elif how == "deep" and keys:
        value[draw(st.sampled_from(keys))] = nested(MAX_DEPTH + draw(st.integers(0, 50)))
    elif how == "non-string key":
        value[draw(st.integers())] = "x"
    return value


def input_strategy(engine: Engine, capability: str) -> st.SearchStrategy:
    manifest = engine.registry.get(capability).manifest
    schema = dict(manifest.input_schema)
    valid = from_manifest_schema(schema)
    return st.one_of(valid, near_misses(schema, valid), RANDOM_JSON)


def expected_refusal(manifest, properties: Any) -> bool:
    """What the manifest's own validator (and the JSON-data rules) refuse."""
    return bool(data_faults(properties)) or bool(manifest.input_faults(properties))


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(seed=1) as sb:
        yield sb


@pytest.fixture(scope="module")
def engine():
    with Engine(sleep=lambda seconds: None) as engine:
        yield engine


def check_outcome(call, *, refused: bool, sandbox: Sandbox, refusal: type[ConnectorError]) -> None:
    before = sandbox.state()["requests_total"]
    try:
        result = call()
    except ConnectorError as error:
        assert error.category not in ("internal", "plugin"), error.to_dict()
        if refused or error.code in ("invalid_input", "invalid_config"):
            assert isinstance(error, refusal) or not refused, error.to_dict()
            assert sandbox.state()["requests_total"] == before, f"a request was sent for refused input: {error.to_dict()}"
    else:
        assert not refused, "the manifest's validator refuses this, but the call succeeded"
        assert isinstance(result, Result)


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_every_capability_input_through_the_python_api(capability, engine, sandbox):
    manifest = engine.registry.get(capability).manifest

    @PROFILE
    @given(properties=input_strategy(engine, capability))
    def run(properties):
        check_outcome(
            lambda: engine.execute(capability, properties, sandbox.config),
            refused=expected_refusal(manifest, properties),
            sandbox=sandbox,
            refusal=InvalidInput,
        )

    run()


def config_strategy(engine: Engine, sandbox: Sandbox) -> st.SearchStrategy:
    connector = engine.registry.connector("mparticle")
    fields = connector.config_schema["properties"]
    valid_values = {name: from_manifest_schema(spec) for name, spec in fields.items()}

    @st.composite
    def configs(draw):
        config: dict[Any, Any] = dict(sandbox.config, maxRetries=0)
        for _ in range(draw(st.integers(1, 3))):
            name = draw(st.sampled_from(sorted(fields)))
            how = draw(st.sampled_from(["schema", "random", "drop", "env", "surrogate", "unknown"]))
            if how == "schema" and name not in ("authUrl", "platformUrl", "eventsUrl"):  # keep requests on loopback
                config[name] = draw(valid_values[name])
            elif how == "random":
                config[name] = draw(RANDOM_JSON.filter(lambda v: not (isinstance(v, str) and v.startswith("https://"))))
            elif how == "drop":
                config.pop(name, None)
            elif how == "env":
                config[name] = {"$env": draw(st.sampled_from(["FUZZ_SET", "FUZZ_UNSET"]))}
            elif how == "surrogate":
                config[name] = "x" + draw(SURROGATES)
            elif how == "unknown":
                config[draw(st.text(max_size=8))] = draw(RANDOM_JSON)
        return config

    return configs()


def test_the_connector_config_through_the_python_api(engine, sandbox, monkeypatch):
    monkeypatch.setenv("FUZZ_SET", "from-the-environment")
    monkeypatch.delenv("FUZZ_UNSET", raising=False)
    connector = engine.registry.connector("mparticle")

    @PROFILE
    @given(config=config_strategy(engine, sandbox), untrusted=st.booleans())
    def run(config, untrusted):
        policy = HostPolicy.untrusted() if untrusted else HostPolicy()
        has_env = "$env" in json.dumps(config, default=str)
        refused = bool(data_faults(config)) or (untrusted and (has_env or bool({"authUrl", "platformUrl", "eventsUrl"} & set(config))))
        if not refused and not has_env:
            refused = bool(faults(connector.config_validator, config))
        check_outcome(
            lambda: engine.execute("getAccount", {"accountId": "1001"}, config, host_policy=policy),
            refused=refused,
            sandbox=sandbox,
            refusal=InvalidConfig,
        )

    run()


def test_inputs_and_configs_through_the_cli_in_process(engine, sandbox, tmp_path, capsys):
    strategies = {capability: input_strategy(engine, capability) for capability in CAPABILITIES}

    @settings(PROFILE, max_examples=min(PROFILE.max_examples, 8))
    @given(data=st.data())
    def run(data):
        capability = data.draw(st.sampled_from(CAPABILITIES))
        properties = data.draw(strategies[capability])
        config = data.draw(config_strategy(engine, sandbox) | st.just(sandbox.config))
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config, default=str), "utf-8", errors="surrogatepass")
        before = sandbox.state()["requests_total"]
        started = time.monotonic()
        code = main(["run", capability, "--config", str(path), "--properties", json.dumps(properties, default=str)])
        out, err = capsys.readouterr()
        assert code not in (1, 12), err
        assert "internal_error" not in err, err
        # The sandbox runs in this process, so this also holds its server threads to it.
        assert "Traceback" not in err, err
        if code in (3, 4) and json.loads(err)["code"] in ("invalid_input", "invalid_config"):
            assert sandbox.state()["requests_total"] == before, err
        if code == 0:
            json.loads(out)
        assert time.monotonic() - started < 60

    run()
