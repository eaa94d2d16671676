"""What a connection config may make the framework do on the host that runs it.

An operator who writes their own configs trusts them: :class:`HostPolicy` ``()`` keeps
every feature. A host that runs configs its end users typed (a multi-tenant platform)
uses :meth:`HostPolicy.untrusted`, which refuses environment references and URL
overrides, limits egress to public addresses, ignores environment proxies and keeps less
of upstream answers in errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .errors import Fault, InvalidConfig
from .manifest import ConnectorManifest
from .validation import json_path


@attrs.frozen
class HostPolicy:
    """The limits a host puts on connection configs (see docs/operators.md, "Hosting untrusted configs").

    - ``allow_env``: ``{"$env": NAME}`` values read the host's environment.
    - ``allow_url_overrides``: config fields that replace an endpoint's or a token URL
      (``overrideField``, ``tokenUrlField``) may be used; otherwise only the hosts the
      connector manifest declares are contacted.
    - ``allow_loopback``: requests may go to loopback addresses (127.0.0.0/8, ::1).
    - ``allow_private``: requests may go to the other addresses that are not public
      (private, shared, "this network", link-local, unique-local, multicast, reserved,
      and the IPv4-mapped, NAT64 and 6to4 forms of any of them). When either is false,
      every address a host name resolves to is checked and the connection is made to the
      checked address (:mod:`connector_core.netguard`).
    - ``use_env_proxies``: ``HTTPS_PROXY``/``HTTP_PROXY`` from the environment are used
      (never for loopback hosts); off when egress is checked, since a proxy resolves names
      itself.
    - ``max_error_body``: characters of an upstream answer kept in error details.
    - ``resolver``: ``(host, port) -> [address, ...]`` for the egress checks (default: the
      system resolver); tests put names of their own here.

    Each field can be relaxed on its own, e.g. ``HostPolicy.untrusted(allow_loopback=True,
    allow_url_overrides=True)`` to run untrusted-style configs against a local sandbox.
    """

    allow_env: bool = True
    allow_url_overrides: bool = True
    allow_loopback: bool = True
    allow_private: bool = True
    use_env_proxies: bool = True
    max_error_body: int = 2000
    resolver: Callable[[str, int], list[str]] | None = attrs.field(default=None, repr=False)

    @classmethod
    def untrusted(cls, **relaxed: Any) -> HostPolicy:
        """The policy for configs end users supply; keyword arguments relax single fields."""
        strict = cls(
            allow_env=False,
            allow_url_overrides=False,
            allow_loopback=False,
            allow_private=False,
            use_env_proxies=False,
            max_error_body=200,
        )
        return attrs.evolve(strict, **relaxed)

    @property
    def checks_egress(self) -> bool:
        """Whether some addresses are refused (so names are resolved and checked before connecting)."""
        return not (self.allow_loopback and self.allow_private)

    @property
    def proxies(self) -> bool:
        """Whether environment proxies may be used (never while egress is checked)."""
        return self.use_env_proxies and not self.checks_egress

    def check_config(self, connector: ConnectorManifest, config: Mapping[str, Any]) -> None:
        """Refuse what this policy forbids in a raw config (before ``$env`` is resolved).

        Raises ``InvalidConfig`` with one fault per forbidden field; the faults never look
        at the environment, so they reveal neither a variable's value nor its existence.
        """
        found: list[Fault] = []
        if not self.allow_env:
            found += [Fault(path, "environment references ($env) are not accepted on this host; put the value itself here")
                      for path in _env_references(config)]
        if not self.allow_url_overrides:
            for field in sorted(url_override_fields(connector)):
                if field in config:
                    found.append(Fault(f"$.{field}", f"URL overrides are not accepted on this host; remove {field!r} "
                                       f"(the connector's own endpoints are used)"))
        if found:
            found.sort(key=lambda f: f.path)
            raise InvalidConfig(
                f"the config uses {len(found)} feature(s) this host does not allow ({', '.join(f.path for f in found)})",
                faults=found,
            )


def url_override_fields(connector: ConnectorManifest) -> set[str]:
    """Config fields of ``connector`` that replace a declared URL."""
    fields = {e.override_field for e in connector.endpoints.values() if e.override_field}
    fields |= {spec["tokenUrlField"] for spec in connector.auth.values() if spec.get("tokenUrlField")}
    return fields


def _env_references(config: Any) -> list[str]:
    """JSON paths of every object in ``config`` that has a ``$env`` key (iterative: depth is unchecked here)."""
    paths = []
    stack: list[tuple[Any, tuple]] = [(config, ())]
    while stack:
        value, parts = stack.pop()
        if isinstance(value, Mapping):
            if "$env" in value:
                paths.append(json_path(parts))
                continue
            stack.extend((v, parts + (k,)) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, parts + (i,)) for i, v in enumerate(value))
    return paths
