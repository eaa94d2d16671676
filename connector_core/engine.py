"""The engine hosts call: validated, routed, typed execution of one capability.

``Engine.execute(capability_id, properties, config)`` validates the config against the
connector manifest (only the fields this capability needs are required), the properties
against the capability's input schema, calls exactly that capability's ``execute`` hook
(wrapper hooks of extension plugins included), validates the output and returns a frozen
``Result``. ``Engine.connect(config)`` opens a ``Connection`` that many calls and threads
share; its ``HttpLayer`` holds one ``requests.Session`` (connection pool) and one token cache.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs
import pluggy
import requests
import requests.adapters
import requests.utils

from .config import resolve_env
from .errors import ConnectorError, Fault, InvalidConfig, InvalidInput, PluginError, PluginRejected, UnknownCapability
from .http import Attempt, CallStats, HttpClient, HttpLayer, RetryPolicy, new_session, not_a_choice
from .manifest import CapabilityManifest, ConnectorManifest
from .policy import HostPolicy
from .redact import MIN_SECRET_LENGTH, Redactor
from .registry import Registry, build_registry, get_plugin_manager, load_entry_points
from .tokens import TokenCache
from .validation import MAX_DEPTH, data_faults, faults

log = logging.getLogger("connector_core.engine")


@attrs.frozen
class Result:
    """The output of one capability call and facts about the call."""

    capability: str
    output: Any
    duration_ms: float
    http_requests: int
    retries: int
    connector: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "capability": self.capability,
            "connector": self.connector,
            "output": self.output,
            "meta": {"duration_ms": round(self.duration_ms, 3), "http_requests": self.http_requests, "retries": self.retries},
        }


@attrs.frozen
class Context:
    """What a capability's ``execute`` hook gets besides its properties."""

    capability: CapabilityManifest
    connector: ConnectorManifest
    config: Mapping[str, Any] = attrs.field(repr=False)
    log: logging.LoggerAdapter = attrs.field(repr=False)
    connection: Connection = attrs.field(repr=False)
    stats: CallStats = attrs.field(repr=False, factory=CallStats)
    _input_data_check: Callable[[], None] | None = attrs.field(repr=False, default=None, alias="input_data_check")

    def check_input_data(self) -> None:
        """The JSON-data check the engine left to the capability, made now: raises the
        ``InvalidInput`` the engine raises for input that is not JSON data (``data_faults``
        of all the properties, worded and redacted as the engine words them), else returns.

        For a capability whose manifest lists properties under ``checksInputData``: the
        engine checked the other properties before the call, and the capability must call
        this before it uses a listed property its own pass could not vouch for (a no-op for
        any other capability, whose input the engine checked whole)."""
        if self._input_data_check is not None:
            self._input_data_check()

    def http(self, endpoint: str) -> HttpClient:
        """A client for one of the connector's endpoints, with its auth, timeouts and retries."""
        return self.connection.client(endpoint, retry_safe=self.capability.retry_safe, stats=self.stats)

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every HTTP attempt of this call so far, in order, with its outcome
        (``not_executed``, ``unknown`` or ``executed``); token requests are marked ``credentials``."""
        return tuple(self.stats.attempts)


class _RedactingAdapter(logging.LoggerAdapter):
    """``ctx.log``: formats each record itself (arguments, traceback, stack) and redacts the whole text.

    Handlers then receive a finished, redacted message and no exception to format again.
    """

    def __init__(self, logger: logging.Logger, redactor: Redactor, capability: str) -> None:
        super().__init__(logger, {"capability": capability})
        self._redact = redactor

    def log(self, level, msg, *args, exc_info=None, stack_info=False, stacklevel=1, extra=None, **kwargs):
        if not self.isEnabledFor(level):
            return
        text = str(msg)
        if args:
            try:
                text = text % args
            except (TypeError, ValueError, KeyError):
                text = f"{text} {args!r}"
        if exc_info:
            if isinstance(exc_info, BaseException):
                exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
            elif not isinstance(exc_info, tuple):
                exc_info = sys.exc_info()
            if exc_info[0] is not None:
                text += "\n" + "".join(traceback.format_exception(*exc_info)).rstrip()
        if stack_info:
            text += "\nStack (most recent call last):\n" + "".join(traceback.format_stack()[:-1]).rstrip()
        self.logger.log(level, self._redact.text(text), extra={**(extra or {}), **self.extra}, stacklevel=stacklevel + 1)


def _input_error(capability_id: str, found: list[Fault], redact: Redactor) -> ConnectorError:
    """The error for input that is not JSON data or breaks the input schema."""
    return _redacted(InvalidInput(f"invalid input for {capability_id} ({len(found)} problem(s))", faults=found), redact)


def _redacted(error: ConnectorError, redact: Redactor, max_body: int | None = None) -> ConnectorError:
    """A copy of ``error`` with secrets masked, an upstream ``body`` cut to ``max_body``
    characters, and no ``__cause__``/``__context__`` chain.

    Raise it outside any ``except`` block, or Python chains the original back on.
    """
    details = redact(dict(error.details))
    body = details.get("body")
    if max_body is not None and isinstance(body, str) and len(body) > max_body:
        details["body"] = body[:max_body] + "..."
    clone = error.copy(
        redact(error.message),
        faults=[Fault(f.path, redact(f.message)) for f in error.faults],
        **details,
    )
    if isinstance(error, PluginError) and error.plugin_traceback is not None:
        clone.plugin_traceback = redact(error.plugin_traceback)
    clone.__cause__ = clone.__context__ = None
    clone.__suppress_context__ = True
    return clone


def _short_secrets(connector: ConnectorManifest, config: Mapping[str, Any]) -> list[Fault]:
    """Faults for secret fields too short to redact without garbling messages (a rule of the core)."""
    return [
        Fault(f"$.{field}", f"is too short for a secret: use at least {MIN_SECRET_LENGTH} characters")
        for field in sorted(connector.secret_fields)
        if config.get(field) not in (None, "") and len(str(config[field])) < MIN_SECRET_LENGTH
    ]


def _prepare_config(connector: ConnectorManifest, config: Any, host_policy: HostPolicy) -> dict[str, Any]:
    """The host policy's checks, JSON-data checks and ``$env`` resolution, in that order."""
    if not isinstance(config, Mapping):
        raise InvalidConfig("the connection config must be a JSON object", faults=[Fault("$", "must be an object")])
    config = dict(config)
    found = data_faults(config)
    if found:
        # A broken value may be a secret: show where, not what.
        raise InvalidConfig(f"the config for connector {connector.id!r} is not valid JSON data", faults=found)
    host_policy.check_config(connector, config)
    return resolve_env(config)


