"""connector_core: a declarative connector framework.

Capabilities are pluggy plugins found through the ``connector_core`` entry-point group,
each described by a JSON manifest and implementing one ``execute(ctx, properties)`` hook.
"""

import logging as _logging

from .engine import Connection, Context, Engine, Result
from .errors import (
    AmbiguousCapability,
    AuthenticationFailed,
    Conflict,
    ConnectorError,
    Fault,
    InvalidConfig,
    InvalidInput,
    ManifestError,
    NetworkError,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    PluginError,
    PluginLoadError,
    PluginRejected,
    RateLimited,
    UnknownCapability,
    UpstreamError,
)
from .hookspecs import hookimpl, hookspec
from .http import HttpClient, RetryPolicy, read_json
from .manifest import CapabilityManifest, ConnectorManifest
from .policy import HostPolicy
from .redact import RedactingFormatter, Redactor
from .registry import (
    Capability,
    CapabilityMap,
    PluginReport,
    Registry,
    build_registry,
    declare_connector,
    get_plugin_manager,
    load_entry_points,
)

__version__ = "0.1.0"

# A library stays silent unless its host configures logging.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = [
    "AmbiguousCapability",
    "AuthenticationFailed",
    "Capability",
    "CapabilityMap",
    "CapabilityManifest",
    "Conflict",
    "Connection",
    "ConnectorError",
    "ConnectorManifest",
    "Context",
    "Engine",
    "Fault",
    "HostPolicy",
    "HttpClient",
    "InvalidConfig",
    "InvalidInput",
    "ManifestError",
    "NetworkError",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "PluginError",
    "PluginLoadError",
    "PluginRejected",
    "PluginReport",
    "RateLimited",
    "RedactingFormatter",
    "Redactor",
    "Registry",
    "Result",
    "RetryPolicy",
    "UnknownCapability",
    "UpstreamError",
    "build_registry",
    "declare_connector",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "load_entry_points",
    "read_json",
]
