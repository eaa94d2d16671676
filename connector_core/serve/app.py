"""The ASGI application of ``connector serve`` (Starlette routing, uvicorn serving).

Imported only when the service runs, so the core works without the ``serve`` extra.
Every request passes :class:`Guard` first: correlation id, ``Host`` and ``Origin``
checks, the API key, the media type and the body size. Capability calls block, so they
run in a thread pool of their own (``threads``) on connections shared by every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hmac
import logging
import re
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from importlib import resources
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from ..config import ConnectionSpec
from ..engine import Connection, Engine
from ..errors import ConnectorError, Fault, InvalidConfig, UnknownCapability
from ..policy import HostPolicy
from ..registry import Capability
from .commands import document
from .openapi import (
    capabilities_by_qualified_id,
    describe_capability,
    describe_connector,
    status_for,
    summarize_capability,
)
from .pool import CallPool

access_log = logging.getLogger("connector_core.serve.access")
log = logging.getLogger("connector_core.serve")

CORRELATION_HEADER = "x-correlation-id"
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")



class CorrelationFilter(logging.Filter):
    """Gives every log record the correlation id of the request it was made in."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id.get()
        return True

_CONSOLE_FILES = {"/": ("index.html", "text/html; charset=utf-8"), "/console.js": ("console.js", "text/javascript; charset=utf-8"),
                  "/console.css": ("console.css", "text/css; charset=utf-8")}
_CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


class RequestRefused(ConnectorError):
    """The service refused the HTTP request itself (before any capability ran)."""

    code = "invalid_request"
    category = "request"


class Unavailable(ConnectorError):
    code = "not_ready"
    category = "unavailable"


def key_fingerprint(key: str) -> str:
    """A short, non-reversible name for an API key, for the access log."""
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()[:8]


def _dumps(data: Any) -> bytes:
    try:
        return orjson.dumps(data)
    except TypeError:  # integers beyond 64 bits and the like: the standard library copes
        import json

        return json.dumps(data, ensure_ascii=False, default=str).encode()


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(_dumps(data), status_code=status, media_type="application/json", headers=dict(headers or {}))


def error_response(error: ConnectorError) -> Response:
    body = error.to_dict()
    body["correlation_id"] = correlation_id.get()
    headers = {}
    if error.category == "rate_limited" and error.details.get("retry_after") is not None:
        headers["Retry-After"] = str(max(0, int(float(error.details["retry_after"]) + 0.999)))
    if error.code == "unauthorized":
        headers["WWW-Authenticate"] = 'Bearer realm="connector"'
    return json_response(status_for(error), body, headers)


