"""Typed errors: every failure a host can see has a stable ``code`` and a ``category``.

A host acts on the category (fix the input, fix the config, retry later, report a bug);
the code names the precise condition and never changes once published. The CLI maps each
category to a documented exit code (``EXIT_CODES``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs


@attrs.frozen
class Fault:
    """One validation fault: where (a JSON path such as ``$.events[0].data``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


# Exit code of the `connector` CLI per error category (0 is success, 2 is a usage error).
EXIT_CODES = {
    "internal": 1,
    "usage": 2,
    "input": 3,
    "config": 4,
    "auth": 5,
    "not_found": 6,
    "conflict": 7,
    "rate_limited": 8,
    "upstream": 9,
    "network": 10,
    "outcome_unknown": 11,
    "plugin": 12,
}


class ConnectorError(Exception):
    """Base of every error the framework raises on purpose.

    ``faults`` lists every problem found (validation reports all of them, not the first);
    ``details`` holds extra machine-readable facts (status, retry-after, capability).
    Messages never contain secrets: the engine redacts known secret values before an
    error leaves it.
    """

    code = "connector_error"
    category = "internal"

    def __init__(
        self,
        message: str,
        *,
        faults: Iterable[Fault] = (),
        code: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.faults = tuple(faults)
        if code is not None:
            self.code = code
        self.details = {k: v for k, v in details.items() if v is not None}

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.category, 1)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "category": self.category,
            "message": self.message,
        }
        if self.faults:
            out["faults"] = [f.to_dict() for f in self.faults]
        out.update(self.details)
        return out

    def __str__(self) -> str:
        if not self.faults:
            return self.message
        lines = [self.message] + [f"  {fault}" for fault in self.faults]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def copy(self, message: str | None = None, *, faults: Iterable[Fault] | None = None, **details: Any) -> ConnectorError:
        """A new error of the same class and code, with the given fields replaced."""
        return type(self)(
            self.message if message is None else message,
            faults=self.faults if faults is None else faults,
            code=self.code,
            **{**self.details, **details},
        )

    def __reduce__(self):  # keep errors picklable across process pools
        return (_rebuild, (type(self), self.message, self.faults, self.code, self.details))


def _rebuild(cls, message, faults, code, details):
    return cls(message, faults=faults, code=code, **details)


class InvalidInput(ConnectorError, ValueError):
    """The capability's input properties do not match its input schema."""

    code = "invalid_input"
    category = "input"


class InvalidConfig(ConnectorError, ValueError):
    """The connection config is invalid or misses a field the capability needs."""

    code = "invalid_config"
    category = "config"


class AuthenticationFailed(ConnectorError):
    """The service rejected the credentials (or the token could not be obtained)."""

    code = "authentication_failed"
    category = "auth"


class PermissionDenied(AuthenticationFailed):
    """The credentials are valid but not allowed to do this."""

    code = "permission_denied"


class NotFound(ConnectorError, LookupError):
    """The resource does not exist or is outside the credentials' scope."""

    code = "not_found"
    category = "not_found"


class Conflict(ConnectorError):
    """The request broke a rule of the service, such as a unique name."""

    code = "conflict"
    category = "conflict"


class RateLimited(ConnectorError):
    """The service is throttling; ``details['retry_after']`` says when to try again."""

    code = "rate_limited"
    category = "rate_limited"


class UpstreamError(ConnectorError):
    """The service answered with an error or with a body that cannot be read."""

    code = "upstream_error"
    category = "upstream"


class NetworkError(ConnectorError):
    """The service could not be reached or did not answer in time."""

    code = "network_error"
    category = "network"


class OutcomeUnknown(ConnectorError):
    """A write may or may not have taken effect; check before repeating it."""

    code = "outcome_unknown"
    category = "outcome_unknown"


class PluginError(ConnectorError):
    """A plugin broke its contract: it raised an unexpected exception or returned bad output."""

    code = "plugin_error"
    category = "plugin"
    plugin_traceback: str | None = None  # the plugin's own traceback, secrets redacted


class UnknownCapability(ConnectorError, KeyError):
    """No loaded plugin provides the requested capability."""

    code = "unknown_capability"
    category = "input"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class AmbiguousCapability(ConnectorError, KeyError):
    """A bare capability id that several loaded connectors provide; ``details['candidates']``
    lists the qualified ids (``<connector>.<capability>``) to choose from."""

    code = "ambiguous_capability"
    category = "input"

    def __str__(self) -> str:
        return self.message


class PluginRejected(UnknownCapability):
    """The capability or connector is installed but was rejected when plugins loaded;
    ``details['reason']`` says why (``connector plugins`` lists every rejected plugin)."""

    code = "plugin_rejected"
    category = "plugin"


class ManifestError(ConnectorError):
    """A manifest file is not valid JSON or does not match its meta-schema."""

    code = "invalid_manifest"
    category = "plugin"


class PluginLoadError(ConnectorError):
    """Strict mode: at least one plugin could not be loaded."""

    code = "plugin_load_failed"
    category = "plugin"
