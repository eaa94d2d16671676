"""pytest helpers for plugin authors (registered through the ``pytest11`` entry point).

Fixtures: ``make_engine`` builds an :class:`~connector_core.Engine` from plugin objects
registered directly (no installation needed), strict by default so a broken manifest
fails the test with its reason; ``connector_pm`` is an empty plugin manager;
``check_contract`` is :func:`check_contract`, for tests that take it as a fixture::

    def test_my_capability(make_engine):
        engine = make_engine(my_plugin_module)
        result = engine.execute("myCapability", {"name": "x"}, {"apiUrl": "http://127.0.0.1:8000"})

    def test_contract(check_contract):
        check_contract("acme.lookupUser")

:func:`check_contract` checks a capability's contract from its manifest alone: the
manifest loads, its examples pass its schemas, inputs one fault away from valid
(:func:`near_misses`) are refused by the engine before the capability runs and before any
request is sent, and the example inputs are accepted.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import pytest
import requests

from .engine import Connection, Engine
from .errors import ConnectorError, Fault, InvalidInput, ManifestError, PluginError
from .hookspecs import hookimpl
from .manifest import CapabilityManifest, ConnectorManifest
from .redact import MIN_SECRET_LENGTH
from .registry import declare_connector, get_plugin_manager
from .validation import data_faults, json_path

__all__ = ["ContractBroken", "ContractReport", "NearMiss", "check_contract", "example_config", "near_misses"]


def _plugin_name(plugin: Any) -> str:
    manifest = getattr(plugin, "MANIFEST", None)
    if manifest is not None:
        return CapabilityManifest.load(manifest).id
    return getattr(plugin, "__name__", None) or type(plugin).__name__


@pytest.fixture
def connector_pm():
    """A plugin manager that knows the framework's hooks and has no plugins."""
    return get_plugin_manager()


@pytest.fixture
def make_engine():
    """Factory: ``make_engine(*plugins, connectors=(), strict=True, **engine_kwargs) -> Engine``.

    Plugins are objects or modules; capability plugins are registered under their
    manifest's id, others under their name. A mapping ``{id: plugin}`` names them itself.
    ``connectors`` declares connector manifests (dicts, paths or resources) the plugins
    attach to, as a connector package's ``connector_core.connectors`` entry point would.
    """
    engines: list[Engine] = []

    def make(*plugins: Any, connectors: Any = (), strict: bool = True, **kwargs: Any) -> Engine:
        pm = get_plugin_manager()
        for connector in connectors:
            declare_connector(pm, connector)
        for item in plugins:
            named = item.items() if isinstance(item, Mapping) else [(_plugin_name(item), item)]
            for name, plugin in named:
                pm.register(plugin, name=name)
        engine = Engine(pm, strict=strict, **kwargs)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture(name="check_contract")
def check_contract_fixture() -> Callable[..., ContractReport]:
    """:func:`check_contract`, as a fixture (no import needed)."""
    return check_contract


# -- near misses ---------------------------------------------------------------------------

_ABSENT = object()
# One value of each JSON type, most plausible mistakes first (a number as text, a fraction).
_WRONG = (("string", "7"), ("number", 1.5), ("integer", 7), ("boolean", True), ("array", []), ("object", {}), ("null", None))


@attrs.frozen
class NearMiss:
    """An input one fault away from a valid one.

    ``path`` is the JSON path the engine must report the fault at, ``change`` says what
    was broken (``"missing required property"``, ``"pattern"``...), ``properties`` is the
    whole input.
    """

    path: str
    change: str
    properties: Any = attrs.field(repr=False)

    def __str__(self) -> str:
        return f"{self.path}: {self.change}"


def _allowed(schema: Mapping[str, Any]) -> set[str] | None:
    """The JSON types ``schema`` admits by its ``type`` keyword (``None``: any)."""
    kind = schema.get("type")
    if kind is None:
        return None
    kinds = {kind} if isinstance(kind, str) else set(kind)
    return kinds | {"integer"} if "number" in kinds else kinds


def _admits(types: set[str] | None, kind: str) -> bool:
    return types is None or kind in types