class Service:
    """What the routes share: the engine, the named connections, the thread pool and the keys.

    Named connections are opened (configs validated, ``$env`` resolved) when the service is
    built, so an operator's mistake stops the start instead of failing calls later.
    """

    def __init__(
        self,
        engine: Engine,
        connections: Mapping[str, ConnectionSpec] = {},
        *,
        api_keys: Iterable[str] = (),
        allowed_hosts: Iterable[str] | None = None,
        max_body_bytes: int = 4 * 1024 * 1024,
        threads: int = 32,
        caller_policy: HostPolicy | None = None,
        access_lines: Callable[[str, str, int, float, str, str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.registry = engine.registry
        self.capabilities: dict[str, Capability] = capabilities_by_qualified_id(engine.registry)
        self.api_keys = tuple(api_keys)
        self.allowed_hosts = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
        self.max_body_bytes = max_body_bytes
        self.threads = threads
        self.caller_policy = caller_policy
        # Writes the access line itself (method, path, status, ms, key, correlation id) when the
        # command owns the logging; otherwise the line is a record of the access logger.
        self.access_lines = access_lines
        self.pool: CallPool | None = None  # made at start-up (lifespan)
        self.ready = False
        self.specs = dict(connections)
        self.connections: dict[str, Connection] = {}
        try:
            for name, spec in sorted(self.specs.items()):
                self.connections[name] = self._open(spec)
        except BaseException:
            self.close()
            raise
        self._document: bytes | None = None

    def _open(self, spec: ConnectionSpec) -> Connection:
        try:
            return self.engine.connect(spec.config, connector=spec.connector, allow=spec.capabilities)
        except ConnectorError as exc:
            raise exc.copy(f"connection {spec.name!r}: {exc.message}", connection=spec.name) from None

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()
        self.connections.clear()

    @property
    def document(self) -> bytes:
        if self._document is None:
            self._document = _dumps(document(self.engine, self.specs, caller_configs=self.caller_policy is not None))
        return self._document

    def capability(self, qid: str) -> Capability:
        """The capability of a qualified id, or of a bare id while one connector provides it."""
        found = self.capabilities.get(qid)
        if found is not None:
            return found
        try:
            return self.registry.get(qid)
        except UnknownCapability as exc:
            raise exc.copy(exc.message.replace("`connector plugins`", "GET /v1/capabilities")) from None

    def connection(self, name: Any) -> Connection:
        if not isinstance(name, str) or name not in self.connections:
            known = ", ".join(sorted(self.connections)) or "none (start the service with --connections)"
            raise InvalidConfig(f"no connection named {name!r}; known: {known}", code="unknown_connection",
                                faults=[Fault("$.connection", "is not a named connection of this service")])
        return self.connections[name]

    def execute_with_config(self, capability: Capability, properties: Any, config: Any) -> Any:
        """Run a capability on a config the caller sent, under the caller policy (untrusted)."""
        if self.caller_policy is None:
            raise InvalidConfig(
                "this service runs only the operator's named connections; send {\"connection\": NAME} "
                "(see GET /v1/connections)",
                code="caller_config_refused",
                faults=[Fault("$.config", "configs sent by callers are not accepted here")],
            )
        return self.engine.execute(capability.id, properties, config, host_policy=self.caller_policy)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking ``fn(*args)`` in the pool, with this request's context (correlation id)."""
        # The worker hands the outcome straight to the loop: no concurrent Future chained to
        # an asyncio one (run_in_executor), about a third of the loop's cost per call; waking
        # the loop is the job's last act (see CallPool).
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        context = contextvars.copy_context()

        def job() -> None:
            try:
                result = context.run(fn, *args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

        assert self.pool is not None, "the service runs calls only between start-up and shut-down"
        self.pool.submit(job)
        return await future

    def authorized(self, header: str | None) -> str | None:
        """The fingerprint of the key in an ``Authorization`` header, or None."""
        if not header or not header[:7].lower() == "bearer ":
            return None
        offered = header[7:].strip().encode()
        found = None
        for key in self.api_keys:  # compare with every key, so timing tells nothing
            if hmac.compare_digest(offered, key.encode()):
                found = key
        return key_fingerprint(found) if found else None


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the request went away; the call's outcome has nobody to go to
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# -- the guard -----------------------------------------------------------------------


class _BodyTooLarge(RequestRefused):
    code = "body_too_large"


# The request headers the guard reads; the first of each counts, as everywhere else here.
_GUARDED_HEADERS = frozenset((b"x-correlation-id", b"host", b"origin", b"sec-fetch-site", b"authorization",
                              b"content-type", b"content-length", b"transfer-encoding"))


def _guarded_headers(scope: Mapping[str, Any]) -> dict[bytes, str]:
    """The headers of :data:`_GUARDED_HEADERS` in the request, read in one pass."""
    found: dict[bytes, str] = {}
    for key, value in scope["headers"]:
        if key in _GUARDED_HEADERS and key not in found:
            found[key] = value.decode("latin-1")
    return found


def _host_name(host: str) -> str:
    """The name in a Host header or an origin's authority, without port and brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _log_access(method: str | None, path: str, status: int, milliseconds: float, key: str) -> None:
    """The access line as a record of the access logger (when the command does not own the logging)."""
    # makeRecord + handle: Logger.info would also walk the stack for a caller nobody logs.
    access_log.handle(access_log.makeRecord(
        access_log.name, logging.INFO, __file__, 0, "%s %s %d %.1fms key=%s", (method, path, status, milliseconds, key),
        None, extra={"http_method": method, "http_path": path, "http_status": status, "api_key": key},
    ))


# What the guard adds to every answer besides the correlation id (no-store unless the route chose).
_HEADERS = ((b"x-content-type-options", b"nosniff"),)
_HEADERS_NO_STORE = (*_HEADERS, (b"cache-control", b"no-store"))


# The hot path's route, as Starlette compiles "/v1/capabilities/{id}/execute".
_EXECUTE_PATH = re.compile(r"/v1/capabilities/([^/]+)/execute")


class Guard:
    """Pure ASGI middleware: the checks every request passes, the access log, the headers.

    A ``POST`` to the execute route goes from here straight to ``execute`` (the hot path,
    after the same checks); every other request goes through ``app``'s routing.
    """

    def __init__(self, app: Any, service: Service, execute: Callable | None = None) -> None:
        self.app = app
        self.service = service
        self.execute = execute

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = _guarded_headers(scope)
        offered = headers.get(b"x-correlation-id")
        token = correlation_id.set(offered if offered and _CORRELATION_ID.fullmatch(offered) else os.urandom(16).hex())
        status = 500
        key = "-"

        async def send_with_headers(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                cached = any(name == b"cache-control" for name, _ in headers)
                headers += (b"x-correlation-id", correlation_id.get().encode()), *(_HEADERS if cached else _HEADERS_NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        try:
            try:
                if offered is not None and offered != correlation_id.get():
                    raise RequestRefused(
                        "X-Correlation-ID must be 1 to 128 of the characters A-Z a-z 0-9 . _ : -",
                        faults=[Fault("X-Correlation-ID", "1 to 128 of A-Z a-z 0-9 . _ : -")],
                    )
                self._check_host_and_origin(headers)
                if scope["path"].startswith("/v1/") and self.service.api_keys:
                    fingerprint = self.service.authorized(headers.get(b"authorization"))
                    if fingerprint is None:
                        raise RequestRefused("a valid API key is required: send Authorization: Bearer <key>", code="unauthorized")
                    key = fingerprint
                if scope["method"] == "POST":
                    receive = self._check_body(headers, receive)
            except ConnectorError as exc:
                await error_response(exc)(scope, receive, send_with_headers)
                return
            if self.execute is not None and scope["method"] == "POST":
                execute = _EXECUTE_PATH.fullmatch(scope["path"])
                if execute is not None:
                    scope["path_params"] = {"id": execute[1]}
                    await self.execute(scope, receive, send_with_headers)
                    return
            await self.app(scope, receive, send_with_headers)
        finally:
            # The line is written in the loop's next turn: uvloop sends the answer at the end of
            # this one, so the caller does not wait for the line (the callback runs in a copy of
            # this context: the record's correlation id is this request's).
            elapsed = (time.perf_counter() - started) * 1000
            lines = self.service.access_lines
            if lines is not None:
                asyncio.get_running_loop().call_soon(lines, scope["method"], scope["path"], status, elapsed, key,
                                                     correlation_id.get())
            elif access_log.isEnabledFor(logging.INFO):
                asyncio.get_running_loop().call_soon(_log_access, scope.get("method"), scope.get("path", ""), status,
                                                     elapsed, key)
            correlation_id.reset(token)

    def _check_host_and_origin(self, headers: Mapping[bytes, str]) -> None:
        host = headers.get(b"host")
        allowed = self.service.allowed_hosts
        if allowed is not None and (host is None or _host_name(host) not in allowed):
            raise RequestRefused(
                f"this service does not answer for host {host!r} (a DNS-rebinding guard); "
                "the operator may add it with --allow-host",
                code="misdirected_host",
            )
        origin = headers.get(b"origin")
        # Browsers send Origin on cross-origin requests and on POSTs: only the service's own
        # pages (the console) may drive it. Sec-Fetch-Site catches the rest.
        if origin is not None and (host is None or origin.lower() not in (f"http://{host}".lower(), f"https://{host}".lower())):
            raise RequestRefused(f"cross-origin requests are refused (Origin {origin!r})", code="origin_refused")
        site = headers.get(b"sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise RequestRefused(f"cross-site requests are refused (Sec-Fetch-Site {site!r})", code="origin_refused")

    def _check_body(self, headers: Mapping[bytes, str], receive: Callable) -> Callable:
        content_type = headers.get(b"content-type")
        length = headers.get(b"content-length")
        if content_type is None and length in (None, "0") and headers.get(b"transfer-encoding") is None:
            return receive  # a POST without a body (check) carries nothing a page could forge
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            raise RequestRefused(
                f"the body must be application/json (got {media or 'no Content-Type'})", code="unsupported_media_type"
            )
        limit = self.service.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise _BodyTooLarge(f"the body is {length} bytes; this service accepts at most {limit}", limit=limit)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge(f"the body is over {limit} bytes, the most this service accepts", limit=limit)
            return message

        return counted


# -- routes --------------------------------------------------------------------------


Endpoint = Callable[[Request, Service], Awaitable[Response]]


def _internal_error(exc: Exception, path: str) -> ConnectorError:
    log.error("unexpected error in %s", path, exc_info=exc)
    return ConnectorError(f"the service failed unexpectedly ({type(exc).__name__}); see its log", code="internal_error")
# Routes take every method and answer a wrong one with the JSON error (Starlette would send text).
_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _route(path: str, endpoint: Endpoint, service: Service, methods: list[str]) -> Route:
    allowed = set(methods) | ({"HEAD"} if "GET" in methods else set())

    @functools.wraps(endpoint)
    async def handle(request: Request) -> Response:
        try:
            if request.method not in allowed:
                raise RequestRefused(f"{request.method} is not allowed on {path}; use {' or '.join(methods)}",
                                     code="method_not_allowed")
            return await endpoint(request, service)
        except ConnectorError as exc:
            return error_response(exc)
        except Exception as exc:  # a bug in the service: one JSON error, the details in the log
            return error_response(_internal_error(exc, path))

    return Route(path, handle, methods=_ANY_METHOD)


def _parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestRefused(f"the body is not valid JSON: {exc}", code="invalid_json", faults=[Fault("$", str(exc))]) from None
    if not isinstance(body, dict):
        raise RequestRefused("the body must be a JSON object", faults=[Fault("$", "must be an object")])
    return body


def _execute_args(body: dict[str, Any]) -> tuple[Any, str]:
    if len(body) == 2 and "properties" in body:  # the usual bodies, settled without building the faults
        if "connection" in body:
            return body["properties"], "connection"
        if "config" in body:
            return body["properties"], "config"
    extra = sorted(set(body) - {"properties", "connection", "config"})
    faults = [Fault(f"$.{k}", "is not a known field (properties, connection, config)") for k in extra]
    if "properties" not in body:
        faults.append(Fault("$.properties", "is required (the capability's input; {} when it takes none)"))
    has = [k for k in ("connection", "config") if k in body]
    if len(has) != 1:
        faults.append(Fault("$", "needs exactly one of connection (a name) or config (an object)"))
    if faults:
        raise RequestRefused('the body must be {"properties": {...}, "connection": NAME} or {"properties": {...}, "config": {...}}',
                             faults=faults)
    return body["properties"], has[0]


class _Execute:
    """``POST /v1/capabilities/{id}/execute`` as a bare ASGI endpoint.

    The hot path: it reads the body and answers without Starlette's request, response and
    exception-handling layers, which cost the event loop as much as the rest of a call.
    Answers and errors are the same as the other routes'.
    """

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        try:
            if scope["method"] != "POST":
                raise RequestRefused(f"{scope['method']} is not allowed on /v1/capabilities/{{id}}/execute; use POST",
                                     code="method_not_allowed")
            raw = b""
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # nobody is left to answer
                raw += message.get("body", b"")
                if not message.get("more_body", False):
                    break
            payload = await self.execute(scope["path_params"]["id"], raw)
        except ConnectorError as exc:
            await error_response(exc)(scope, receive, send)
            return
        except Exception as exc:  # a bug in the service: one JSON error, the details in the log
            await error_response(_internal_error(exc, scope["path"]))(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(payload)).encode()), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    async def execute(self, qid: str, raw: bytes) -> bytes:
        """The JSON of the call's ``Result``, made in the worker thread with the call."""
        service = self.service
        capability = service.capability(qid)
        body = _parse_body(raw)
        properties, via = _execute_args(body)
        if via == "connection":
            connection = service.connection(body["connection"])
            return await service.run(_result_json, connection.execute, capability.id, properties)
        return await service.run(_result_json, service.execute_with_config, capability, properties, body["config"])


def _result_json(execute: Callable[..., Any], *args: Any) -> bytes:
    return _dumps(execute(*args).to_dict())


async def check(request: Request, service: Service) -> Response:
    from ..cli import connection_report

    name = request.path_params["name"]
    connection = service.connection(name)
    report, _ = await service.run(connection_report, service.engine, connection, False)
    report = {"connection": name, **report}
    report["ready"] = any(c["ready"] for c in report["capabilities"].values()) and all(
        c.get("ok") is not False for c in report["credentials"].values())
    return json_response(200, report)


async def list_connectors(request: Request, service: Service) -> Response:
    return json_response(200, [describe_connector(service.registry, c) for c in sorted(service.registry.connectors)])


async def list_capabilities(request: Request, service: Service) -> Response:
    return json_response(200, [summarize_capability(c) for c in service.capabilities.values()])


async def get_capability(request: Request, service: Service) -> Response:
    return json_response(200, describe_capability(service.capability(request.path_params["id"])))


async def list_connections(request: Request, service: Service) -> Response:
    return json_response(200, [
        {"name": name, "connector": connection.connector.id, "description": service.specs[name].description,
         "capabilities": sorted(connection.allow) if connection.allow is not None else None}
        for name, connection in sorted(service.connections.items())
    ])


async def openapi(request: Request, service: Service) -> Response:
    return Response(service.document, media_type="application/json")


async def healthz(request: Request, service: Service) -> Response:
    return json_response(200, {"status": "ok"})


async def readyz(request: Request, service: Service) -> Response:
    if not service.ready:
        raise Unavailable("the service is starting or shutting down")
    return json_response(200, {"status": "ready", "connections": len(service.connections), "capabilities": len(service.capabilities)})


@functools.cache
def _console_file(name: str) -> bytes:
    return resources.files("connector_core.serve").joinpath("console", name).read_bytes()


def _console(path: str) -> Endpoint:
    name, media = _CONSOLE_FILES[path]

    async def serve_file(request: Request, service: Service) -> Response:
        return Response(_console_file(name), media_type=media, headers={
            "Content-Security-Policy": _CONSOLE_CSP, "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "Cache-Control": "no-cache"})

    return serve_file


async def _not_found(scope: dict, receive: Callable, send: Callable) -> None:
    error = RequestRefused(f"no such resource: {scope.get('method')} {scope.get('path')}; see GET /openapi.json", code="no_route")
    await error_response(error)(scope, receive, send)


def create_app(service: Service) -> Any:
    """The ASGI application serving ``service``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        service.pool = CallPool(service.threads, "connector-call")
        service.ready = True
        try:
            yield
        finally:
            service.ready = False
            service.pool.shutdown()  # calls in flight finish before their connections close
            service.close()

    execute = _Execute(service)
    routes = [
        Route("/v1/capabilities/{id}/execute", execute),  # other methods; the Guard sends POSTs straight to it
        _route("/v1/connectors", list_connectors, service, ["GET"]),
        _route("/v1/capabilities", list_capabilities, service, ["GET"]),
        _route("/v1/capabilities/{id}", get_capability, service, ["GET"]),
        _route("/v1/connections", list_connections, service, ["GET"]),
        _route("/v1/connections/{name}/check", check, service, ["POST"]),
        _route("/openapi.json", openapi, service, ["GET"]),
        _route("/healthz", healthz, service, ["GET"]),
        _route("/readyz", readyz, service, ["GET"]),
        *(_route(path, _console(path), service, ["GET"]) for path in _CONSOLE_FILES),
    ]
    router = Router(routes, default=_not_found, lifespan=lifespan)
    return Guard(router, service, execute)
