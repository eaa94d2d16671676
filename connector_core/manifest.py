"""Manifests: JSON data that describes connectors and capabilities.

``ConnectorManifest`` holds the connection config schema (fields marked ``"secret":
true`` are secrets), the endpoints and how each authenticates. ``CapabilityManifest``
holds a capability's contract: input and output schemas, required config, effect,
retry safety and examples. Both validate against meta-schemas shipped in
``connector_core/schemas`` and compile their schemas once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from .errors import Fault, ManifestError
from .validation import compile_schema, faults, schema_faults


@cache
def meta_validator(kind: str):
    """The compiled meta-schema for ``kind`` ("connector" or "capability")."""
    text = resources.files("connector_core.schemas").joinpath(f"{kind}.schema.json").read_text("utf-8")
    return compile_schema(json.loads(text))


def read_manifest(source: Any) -> tuple[dict, str]:
    """Load manifest data from a dict, a path or an ``importlib.resources`` traversable.

    Returns the data and a name for it (used in error messages).
    """
    if isinstance(source, Mapping):
        return dict(source), "<dict>"
    name = str(source)
    try:
        text = source.read_text(encoding="utf-8") if hasattr(source, "read_text") else Path(source).read_text("utf-8")
    except OSError as exc:
        raise ManifestError(f"{name}: cannot read manifest: {exc.strerror or exc}", file=name) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{name}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            faults=[Fault("$", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")],
            file=name,
        ) from None
    if not isinstance(data, dict):
        raise ManifestError(f"{name}: a manifest must be a JSON object", faults=[Fault("$", "must be an object")], file=name)
    return data, name


def _check(kind: str, data: dict, name: str) -> None:
    found = faults(meta_validator(kind), data)
    if found:
        raise ManifestError(f"{name}: invalid {kind} manifest ({len(found)} problem(s))", faults=found, file=name)


def _compile(schema: dict, where: str, name: str):
    found = schema_faults(schema, where)
    if found:
        raise ManifestError(f"{name}: {where} is not a valid JSON Schema ({len(found)} problem(s))", faults=found, file=name)
    return compile_schema(schema)


@attrs.frozen
class Endpoint:
    """A base URL of the connector and the auth it uses."""

    name: str
    base_url: str | None
    base_url_by_config: tuple[str, Mapping[str, str]] | None
    override_field: str | None
    auth: str | None


@attrs.frozen
class ConnectorManifest:
    """A connector: config schema, secret fields, endpoints and auth strategies."""

    id: str
    title: str
    description: str
    config_schema: Mapping[str, Any] = attrs.field(repr=False)
    secret_fields: frozenset[str]
    endpoints: Mapping[str, Endpoint] = attrs.field(repr=False)
    auth: Mapping[str, Mapping[str, Any]] = attrs.field(repr=False)
    source: str = attrs.field(repr=False)
    data: Mapping[str, Any] = attrs.field(repr=False, eq=True)
    config_validator: Any = attrs.field(repr=False, eq=False)

    @classmethod
    def load(cls, source: Any) -> ConnectorManifest:
        data, name = read_manifest(source)
        return cls.from_dict(data, name)

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> ConnectorManifest:
        _check("connector", data, source)
        config = data["config"]
        validator = _compile(config, "$.config", source)
        fields = config.get("properties", {})
        problems = []
        endpoints = {}
        for name, spec in data["endpoints"].items():
            by_config = spec.get("baseUrlByConfig")
            endpoints[name] = Endpoint(
                name=name,
                base_url=spec.get("baseUrl"),
                base_url_by_config=(by_config["field"], {k.lower(): v for k, v in by_config["values"].items()}) if by_config else None,
                override_field=spec.get("overrideField"),
                auth=spec.get("auth"),
            )
            for key, field in (("overrideField", spec.get("overrideField")), ("baseUrlByConfig.field", by_config and by_config["field"])):
                if field and field not in fields:
                    problems.append(Fault(f"$.endpoints.{name}.{key}", f"names config field {field!r}, which $.config does not declare"))
            if spec.get("auth") and spec["auth"] not in data.get("auth", {}):
                problems.append(Fault(f"$.endpoints.{name}.auth", f"names auth {spec['auth']!r}, which $.auth does not declare"))
        for name, spec in data.get("auth", {}).items():
            for key in ("tokenUrlField", "clientIdField", "clientSecretField"):
                if key in spec and spec[key] not in fields:
                    problems.append(Fault(f"$.auth.{name}.{key}", f"names config field {spec[key]!r}, which $.config does not declare"))
            for key in ("usernameFields", "passwordFields"):
                for i, field in enumerate(spec.get(key, ())):
                    if field not in fields:
                        problems.append(Fault(f"$.auth.{name}.{key}[{i}]", f"names config field {field!r}, which $.config does not declare"))
            if spec["type"] == "basic" and len(spec["usernameFields"]) != len(spec["passwordFields"]):
                problems.append(Fault(f"$.auth.{name}", "usernameFields and passwordFields must pair up (same length)"))
        if problems:
            raise ManifestError(f"{source}: invalid connector manifest ({len(problems)} problem(s))", faults=problems, file=source)
        return cls(
            id=data["id"],
            title=data["title"],
            description=data.get("description", ""),
            config_schema=config,
            secret_fields=frozenset(k for k, v in fields.items() if v.get("secret")),
            endpoints=endpoints,
            auth=data.get("auth", {}),
            source=source,
            data=data,
            config_validator=validator,
        )


def _seed_inner(schema: Mapping) -> Mapping | None:
    """The properties schema inside the seed form ``{"default": {... "properties": {"properties": S}}}``."""
    default = schema.get("default")
    if isinstance(default, Mapping):
        inner = default.get("properties", {}).get("properties") if isinstance(default.get("properties"), Mapping) else None
        if isinstance(inner, Mapping):
            return inner
    return None


@attrs.frozen
class CapabilityManifest:
    """One capability's contract: schemas, required config, effect, retry safety, examples."""

    id: str
    connector: str
    title: str
    description: str
    effect: str
    retry_safe: bool
    required_config: tuple[str, ...]
    endpoints: tuple[str, ...]
    input_schema: Mapping[str, Any] = attrs.field(repr=False)
    output_schema: Mapping[str, Any] = attrs.field(repr=False)
    examples: tuple[Mapping[str, Any], ...] = attrs.field(repr=False)
    source: str = attrs.field(repr=False)
    data: Mapping[str, Any] = attrs.field(repr=False)
    seed_form: bool = attrs.field(repr=False)
    input_validator: Any = attrs.field(repr=False, eq=False)
    output_validator: Any = attrs.field(repr=False, eq=False)

    @classmethod
    def load(cls, source: Any) -> CapabilityManifest:
        data, name = read_manifest(source)
        return cls.from_dict(data, name)

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> CapabilityManifest:
        _check("capability", data, source)
        raw_input = data["inputSchema"]
        inner = _seed_inner(raw_input)
        seed_form = inner is not None
        if seed_form:
            input_validator = _compile(raw_input["default"], "$.inputSchema.default", source)
        else:
            input_validator = _compile(raw_input, "$.inputSchema", source)
        output_validator = _compile(data["outputSchema"], "$.outputSchema", source)
        manifest = cls(
            id=data["id"],
            connector=data["connector"],
            title=data["title"],
            description=data["description"],
            effect=data["effect"],
            retry_safe=data["retrySafe"],
            required_config=tuple(data.get("requiredConfig", ())),
            endpoints=tuple(data.get("endpoints", ())),
            input_schema=inner if inner is not None else raw_input,
            output_schema=data["outputSchema"],
            examples=tuple(data.get("examples", ())),
            source=source,
            data=data,
            seed_form=seed_form,
            input_validator=input_validator,
            output_validator=output_validator,
        )
        problems = []
        if seed_form and "example" in raw_input:
            # The seed's example wraps the properties as {"properties": {...}}; accept it bare too.
            example = raw_input["example"]
            wrapped = isinstance(example, dict) and set(example) == {"properties"}
            where = "$.inputSchema.example.properties" if wrapped else "$.inputSchema.example"
            found = manifest.input_faults(example["properties"] if wrapped else example)
            problems += [Fault(where + f.path[1:], f.message) for f in found]
        for i, example in enumerate(manifest.examples):
            problems += [Fault(f"$.examples[{i}].input{f.path[1:]}", f.message) for f in manifest.input_faults(example["input"])]
            problems += [Fault(f"$.examples[{i}].output{f.path[1:]}", f.message) for f in manifest.output_faults(example["output"])]
        if problems:
            raise ManifestError(f"{source}: examples do not match the manifest's own schemas", faults=problems, file=source)
        return manifest

    def input_faults(self, properties: Any) -> list[Fault]:
        """Every fault of ``properties`` against the input schema (paths relative to the properties)."""
        if not self.seed_form:
            return faults(self.input_validator, properties)
        found = faults(self.input_validator, {"properties": properties})
        prefix = "$.properties"
        return [Fault("$" + f.path[len(prefix):], f.message) if f.path.startswith(prefix) else f for f in found]

    def output_faults(self, output: Any) -> list[Fault]:
        """Every fault of ``output`` against the output schema."""
        return faults(self.output_validator, output)

    def check_connector(self, connector: ConnectorManifest) -> list[Fault]:
        """Cross-checks against the connector: required config fields and endpoints exist."""
        fields = connector.config_schema.get("properties", {})
        problems = [
            Fault(f"$.requiredConfig[{i}]", f"config field {name!r} is not declared by connector {connector.id!r}")
            for i, name in enumerate(self.required_config)
            if name not in fields
        ]
        problems += [
            Fault(f"$.endpoints[{i}]", f"endpoint {name!r} is not declared by connector {connector.id!r}")
            for i, name in enumerate(self.endpoints)
            if name not in connector.endpoints
        ]
        return problems