def _other_than(values: list[Any]) -> Any:
    """A value of the first value's type that is none of ``values``."""
    first = values[0]
    if isinstance(first, str):
        candidate = f"{first}-not-a-choice"
    elif isinstance(first, bool) or first is None:
        candidate = "not-a-choice"
    elif isinstance(first, (int, float)):
        candidate = max(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)) + 1
    else:
        candidate = "not-a-choice"
    return candidate if candidate not in values else "not-a-choice-either"


def _pattern_misses(pattern: str, value: Any) -> list[tuple[str, str]]:
    """Strings ``pattern`` refuses: the valid value with a trailing newline (which a ``$``
    anchor lets through in Python), then short strings that miss most patterns."""
    try:
        regex = re.compile(pattern)
    except re.error:
        return []
    found = []
    if isinstance(value, str):
        if not regex.search(value + "\n"):
            found.append(("pattern (trailing newline)", value + "\n"))
    for text in (" ", "!", "", "\n", "0", "a"):
        if not regex.search(text):
            found.append(("pattern", text))
            break
    return found


def _resolve(root: Mapping[str, Any], ref: Any) -> Any:
    """The subschema a local ``$ref`` (``#``, ``#/$defs/name``...) points to, else ``None``."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    target: Any = root
    for part in filter(None, ref[1:].split("/")):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return None
    return target


def _mutations(schema: Any, value: Any, root: Any = None, refs: frozenset = frozenset()) -> Iterator[tuple[tuple, str, Any]]:
    """``(relative path parts, change, new value)`` for ``value`` under ``schema``;
    ``value`` is ``_ABSENT`` for an optional property the base input leaves out.

    Local ``$ref``s are followed (for an absent value only once along a path, so
    recursive schemas end) and
    the branches of ``allOf``/``anyOf``/``oneOf`` are mutated too; a change a branch
    allows is dropped later, when the manifest does not refuse it."""
    if not isinstance(schema, Mapping):
        return
    root = schema if root is None else root
    ref = schema.get("$ref")
    if isinstance(ref, str) and value is not _ABSENT:
        yield from _mutations(_resolve(root, ref), value, root, refs)
    elif isinstance(ref, str) and ref not in refs:
        yield from _mutations(_resolve(root, ref), value, root, refs | {ref})
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(keyword, ()) if isinstance(schema.get(keyword), list) else ():
            yield from _mutations(branch, value, root, refs)
    types = _allowed(schema)
    if types is not None:
        wrong = [(kind, v) for kind, v in _WRONG if kind not in types]
        for kind, v in wrong[:1] + [w for w in wrong[1:] if w[0] == "null"]:
            yield (), f"wrong type ({kind})", v
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        yield (), "not one of the enum", _other_than(schema["enum"])
    if "const" in schema:
        yield (), "not the const", _other_than([schema["const"]])
    if _admits(types, "string"):
        text = value if isinstance(value, str) else None
        if isinstance(schema.get("minLength"), int) and schema["minLength"] > 0:
            yield (), "shorter than minLength", (text or "x" * schema["minLength"])[: schema["minLength"] - 1]
        if isinstance(schema.get("maxLength"), int):
            yield (), "longer than maxLength", "x" * (schema["maxLength"] + 1)
        if isinstance(schema.get("pattern"), str):
            for change, miss in _pattern_misses(schema["pattern"], text):
                yield (), change, miss
        yield (), "not valid Unicode (a lone surrogate)", "\ud800"
    if _admits(types, "integer") or _admits(types, "number"):
        step = 1 if not _admits(types, "number") or schema.get("type") == "integer" else 0.5
        for key, change, delta in (
            ("minimum", "below minimum", -step),
            ("exclusiveMinimum", "at exclusiveMinimum", 0),
            ("maximum", "above maximum", step),
            ("exclusiveMaximum", "at exclusiveMaximum", 0),
        ):
            bound = schema.get(key)
            if isinstance(bound, (int, float)) and not isinstance(bound, bool):
                yield (), change, bound + delta
    if isinstance(value, list):
        if isinstance(schema.get("minItems"), int) and schema["minItems"] > 0:
            yield (), "fewer items than minItems", value[: schema["minItems"] - 1]
        if isinstance(schema.get("maxItems"), int) and value:
            yield (), "more items than maxItems", (value * (schema["maxItems"] + 1))[: schema["maxItems"] + 1]
        if schema.get("uniqueItems") is True and value:
            yield (), "duplicate items", value + [value[0]]
        if value and isinstance(schema.get("items"), Mapping):
            for parts, change, v in _mutations(schema["items"], value[0], root, refs):
                yield (0, *parts), change, [v, *value[1:]]
    if isinstance(value, dict):
        yield from _object_mutations(schema, value, root, refs)


def _object_mutations(schema: Mapping[str, Any], value: dict, root: Any, refs: frozenset) -> Iterator[tuple[tuple, str, Any]]:
    properties = schema.get("properties") if isinstance(schema.get("properties"), Mapping) else {}
    for name in schema.get("required", ()):
        if name in value:
            yield (name,), "missing required property", {k: v for k, v in value.items() if k != name}
    if schema.get("additionalProperties") is False and not schema.get("patternProperties"):
        extra = next(n for n in ("unexpectedProperty", "unexpectedProperty2", "unexpected_property_3") if n not in properties)
        yield (extra,), "a property the schema does not allow", {**value, extra: 1}
    for name, sub in properties.items():
        for parts, change, v in _mutations(sub, value.get(name, _ABSENT), root, refs):
            yield (name, *parts), change, {**value, name: v}


def _examples(manifest: CapabilityManifest) -> list[tuple[str, Any]]:
    """``(where, input)`` of every example input the manifest has (the seed form's too)."""
    found = []
    raw = manifest.data["inputSchema"]
    if manifest.seed_form and "example" in raw:
        example = raw["example"]
        wrapped = isinstance(example, dict) and set(example) == {"properties"}
        found.append(("$.inputSchema.example", example["properties"] if wrapped else example))
    found += [(f"$.examples[{i}].input", example["input"]) for i, example in enumerate(manifest.examples)]
    return found


def near_misses(manifest: Any, base: Any = _ABSENT) -> list[NearMiss]:
    """Inputs one fault away from ``base`` (default: each example input of ``manifest``).

    Derived deterministically from the input schema: the input not an object, each
    required property left out, an unknown property where ``additionalProperties`` is
    false, and for each property (present or not) a wrong JSON type, a value outside its
    ``enum``/``const``, strings breaking ``minLength``/``maxLength``/``pattern`` (the
    trailing-newline case included) or not valid Unicode, numbers past
    ``minimum``/``maximum`` (exclusive too), arrays breaking ``minItems``/``maxItems``/
    ``uniqueItems``; nested objects and the first item of arrays likewise, through local
    ``$ref`` pointers and the branches of ``allOf``/``anyOf``/``oneOf``. Only inputs
    the manifest itself refuses at the expected path are kept (under ``anyOf`` and
    friends a derived change may still be valid), each once.
    """
    if not isinstance(manifest, CapabilityManifest):
        manifest = CapabilityManifest.load(manifest)
    bases = [example for _, example in _examples(manifest)] if base is _ABSENT else [base]
    schema = manifest.input_schema
    found: dict[str, NearMiss] = {}

    def keep(parts: tuple, change: str, properties: Any) -> None:
        key = json.dumps(properties, sort_keys=True, default=repr)
        path = json_path(parts)
        if key in found or path not in {f.path for f in data_faults(properties) or manifest.input_faults(properties)}:
            return
        found[key] = NearMiss(path, change, copy.deepcopy(properties))

    for example in bases:
        if _allowed(schema) == {"object"} or isinstance(example, dict):
            keep((), "not an object", [example])
        for parts, change, properties in _mutations(schema, example):
            keep(parts, change, properties)
    return list(found.values())


# -- a config that lets the capability run -----------------------------------------------


def _value_for(schema: Mapping[str, Any], secret: bool) -> Any:
    """A value ``schema`` accepts, or ``_ABSENT`` when none is evident."""
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    types = _allowed(schema) or {"string"}
    if "string" in types:
        length = max(schema.get("minLength", 1), MIN_SECRET_LENGTH if secret else 1, 16)
        for text in ("contract-check-value", "contractcheckvalue", "contract.check@example.com", "1234567890"):
            text = (text * 4)[: max(length, len(text))]
            if len(text) <= schema.get("maxLength", len(text)) and re.search(schema.get("pattern", ""), text):
                return text
        return _ABSENT
    if "integer" in types or "number" in types:
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in schema else 1)
        return low
    if "boolean" in types:
        return False
    return _ABSENT