class Connection:
    """A validated config of one connector, with its HTTP layer (session, auth, token cache).

    Thread-safe: any number of threads may call :meth:`execute` at once.
    """

    def __init__(
        self,
        registry: Registry,
        connector: ConnectorManifest,
        config: Mapping[str, Any],
        *,
        allow: Iterable[str] | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        policy: RetryPolicy | None = None,
        host_policy: HostPolicy | None = None,
        redactor: Redactor | None = None,
        tokens: TokenCache | None = None,
    ) -> None:
        self.registry = registry
        self.connector = connector
        self.host_policy = host_policy or HostPolicy()
        config = _prepare_config(connector, config, self.host_policy)
        self._redact = Redactor((str(config[f]) for f in connector.secret_fields if config.get(f)), parent=redactor)
        found = faults(connector.config_validator, config)
        faulty = {f.path for f in found}
        found = sorted(found + [f for f in _short_secrets(connector, config) if f.path not in faulty], key=lambda f: f.path)
        if found:
            raise _redacted(InvalidConfig(f"invalid config for connector {connector.id!r}", faults=found), self._redact)
        self.config: Mapping[str, Any] = MappingProxyType(config)
        self.allow = frozenset(allow) if allow is not None else None
        try:
            self.http = HttpLayer(
                connector, self.config, redactor=self._redact, session=session, sleep=sleep, clock=clock, policy=policy,
                host_policy=self.host_policy, tokens=tokens,
            )
        except ConnectorError as exc:
            raise _redacted(exc, self._redact) from None

    _new_session = staticmethod(new_session)

    @property
    def session(self) -> requests.Session:
        """The connection's pooled ``requests.Session`` (owned by :attr:`http`)."""
        return self.http.session

    def __repr__(self) -> str:
        return f"Connection(connector={self.connector.id!r})"

    def _capability(self, capability_id: str):
        try:
            return self.registry.get(capability_id, connector=self.connector.id)
        except UnknownCapability as exc:
            if isinstance(exc, PluginRejected):
                raise
            try:
                other = self.registry.get(capability_id)
            except KeyError:
                raise exc from None
            raise InvalidConfig(
                f"capability {capability_id!r} belongs to connector {other.connector.id!r}, "
                f"but this connection is for {self.connector.id!r}"
            ) from None

    @property
    def redact(self) -> Redactor:
        """The redactor that knows this connection's secrets (config fields, tokens, Basic credentials)."""
        return self._redact

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def base_url(self, name: str) -> str:
        """The base URL of endpoint ``name`` (see :meth:`HttpLayer.base_url`)."""
        return self.http.base_url(name)

    def _check_selectors(self, manifest: CapabilityManifest) -> None:
        """A config field that picks an endpoint's URL (a data-centre pod, say) and that the
        capability requires must be one of its values, even when an override URL is set.
        It is checked only here, when such a capability runs: the others ignore it."""
        for name in manifest.endpoints:
            selector = self.connector.endpoints[name].base_url_by_config if name in self.connector.endpoints else None
            if selector and selector[0] in manifest.required_config:
                field, values = selector
                if str(self.config.get(field)).lower() not in values:
                    raise not_a_choice(field, self.config.get(field), values, name)

    def auth(self, name: str | None) -> Any:
        """The credentials of auth entry ``name`` (see :meth:`HttpLayer.auth`)."""
        return self.http.auth(name)

    def client(self, endpoint: str, *, retry_safe: bool, stats: CallStats | None = None) -> HttpClient:
        """An ``HttpClient`` for ``endpoint`` (see :meth:`Context.http`)."""
        return self.http.client(endpoint, retry_safe=retry_safe, stats=stats)

    # -- execution -------------------------------------------------------------------

    def _check_input_data(self, capability_id: str, properties: Any) -> None:
        """``Context.check_input_data``: the engine's JSON-data check of the whole input."""
        found = data_faults(properties)
        if found:
            raise _input_error(capability_id, found, self._redact)

    def execute(self, capability_id: str, properties: Any) -> Result:
        """Run one capability on this connection; return a ``Result`` or raise a typed error.

        ``capability_id`` is qualified (``acme.getUser``) or bare (``getUser``,
        looked up among this connection's connector).
        """
        capability = self._capability(capability_id)
        manifest = capability.manifest
        capability_id = manifest.id  # messages, logs and the result name the capability as its manifest does
        if self.allow is not None and manifest.id not in self.allow and manifest.qualified_id not in self.allow:
            raise InvalidConfig(
                f"this connection does not allow capability {capability_id!r}; allowed: {', '.join(sorted(self.allow)) or 'none'}",
                code="capability_not_allowed",
            )
        missing = [f for f in manifest.required_config if self.config.get(f) in (None, "")]
        if missing:
            raise InvalidConfig(
                f"{capability_id} needs config field(s) {', '.join(missing)}",
                faults=[Fault(f"$.{f}", f"is required by {capability_id}") for f in missing],
            )
        self._check_selectors(manifest)
        deferred = manifest.checks_input_data
        data_check = None
        if deferred and type(properties) is dict and any(name in properties for name in deferred):
            # The capability checks these properties as JSON data in its own pass over them
            # (``checksInputData``): check the rest now. Whenever a fault is found, the whole
            # input is checked, so the answer is the one a check of everything gives.
            found = data_faults({k: v for k, v in properties.items() if k not in deferred})
            if not found:
                try:
                    found = manifest.input_faults(properties)
                except Exception:  # the schema looked into a listed property that is not JSON data
                    found = data_faults(properties)
                    if not found:
                        raise
            if found:
                found = data_faults(properties) or found
            data_check = functools.partial(self._check_input_data, capability_id, properties)
        else:
            found = data_faults(properties) or manifest.input_faults(properties)
        if found:
            raise _input_error(capability_id, found, self._redact)
        ctx = Context(
            capability=manifest,
            connector=self.connector,
            config=self.config,
            log=_RedactingAdapter(logging.getLogger(f"connector_core.capability.{capability_id}"), self._redact, capability_id),
            connection=self,
            stats=CallStats(deadline=time.monotonic() + self.http.deadline_seconds),
            input_data_check=data_check,
        )
        started = time.perf_counter()
        error: ConnectorError | None = None
        try:
            output = capability.caller(ctx=ctx, properties=properties)
        except ConnectorError as exc:
            error = _redacted(exc, self._redact, self.host_policy.max_error_body)
        except Exception as exc:  # a bug in a plugin must reach the host as a typed error
            error = PluginError(
                f"capability {capability_id!r} failed with {type(exc).__name__}: {self._redact(str(exc))}; "
                "this is a bug in the plugin, please report it",
                capability=capability_id,
                exception=type(exc).__name__,
            )
            error.plugin_traceback = self._redact("".join(traceback.format_exception(exc)))
            error.__suppress_context__ = True
        if error is not None:
            # Raised here, outside the except blocks, so no unredacted original is chained on.
            raise error
        duration = (time.perf_counter() - started) * 1000
        # Deep or non-JSON output is the plugin's fault; odd text a service answered is passed on.
        found = data_faults(output, max_depth=4 * MAX_DEPTH, unicode=False) or manifest.output_faults(output)
        if found:
            raise PluginError(
                f"capability {capability_id!r} returned output that does not match its output schema; "
                "this is a bug in the plugin, please report it",
                code="invalid_output",
                faults=[Fault(f.path, self._redact(f.message)) for f in found],
                capability=capability_id,
            )
        log.info("%s done in %.1f ms (%d HTTP request(s), %d retries)", capability_id, duration, ctx.stats.requests, ctx.stats.retries)
        return Result(capability_id, self._redact(output), duration, ctx.stats.requests, ctx.stats.retries, manifest.connector)


