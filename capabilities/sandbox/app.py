"""The routes: mParticle's OAuth, Platform and Events APIs as the sandbox serves them.

``Emulator`` turns one ``Request`` into one ``Response``. It owns the ``State``, the fault
plan and the rate limits, and exposes the switches the ``Sandbox`` handle and the admin
endpoints (``admin.py``) use. Every non-admin request is counted and logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import attrs
import orjson

from . import admin, bulk, server
from . import seed as seeded
from .faults import (
    DEFAULT_SCOPES,
    DROP,
    EMPTY,
    GARBAGE,
    GROUPS,
    RESET,
    STATUS,
    TRUNCATE,
    Failure,
    FaultConfig,
    FaultPlan,
    Injection,
    RateLimit,
    RateWindow,
)
from .server import Request, Response
from .state import Client, Clock, Input, Rejected, State
from .validation import MAX_BATCHES, MAX_REQUEST_BYTES, validate_batch

AUDIENCE = "https://api.mparticle.com"
DEFAULT_TOKEN_LIFETIME = 28800
MAX_ERRORS = 100  # faults listed in one Events API 400 answer
HISTORICAL_MIN_AGE_SECONDS = 72 * 3600  # /v2/bulkevents/historical refuses newer events

_JSON = ("Content-Type", "application/json")
_GARBAGE_BODY = b"<html><head><title>Bad Gateway</title></head><body><h1>upstream hiccup</h1></body></html>"
_WWW_AUTHENTICATE = {"platform": 'Bearer realm="mParticle"', "events": 'Basic realm="mParticle"'}


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Response(status, body, [_JSON, *(headers or ())])


def envelope(status: int, data_type: str, items: list[dict[str, Any]]) -> Response:
    return json_response(status, {"data": items, "dataType": data_type, "errors": None})


@attrs.frozen
class Endpoint:
    """One operation: its name (used by counters, the log and ``fail_next``) and group."""

    name: str
    group: str
    handler: Callable[..., Response]
    data_type: str | None = None  # dataType of the Platform envelope


class Emulator:
    """mParticle's behaviour without the network: call it with a ``Request``."""

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME,
        client_credentials_for_events: bool = True,
        client_id: str = seeded.DEMO_CLIENT_ID,
        client_secret: str = seeded.DEMO_CLIENT_SECRET,
        api_key: str = seeded.DEMO_API_KEY,
        api_secret: str = seeded.DEMO_API_SECRET,
        max_batches: int | None = 10_000,
        max_logged_requests: int | None = 1_000,
        latency_ms: float | tuple[float, float] = 0.0,
    ):
        self.seed = seed
        self.clock = Clock(clock or time.time)
        self._sleep = sleep
        self._latency_rng = random.Random(f"{seed}:latency")
        self._lock = threading.Lock()
        self.latency: tuple[float, float] = (0.0, 0.0)
        self.set_latency(*(latency_ms if isinstance(latency_ms, (tuple, list)) else (latency_ms,)))
        self._defaults = {
            "token_lifetime": _lifetime(token_lifetime),
            "client_credentials_for_events": client_credentials_for_events,
            "marker_attribute": None,
        }
        self._clients = [Client(client_id, client_secret, seeded.DEMO_ORG), Client(*seeded.OTHER_CLIENT)]
        self._inputs = [Input(api_key, api_secret, seeded.DEMO_ORG)]
        self._limits = {"max_batches": max_batches, "max_logged_requests": max_logged_requests}
        self.config: dict[str, Any] = {}  # set by the Sandbox once it knows its URLs
        self._exact, self._patterns = self._routes()
        self.reset()

    # -- control ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the seeded state: data, tokens, counters, log, faults, limits, clock, settings."""
        with self._lock:
            self.clock.offset = 0.0
            self.settings = dict(self._defaults)
            self.state = State(self.clock, self._clients, self._inputs, **self._limits)
            self.plan = FaultPlan(self.seed)
            self.rate_windows: dict[str, RateWindow] = {}

    def set_latency(self, ms: float = 0.0, max_ms: float | None = None) -> dict[str, Any]:
        """Delay every API request by ``ms`` milliseconds, or a uniform random time between
        ``ms`` and ``max_ms``: a sandbox as far away as mParticle. Survives ``reset``."""
        low = float(ms)
        high = low if max_ms is None else float(max_ms)
        if not (0 <= low <= high) or high > 60_000:
            raise ValueError(f"latency must satisfy 0 <= ms <= max_ms <= 60000, got {ms!r}..{max_ms!r}")
        with self._lock:
            self.latency = (low, high)
        return {"ms": low, "max_ms": high}

    def _delay(self) -> None:
        low, high = self.latency
        if high <= 0:
            return
        if high > low:
            with self._lock:
                low = self._latency_rng.uniform(low, high)
        self._sleep(low / 1000.0)

    def set_faults(self, group: str, **fields: Any) -> dict[str, Any]:
        """Replace the random faults of ``group``, one endpoint or ``"all"``; no fields clears them.

        An endpoint's own faults take precedence over its group's.
        """
        unknown = sorted(set(fields) - {f.name for f in attrs.fields(FaultConfig)})
        if unknown:
            known = ", ".join(f.name for f in attrs.fields(FaultConfig))
            raise ValueError(f"unknown fault setting(s) {', '.join(map(repr, unknown))}; known: {known}")
        config = FaultConfig(**fields)
        with self._lock:
            for name in self._targets(group):
                if config.draws or config.latency_ms:
                    self.plan.configs[name] = config
                else:
                    self.plan.configs.pop(name, None)
        return config.to_dict()

    def set_rate_limit(
        self,
        group: str,
        limit: int | None = None,
        window_seconds: float = 1.0,
        retry_after: int | None = None,
        scope: str | None = None,
    ) -> dict[str, Any] | None:
        """Allow ``limit`` requests per ``window_seconds`` to ``group`` or one endpoint; ``limit=None`` lifts it.

        An endpoint's own budget takes precedence over its group's.
        """
        rule = None if limit is None else RateLimit(
            limit=limit, window_seconds=window_seconds, retry_after=retry_after, scope=scope,
        )
        with self._lock:
            for name in self._targets(group):
                if rule is None:
                    self.rate_windows.pop(name, None)
                else:
                    default_scope = DEFAULT_SCOPES[self.endpoint_groups.get(name, name)]
                    self.rate_windows[name] = RateWindow(rule, scope or default_scope)
        return None if rule is None else rule.to_dict()

    def fail_next(self, target: str, count: int = 1, **fields: Any) -> dict[str, Any]:
        """Script a failure for the next ``count`` requests to an endpoint or group (see ``Failure``)."""
        if target not in self.endpoint_names and target not in GROUPS:
            known = ", ".join([*GROUPS, *sorted(self.endpoint_names)])
            raise ValueError(f"unknown target {target!r}; use one of: {known}")
        failure = Failure(target=target, count=count, **fields)
        with self._lock:
            self.plan.failures.append([failure, failure.count, failure.skip])
        return failure.to_dict()

    def advance_clock(self, seconds: float) -> float:
        """Move the sandbox clock forward (expires tokens, ends rate-limit windows)."""
        with self._lock:
            self.clock.advance(seconds)
            return self.clock.offset

    def configure(
        self,
        token_lifetime: int | None = None,
        client_credentials_for_events: bool | None = None,
        marker_attribute: str | None = None,
    ) -> dict[str, Any]:
        """Change settings until the next ``reset``; returns all settings.

        ``marker_attribute`` names an event custom attribute whose values the sandbox counts
        in every accepted event (``event_markers``): with a unique value per event, a test
        sees lost and doubled events however many batches are kept.
        """
        if marker_attribute is not None and (not isinstance(marker_attribute, str) or not marker_attribute):
            raise ValueError(f"marker_attribute must be a non-empty string, got {marker_attribute!r}")
        with self._lock:
            if marker_attribute is not None:
                self.settings["marker_attribute"] = marker_attribute
            if token_lifetime is not None:
                self.settings["token_lifetime"] = _lifetime(token_lifetime)
            if client_credentials_for_events is not None:
                self.settings["client_credentials_for_events"] = bool(client_credentials_for_events)
            return dict(self.settings)

    def snapshot(self) -> dict[str, Any]:
        """State and counters, plus the active switches."""
        with self._lock:
            switches = {
                "seed": self.seed,
                "latency_ms": list(self.latency),
                "clock_offset": self.clock.offset,
                "settings": dict(self.settings),
                "faults": {group: config.to_dict() for group, config in self.plan.configs.items()},
                "rate_limits": {group: window.rule.to_dict() for group, window in self.rate_windows.items()},
                "pending_failures": [
                    {**failure.to_dict(), "remaining": left, "skip": skip} for failure, left, skip in self.plan.failures
                ],
            }
        return {**self.state.snapshot(), **switches}

    # -- requests --------------------------------------------------------------------------

    def __call__(self, request: Request) -> Response:
        if request.path.startswith(admin.PREFIX):
            return admin.handle(self, request)
        self._delay()
        methods, args = self._match(request.path)
        endpoint = methods.get(request.method) if methods else None
        injection = None
        if endpoint is None:
            response = self._unrouted(request, methods)
            name = "unrouted"
        else:
            response, injection = self._serve(endpoint, request, args)
            name = endpoint.name
        self.state.record(
            request.method, request.path, request.query_string, request.headers, request.body, name,
            None if response.effect in (server.DROP, server.RESET) else response.status,
            injection.effect if injection else None,
        )
        return response

    def on_head(self, method: str, path: str, headers: dict[str, str]) -> Any:
        """The server's hook once a request's head is read: draw its fault now, so a reset
        can abort the connection before the body is read (``server.RESET``); any other draw
        reaches ``_serve`` as ``request.prelude``."""
        if path.startswith(admin.PREFIX) or not (self.plan.configs or self.plan.failures):
            return None
        methods, _ = self._match(path)
        endpoint = methods.get(method) if methods else None
        if endpoint is None:
            return None
        with self._lock:
            drawn = self.plan.draw(endpoint.name, endpoint.group)
        injection = drawn[1]
        if injection is not None and injection.effect == RESET and not injection.after:
            self.state.record(method, path, "", headers, b"", endpoint.name, None, RESET)
            return server.RESET
        return drawn

    def _serve(self, endpoint: Endpoint, request: Request, args: tuple[str, ...]) -> tuple[Response, Injection | None]:
        injection = None
        if request.prelude is not None or self.plan.configs or self.plan.failures:
            if request.prelude is not None:
                latency, injection = request.prelude
                if self.plan.failures:  # failures that match a body are chosen once it is read
                    with self._lock:
                        injection = self.plan.matched(endpoint.name, endpoint.group, request.body) or injection
            else:
                with self._lock:
                    latency, injection = self.plan.draw(endpoint.name, endpoint.group, request.body)
            if latency:
                self._sleep(latency)
            if injection is not None and not injection.after and injection.effect in (STATUS, DROP, RESET):
                return self._injected(endpoint, injection), injection
        window = self._window(endpoint.name)
        try:
            if window is not None and endpoint.group != "events":  # the Events API counts batches
                self._spend(window, endpoint.group, 1)
            response = endpoint.handler(request, *args)
            if window is not None and 200 <= response.status < 300:
                response.headers.append(("X-mp-rate-limit-percentage-used", str(window.percent_used)))
        except Rejected as exc:
            response = self._error(endpoint.group, endpoint.data_type, exc)
        if injection is not None:
            response = self._spoil(endpoint, injection, response)
        return response, injection

    def _window(self, name: str) -> RateWindow | None:
        return self.rate_windows.get(name) or self.rate_windows.get(self.endpoint_groups[name])

    def _spend(self, window: RateWindow, group: str, cost: int) -> None:
        """Use ``cost`` of the window's budget, or refuse with 429 (nothing is used then)."""
        with self._lock:
            retry_after = window.hit(self.clock(), cost)
        if retry_after is not None:
            raise Rejected(
                429, _code(group, 429), "Rate limit exceeded; retry later.",
                headers=[("Retry-After", str(retry_after)), ("X-mp-rate-limit-exceeded", window.scope)],
            )

    def _spend_batches(self, endpoint: str, batches: int) -> None:
        # mParticle limits the Events API in batches per second (default service limits page).
        window = self._window(endpoint)
        if window is not None:
            self._spend(window, "events", batches)

    def _injected(self, endpoint: Endpoint, injection: Injection) -> Response:
        if injection.effect == DROP:
            return Response(0, effect=server.DROP)
        if injection.effect == RESET:
            return Response(0, effect=server.RESET)
        status = injection.status
        headers = []
        retry_after = injection.retry_after
        if status == 429:
            headers.append(("X-mp-rate-limit-exceeded", DEFAULT_SCOPES[endpoint.group]))
            retry_after = 1 if retry_after is None else retry_after
        if retry_after is not None:
            headers.append(("Retry-After", str(retry_after)))
        message = f"Injected fault: {status} {HTTPStatus(status).phrase}."
        return self._error(endpoint.group, endpoint.data_type, Rejected(status, _code(endpoint.group, status), message, headers=headers))

    def _spoil(self, endpoint: Endpoint, injection: Injection, response: Response) -> Response:
        if injection.effect == TRUNCATE:
            response.effect = server.TRUNCATE
            return response
        if injection.effect in (GARBAGE, EMPTY):
            headers = [(k, v) for k, v in response.headers if k != "Content-Type"]
            if injection.effect == EMPTY:
                return Response(response.status, b"", headers)
            return Response(response.status, _GARBAGE_BODY, [("Content-Type", "text/html"), *headers])
        return self._injected(endpoint, injection)  # STATUS, DROP or RESET after the request took effect

    def _unrouted(self, request: Request, methods: dict[str, Endpoint] | None) -> Response:
        if not methods:
            return json_response(404, {"errors": [{"code": "NOT_FOUND", "message": f"No route for {request.method} {request.path}."}]})
        any_endpoint = next(iter(methods.values()))
        allowed = ", ".join(methods)
        exc = Rejected(405, _code(any_endpoint.group, 405), f"{request.method} is not supported here; use {allowed}.",
                       headers=[("Allow", allowed)])
        return self._error(any_endpoint.group, any_endpoint.data_type, exc)

    @staticmethod
    def _error(group: str, data_type: str | None, exc: Rejected) -> Response:
        headers = list(exc.headers)
        if exc.status == 401 and group in _WWW_AUTHENTICATE:
            headers.append(("WWW-Authenticate", _WWW_AUTHENTICATE[group]))
        if group == "token":
            payload: dict[str, Any] = {"error": exc.code, "error_description": exc.messages[0]}
        else:
            errors = [{"code": exc.code, "message": message} for message in exc.messages]
            payload = {"data": None, "dataType": data_type, "errors": errors} if group == "platform" else {"errors": errors}
        return json_response(exc.status, payload, headers)

    # -- routing ---------------------------------------------------------------------------

    def _routes(self):
        def ep(name, group, handler, data_type=None):
            return Endpoint(name, group, handler, data_type)

        exact = {
            "/oauth/token": {"POST": ep("token", "token", self._token)},
            "/v1/accounts": {
                "GET": ep("listAccounts", "platform", self._list_accounts, "account"),
                "POST": ep("createAccount", "platform", self._create_account, "account"),
                "DELETE": ep("deleteAccount", "platform", self._delete_account, "account"),
            },
            "/v1/audiences": {"GET": ep("getAudiences", "platform", self._audiences, "audience")},
            "/v2/events": {"POST": ep("uploadEvents", "events", self._upload_events)},
            "/v2/bulkevents": {"POST": ep("uploadBulkEvents", "events", self._upload_bulk_events)},
            "/v2/bulkevents/historical": {"POST": ep("uploadHistoricalEvents", "events", self._upload_historical_events)},
        }
        patterns = [
            (re.compile(r"/v1/accounts/([^/]+)"), {
                "GET": ep("getAccount", "platform", self._get_account, "account"),
                "PUT": ep("updateAccount", "platform", self._update_account, "account"),
            }),
            (re.compile(r"/platform/v2/workspaces/([^/]+)/calculatedattributes"), {
                "GET": ep("getCalculatedAttributes", "platform", self._calculated_attributes, "calculated_attribute"),
                "HEAD": ep("findCalculatedAttributes", "platform", self._find_calculated_attributes, "calculated_attribute"),
            }),
        ]
        self.endpoint_groups = {
            endpoint.name: endpoint.group
            for methods in [*exact.values(), *(m for _, m in patterns)]
            for endpoint in methods.values()
        }
        self.endpoint_names = frozenset(self.endpoint_groups)
        return exact, patterns

    def _targets(self, target: str) -> tuple[str, ...]:
        """``all``, a group, or one endpoint (such as ``createAccount``)."""
        if target == "all":
            return GROUPS
        if target in GROUPS or target in self.endpoint_groups:
            return (target,)
        known = ", ".join([*GROUPS, "all", *sorted(self.endpoint_groups)])
        raise ValueError(f"unknown target {target!r}; use one of: {known}")

    def _match(self, path: str) -> tuple[dict[str, Endpoint] | None, tuple[str, ...]]:
        methods = self._exact.get(path)
        if methods is not None:
            return methods, ()
        for pattern, methods in self._patterns:
            match = pattern.fullmatch(path)
            if match:
                return methods, match.groups()
        return None, ()

    # -- OAuth -----------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        params = _token_params(request)
        grant = params.get("grant_type")
        if grant in (None, ""):
            raise Rejected(400, "invalid_request", "Missing required parameter: grant_type")
        if grant != "client_credentials":
            raise Rejected(400, "unsupported_grant_type", f"Unsupported grant type: {grant}")
        client = self.state.authenticate_client(params.get("client_id"), params.get("client_secret"))
        if client is None:
            raise Rejected(401, "access_denied", "Unauthorized")
        audience = params.get("audience")
        if audience != AUDIENCE:
            raise Rejected(403, "access_denied", f"Service not enabled within domain: {audience}")
        lifetime = self.settings["token_lifetime"]
        token = self.state.issue_token(client, lifetime)
        return json_response(
            200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"},
            [("Cache-Control", "no-store"), ("Pragma", "no-cache")],
        )

    # -- Platform API ----------------------------------------------------------------------

    def _client(self, request: Request) -> Client:
        header = request.headers.get("authorization")
        if not header:
            raise Rejected(401, "UNAUTHORIZED", "The Authorization header is missing.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Rejected(401, "UNAUTHORIZED", "Expected 'Authorization: Bearer <access token>'.")
        return self.state.client_for_token(token.strip())

    def _scope(self, request: Request, client: Client):
        raw = request.query.get("accountId")
        if not raw:
            raise Rejected(401, "UNAUTHORIZED", "The accountId query parameter is required.")
        return self.state.account_in_scope(client.org, raw)

    def _list_accounts(self, request: Request) -> Response:
        client = self._client(request)
        self._scope(request, client)
        return envelope(200, "account", [a.to_json() for a in self.state.accounts_of(client.org)])

    def _get_account(self, request: Request, account_id: str) -> Response:
        client = self._client(request)
        self._scope(request, client)
        return envelope(200, "account", [self.state.account_in_scope(client.org, account_id).to_json()])

    def _create_account(self, request: Request) -> Response:
        client = self._client(request)
        if "accountId" in request.query:  # optional here; when given it must be in scope
            self._scope(request, client)
        account = self.state.create_account(client.org, _account_name(request))
        return envelope(201, "account", [account.to_json()])

    def _update_account(self, request: Request, account_id: str) -> Response:
        client = self._client(request)
        self._scope(request, client)
        account = self.state.account_in_scope(client.org, account_id)
        account = self.state.rename_account(account, _account_name(request))
        return envelope(202, "account", [account.to_json()])

    def _delete_account(self, request: Request) -> Response:
        client = self._client(request)
        self.state.delete_account(self._scope(request, client))
        return Response(202)

    def _audiences(self, request: Request) -> Response:
        client = self._client(request)
        return json_response(200, self.state.audiences_of(self._scope(request, client)))

    def _calculated_attributes(self, request: Request, workspace: str) -> Response:
        client = self._client(request)
        return json_response(200, self.state.calculated_attributes_of(client.org, workspace, request.query.get("name")))

    def _find_calculated_attributes(self, request: Request, workspace: str) -> Response:
        client = self._client(request)
        found = self.state.calculated_attributes_of(client.org, workspace, request.query.get("name"))
        return Response(204 if found else 404)

    # -- Events API ------------------------------------------------------------------------

    def _api_key(self, request: Request) -> str:
        header = request.headers.get("authorization")
        if not header:
            raise Rejected(401, "UNAUTHORIZED", "The Authorization header is missing.")
        scheme, _, encoded = header.partition(" ")
        try:
            key, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if scheme.lower() != "basic" or not sep or not self.state.authenticate_input(
            key, secret, self.settings["client_credentials_for_events"]
        ):
            raise Rejected(403, "FORBIDDEN", "The API key and secret are not valid.")
        return key

    def _upload_events(self, request: Request) -> Response:
        key = self._api_key(request)
        batch = _events_payload(request)
        self._spend_batches("uploadEvents", 1)
        faults = validate_batch(batch, "$")
        if faults:
            raise Rejected(400, "BAD_REQUEST", *_messages(faults))
        self.state.accept_batches(key, [batch], marker=self.settings["marker_attribute"])
        return Response(202)

    def _upload_bulk_events(self, request: Request) -> Response:
        """``/v2/bulkevents``: mParticle documents a 202 even when some batches of the request
        fail and others succeed, so invalid batches are dropped (and kept for inspection,
        ``Sandbox.rejected_batches``) while the valid ones are accepted."""
        key = self._api_key(request)
        marker = self.settings["marker_attribute"]
        summaries = bulk.batch_summaries(request.body, marker) if _within_limits(request) else None
        if summaries is not None:  # every batch valid: kept as the body, parsed when looked at
            self._spend_batches("uploadBulkEvents", len(summaries))
            self.state.accept_unparsed(key, request.body, summaries, parse_events_body)
            return Response(202)
        batches = self._bulk_batches(request, "uploadBulkEvents")
        faults = [validate_batch(batch, f"$[{i}]") for i, batch in enumerate(batches)]
        self.state.reject_batches(key, [(i, batches[i], found) for i, found in enumerate(faults) if found])
        self.state.accept_batches(
            key, [batch for batch, found in zip(batches, faults) if not found], marker=self.settings["marker_attribute"],
        )
        return Response(202)

    def _upload_historical_events(self, request: Request) -> Response:
        """``/v2/bulkevents/historical``: the bulk rules plus the historical ones, checked here
        and not by the connector's code: every batch has events, every event a
        ``timestamp_unixtime_ms``, none less than 72 hours old (else the request is refused)."""
        key = self._api_key(request)
        batches = self._bulk_batches(request, "uploadHistoricalEvents")
        newest = (self.clock() - HISTORICAL_MIN_AGE_SECONDS) * 1000
        problems = []
        for i, batch in enumerate(batches):
            events = batch.get("events") or []
            if not events:
                problems.append(f"$[{i}].events: the historical endpoint needs events in every batch.")
            for j, event in enumerate(events):
                stamp = (event.get("data") or {}).get("timestamp_unixtime_ms")
                if not isinstance(stamp, int) or isinstance(stamp, bool):
                    problems.append(f"$[{i}].events[{j}].data.timestamp_unixtime_ms: required on the historical endpoint.")
                elif stamp > newest:
                    problems.append(f"$[{i}].events[{j}].data.timestamp_unixtime_ms: less than 72 hours old.")
        faults = [fault for i, batch in enumerate(batches) for fault in validate_batch(batch, f"$[{i}]")]
        problems += _messages(faults) if faults else []
        if problems:
            raise Rejected(400, "BAD_REQUEST", *problems[:MAX_ERRORS])
        self.state.accept_batches(key, batches, historical=True, marker=self.settings["marker_attribute"])
        return Response(202)

    def _bulk_batches(self, request: Request, endpoint: str) -> list:
        batches = _events_payload(request)
        if not isinstance(batches, list):
            raise Rejected(400, "BAD_REQUEST", "$: the body must be a JSON array of batches.")
        if not batches:
            raise Rejected(400, "BAD_REQUEST", "$: the array holds no batches.")
        if len(batches) > MAX_BATCHES:
            raise Rejected(
                400, "BAD_REQUEST",
                f"$: at most {MAX_BATCHES} batches per request, got {len(batches)}.",
            )
        self._spend_batches(endpoint, len(batches))
        return batches


# -- helpers ---------------------------------------------------------------------------------


def _lifetime(seconds: Any) -> int:
    if type(seconds) is not int or seconds < 1:
        raise ValueError(f"token_lifetime must be a positive integer (seconds), got {seconds!r}")
    return seconds


def _code(group: str, status: int) -> str:
    """The error code for a status: Auth0 style (snake case) for the token endpoint."""
    name = HTTPStatus(status).name
    return name.lower() if group == "token" else name


def _messages(faults) -> list[str]:
    messages = [f"{fault.path}: {fault.message}" for fault in faults[:MAX_ERRORS]]
    if len(faults) > MAX_ERRORS:
        messages.append(f"$: {len(faults) - MAX_ERRORS} more faults not listed.")
    return messages


def _token_params(request: Request) -> dict[str, Any]:
    media_type = request.media_type
    if media_type == "application/json":
        try:
            params = json.loads(request.body)
        except (ValueError, RecursionError):
            raise Rejected(400, "invalid_request", "The request body is not valid JSON.") from None
        if not isinstance(params, dict):
            raise Rejected(400, "invalid_request", "The request body must be a JSON object.")
        return params
    if media_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
    raise Rejected(400, "invalid_request", "Content-Type must be application/json or application/x-www-form-urlencoded.")


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _require_json(request: Request, code: str) -> None:
    if request.media_type != "application/json":
        raise Rejected(415, code, "Content-Type must be application/json.")


def _account_name(request: Request) -> str:
    _require_json(request, "UNSUPPORTED_MEDIA_TYPE")
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError):
        raise Rejected(400, "BAD_REQUEST", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise Rejected(422, "VALIDATION_ERROR", "The request body must be a JSON object.")
    name = body.get("name")
    if name is None:
        raise Rejected(422, "VALIDATION_ERROR", "Field 'name' is required.")
    if not isinstance(name, str):
        raise Rejected(422, "VALIDATION_ERROR", "Field 'name' must be a string.")
    if not name.strip():
        raise Rejected(422, "VALIDATION_ERROR", "Field 'name' must not be blank.")
    return name.strip()


# orjson reads integers outside [-2**63, 2**64) as floats: a body with 20 digits in a row, or
# a minus and 19, goes to json. Digits become "0" and the rest spaces, then two finds (a
# regex over a 256 KB body costs more than parsing it).
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else (0x2D if b == 0x2D else 0x20) for b in range(256))