def example_config(connector: ConnectorManifest, capability: CapabilityManifest | None = None) -> dict[str, Any]:
    """A config ``connector`` accepts for ``capability``, derived from the config schema.

    Holds the required fields, the capability's ``requiredConfig``, every field an auth
    entry reads (except URLs) and the first value of each endpoint's ``baseUrlByConfig``
    selector; made-up values, enough to reach the capability. Raises
    :class:`ContractBroken` when a field's value cannot be derived (pass ``config=``).
    """
    schema = connector.config_schema
    fields = schema.get("properties", {})
    wanted = list(schema.get("required", ())) + list(capability.required_config if capability else ())
    wanted += [f.field for f in connector.auth_fields if not f.url]
    config: dict[str, Any] = {}
    for name, spec in connector.data["endpoints"].items():
        by = spec.get("baseUrlByConfig")
        if by:
            config[by["field"]] = next(iter(by["values"]))
    for name in dict.fromkeys(wanted):
        if name in config:
            continue
        value = _value_for(fields.get(name, {}), name in connector.secret_fields)
        if value is _ABSENT:
            raise ContractBroken(f"cannot make up a value for config field {name!r} of connector {connector.id!r}; pass config=")
        config[name] = value
    return config


# -- the contract check ------------------------------------------------------------------


