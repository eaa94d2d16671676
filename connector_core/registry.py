"""Plugin discovery and the capability registry.

Plugins come from the ``connector_core`` entry-point group (the entry point's name is the
capability id) or are registered on a plugin manager directly. A plugin that fails to
import, implements an unknown hook, fails pluggy's validation, ships an invalid manifest
or reuses a taken id is unregistered and reported; the others keep working.
"""

from __future__ import annotations

import difflib
import os
import weakref
from collections.abc import Iterable, Mapping
from importlib import metadata
from types import MappingProxyType
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .errors import ConnectorError, PluginLoadError, UnknownCapability
from .manifest import CapabilityManifest, ConnectorManifest

ENTRY_POINT_GROUP = "connector_core"
LOAD_PLUGINS_ENV = "CONNECTOR_CORE_LOAD_PLUGINS"
STRICT_ENV = "CONNECTOR_CORE_STRICT"


def get_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager that knows the framework's hooks and has no plugins yet."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


@attrs.frozen
class PluginReport:
    """What happened to one plugin: loaded, or rejected and why."""

    name: str
    status: str  # "loaded" or "rejected"
    kind: str = "unknown"  # "capability", "extension" or "unknown" (rejected before inspection)
    reason: str | None = None
    entry_point: str | None = None
    distribution: str | None = None
    version: str | None = None
    title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Capability:
    """A loaded capability: its manifest, its connector and the plugin that executes it."""

    manifest: CapabilityManifest
    connector: ConnectorManifest
    plugin: Any = attrs.field(repr=False, eq=False)
    caller: Any = attrs.field(repr=False, eq=False)

    @property
    def id(self) -> str:
        return self.manifest.id


def _entry_point_origin(ep: metadata.EntryPoint) -> dict[str, Any]:
    dist = getattr(ep, "dist", None)
    return {
        "entry_point": f"{ep.name} = {ep.value}",
        "distribution": dist.name if dist else None,
        "version": dist.version if dist else None,
    }


def _unregister(pm: pluggy.PluginManager, name: str) -> None:
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin=plugin, name=name)


def _hook_problem(pm: pluggy.PluginManager, plugin: Any) -> str | None:
    known = sorted(n for n in dir(hookspecs) if pm.parse_hookspec_opts(hookspecs, n))
    for caller in pm.get_hookcallers(plugin) or ():
        if not caller.has_spec():
            match = difflib.get_close_matches(caller.name, known, n=1)
            hint = f"; did you mean {match[0]!r}?" if match else f"; known hooks: {', '.join(known)}"
            return f"implements unknown hook {caller.name!r}{hint}"
    return None


def load_entry_points(
    pm: pluggy.PluginManager, group: str = ENTRY_POINT_GROUP, only: Iterable[str] | None = None
) -> list[PluginReport]:
    """Import and register every plugin of ``group``; return a report for each rejected one.

    ``only`` (default: the comma list in ``CONNECTOR_CORE_LOAD_PLUGINS``) restricts which
    entry points load. Loaded plugins are registered under their entry point's name and
    remembered with their origin for :func:`build_registry`.
    """
    if only is None and os.environ.get(LOAD_PLUGINS_ENV) is not None:
        only = [n.strip() for n in os.environ[LOAD_PLUGINS_ENV].split(",") if n.strip()]
    wanted = set(only) if only is not None else None
    origins = _origins(pm)
    rejected = []
    for ep in metadata.entry_points(group=group):
        if wanted is not None and ep.name not in wanted:
            continue
        origin = _entry_point_origin(ep)
        try:
            plugin = ep.load()
        except Exception as exc:  # an import error of any kind must not stop the host
            rejected.append(PluginReport(ep.name, "rejected", reason=f"failed to import: {type(exc).__name__}: {exc}", **origin))
            continue
        if pm.get_plugin(ep.name) is not None:
            taken = origins.get(ep.name, {}).get("entry_point") or "a plugin registered directly"
            rejected.append(PluginReport(ep.name, "rejected", reason=f"id {ep.name!r} is already taken by {taken}", **origin))
            continue
        try:
            pm.register(plugin, name=ep.name)
        except pluggy.PluginValidationError as exc:
            _unregister(pm, ep.name)
            rejected.append(PluginReport(ep.name, "rejected", reason=f"invalid hook implementation: {exc}", **origin))
            continue
        except ValueError as exc:  # the same object registered under another name
            rejected.append(PluginReport(ep.name, "rejected", reason=str(exc), **origin))
            continue
        origins[ep.name] = origin
    return rejected


# Where each entry-point plugin came from, per plugin manager, for the reports.
_ORIGINS: weakref.WeakKeyDictionary[pluggy.PluginManager, dict] = weakref.WeakKeyDictionary()


def _origins(pm: pluggy.PluginManager) -> dict[str, dict]:
    return _ORIGINS.setdefault(pm, {})


