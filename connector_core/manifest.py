"""Manifests: JSON data that describes connectors and capabilities.

``ConnectorManifest`` holds the connection config schema (fields marked ``"secret":
true`` are secrets, and so are the fields an auth scheme says hold secrets), the
endpoints and how each authenticates (each ``auth`` entry validated by its scheme). ``CapabilityManifest``
holds a capability's contract: input and output schemas, required config, effect,
retry safety and examples. Both validate against meta-schemas shipped in
``connector_core/schemas``; every schema in them is checked against its JSON Schema
meta-schema when the manifest loads (or found verified in the content-keyed cache, see
:mod:`connector_core.cache`), and compiled into a validator on first use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from . import cache as verified_cache
from .auth import builtin_schemes
from .errors import Fault, ManifestError
from .validation import close_matches, fast_check, faults, json_path, lint_schema, schema_faults, validator_for


@cache
def meta_validator(kind: str):
    """The compiled meta-schema for ``kind`` ("connector" or "capability")."""
    text = resources.files("connector_core.schemas").joinpath(f"{kind}.schema.json").read_text("utf-8")
    return validator_for(json.loads(text))


def read_manifest(source: Any) -> tuple[dict, str]:
    """Load manifest data from a dict, a path or an ``importlib.resources`` traversable.

    Returns the data and a name for it (used in error messages).
    """
    data, name, _ = _read(source)
    return data, name


def _read(source: Any) -> tuple[dict, str, str]:
    """Data, name and the text the content-keyed cache is keyed by."""
    if isinstance(source, Mapping):
        data = dict(source)
        try:
            text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):
            raise ManifestError("<dict>: a manifest must be JSON data", faults=[Fault("$", "must be JSON data")]) from None
        return data, "<dict>", text
    name = str(source)
    try:
        text = source.read_text(encoding="utf-8") if hasattr(source, "read_text") else Path(source).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ManifestError(f"{name}: cannot read manifest: {reason}", file=name) from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise ManifestError(f"{name}: objects and arrays nest too deeply", faults=[Fault("$", "nests too deeply")], file=name) from None
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{name}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            faults=[Fault("$", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")],
            file=name,
        ) from None
    if not isinstance(data, dict):
        raise ManifestError(f"{name}: a manifest must be a JSON object", faults=[Fault("$", "must be an object")], file=name)
    return data, name, text


def _load(cls, kind: str, source: Any, **extra: Any):
    data, name, text = _read(source)
    key = verified_cache.content_key(kind, text)
    known = verified_cache.verified(key)
    manifest = cls.from_dict(data, name, verified=known, **extra)
    if not known:
        verified_cache.remember(key)
    return manifest


def _check(kind: str, data: dict, name: str) -> None:
    found = faults(meta_validator(kind), data)
    if found:
        raise ManifestError(f"{name}: invalid {kind} manifest ({len(found)} problem(s))", faults=found, file=name)


def _check_schema(schema: Any, where: str, name: str) -> None:
    found = schema_faults(schema, where)
    if found:
        raise ManifestError(f"{name}: {where} is not a valid JSON Schema ({len(found)} problem(s))", faults=found, file=name)


def _did_you_mean(name: str, known) -> str:
    match = close_matches(name, list(known), n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


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
    auth_schemes: Mapping[str, Any] = attrs.field(repr=False, eq=False, factory=dict)
    auth_fields: tuple[Any, ...] = attrs.field(repr=False, eq=False, default=())
    _validators: dict = attrs.field(repr=False, eq=False, init=False, factory=dict)

    @classmethod
    def load(cls, source: Any, schemes: Mapping[str, Any] | None = None) -> ConnectorManifest:
        """Read, check and return the connector manifest at ``source`` (dict, path or resource)."""
        return _load(cls, "connector", source, schemes=schemes)

    @classmethod
    def from_dict(
        cls, data: dict, source: str = "<dict>", schemes: Mapping[str, Any] | None = None, *, verified: bool = False
    ) -> ConnectorManifest:
        """Check ``data`` and return the manifest; ``verified`` skips the content checks a
        previous process recorded as passed for this exact text (see :mod:`connector_core.cache`).
        ``schemes`` are the auth schemes by type (default: the built-in ones; an engine
        passes every registered scheme); each ``auth`` entry is checked by its scheme
        always, since which schemes are installed is not part of the text."""
        if not verified:
            _check("connector", data, source)
            _check_schema(data["config"], "$.config", source)
        config = data["config"]
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
        entry_schemes, auth_fields, found = _auth_entries(data.get("auth", {}), fields, schemes)
        problems += found
        if problems:
            raise ManifestError(f"{source}: invalid connector manifest ({len(problems)} problem(s))", faults=problems, file=source)
        return cls(
            id=data["id"],
            title=data["title"],
            description=data.get("description", ""),
            config_schema=config,
            secret_fields=frozenset(k for k, v in fields.items() if v.get("secret")) | {f.field for f in auth_fields if f.secret},
            endpoints=endpoints,
            auth=data.get("auth", {}),
            source=source,
            data=data,
            auth_schemes=MappingProxyType(entry_schemes),
            auth_fields=tuple(auth_fields),
        )

    @property
    def config_validator(self):
        """The compiled config schema (compiled on first use)."""
        validator = self._validators.get("config")
        if validator is None:
            validator = self._validators["config"] = validator_for(self.config_schema)
        return validator

    def lint(self) -> list[Fault]:
        """What ``connector validate`` reports beyond load errors: unknown keywords, leaky ``$``."""
        return lint_schema(self.config_schema, "$.config")


def _auth_entries(auth: Mapping[str, Any], fields: Mapping[str, Any], schemes: Mapping[str, Any] | None):
    """Each auth entry's scheme, the config fields the entries read, and every fault.

    An entry is validated by the schema of the scheme its ``type`` names; the fields it
    names must be declared in ``$.config``.
    """
    schemes = builtin_schemes() if schemes is None else schemes
    entry_schemes: dict[str, Any] = {}
    auth_fields: list[Any] = []
    problems: list[Fault] = []
    for name, spec in auth.items():
        where = json_path(["auth", name])
        scheme = schemes.get(spec["type"])
        if scheme is None:
            match = close_matches(str(spec["type"]), list(schemes), n=1)
            hint = f"did you mean {match[0]!r}?" if match else "install the plugin that provides it"
            known = ", ".join(sorted(schemes)) or "none"
            problems.append(Fault(f"{where}.type", f"unknown auth scheme {spec['type']!r}; {hint} (installed: {known})"))
            continue
        found = faults(scheme.validator, spec, where)
        if not found:
            found = [Fault(where + f.path[1:], f.message) for f in scheme.check_manifest(spec)]
            for field in scheme.fields(spec):
                if field.field not in fields:
                    found.append(Fault(f"{where}.{field.key}", f"names config field {field.field!r}, which $.config does not declare"))
                auth_fields.append(field)
        problems += found
        entry_schemes[name] = scheme
    return entry_schemes, auth_fields, problems


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
    # Input properties whose JSON-data check the capability makes itself ("checksInputData").
    checks_input_data: tuple[str, ...] = attrs.field(default=(), repr=False)
    _validators: dict = attrs.field(repr=False, eq=False, init=False, factory=dict)

    @classmethod
    def load(cls, source: Any) -> CapabilityManifest:
        """Read, check and return the capability manifest at ``source`` (dict, path or resource)."""
        return _load(cls, "capability", source)

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>", *, verified: bool = False) -> CapabilityManifest:
        """Check ``data`` and return the manifest; ``verified`` skips the content checks a
        previous process recorded as passed for this exact text (see :mod:`connector_core.cache`)."""
        if not verified:
            _check("capability", data, source)
        raw_input = data["inputSchema"]
        inner = _seed_inner(raw_input)
        seed_form = inner is not None
        if not verified:
            if seed_form:
                _check_schema(raw_input["default"], "$.inputSchema.default", source)
            else:
                _check_schema(raw_input, "$.inputSchema", source)
            _check_schema(data["outputSchema"], "$.outputSchema", source)
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
            checks_input_data=tuple(data.get("checksInputData", ())),
        )
        if not verified:
            manifest._check_self_checked()
            manifest._check_examples(raw_input)
        return manifest

    @property
    def qualified_id(self) -> str:
        """``<connector>.<capability>``: the id that names this capability among all connectors."""
        return f"{self.connector}.{self.id}"

    @property
    def input_validator(self):
        """The compiled input schema (compiled on first use, shared by equal schemas)."""
        validator = self._validators.get("input")
        if validator is None:
            schema = self.data["inputSchema"]["default"] if self.seed_form else self.input_schema
            validator = self._validators["input"] = validator_for(schema)
        return validator

    @property
    def output_validator(self):
        """The compiled output schema (compiled on first use, shared by equal schemas)."""
        validator = self._validators.get("output")
        if validator is None:
            validator = self._validators["output"] = validator_for(self.output_schema)
        return validator

    def _check_self_checked(self) -> None:
        """``checksInputData`` names properties the input schema declares."""
        declared = self.input_schema.get("properties", {}) if isinstance(self.input_schema, Mapping) else {}
        problems = [
            Fault(f"$.checksInputData[{i}]", f"input property {name!r} is not declared by the input schema{_did_you_mean(name, declared)}")
            for i, name in enumerate(self.checks_input_data) if name not in declared
        ]
        if problems:
            raise ManifestError(f"{self.source}: checksInputData names undeclared input properties", faults=problems, file=self.source)

    def _check_examples(self, raw_input: Mapping[str, Any]) -> None:
        source, seed_form, manifest = self.source, self.seed_form, self
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

    def lint(self) -> list[Fault]:
        """What ``connector validate`` reports beyond load errors: unknown keywords, leaky ``$``."""
        raw_input = self.data["inputSchema"]
        found = lint_schema(raw_input, "$.inputSchema")
        if self.seed_form:  # the seed form's schema sits in "default", which JSON Schema does not descend into
            found += lint_schema(raw_input["default"], "$.inputSchema.default")
        return found + lint_schema(self.output_schema, "$.outputSchema")

    def _fast(self, kind: str):
        check = self._validators.get(kind + "-fast")
        if check is None:
            schema = (self.data["inputSchema"]["default"] if self.seed_form else self.input_schema) if kind == "input" else self.output_schema
            check = self._validators[kind + "-fast"] = fast_check(schema) or False
        return check

    def input_faults(self, properties: Any) -> list[Fault]:
        """Every fault of ``properties`` against the input schema (paths relative to the properties)."""
        fast = self._fast("input")
        if fast and fast({"properties": properties} if self.seed_form else properties):
            return []  # valid: the faults below would be none (see validation.fast_check)
        if not self.seed_form:
            return faults(self.input_validator, properties)
        found = faults(self.input_validator, {"properties": properties})
        prefix = "$.properties"
        return [Fault("$" + f.path[len(prefix):], f.message) if f.path.startswith(prefix) else f for f in found]

    def output_faults(self, output: Any) -> list[Fault]:
        """Every fault of ``output`` against the output schema."""
        fast = self._fast("output")
        if fast and fast(output):
            return []
        return faults(self.output_validator, output)

    def check_connector(self, connector: ConnectorManifest) -> list[Fault]:
        """Cross-checks against the connector: required config fields and endpoints exist."""
        fields = connector.config_schema.get("properties", {})
        problems = [
            Fault(f"$.requiredConfig[{i}]", f"config field {name!r} is not declared by connector {connector.id!r}{_did_you_mean(name, fields)}")
            for i, name in enumerate(self.required_config)
            if name not in fields
        ]
        problems += [
            Fault(f"$.endpoints[{i}]", f"endpoint {name!r} is not declared by connector {connector.id!r}{_did_you_mean(name, connector.endpoints)}")
            for i, name in enumerate(self.endpoints)
            if name not in connector.endpoints
        ]
        return problems