class ContractBroken(AssertionError):
    """A capability breaks its contract; the message lists every problem found."""


@attrs.frozen
class ContractReport:
    """What :func:`check_contract` checked: the capability's qualified id, how many example
    inputs it ran, the near misses refused, and the requests sent for the near misses (0)
    and for the examples."""

    capability: str
    examples: int
    near_misses: tuple[NearMiss, ...] = attrs.field(repr=False)
    near_miss_requests: int
    example_requests: int


class _CountingSession(requests.Session):
    """The connection's only way out: counts every request; refuses to send unless ``live``."""

    def __init__(self, live: bool) -> None:
        super().__init__()
        self.live = live
        self.sent = 0

    def send(self, request, **kwargs):
        self.sent += 1
        if not self.live:
            raise requests.ConnectionError("the contract check sends no request without a config")
        return super().send(request, **kwargs)


class _Reached:
    """An extension plugin counting the calls that reach one capability."""

    def __init__(self, qualified_id: str) -> None:
        self.qualified_id = qualified_id
        self.calls = 0

    @hookimpl(wrapper=True)
    def execute(self, ctx, properties):
        if ctx.capability.qualified_id == self.qualified_id:
            self.calls += 1
        return (yield)


def _self_checked(manifest: CapabilityManifest, miss: NearMiss) -> bool:
    """Whether ``miss`` is a JSON-data fault inside a property the capability checks itself."""
    inside = any(miss.path == f"$.{name}" or miss.path.startswith((f"$.{name}.", f"$.{name}["))
                 for name in manifest.checks_input_data)
    return inside and miss.path in {f.path for f in data_faults(miss.properties)}


def check_contract(capability: str, *, engine: Engine | None = None, config: Mapping[str, Any] | None = None) -> ContractReport:
    """Check the contract of ``capability`` (an id, qualified or bare) from its manifest.

    * the capability is loaded (not rejected) and its manifest loads: meta-schema, valid
      JSON Schemas, fits its connector;
    * it has an example, and every example input and output passes its schema;
    * every :func:`near_misses` input is refused with ``invalid_input`` and a fault at the
      expected JSON path, before the capability runs and before any request is sent (a
      capability may refuse what is not JSON data in a property its manifest lists under
      ``checksInputData`` itself, before any request);
    * every example input is accepted (it reaches the capability); an output it returns
      must pass the output schema, and a bug (``plugin_error``) is a broken contract.

    ``engine`` defaults to one loading the installed plugins (closed afterwards).
    Without ``config``, one is made up (:func:`example_config`) and nothing is sent at
    all: the connection's session counts each request and refuses it. With a ``config``
    (a local sandbox's), example inputs really run and their requests are counted in
    :attr:`ContractReport.example_requests`. Raises :class:`ContractBroken` listing every
    problem; returns a :class:`ContractReport`.
    """
    own = engine is None
    engine = Engine(strict=False) if engine is None else engine
    try:
        return _check(engine, capability, config)
    finally:
        if own:
            engine.close()


