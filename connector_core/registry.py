"""Plugin discovery and the capability registry.

Two entry-point groups:

* ``connector_core.connectors``: ``<connector id> = package.module:ATTRIBUTE`` declares a
  connector. The attribute (or, when the entry point names a module, its
  ``CONNECTOR_MANIFEST``) is the connector manifest: a dict, a path or an
  ``importlib.resources`` traversable. The declaring distribution *owns* the connector.
* ``connector_core``: capability plugins (they implement ``execute`` and carry a
  ``MANIFEST`` whose ``"connector"`` names their connector) and extension plugins
  (``execute`` wrappers, CLI commands, sandboxes).

Every capability has the qualified id ``<connector>.<capability>``; a bare id works
while exactly one loaded connector provides it.

The outcome never depends on install order. Entry points are processed sorted by
(normalised distribution name, entry-point name, value), and every rule is symmetric:

* a connector declared by several distributions with different manifests is refused
  (with all its capabilities) unless the host pins an owner (``Engine(owners=...)`` or
  ``CONNECTOR_CORE_OWNERS=connector=distribution,...``); identical declarations agree;
* the capabilities of a distribution that declares a connector are written for its own
  declaration: when another declaration is in effect (a pinned owner), they are rejected;
* a capability carrying a ``CONNECTOR_MANIFEST`` that differs from the declared one is
  rejected alone, naming the owner (an identical copy is accepted);
* compatibility with plugins written before the ``connector_core.connectors`` group: a
  connector *nobody* declares may still be implied by the ``CONNECTOR_MANIFEST`` of its
  capability plugins (the same rules apply to those copies). A copy never declares a
  connector that a distribution declares;
* a capability id the owner provides is rejected for any other distribution; an id
  claimed by several distributions none of which owns the connector is rejected for all.

A plugin that fails to import, implements no or an unknown hook, fails pluggy's
validation or ships an invalid manifest is unregistered and reported; the others keep
working.
"""

from __future__ import annotations

import json
import os
import re
import weakref
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata
from types import MappingProxyType, ModuleType
from typing import Any

import attrs
import pluggy

from . import auth, hookspecs
from . import cache as verified_cache
from .errors import AmbiguousCapability, ConnectorError, PluginLoadError, PluginRejected, UnknownCapability
from .manifest import CapabilityManifest, ConnectorManifest, read_manifest
from .validation import close_matches

ENTRY_POINT_GROUP = "connector_core"
CONNECTOR_GROUP = "connector_core.connectors"
LOAD_PLUGINS_ENV = "CONNECTOR_CORE_LOAD_PLUGINS"
STRICT_ENV = "CONNECTOR_CORE_STRICT"
OWNERS_ENV = "CONNECTOR_CORE_OWNERS"
DIRECT = "registered directly"
BUILTIN_AUTH = "connector_core.auth"