def _may_hold_big_int(body: bytes) -> bool:
    digits = body.translate(_DIGITS)
    return b"0" * 20 in digits or b"-" + b"0" * 19 in digits


def _within_limits(request: Request) -> bool:
    """Whether an Events API body is JSON within the size limit (``_events_payload`` refuses the rest)."""
    return request.media_type == "application/json" and len(request.body) <= MAX_REQUEST_BYTES


def _events_payload(request: Request) -> Any:
    _require_json(request, "UNSUPPORTED_MEDIA_TYPE")
    if len(request.body) > MAX_REQUEST_BYTES:
        raise Rejected(
            413, "REQUEST_TOO_LARGE",
            f"$: the request body is {len(request.body)} bytes; the limit is {MAX_REQUEST_BYTES} bytes (256 KB).",
        )
    return parse_events_body(request.body)


def parse_events_body(body: bytes) -> Any:
    """An Events API body as Python values, or ``Rejected`` 400 when it is not JSON (NaN and
    Infinity included): how every body is read, now or when a kept one is looked at."""
    if not _may_hold_big_int(body):
        try:  # orjson reads a bulk body several times faster; what it refuses, json tells apart
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(body, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        raise Rejected(400, "BAD_REQUEST", f"$: the body is not valid JSON: {exc}") from None