class Engine:
    """Loads plugins once and runs capabilities.

    ``pm``: a plugin manager with plugins already registered (tests pass one in); by
    default one is made and filled from the ``connector_core`` entry points (restricted by
    ``only`` or ``CONNECTOR_CORE_LOAD_PLUGINS``). ``strict`` turns any rejected plugin
    into a ``PluginLoadError``. ``owners`` pins which distribution owns a connector that
    several declare (``{"acme": "acme-connector"}``; also
    ``CONNECTOR_CORE_OWNERS``). Connections opened by :meth:`execute` are cached by config
    and host policy (at most ``max_connections``), so repeated calls reuse pools and tokens.

    ``host_policy`` (default ``HostPolicy()``, trusting configs) limits what configs may
    do; ``HostPolicy.untrusted()`` is for configs end users supply. :meth:`connect` and
    :meth:`execute` take a ``host_policy`` that replaces it for one config. ``redactor``,
    when given, learns the secrets of every connection opened (the CLI redacts all it
    prints with it).
    """

    def __init__(
        self,
        pm: pluggy.PluginManager | None = None,
        *,
        strict: bool | None = None,
        only: Iterable[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        session_factory: Callable[[], requests.Session] | None = None,
        max_connections: int = 16,
        owners: Mapping[str, str] | None = None,
        host_policy: HostPolicy | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        rejected = []
        if pm is None:
            pm = get_plugin_manager()
            rejected = load_entry_points(pm, only=only)
        self.pm = pm
        self.registry = build_registry(pm, rejected, strict=strict, owners=owners)
        self._sleep = sleep
        # Tokens by credential, shared by every connection of this engine: a tenant's token
        # outlives its connection in the (small) connection cache.
        self.tokens = TokenCache()
        self._clock = clock
        self._session_factory = session_factory
        self._max_connections = max_connections
        self.host_policy = host_policy or HostPolicy()
        self._redactor = redactor
        self._connections: collections.OrderedDict[tuple[str, HostPolicy], Connection] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Engine({len(self.registry.capabilities)} capabilities)"

    @property
    def capabilities(self) -> Mapping[str, Any]:
        return self.registry.capabilities

    def connect(
        self,
        config: Mapping[str, Any],
        *,
        connector: str | None = None,
        allow: Iterable[str] | None = None,
        host_policy: HostPolicy | None = None,
    ) -> Connection:
        """Open a connection (validated config, HTTP session, token cache) for many calls.

        ``connector`` may be left out while it is unambiguous: when one connector is loaded,
        or when the config fits the config schema of exactly one of them. ``host_policy``
        replaces the engine's policy for this config.
        """
        host_policy = host_policy or self.host_policy
        if connector is None:
            connector = self._connector_for(config, host_policy)
        return Connection(
            self.registry,
            self.registry.connector(connector),
            config,
            allow=allow,
            session=self._session_factory() if self._session_factory else None,
            sleep=self._sleep,
            clock=self._clock,
            host_policy=host_policy,
            redactor=self._redactor,
            tokens=self.tokens,
        )

    def _connector_for(self, config: Mapping[str, Any], host_policy: HostPolicy) -> str:
        connectors = self.registry.connectors
        refused = sorted({r.id for r in self.registry.rejected if r.kind == "connector" and r.id} - set(connectors))
        if len(connectors) == 1 and not refused:
            return next(iter(connectors))
        detail = f"; refused: {', '.join(refused)} (see `connector plugins`)" if refused else ""
        if not connectors:
            raise InvalidConfig(f"no connector is loaded{detail}")
        fits = []
        if isinstance(config, Mapping):
            # A policy that refuses $env must not read the environment even to pick a connector.
            resolved = resolve_env(dict(config)) if host_policy.allow_env else dict(config)
            fits = [cid for cid, manifest in connectors.items() if manifest.config_validator.is_valid(resolved)]
        if len(fits) == 1:
            return fits[0]
        how = "fits none of their config schemas" if not fits else f"fits several ({', '.join(fits)})"
        raise InvalidConfig(
            f"{len(connectors)} connector(s) loaded ({', '.join(connectors)}) and the config {how}; "
            f"name one with connector= (CLI: --connector){detail}",
            connectors=list(connectors),
        )

    def execute(
        self, capability_id: str, properties: Any, config: Mapping[str, Any], *, host_policy: HostPolicy | None = None
    ) -> Result:
        """Run one capability with ``config``; reuses a cached connection for the same config and policy.

        ``capability_id`` is qualified (``acme.getUser``) or a bare id that exactly
        one loaded connector provides.
        """
        capability = self.registry.get(capability_id)
        return self._cached(capability.connector.id, config, host_policy or self.host_policy).execute(capability.id, properties)

    def _cached(self, connector: str, config: Mapping[str, Any], host_policy: HostPolicy) -> Connection:
        # The policy judges the raw config before $env is resolved or the cache is consulted,
        # and is part of the key: a config accepted under one policy is never reused under another.
        config = _prepare_config(self.registry.connector(connector), config, host_policy)
        digest = hashlib.sha256(json.dumps([connector, config], sort_keys=True).encode("utf-8")).hexdigest()
        key = (digest, host_policy)
        with self._lock:
            connection = self._connections.get(key)
            if connection is not None:
                self._connections.move_to_end(key)
                return connection
        opened = self.connect(config, connector=connector, host_policy=host_policy)
        evicted: list[Connection] = []
        with self._lock:
            connection = self._connections.setdefault(key, opened)
            while len(self._connections) > self._max_connections:
                evicted.append(self._connections.popitem(last=False)[1])
        if connection is not opened:  # another thread opened the same one first
            evicted.append(opened)
        # The least recently used connection goes: its pooled sockets are closed, not leaked.
        for stale in evicted:
            stale.close()
        return connection

    def close(self) -> None:
        """Close every cached connection and forget the cached tokens."""
        with self._lock:
            connections, self._connections = list(self._connections.values()), collections.OrderedDict()
        self.tokens.clear()
        for connection in connections:
            connection.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