def _faults_text(faults: tuple[Fault, ...] | list[Fault]) -> str:
    return "; ".join(str(f) for f in faults[:5]) or "no faults"


def _check(engine: Engine, capability_id: str, config: Mapping[str, Any] | None) -> ContractReport:
    try:
        capability = engine.registry.get(capability_id)
    except ConnectorError as exc:
        raise ContractBroken(f"{capability_id}: not loaded: {exc.message} {exc.details.get('reason', '')}".rstrip()) from None
    qualified = capability.id
    problems: list[str] = []
    try:
        manifest = CapabilityManifest.from_dict(copy.deepcopy(dict(capability.manifest.data)), capability.manifest.source)
    except ManifestError as exc:
        raise ContractBroken(f"{qualified}: its manifest does not load: {exc.message}: {_faults_text(exc.faults)}") from None
    problems += [f"fits its connector badly: {f}" for f in manifest.check_connector(capability.connector)]
    examples = _examples(manifest)
    if not examples:
        problems.append('has no example: add {"input": ..., "output": ...} to "examples", so hosts and this check have a valid input')
    for where, example in examples:
        problems += [f"{where}{f.path[1:]}: {f.message}" for f in manifest.input_faults(example)]
    for i, example in enumerate(manifest.examples):
        problems += [f"$.examples[{i}].output{f.path[1:]}: {f.message}" for f in manifest.output_faults(example["output"])]
    if problems:
        raise ContractBroken(f"{qualified}: " + "\n  ".join(["contract broken:", *problems]))

    misses = near_misses(manifest)
    session = _CountingSession(live=config is not None)
    connection = Connection(
        engine.registry,
        capability.connector,
        dict(config) if config is not None else example_config(capability.connector, manifest),
        session=session,
        sleep=lambda seconds: None,
        host_policy=engine.host_policy,
    )
    reached = _Reached(qualified)
    name = f"connector_core.testing.reached:{qualified}:{id(reached)}"
    engine.pm.register(reached, name=name)
    try:
        for miss in misses:
            before = session.sent
            try:
                connection.execute(qualified, miss.properties)
            except InvalidInput as exc:
                if miss.path not in {f.path for f in exc.faults}:
                    problems.append(f"near miss {miss} was refused, but with no fault at {miss.path} ({_faults_text(exc.faults)})")
            except ConnectorError as exc:
                problems.append(f"near miss {miss} raised {exc.code} ({exc.message}), not invalid_input")
            else:
                problems.append(f"near miss {miss} was accepted: {json.dumps(miss.properties, default=repr)[:200]}")
            # A fault of JSON data in a property the capability checks itself (checksInputData)
            # is refused by it (ctx.check_input_data), before any request: it may reach it.
            if session.sent != before or (reached.calls and not _self_checked(manifest, miss)):
                problems.append(f"near miss {miss} reached the capability ({reached.calls} call(s), {session.sent - before} request(s))")
            reached.calls = 0
        near_miss_requests = session.sent
        for where, example in examples:
            calls = reached.calls
            try:
                connection.execute(qualified, copy.deepcopy(example))
            except PluginError as exc:
                problems.append(f"{where}: the capability failed with a bug ({exc.code}: {exc.message}; {_faults_text(exc.faults)})")
            except InvalidInput as exc:
                if reached.calls == calls:
                    problems.append(f"{where}: a valid example input was refused: {_faults_text(exc.faults)}")
            except ConnectorError:
                pass  # what the service (or the refused request) answered is not the contract's business
            if reached.calls == calls:
                problems.append(f"{where}: the example input did not reach the capability")
    finally:
        engine.pm.unregister(name=name)
        connection.close()
    if problems:
        raise ContractBroken(f"{qualified}: " + "\n  ".join(["contract broken:", *problems]))
    return ContractReport(qualified, len(examples), tuple(misses), near_miss_requests, session.sent - near_miss_requests)