def get_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager that knows the framework's hooks and holds only the built-in auth
    schemes (registered through ``register_auth_schemes`` like any plugin's)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(auth, name=BUILTIN_AUTH)
    return pm


@attrs.frozen
class PluginReport:
    """What happened to one plugin or connector declaration: loaded, or rejected and why."""

    name: str
    status: str  # "loaded" or "rejected"
    kind: str = "unknown"  # "capability", "extension", "connector" or "unknown" (rejected before inspection)
    reason: str | None = None
    entry_point: str | None = None
    distribution: str | None = None
    version: str | None = None
    title: str | None = None
    id: str | None = None  # qualified capability id, or connector id
    connector: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class CapabilityCaller(pluggy.HookCaller):
    """The ``execute`` hook of one capability: its own implementation and every wrapper.

    pluggy's ``subset_hook_caller(remove_plugins=others)`` filters every implementation on
    every call, which grows with the number of installed capabilities. This caller keeps
    the capability's one implementation and reads only the wrappers, which pluggy keeps at
    the end of the hook's list, on each call; argument checks and wrapper semantics stay
    pluggy's own. (Like pluggy's subset caller, it shares the hook's spec and executor.)
    """

    __slots__ = ("_orig", "_impl", "_wrappers", "_chain")

    def __init__(self, orig: pluggy.HookCaller, impl: pluggy.HookImpl) -> None:
        self._orig = orig
        self._impl = impl
        self._wrappers: list = []
        self._chain = [impl]
        self.name = orig.name  # type: ignore[misc]
        self._hookexec = orig._hookexec  # type: ignore[misc]

    @property  # type: ignore[misc]
    def _hookimpls(self) -> list:
        impls = self._orig._hookimpls
        start = len(impls)
        while start and (impls[start - 1].wrapper or impls[start - 1].hookwrapper):
            start -= 1
        wrappers = impls[start:]
        if wrappers != self._wrappers:  # a wrapper plugin came or went: rebuild the chain
            self._wrappers = wrappers
            self._chain = [self._impl, *wrappers]
        return self._chain

    @property
    def spec(self):  # type: ignore[override]
        return self._orig.spec

    @property
    def _call_history(self):  # type: ignore[override]
        return self._orig._call_history

    def __repr__(self) -> str:
        return f"<CapabilityCaller {self._impl.plugin_name!r}>"


@attrs.frozen
class Capability:
    """A loaded capability: its manifest, its connector and the plugin that executes it."""

    manifest: CapabilityManifest
    connector: ConnectorManifest
    plugin: Any = attrs.field(repr=False, eq=False)
    caller: Any = attrs.field(repr=False, eq=False)
    distribution: str | None = None

    @property
    def id(self) -> str:
        """The qualified id, ``<connector>.<capability>``."""
        return self.manifest.qualified_id

    @property
    def name(self) -> str:
        """The bare id within its connector."""
        return self.manifest.id


def _normalise(name: str | None) -> str:
    return re.sub(r"[-_.]+", "-", name).lower() if name else ""


class _EntryPoint:
    """An installed entry point and the name and version of the distribution that ships it."""

    __slots__ = ("group", "name", "value", "distribution", "version")

    def __init__(self, group: str, name: str, value: str, distribution: str | None, version: str | None) -> None:
        self.group, self.name, self.value = group, name, value
        self.distribution, self.version = distribution, version

    def load(self) -> Any:
        return metadata.EntryPoint(self.name, self.value, self.group).load()

    def as_list(self) -> list:
        return [self.group, self.name, self.value, self.distribution, self.version]

    def __repr__(self) -> str:
        return f"<entry point {self.group}: {self.name} = {self.value} ({self.distribution})>"


def _name_and_version(dist: metadata.Distribution) -> tuple[str | None, str | None]:
    # Only the header block is read: ``dist.metadata`` parses the whole file as an e-mail,
    # and the body after the headers is often a complete README (ours is).
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    headers = {}
    for line in re.split(r"\r?\n\r?\n", text, maxsplit=1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version") and key not in headers:
            headers[key] = value.strip()
    if len(headers) < 2:  # an unusual file: let importlib.metadata read it
        meta = dist.metadata
        return meta["Name"], meta["Version"]
    return headers["Name"], headers["Version"]


def _scan(groups: tuple[str, ...]) -> list[_EntryPoint]:
    """The entry points of ``groups`` as ``importlib.metadata`` finds them on ``sys.path``."""
    found = []
    names: dict[int, tuple[Any, str | None, str | None]] = {}  # id(dist) -> (dist, name, version)
    every = metadata.entry_points()
    for group in groups:
        for ep in every.select(group=group):
            dist = getattr(ep, "dist", None)
            known = names.get(id(dist))
            if known is None:  # the metadata of a distribution is read once
                known = names[id(dist)] = (dist, *(_name_and_version(dist) if dist is not None else (None, None)))
            found.append(_EntryPoint(group, ep.name, ep.value, known[1], known[2]))
    return found


def installed_entry_points(groups: Iterable[str] = (CONNECTOR_GROUP, ENTRY_POINT_GROUP)) -> list[_EntryPoint]:
    """The entry points of ``groups``, each with its distribution's name and version.

    Scanning every installed distribution's metadata is a large part of a cold start, so the
    answer is kept in the cache directory (:mod:`connector_core.cache`) under a key made of
    ``sys.path`` and, for every distribution on it, the name, modification time and size of
    its metadata folder, ``entry_points.txt`` and ``METADATA``: installing, removing or editing
    a distribution gives a new key (see :func:`connector_core.cache.path_fingerprint`).
    """
    groups = tuple(dict.fromkeys(groups))
    fingerprint = verified_cache.path_fingerprint()
    key = verified_cache.content_key("entry-points", f"{groups!r}\0{fingerprint[0]}") if fingerprint else None
    if key is not None:
        rows = verified_cache.load_json(key)
        if isinstance(rows, list) and all(isinstance(r, list) and len(r) == 5 for r in rows):
            return [_EntryPoint(*row) for row in rows]
    found = _scan(groups)
    if key is not None and fingerprint[1]:  # type: ignore[index]
        verified_cache.store_json(key, [ep.as_list() for ep in found])
    return found


def _origin_of(ep: _EntryPoint) -> dict[str, Any]:
    return {"entry_point": f"{ep.name} = {ep.value}", "distribution": ep.distribution, "version": ep.version}


def _entry_points(group: str, every: Iterable[_EntryPoint]) -> list[_EntryPoint]:
    """The group's entry points in the documented processing order (install order never matters):
    by normalised distribution name, then entry-point name, then value."""
    return sorted((ep for ep in every if ep.group == group), key=lambda ep: (_normalise(ep.distribution), ep.name, ep.value))


def sorted_entry_points(group: str) -> list[_EntryPoint]:
    """The group's entry points in the documented processing order (install order never matters)."""
    return _entry_points(group, installed_entry_points((group,)))


def _unregister(pm: pluggy.PluginManager, name: str) -> None:
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin=plugin, name=name)


@attrs.define
class _Declaration:
    connector: str
    source: Any
    origin: dict


@attrs.define
class _State:
    """What ``load_entry_points`` learnt for ``build_registry``, per plugin manager."""

    origins: dict = attrs.field(factory=dict)  # pluggy name -> origin of its entry point
    declarations: list = attrs.field(factory=list)  # _Declaration
    selection: Any = None  # _Selection when CONNECTOR_CORE_LOAD_PLUGINS / only restricts loading
    conditional: set = attrs.field(factory=set)  # extensions loaded only for a selected capability's sake


_STATES: weakref.WeakKeyDictionary[pluggy.PluginManager, _State] = weakref.WeakKeyDictionary()


def _state(pm: pluggy.PluginManager) -> _State:
    state = _STATES.get(pm)
    if state is None:
        state = _STATES[pm] = _State()
    return state


class _Selection:
    """Which capabilities and extensions ``only`` names: bare ids, qualified ids, entry-point names."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = {n for n in names if n}
        self.bare = {n.partition(".")[2] if "." in n else n for n in self.names}

    def names_entry_point(self, name: str) -> bool:
        return name in self.names or name in self.bare or name.partition(".")[2] in self.bare

    def wants(self, manifest: CapabilityManifest) -> bool:
        return manifest.id in self.names or manifest.qualified_id in self.names


def declare_connector(pm: pluggy.PluginManager, source: Any, *, origin: Mapping[str, Any] | None = None) -> None:
    """Declare a connector for plugins registered on ``pm`` directly (tests, embedding hosts).

    ``source`` is a connector manifest (dict, path or resource); the declaration is owned by
    ``origin['distribution']`` (default: "registered directly", like the plugins).
    """
    data, _ = read_manifest(source)
    _state(pm).declarations.append(_Declaration(str(data.get("id")), source, dict(origin or {})))


def load_entry_points(
    pm: pluggy.PluginManager, group: str = ENTRY_POINT_GROUP, only: Iterable[str] | None = None
) -> list[PluginReport]:
    """Import and register every plugin of ``group`` and every connector declaration.

    Returns a report for each plugin rejected while importing or registering.
    ``only`` (default: the comma list in ``CONNECTOR_CORE_LOAD_PLUGINS``) restricts which
    capabilities and extensions load: bare ids, qualified ids and entry-point names. The
    extensions of the distributions that provide or own a selected capability's connector
    (its sandbox, its CLI commands) load too.
    """
    if only is None and os.environ.get(LOAD_PLUGINS_ENV) is not None:
        only = [n.strip() for n in os.environ[LOAD_PLUGINS_ENV].split(",")]
    state = _state(pm)
    selection = state.selection = _Selection(only) if only is not None else None
    rejected: list[PluginReport] = []
    every = installed_entry_points((CONNECTOR_GROUP, group))  # one scan for both groups
    for ep in _entry_points(CONNECTOR_GROUP, every):
        origin = _origin_of(ep)
        try:
            loaded = ep.load()
        except Exception as exc:  # an import error of any kind must not stop the host
            reason = f"failed to import: {type(exc).__name__}: {exc}"
            rejected.append(PluginReport(ep.name, "rejected", kind="connector", reason=reason, id=ep.name, **origin))
            continue
        source = getattr(loaded, "CONNECTOR_MANIFEST", None) if isinstance(loaded, ModuleType) else loaded
        if source is None:
            reason = "the entry point names a module without CONNECTOR_MANIFEST; point it at the manifest (module:ATTRIBUTE)"
            rejected.append(PluginReport(ep.name, "rejected", kind="connector", reason=reason, id=ep.name, **origin))
            continue
        state.declarations.append(_Declaration(ep.name, source, origin))

    entry_points = _entry_points(group, every)
    if selection is None:
        for ep in entry_points:
            _register_entry_point(pm, ep, rejected)
        return rejected
    needed: set[str] = set()
    for ep in entry_points:
        if selection.names_entry_point(ep.name) and _register_entry_point(pm, ep, rejected):
            plugin = pm.get_plugin(_pluggy_name(ep))
            connector = _connector_named_by(plugin)
            needed.add(_normalise(_origin_of(ep)["distribution"]))
            needed.update(_normalise(d.origin.get("distribution")) for d in state.declarations if d.connector == connector)
    for ep in entry_points:  # the extensions the selected capabilities' distributions ship
        if not selection.names_entry_point(ep.name) and _normalise(_origin_of(ep)["distribution"]) in needed:
            _register_entry_point(pm, ep, rejected, extensions_only=True)
    return rejected


def _connector_named_by(plugin: Any) -> str | None:
    try:
        data, _ = read_manifest(plugin.MANIFEST)
    except (AttributeError, ConnectorError):
        return None
    return data.get("connector")


def _pluggy_name(ep: _EntryPoint) -> str:
    # Unique per distribution and entry point: two connectors' `createAccount` both register.
    dist = ep.distribution
    return f"{dist}:{ep.name}" if dist else ep.name


def _register_entry_point(pm: pluggy.PluginManager, ep: _EntryPoint, rejected: list, extensions_only: bool = False) -> bool:
    origin = _origin_of(ep)
    try:
        plugin = ep.load()
    except Exception as exc:  # an import error of any kind must not stop the host
        if not extensions_only:
            rejected.append(PluginReport(ep.name, "rejected", reason=f"failed to import: {type(exc).__name__}: {exc}", **origin))
        return False
    if extensions_only:
        opts = pm.parse_hookimpl_opts(plugin, "execute")
        if opts is not None and not (opts.get("wrapper") or opts.get("hookwrapper")):
            return False  # a capability nobody selected
    name = _pluggy_name(ep)
    if pm.get_plugin(name) is not None:
        return False  # the same distribution listed twice on the path: the first one counts
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        _unregister(pm, name)
        rejected.append(PluginReport(ep.name, "rejected", reason=f"invalid hook implementation: {exc}", **origin))
        return False
    except ValueError as exc:  # the same object registered under another name
        rejected.append(PluginReport(ep.name, "rejected", reason=str(exc), **origin))
        return False
    _state(pm).origins[name] = origin
    if extensions_only:
        _state(pm).conditional.add(name)
    return True


class CapabilityMap(Mapping):
    """Loaded capabilities by qualified id; lookups also take a bare id while it is unambiguous."""

    def __init__(self, capabilities: Mapping[str, Capability], rejected: Iterable[PluginReport] = ()) -> None:
        self._by_id = dict(sorted(capabilities.items()))
        self._bare: dict[str, list[str]] = {}
        for qualified, capability in self._by_id.items():
            self._bare.setdefault(capability.name, []).append(qualified)
        self._rejected = tuple(r for r in rejected if r.kind in ("capability", "unknown"))

    def __getitem__(self, key: str) -> Capability:
        return self.resolve(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, key: object) -> bool:
        try:
            self.resolve(key)  # type: ignore[arg-type]
        except KeyError:
            return False
        return True

    def __repr__(self) -> str:
        return f"CapabilityMap({list(self._by_id)})"

    def resolve(self, capability_id: str, connector: str | None = None) -> Capability:
        """The capability named by a qualified or bare id (within ``connector`` when given).

        Raises ``AmbiguousCapability`` when a bare id names capabilities of several
        connectors, ``PluginRejected`` when it names an installed but rejected plugin, and
        ``UnknownCapability`` otherwise.
        """
        if isinstance(capability_id, str):
            found = self._by_id.get(capability_id)
            if found is not None and (connector is None or found.connector.id == connector):
                return found
            if "." not in capability_id:
                candidates = self._bare.get(capability_id, [])
                if connector is not None:
                    candidates = [q for q in candidates if q.partition(".")[0] == connector]
                if len(candidates) == 1:
                    return self._by_id[candidates[0]]
                if candidates:
                    raise AmbiguousCapability(
                        f"capability {capability_id!r} is provided by {len(candidates)} connectors: {', '.join(candidates)}; "
                        "use a qualified id or name the connector (connector=..., --connector)",
                        capability=capability_id,
                        candidates=candidates,
                    )
        raise self._unknown(capability_id, connector)

    def _unknown(self, capability_id: Any, connector: str | None) -> UnknownCapability:
        wanted = str(capability_id)
        qualified = f"{connector}.{wanted}" if connector and "." not in wanted else wanted
        for report in self._rejected:
            names = {report.id, report.name}
            if report.id:
                names.add(report.id.partition(".")[2])
            if qualified in names or (connector is None and wanted in names):
                origin = report.distribution or DIRECT
                return PluginRejected(
                    f"capability {wanted!r} is installed ({origin}) but was rejected: {report.reason}",
                    capability=wanted,
                    reason=report.reason,
                    distribution=report.distribution,
                    entry_point=report.entry_point,
                )
        known = list(self._by_id) + list(self._bare)
        match = close_matches(wanted, known, n=1)
        hint = f"; did you mean {match[0]!r}?" if match else ""
        where = f" for connector {connector!r}" if connector else ""
        return UnknownCapability(
            f"no loaded plugin provides capability {wanted!r}{where}{hint} (see `connector plugins`)",
            capability=wanted,
        )


@attrs.frozen
class Registry:
    """Loaded capabilities (by qualified id), connectors by id, and a report for every plugin."""

    capabilities: CapabilityMap
    connectors: Mapping[str, ConnectorManifest]
    reports: tuple[PluginReport, ...]
    owners: Mapping[str, tuple[str, ...]] = MappingProxyType({})
    auth_schemes: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    def get(self, capability_id: str, connector: str | None = None) -> Capability:
        """The capability with this qualified or bare id (see :meth:`CapabilityMap.resolve`)."""
        return self.capabilities.resolve(capability_id, connector)

    def connector(self, connector_id: str) -> ConnectorManifest:
        """The loaded connector ``connector_id``; ``PluginRejected`` when it was refused."""
        try:
            return self.connectors[connector_id]
        except KeyError:
            pass
        for report in self.reports:
            if report.kind == "connector" and report.id == connector_id and report.status == "rejected":
                raise PluginRejected(
                    f"connector {connector_id!r} is installed but was refused: {report.reason}",
                    connector=connector_id,
                    reason=report.reason,
                ) from None
        known = ", ".join(sorted(self.connectors)) or "none"
        raise UnknownCapability(f"no loaded plugin provides connector {connector_id!r} (loaded: {known})", connector=connector_id)

    def of_connector(self, connector_id: str) -> list[Capability]:
        """The loaded capabilities of one connector, sorted by id."""
        return [c for c in self.capabilities.values() if c.connector.id == connector_id]

    @property
    def rejected(self) -> tuple[PluginReport, ...]:
        return tuple(r for r in self.reports if r.status == "rejected")


def _owner_pins(owners: Mapping[str, str] | None) -> dict[str, str]:
    pins = {}
    for item in os.environ.get(OWNERS_ENV, "").split(","):
        connector, sep, distribution = item.partition("=")
        if sep and connector.strip() and distribution.strip():
            pins[connector.strip()] = distribution.strip()
    pins.update(owners or {})
    return pins


@attrs.define
class _Entry:
    name: str
    plugin: Any
    origin: dict
    kind: str
    impl: Any = None
    manifest: CapabilityManifest | None = None
    copy: ConnectorManifest | None = None
    problem: str | None = None

    @property
    def dist(self) -> str:
        return _normalise(self.origin.get("distribution"))

    @property
    def who(self) -> str:
        return self.origin.get("distribution") or DIRECT


class _Manifests:
    """Manifests loaded during one build: each source read and checked once."""

    def __init__(self, schemes: Mapping[str, Any]) -> None:
        self._seen: dict[Any, Any] = {}
        self._schemes = schemes  # connector manifests' auth entries are checked by these

    def load(self, cls, source: Any):
        key = (cls, id(source)) if isinstance(source, Mapping) else (cls, str(source))
        if key not in self._seen:
            try:
                loaded = cls.load(source, self._schemes) if cls is ConnectorManifest else cls.load(source)
                self._seen[key] = (loaded, None)
            except ConnectorError as exc:
                self._seen[key] = (None, exc)
            except Exception as exc:  # a broken attribute (not a path or dict) rejects one plugin
                self._seen[key] = (None, ConnectorError(f"cannot load manifest {source!r}: {type(exc).__name__}: {exc}"))
        manifest, error = self._seen[key]
        if error is not None:
            raise error
        return manifest


def _impls_by_plugin(pm: pluggy.PluginManager) -> dict[int, list[tuple[str, Any, bool]]]:
    found: dict[int, list[tuple[str, Any, bool]]] = {}
    for hook_name, caller in vars(pm.hook).items():
        if isinstance(caller, pluggy.HookCaller):
            for impl in caller._hookimpls:
                found.setdefault(id(impl.plugin), []).append((hook_name, impl, caller.has_spec()))
    return found


_KNOWN_HOOKS = tuple(sorted(n for n in dir(hookspecs) if getattr(getattr(hookspecs, n), f"{hookspecs.PROJECT}_spec", None)))


def _hook_problem(plugin: Any, impls: list[tuple[str, Any, bool]]) -> str | None:
    for hook_name, _, has_spec in impls:
        if not has_spec:
            match = close_matches(hook_name, _KNOWN_HOOKS, n=1)
            hint = f"; did you mean {match[0]!r}?" if match else f"; known hooks: {', '.join(_KNOWN_HOOKS)}"
            return f"implements unknown hook {hook_name!r}{hint}"
    if not impls:
        unmarked = [n for n in _KNOWN_HOOKS if callable(getattr(plugin, n, None))]
        if unmarked:
            return (
                f"defines {', '.join(unmarked)} without @hookimpl, so it implements no hook; "
                "decorate it: `from connector_core import hookimpl` then `@hookimpl` above `def "
                f"{unmarked[0]}(...)`"
            )
        return f"implements no hook; mark its hook functions with @hookimpl (`from connector_core import hookimpl`; hooks: {', '.join(_KNOWN_HOOKS)})"
    return None


def _inspect(pm: pluggy.PluginManager, manifests: _Manifests, state: _State, impls: dict) -> list[_Entry]:
    entries = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None or name == BUILTIN_AUTH:  # blocked in pluggy; part of the core
            continue
        origin = state.origins.get(name, {})
        own = impls.get(id(plugin), [])
        execute = [impl for hook, impl, _ in own if hook == "execute" and not (impl.wrapper or impl.hookwrapper)]
        entry = _Entry(name, plugin, origin, "capability" if execute else ("extension" if own else "unknown"))
        entries.append(entry)
        entry.problem = _hook_problem(plugin, own)
        if entry.problem is not None or entry.kind != "capability":
            continue
        entry.impl = execute[0]
        ep_name = origin.get("entry_point", name).split(" = ")[0]
        try:
            if getattr(plugin, "MANIFEST", None) is None:
                raise ConnectorError("implements execute but has no MANIFEST attribute (a manifest path, resource or dict)")
            entry.manifest = manifests.load(CapabilityManifest, plugin.MANIFEST)
            if getattr(plugin, "CONNECTOR_MANIFEST", None) is not None:
                entry.copy = manifests.load(ConnectorManifest, plugin.CONNECTOR_MANIFEST)
        except ConnectorError as exc:
            entry.problem = str(exc)
            continue
        manifest = entry.manifest
        if ep_name not in (manifest.id, manifest.qualified_id):
            what = "entry point" if origin else "plugin"
            entry.problem = f"manifest id {manifest.id!r} does not match the {what} name {ep_name!r} (use {manifest.id!r} or {manifest.qualified_id!r})"
        elif entry.copy is not None and entry.copy.id != manifest.connector:
            entry.problem = f"manifest names connector {manifest.connector!r} but CONNECTOR_MANIFEST is {entry.copy.id!r}"
    return sorted(entries, key=lambda e: (e.dist, e.name))


@attrs.define
class _Connector:
    manifest: ConnectorManifest | None
    owners: tuple[str, ...]  # normalised distribution names ("" for registered directly)
    owner_names: tuple[str, ...]
    problem: str | None = None
    # normalised distribution -> (name, manifest data) of every explicit declaration, in effect or not
    declared_by: dict = attrs.field(factory=dict)


def _resolve_connectors(
    entries: list[_Entry], state: _State, manifests: _Manifests, pins: Mapping[str, str], reports: list[PluginReport]
) -> dict[str, _Connector]:
    declared: dict[str, list[tuple[ConnectorManifest, dict]]] = {}
    for declaration in sorted(state.declarations, key=lambda d: (_normalise(d.origin.get("distribution")), d.connector)):
        origin = declaration.origin
        try:
            manifest = manifests.load(ConnectorManifest, declaration.source)
        except ConnectorError as exc:
            reports.append(PluginReport(declaration.connector, "rejected", kind="connector", reason=str(exc), id=declaration.connector, **origin))
            declared.setdefault(declaration.connector, [])
            continue
        if manifest.id != declaration.connector:
            reason = f"the entry point declares connector {declaration.connector!r} but its manifest's id is {manifest.id!r}"
            reports.append(PluginReport(declaration.connector, "rejected", kind="connector", reason=reason, id=declaration.connector, **origin))
            declared.setdefault(declaration.connector, [])
            continue
        declared.setdefault(manifest.id, []).append((manifest, origin))
    explicit = set(declared)
    for entry in entries:  # the old way: a connector nobody declares, implied by its capabilities' copies
        if entry.problem is None and entry.copy is not None and entry.copy.id not in explicit:
            declared.setdefault(entry.copy.id, []).append((entry.copy, entry.origin))

    connectors: dict[str, _Connector] = {}
    for connector_id, candidates in sorted(declared.items()):
        if not candidates:
            connectors[connector_id] = _Connector(None, (), (), problem="its declaration could not be loaded (see the connector's report)")
            continue
        pin = pins.get(connector_id)
        if pin is not None:
            chosen = [(m, o) for m, o in candidates if _normalise(o.get("distribution")) == _normalise(pin)]
            if not chosen:
                by = ", ".join(sorted({o.get("distribution") or DIRECT for _, o in candidates}))
                problem = f"its owner is pinned to {pin!r}, which does not declare it (declared by {by})"
                connectors[connector_id] = _Connector(None, (), (), problem=problem)
            else:
                connectors[connector_id] = _connector_of(chosen)
        else:
            contents = {json.dumps(m.data, sort_keys=True) for m, _ in candidates}
            if len(contents) == 1:
                connectors[connector_id] = _connector_of(candidates)
            else:
                by = sorted({o.get("distribution") or DIRECT for _, o in candidates})
                problem = (
                    f"declared with different manifests by {' and '.join(by)}; uninstall one, or pin the owner "
                    f"with {OWNERS_ENV}={connector_id}=<distribution> (Engine(owners={{{connector_id!r}: ...}}))"
                )
                connectors[connector_id] = _Connector(None, (), tuple(by), problem=problem)
        if connector_id in explicit:
            resolved = connectors[connector_id]
            resolved.declared_by = {_normalise(o.get("distribution")): (o.get("distribution") or DIRECT, m.data) for m, o in candidates}
            for manifest, origin in candidates:
                mine = (
                    resolved.manifest is not None
                    and _normalise(origin.get("distribution")) in resolved.owners
                    and manifest.data == resolved.manifest.data
                )
                if mine:
                    reports.append(
                        PluginReport(connector_id, "loaded", kind="connector", title=manifest.title, id=connector_id, connector=connector_id, **origin)
                    )
                else:
                    reason = resolved.problem or f"connector {connector_id!r} is pinned to {pin!r}"
                    reports.append(PluginReport(connector_id, "rejected", kind="connector", reason=reason, id=connector_id, connector=connector_id, **origin))
    return connectors


def _connector_of(candidates: list[tuple[ConnectorManifest, dict]]) -> _Connector:
    owners = sorted({(_normalise(o.get("distribution")), o.get("distribution") or DIRECT) for _, o in candidates})
    return _Connector(candidates[0][0], tuple(k for k, _ in owners), tuple(n for _, n in owners))


def _assign(entries: list[_Entry], connectors: dict[str, _Connector]) -> list[_Entry]:
    """Give each capability id to one plugin by the ownership rules; set ``problem`` on the rest."""
    claims: dict[str, list[_Entry]] = {}
    for entry in entries:
        if entry.problem is not None or entry.kind != "capability":
            continue
        manifest = entry.manifest
        assert manifest is not None
        connector = connectors.get(manifest.connector)
        if connector is None:
            entry.problem = (
                f"names connector {manifest.connector!r}, which no installed distribution declares; install the "
                f"connector or declare it in the {CONNECTOR_GROUP!r} entry-point group"
            )
        elif connector.manifest is None:
            entry.problem = f"its connector {manifest.connector!r} is refused: {connector.problem}"
        elif entry.dist in connector.declared_by and connector.declared_by[entry.dist][1] != connector.manifest.data:
            # A distribution that declares the connector wrote its capabilities for its own
            # declaration: when another one is in effect (pinned), they step aside.
            entry.problem = (
                f"{entry.who} declares connector {manifest.connector!r} with a manifest that differs from the one declared by "
                f"{' and '.join(connector.owner_names)}, the owner in effect; its capabilities are written for its own declaration"
            )
        elif entry.copy is not None and entry.copy.data != connector.manifest.data:
            entry.problem = (
                f"carries its own connector manifest for {manifest.connector!r} ({entry.copy.source}) that differs from the "
                f"one declared by {' and '.join(connector.owner_names)}; remove CONNECTOR_MANIFEST and attach the capability "
                f"by naming the connector (\"connector\": {manifest.connector!r} in its manifest)"
            )
        elif faults := manifest.check_connector(connector.manifest):
            entry.problem = "; ".join(str(f) for f in faults)
        else:
            claims.setdefault(manifest.qualified_id, []).append(entry)
    winners = []
    for qualified, claimants in claims.items():
        if len(claimants) == 1:
            winners.append(claimants[0])
            continue
        connector = connectors[claimants[0].manifest.connector]  # type: ignore[union-attr]
        owners = [e for e in claimants if e.dist in connector.owners]
        if len(owners) == 1:
            winners.append(owners[0])
            for entry in claimants:
                if entry is not owners[0]:
                    entry.problem = (
                        f"capability {qualified!r} is already provided by {owners[0].who}, which owns connector "
                        f"{connector.manifest.id!r}; a distribution attaching capabilities ({entry.who}) cannot replace it; "  # type: ignore[union-attr]
                        "give yours another id"
                    )
        else:
            names = " and ".join(sorted(f"{e.who} ({e.origin.get('entry_point') or e.name})" for e in claimants))
            for entry in claimants:
                entry.problem = f"capability {qualified!r} is claimed by {names}; none is the connector's owner, so neither loads"
    return winners


def build_registry(
    pm: pluggy.PluginManager,
    rejected: Iterable[PluginReport] = (),
    strict: bool | None = None,
    owners: Mapping[str, str] | None = None,
) -> Registry:
    """Inspect every plugin registered on ``pm``; unregister and report the broken ones.

    ``owners`` pins the owning distribution of connectors (``{"acme":
    "acme-connector"}``), on top of ``CONNECTOR_CORE_OWNERS``. ``strict`` (default:
    ``CONNECTOR_CORE_STRICT`` set to a true value) raises :class:`PluginLoadError` listing
    every rejected plugin instead of carrying on.
    """
    if strict is None:
        strict = os.environ.get(STRICT_ENV, "").lower() in ("1", "true", "yes", "on")
    state = _state(pm)
    reports = list(rejected)
    schemes, scheme_problems = auth.collect_auth_schemes(pm)
    manifests = _Manifests(schemes)
    entries = _inspect(pm, manifests, state, _impls_by_plugin(pm))
    for entry in entries:
        entry.problem = entry.problem or scheme_problems.get(entry.name)
    if state.selection is not None:  # a capability imported only because its entry-point name matched
        for entry in entries:
            if entry.problem is None and entry.manifest is not None and not state.selection.wants(entry.manifest):
                _unregister(pm, entry.name)
        entries = [e for e in entries if e.manifest is None or e.problem is not None or state.selection.wants(e.manifest)]
    connectors = _resolve_connectors(entries, state, manifests, _owner_pins(owners), reports)
    chosen = _assign(entries, connectors)
    winners = {id(e) for e in chosen}
    if state.conditional:  # keep only the extensions of distributions serving a loaded capability
        serving = {e.dist for e in chosen}
        serving.update(owner for e in chosen for owner in connectors[e.manifest.connector].owners)  # type: ignore[union-attr]
        for entry in entries:
            if entry.name in state.conditional and entry.dist not in serving:
                _unregister(pm, entry.name)
        entries = [e for e in entries if e.name not in state.conditional or e.dist in serving]
    hook = pm.hook.execute
    capabilities = {}
    for entry in entries:
        ep_name = entry.origin.get("entry_point", entry.name).split(" = ")[0]
        manifest = entry.manifest
        if entry.problem is not None:
            _unregister(pm, entry.name)
            extra = {"id": manifest.qualified_id, "connector": manifest.connector} if manifest is not None else {}
            reports.append(PluginReport(ep_name, "rejected", kind=entry.kind, reason=entry.problem, **extra, **entry.origin))
        elif entry.kind == "capability" and id(entry) in winners:
            assert manifest is not None
            connector = connectors[manifest.connector].manifest
            caller = CapabilityCaller(hook, entry.impl)
            capabilities[manifest.qualified_id] = Capability(manifest, connector, entry.plugin, caller, entry.origin.get("distribution"))  # type: ignore[arg-type]
            reports.append(
                PluginReport(ep_name, "loaded", kind="capability", title=manifest.title, id=manifest.qualified_id, connector=manifest.connector, **entry.origin)
            )
        elif entry.kind == "extension":
            title = getattr(entry.plugin, "TITLE", None)
            reports.append(PluginReport(ep_name, "loaded", kind="extension", title=title, connector=getattr(entry.plugin, "CONNECTOR", None), **entry.origin))
    loaded_connectors = {cid: c.manifest for cid, c in connectors.items() if c.manifest is not None}
    ordered = tuple(sorted(reports, key=lambda r: (r.status != "loaded", r.id or r.name, r.distribution or "", r.entry_point or "")))
    registry = Registry(
        CapabilityMap(capabilities, ordered),
        MappingProxyType(dict(sorted(loaded_connectors.items()))),
        ordered,
        MappingProxyType({cid: c.owner_names for cid, c in connectors.items() if c.manifest is not None}),
        MappingProxyType(schemes),
    )
    if strict and registry.rejected:
        raise PluginLoadError(
            f"{len(registry.rejected)} plugin(s) could not be loaded (strict mode)",
            plugins=[r.to_dict() for r in registry.rejected],
        )
    return registry