def _is_capability(pm: pluggy.PluginManager, plugin: Any) -> bool:
    return any(
        impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper)
        for impl in pm.hook.execute.get_hookimpls()
    )


def _manifests(plugin: Any) -> tuple[CapabilityManifest, ConnectorManifest]:
    for attr in ("MANIFEST", "CONNECTOR_MANIFEST"):
        if getattr(plugin, attr, None) is None:
            raise ConnectorError(f"implements execute but has no {attr} attribute (a manifest path, resource or dict)")
    return CapabilityManifest.load(plugin.MANIFEST), ConnectorManifest.load(plugin.CONNECTOR_MANIFEST)


@attrs.frozen
class Registry:
    """Loaded capabilities by id, connectors by id, and a report for every plugin."""

    capabilities: Mapping[str, Capability]
    connectors: Mapping[str, ConnectorManifest]
    reports: tuple[PluginReport, ...]

    def get(self, capability_id: str) -> Capability:
        try:
            return self.capabilities[capability_id]
        except KeyError:
            match = difflib.get_close_matches(str(capability_id), list(self.capabilities), n=1)
            hint = f"; did you mean {match[0]!r}?" if match else ""
            raise UnknownCapability(
                f"no loaded plugin provides capability {capability_id!r}{hint} (see `connector plugins`)",
                capability=str(capability_id),
            ) from None

    def connector(self, connector_id: str) -> ConnectorManifest:
        try:
            return self.connectors[connector_id]
        except KeyError:
            raise UnknownCapability(f"no loaded plugin provides connector {connector_id!r}", connector=connector_id) from None

    @property
    def rejected(self) -> tuple[PluginReport, ...]:
        return tuple(r for r in self.reports if r.status == "rejected")


def build_registry(pm: pluggy.PluginManager, rejected: Iterable[PluginReport] = (), strict: bool | None = None) -> Registry:
    """Inspect every plugin registered on ``pm``; unregister and report the broken ones.

    ``strict`` (default: ``CONNECTOR_CORE_STRICT`` set to a true value) raises
    :class:`PluginLoadError` listing every rejected plugin instead of carrying on.
    """
    if strict is None:
        strict = os.environ.get(STRICT_ENV, "").lower() in ("1", "true", "yes", "on")
    origins = _origins(pm)
    reports = list(rejected)
    loaded: list[tuple[str, Any, CapabilityManifest, ConnectorManifest]] = []
    connectors: dict[str, ConnectorManifest] = {}
    extensions = []
    for name, plugin in list(pm.list_name_plugin()):
        if name is None:
            continue
        origin = origins.get(name, {})
        problem = _hook_problem(pm, plugin)
        kind = "capability" if _is_capability(pm, plugin) else "extension"
        if problem is None and kind == "capability":
            try:
                manifest, connector = _manifests(plugin)
            except ConnectorError as exc:
                problem = str(exc)
            else:
                known = connectors.get(connector.id)
                if manifest.id != name:
                    problem = f"manifest id {manifest.id!r} does not match the plugin's id {name!r}"
                elif manifest.connector != connector.id:
                    problem = f"manifest names connector {manifest.connector!r} but CONNECTOR_MANIFEST is {connector.id!r}"
                elif known is not None and known.data != connector.data:
                    problem = f"its connector manifest {connector.id!r} differs from the one already loaded ({known.source})"
                elif faults := manifest.check_connector(connector):
                    problem = "; ".join(str(f) for f in faults)
        if problem is not None:
            _unregister(pm, name)
            reports.append(PluginReport(name, "rejected", kind=kind, reason=problem, **origin))
            continue
        if kind == "capability":
            connectors.setdefault(connector.id, connector)
            loaded.append((name, plugin, manifest, connector))
        else:
            extensions.append(PluginReport(name, "loaded", kind="extension", title=getattr(plugin, "TITLE", None), **origin))
    capability_plugins = [plugin for _, plugin, _, _ in loaded]
    capabilities = {}
    for name, plugin, manifest, connector in loaded:
        others = [p for p in capability_plugins if p is not plugin]
        caller = pm.subset_hook_caller("execute", remove_plugins=others)
        capabilities[name] = Capability(manifest, connectors[connector.id], plugin, caller)
        reports.append(PluginReport(name, "loaded", kind="capability", title=manifest.title, **origins.get(name, {})))
    reports.extend(extensions)
    registry = Registry(
        MappingProxyType(capabilities),
        MappingProxyType(connectors),
        tuple(sorted(reports, key=lambda r: (r.status != "loaded", r.name))),
    )
    if strict and registry.rejected:
        raise PluginLoadError(
            f"{len(registry.rejected)} plugin(s) could not be loaded (strict mode)",
            plugins=[r.to_dict() for r in registry.rejected],
        )
    return registry
