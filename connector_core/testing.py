"""pytest fixtures for plugin authors (registered through the ``pytest11`` entry point).

``make_engine`` builds an :class:`~connector_core.Engine` from plugin objects registered
directly (no installation needed), strict by default so a broken manifest fails the
test with its reason::

    def test_my_capability(make_engine):
        engine = make_engine(my_plugin_module)
        result = engine.execute("myCapability", {"name": "x"}, {"apiUrl": "http://127.0.0.1:8000"})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from .engine import Engine
from .manifest import CapabilityManifest
from .registry import declare_connector, get_plugin_manager


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
