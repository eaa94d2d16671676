"""The generic HTTP layer: URL safety, the transport and its retry loop, error mapping.

Every connection owns one :class:`HttpLayer`: a ``requests.Session``, a :class:`Transport`,
its endpoints' base URLs and its credentials (built by auth schemes, see
:mod:`connector_core.auth`). Requests always carry a timeout, never follow redirects (so
credentials only reach the endpoint's own host) and are retried by one policy. The retry
loop, :meth:`Transport.send`, is a few named steps: :func:`classify` an attempt (not
sent / sent, answer lost / answered), decide whether it :func:`may_repeat` (429 and
unsent requests always; after an ambiguous failure only ``retry_safe`` ones), wait
:meth:`RetryPolicy.next_wait` (backoff with full jitter, ``Retry-After``, a total cap),
and record every :class:`Attempt` so a capability can tell "refused before executing"
from "outcome unknown".
"""

from __future__ import annotations

import email.utils
import functools
import ipaddress
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import attrs
import requests
import requests.adapters
import requests.utils
import urllib3.exceptions

from .errors import (
    AuthenticationFailed,
    Conflict,
    ConnectorError,
    Fault,
    InvalidConfig,
    InvalidInput,
    NetworkError,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    PluginError,
    RateLimited,
    UpstreamError,
)
from .netguard import EgressRule, GuardedAdapter, find_refusal, guarded_request
from .redact import Redactor
from .tokens import TokenCache

if TYPE_CHECKING:
    from .policy import HostPolicy
    from .manifest import ConnectorManifest

log = logging.getLogger("connector_core.http")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BODY_SNIPPET = 2000
# Config fields the core itself reads when a connector declares them.
HTTP_DEFAULTS = {
    "timeoutSeconds": 30.0,
    "connectTimeoutSeconds": 10.0,
    "maxRetries": 3,
    "maxRetryWaitSeconds": 30.0,
    "deadlineSeconds": 120.0,
}
USER_AGENT = "connector-framework/0.1"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, field: str) -> str:
    """Return ``url`` if it is safe to send credentials to; raise ``InvalidConfig`` otherwise.

    ``https://`` is required, except ``http://`` on loopback hosts (sandbox, tests).
    """
    problem = None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if parts is None or parts.scheme not in ("http", "https") or not host:
        problem = "must be an absolute http(s) URL such as https://api.example.com"
    elif parts.username or parts.password:
        problem = "must not carry credentials; put them in their own config fields"
    elif parts.query or parts.fragment:
        problem = "must not have a query or fragment"
    elif parts.scheme == "http" and not is_loopback(host):
        problem = "must use https:// (plain http:// is accepted only for loopback hosts such as 127.0.0.1)"
    if problem:
        raise InvalidConfig(f"config field {field!r} {problem}", faults=[Fault(f"$.{field}", problem)])
    return url.rstrip("/")


@attrs.frozen
class RetryPolicy:
    """When and how long to wait before repeating a request.

    ``max_retries`` repeats at most; waits grow as ``backoff * 2**attempt`` up to
    ``max_backoff`` with full jitter; a ``Retry-After`` header replaces the computed
    wait; the sum of all waits of one request never exceeds ``max_total_wait`` seconds
    (a longer ``Retry-After`` ends the retries and surfaces the rate limit to the host).
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_total_wait: float = 30.0
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    rng: random.Random = attrs.field(factory=random.Random, eq=False, repr=False)

    def jitter(self, ceiling: float) -> float:
        """A random wait in ``[0, ceiling]`` (full jitter)."""
        return self.rng.uniform(0, ceiling)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after is not None:
            return max(0.0, retry_after)
        return self.jitter(min(self.max_backoff, self.backoff * (2**attempt)))

    def next_wait(self, retries: int, waited: float, retry_after: float | None) -> float | None:
        """Step 3 of the retry loop: seconds to wait before the next retry, or None when the
        budget is spent (``retries`` made already, ``waited`` seconds in total so far)."""
        wait = self.delay(retries, retry_after)
        if retries < self.max_retries and waited + wait <= self.max_total_wait:
            return wait
        return None


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a ``Retry-After`` header (integer seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


# What an attempt was (``Attempt.phase``): the three cases the retry decision rests on.
NOT_SENT = "not_sent"  # the request certainly did not reach the service (refused connection, connect timeout)
ANSWER_LOST = "answer_lost"  # sent, but no complete answer came back (read timeout, reset, cut-off body)
ANSWERED = "answered"  # the service answered with a status

# What an attempt did to the remote state (``Attempt.outcome``).
NOT_EXECUTED = "not_executed"  # certainly not carried out: never sent, refused (4xx, 429), or its credentials failed
UNKNOWN = "unknown"  # may or may not have taken effect: answer lost, 5xx, an unfollowed redirect
EXECUTED = "executed"  # the service answered 2xx


@attrs.frozen
class Attempt:
    """What one attempt of a request did; a call's attempts are ``ctx.attempts``.

    ``credentials`` marks requests an auth scheme sent to obtain credentials (a token
    fetch); ``failure`` says why no answer came ("connection failed", "timed out",
    "answered with a cut-off body") or ``"credentials"`` when the request was not sent
    because obtaining its credentials failed.
    """

    method: str
    url: str
    phase: str
    status: int | None = None
    failure: str | None = None
    credentials: bool = False

    @property
    def outcome(self) -> str:
        """``NOT_EXECUTED``, ``UNKNOWN`` or ``EXECUTED`` (see the module constants)."""
        if self.phase == NOT_SENT:
            return NOT_EXECUTED
        if self.phase == ANSWER_LOST or self.status is None:
            return UNKNOWN
        if 200 <= self.status < 300:
            return EXECUTED
        return UNKNOWN if self.status >= 500 or 300 <= self.status < 400 else NOT_EXECUTED


class CallStats:
    """What one capability call sent: HTTP attempts, retries, and a record of every attempt.

    ``deadline`` (a ``time.monotonic()`` value) ends the call: no attempt starts, no
    backoff waits and no answer is awaited past it, token fetches included.
    """

    __slots__ = ("requests", "retries", "attempts", "deadline")

    def __init__(self, deadline: float | None = None) -> None:
        self.requests = 0
        self.retries = 0
        self.attempts: list[Attempt] = []
        self.deadline = deadline

    def left(self) -> float | None:
        """Seconds until the deadline (negative once past), or None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach the server (safe to repeat)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def classify(method: str, url: str, answer: requests.Response | requests.RequestException, *, credentials: bool = False) -> Attempt:
    """Step 1 of the retry loop: what an attempt was (not sent / sent, answer lost / answered)."""
    if isinstance(answer, requests.Response):
        return Attempt(method, url, ANSWERED, answer.status_code, credentials=credentials)
    if _never_sent(answer):
        phase = NOT_SENT
    else:
        phase = ANSWER_LOST
    # A status line that came with a cut-off or undecodable body is a bad answer, not a network failure.
    cut = isinstance(answer, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError))
    failure = "timed out" if isinstance(answer, requests.Timeout) else "answered with a cut-off body" if cut else "connection failed"
    return Attempt(method, url, phase, failure=failure, credentials=credentials)


def may_repeat(attempt: Attempt, retry_safe: bool) -> bool:
    """Step 2: whether a failed attempt may be sent again.

    A request that certainly did not execute (not sent, 429) may always be repeated; one
    that may have taken effect only when repeating it is harmless (``retry_safe``: a safe
    method, or a capability whose manifest declares ``retrySafe``).
    """
    return retry_safe or attempt.outcome == NOT_EXECUTED


class Transport:
    """Sends the requests of one connection: session, timeouts, retry policy, attempt records."""

    def __init__(
        self,
        session: requests.Session,
        *,
        policy: RetryPolicy,
        timeout: tuple[float, float],
        sleep: Callable[[float], None] = time.sleep,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.session = session
        self.policy = policy
        self.timeout = timeout
        self.sleep = sleep
        self.redact = redact

    def send(
        self,
        method: str,
        url: str,
        *,
        retry_safe: bool,
        auth: Any = None,
        stats: CallStats | None = None,
        credentials: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request with retries; return the final response, whatever its status.

        ``auth`` is an :class:`connector_core.auth.Auth` (or any ``requests`` auth
        callable); ``credentials`` marks a request sent to obtain credentials. Every
        attempt is appended to ``stats.attempts``. Raises ``NetworkError`` when the
        service cannot be reached, ``OutcomeUnknown`` when a request that is not
        ``retry_safe`` may have taken effect.
        """
        stats = stats if stats is not None else CallStats()
        retries, waited, refreshed = 0, 0.0, False
        while True:
            if stats.deadline is not None and time.monotonic() >= stats.deadline:
                raise NetworkError(
                    f"{method} {url}: the call's deadline passed before attempt {retries + 1}; "
                    "raise deadlineSeconds in the connection config or retry later",
                    code="deadline_exceeded",
                    url=url,
                    attempts=retries,
                )
            signer = self._authorize(auth, method, url, stats)
            answer = self._exchange(method, url, signer, stats, retries + 1, kwargs)
            attempt = classify(method, self.redact(url), answer, credentials=credentials)
            stats.attempts.append(attempt)
            response = answer if isinstance(answer, requests.Response) else None
            if attempt.status == 401 and not refreshed and getattr(auth, "unauthorized", None) and auth.unauthorized(signer):
                refreshed = True  # the scheme renewed its credentials: repeat once
                continue
            if response is not None and attempt.status not in self.policy.retry_statuses:
                return response
            if not may_repeat(attempt, retry_safe):
                raise _outcome_unknown(attempt, url, response)
            retry_after = parse_retry_after(response.headers.get("Retry-After")) if response is not None else None
            wait = self.policy.next_wait(retries, waited, retry_after)
            if wait is not None and stats.deadline is not None and time.monotonic() + wait >= stats.deadline:
                wait = None  # the wait would outlast the call's deadline
            if wait is None:
                return _give_up(attempt, url, response, retries + 1)
            if response is not None:
                response.close()
            retries, waited = retries + 1, waited + wait
            stats.retries += 1
            log.warning("%s %s: %s, retry %d of %d in %.2f s", method, url, attempt.failure or attempt.status, retries, self.policy.max_retries, wait)
            self.sleep(wait)

    def _authorize(self, auth: Any, method: str, url: str, stats: CallStats) -> Any:
        """The signer of the next attempt (a token fetch counts into ``stats``)."""
        if auth is None or not hasattr(auth, "signer"):
            return auth
        try:
            return auth.signer(stats)
        except ConnectorError as exc:
            stats.attempts.append(Attempt(method, self.redact(url), NOT_SENT, failure="credentials"))
            if isinstance(exc, (NotFound, Conflict, InvalidInput)):
                # Whatever a scheme's credential request answered, it says nothing about the
                # resource this request is about (a wrong token URL is not a missing account).
                raise InvalidConfig(
                    f"obtaining the credentials of {auth!r} failed: {exc.message}; check the auth settings of the connection",
                    **exc.details,
                ) from None
            raise

    def _exchange(self, method: str, url: str, signer: Any, stats: CallStats, number: int, kwargs: dict) -> requests.Response | requests.RequestException:
        """One attempt: the response, or the exception that took its place (logged either way)."""
        stats.requests += 1
        started = time.perf_counter()
        try:
            response = guarded_request(
                self.session, method, url, auth=signer, timeout=self.timeout, deadline=stats.deadline, allow_redirects=False, **kwargs
            )
        except requests.RequestException as exc:
            refusal = find_refusal(exc)
            if refusal is not None:  # nothing was sent: the address was refused before connecting
                stats.attempts.append(Attempt(method, self.redact(url), NOT_SENT, failure="egress refused"))
                raise InvalidConfig(
                    f"{method} {self.redact(url)}: {refusal}; the connection may only reach public addresses",
                    code="egress_refused",
                    url=self.redact(url),
                ) from None
            elapsed = (time.perf_counter() - started) * 1000
            log.info("%s %s -> %s after %.1f ms (attempt %d)", method, self.redact(url), type(exc).__name__, elapsed, number)
            return exc
        elapsed = (time.perf_counter() - started) * 1000
        log.info("%s %s -> %d in %.1f ms (attempt %d)", method, self.redact(response.url or url), response.status_code, elapsed, number)
        return response


def _outcome_unknown(attempt: Attempt, url: str, response: requests.Response | None) -> OutcomeUnknown:
    what = f"answered {attempt.status}" if response is not None else f"{attempt.failure} after the request was sent"
    details: dict[str, Any] = {"url": url}
    if response is not None:
        details.update(status=attempt.status, body=_snippet(response))
    return OutcomeUnknown(
        f"{attempt.method} {url} {what}, so it may or may not have taken effect; check the remote state before repeating it",
        **details,
    )


def _give_up(attempt: Attempt, url: str, response: requests.Response | None, attempts: int) -> requests.Response:
    """The end of the retry budget: the last answer, or the error for the last failure."""
    if response is not None:
        return response
    if attempt.failure == "answered with a cut-off body":
        raise UpstreamError(
            f"{attempt.method} {url} {attempt.failure} after {attempts} attempt(s); retry later",
            code="invalid_response",
            url=url,
            attempts=attempts,
        )
    raise NetworkError(
        f"{attempt.method} {url} {attempt.failure} after {attempts} attempt(s); "
        "check the URL and network, or raise the timeout in the connection config",
        url=url,
        attempts=attempts,
    )


def new_session() -> requests.Session:
    """A pooled session that never retries by itself and reads the environment once."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    # requests reads proxy and CA settings from the environment on every request (a
    # third of a small call's client time); a connection reads them once instead.
    session.trust_env = False
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return session


@attrs.frozen
class AuthEnv:
    """What an auth scheme gets to build one connection's credentials (``AuthScheme.build``).

    ``send`` sends a request through the connection's transport and retry policy (marked
    as a credentials request); ``url(value, where)`` checks a URL (https, or http on
    loopback) and routes it through the environment's proxy; ``secret(value)`` adds a
    derived value (a token, an encoded header) to the connection's redaction; ``tokens``
    is the engine's cache of tokens by credential key.
    """

    name: str
    config: Mapping[str, Any] = attrs.field(repr=False)
    send: Callable[..., requests.Response] = attrs.field(repr=False)
    url: Callable[[str, str], str] = attrs.field(repr=False)
    secret: Callable[..., None] = attrs.field(repr=False)
    clock: Callable[[], float] = attrs.field(repr=False)
    tokens: TokenCache | None = attrs.field(default=None, repr=False)

    def required(self, field: str, why: str | None = None) -> str:
        """The value of config ``field``, or ``InvalidConfig`` naming it when it is unset."""
        value = self.config.get(field)
        if value in (None, ""):
            why = why or f"{self.name} authentication"
            raise InvalidConfig(f"config field {field!r} is required ({why})", faults=[Fault(f"$.{field}", f"is required ({why})")])
        return str(value)


class HttpLayer:
    """The HTTP side of one connection, built once from the connector manifest and the config.

    Owns the session (pool, proxies read once per host), the :class:`Transport` with its
    retry policy and timeouts, each endpoint's base URL and each auth entry's credentials
    (built by the entry's auth scheme). Thread-safe.
    """

    def __init__(
        self,
        connector: ConnectorManifest,
        config: Mapping[str, Any],
        *,
        redactor: Redactor,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        policy: RetryPolicy | None = None,
        host_policy: HostPolicy,
        tokens: TokenCache | None = None,
    ) -> None:
        self.connector = connector
        self.config = config
        self.redactor = redactor
        self.clock = clock
        self.host_policy = host_policy
        self.tokens = tokens
        fields = connector.config_schema["properties"]
        settings = {k: config.get(k, fields.get(k, {}).get("default", v)) for k, v in HTTP_DEFAULTS.items()}
        self.policy = policy or RetryPolicy(max_retries=int(settings["maxRetries"]), max_total_wait=float(settings["maxRetryWaitSeconds"]))
        self.deadline_seconds = float(settings["deadlineSeconds"])
        self._own_session = session is None
        self.session = self._guard(session or new_session())
        timeout = (float(settings["connectTimeoutSeconds"]), float(settings["timeoutSeconds"]))
        self.transport = Transport(self.session, policy=self.policy, timeout=timeout, sleep=sleep, redact=redactor)
        self._lock = threading.Lock()
        self._auths: dict[str, Any] = {}
        self._urls: dict[str, str] = {}
        # Check every URL the config sets up front, so a bad one fails before any call.
        for endpoint in connector.endpoints.values():
            if endpoint.override_field and config.get(endpoint.override_field):
                check_url(config[endpoint.override_field], endpoint.override_field)
        for field in connector.auth_fields:
            if field.url and config.get(field.field):
                check_url(config[field.field], field.field)

    def __repr__(self) -> str:
        return f"HttpLayer(connector={self.connector.id!r})"

    def close(self) -> None:
        self.session.close()

    def _guard(self, session: requests.Session) -> requests.Session:
        """Mount the adapter whose connections obey the host policy's egress rule and the watchdog."""
        policy = self.host_policy
        rule = None
        if policy.checks_egress:
            rule = EgressRule(allow_loopback=policy.allow_loopback, allow_private=policy.allow_private, resolver=policy.resolver)
        adapter = GuardedAdapter(rule, pool_connections=4, pool_maxsize=32, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def route(self, url: str) -> str:
        """Apply the environment's proxy for ``url``'s host (HTTPS_PROXY, NO_PROXY...) once.

        Never for loopback hosts, whatever NO_PROXY says (a proxy would see the sandbox's
        or a local service's credentials), and never when the host policy checks egress.
        """
        parts = urlsplit(url)
        if not self._own_session or is_loopback(parts.hostname or "") or not self.host_policy.proxies:
            return url
        proxies = requests.utils.get_environ_proxies(url)
        proxy = proxies.get(parts.scheme) or proxies.get("all")
        if proxy:
            self.session.proxies.setdefault(f"{parts.scheme}://{parts.hostname}", proxy)
        return url

    def base_url(self, name: str) -> str:
        """The checked, routed base URL of endpoint ``name``."""
        url = self._urls.get(name)
        if url is None:
            url = self._urls[name] = self.route(self._resolve_url(name))
        return url

    def _resolve_url(self, name: str) -> str:
        endpoint = self.connector.endpoints[name]
        config = self.config
        if endpoint.override_field and config.get(endpoint.override_field):
            return check_url(config[endpoint.override_field], endpoint.override_field)
        if endpoint.base_url:
            return check_url(endpoint.base_url, f"endpoints.{name}.baseUrl")
        assert endpoint.base_url_by_config is not None  # the meta-schema requires one of the two
        field, values = endpoint.base_url_by_config
        value = config.get(field)
        url = values.get(str(value).lower()) if value is not None else None
        if url is None:
            raise not_a_choice(field, value, values, name)
        return check_url(url, field)

    def auth(self, name: str | None) -> Any:
        """The credentials of auth entry ``name`` (built by its scheme on first use), or None."""
        if name is None:
            return None
        with self._lock:
            auth = self._auths.get(name)
            if auth is None:
                env = AuthEnv(
                    name,
                    self.config,
                    send=functools.partial(self.transport.send, credentials=True),
                    url=lambda value, where: self.route(check_url(value, where)),
                    secret=self.redactor.add,
                    clock=self.clock,
                    tokens=self.tokens,
                )
                auth = self._auths[name] = self.connector.auth_schemes[name].build(self.connector.auth[name], env)
            return auth

    def client(self, endpoint: str, *, retry_safe: bool, stats: CallStats | None = None) -> HttpClient:
        """An ``HttpClient`` for ``endpoint`` with its auth, timeouts and retries."""
        if endpoint not in self.connector.endpoints:
            raise PluginError(f"connector {self.connector.id!r} has no endpoint {endpoint!r}")
        return HttpClient(
            self.transport,
            base_url=self.base_url(endpoint),
            auth=self.auth(self.connector.endpoints[endpoint].auth),
            retry_safe=retry_safe,
            stats=stats,
            service=f"{self.connector.title} ({endpoint})",
        )

class HttpClient:
    """The view of one endpoint a capability gets from ``ctx.http(name)``.

    Paths are joined to the endpoint's base URL (never replaced by another host);
    ``{name}`` placeholders are filled from ``path_params``, percent-encoded. Non-2xx
    answers raise the typed error :func:`error_for_response` picks.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        base_url: str,
        auth: requests.auth.AuthBase | None,
        retry_safe: bool,
        stats: CallStats | None,
        service: str,
    ) -> None:
        self.base_url = base_url
        self.service = service
        self._transport = transport
        self._auth = auth
        self._retry_safe = retry_safe
        self._stats = stats

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r})"

    def url(self, path: str, path_params: Mapping[str, Any] | None = None) -> str:
        if not path.startswith("/") or "//" in path or "://" in path:
            raise ValueError(f"path must be relative to the endpoint and start with '/': {path!r}")
        if path_params:
            path = path.format_map({k: quote(str(v), safe="") for k, v in path_params.items()})
        return self.base_url + path

    def request(
        self,
        method: str,
        path: str,
        *,
        path_params: Mapping[str, Any] | None = None,
        retry: bool | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send ``method path``; ``retry`` overrides the capability's retry safety for this call."""
        method = method.upper()
        safe = retry if retry is not None else (method in SAFE_METHODS or self._retry_safe)
        response = self._transport.send(
            method, self.url(path, path_params), retry_safe=safe, auth=self._auth, stats=self._stats, **kwargs
        )
        if response.status_code >= 300:
            raise error_for_response(response, self.service)
        return response

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


def _snippet(response: requests.Response) -> str:
    # The body was read whole by the request (never streamed); .text decodes it with
    # errors="replace", so no body, however malformed, makes this raise.
    text = response.text
    return text if len(text) <= _BODY_SNIPPET else text[:_BODY_SNIPPET] + "..."


def _upstream_message(response: requests.Response) -> str:
    """The service's own explanation, from the usual JSON error shapes or the raw body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    messages: list[str] = []
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list):
            for item in errors:
                if isinstance(item, dict):
                    text = " ".join(str(item[k]) for k in ("code", "message") if item.get(k))
                    if text:
                        messages.append(text)
                elif isinstance(item, str):
                    messages.append(item)
        for key in ("error_description", "message", "error"):
            if not messages and isinstance(data.get(key), str):
                messages.append(data[key])
    if messages:
        return "; ".join(messages)[:500]
    text = _snippet(response).strip()
    return text[:200] if text else response.reason or "no details"


def not_a_choice(field: str, value: Any, values: Mapping[str, str], endpoint: str) -> InvalidConfig:
    """The error for a config field that must pick one of an endpoint's URLs (``values``)."""
    choices = ", ".join(sorted(v.upper() for v in values))
    problem = "is required" if value is None else f"{value!r} is not one of {choices}"
    return InvalidConfig(
        f"config field {field!r} {problem} (it selects the {endpoint} endpoint)",
        faults=[Fault(f"$.{field}", f"{problem}; use one of {choices}")],
    )


def read_json(response: requests.Response, service: str = "the service", *, allow_empty: bool = False) -> Any:
    """The JSON body of a successful response; ``UpstreamError`` if it is not JSON."""
    if allow_empty and not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError:
        raise UpstreamError(
            f"{service} answered {response.status_code} with a body that is not valid JSON; retry later",
            code="invalid_response",
            status=response.status_code,
            body=_snippet(response),
        ) from None


# Status -> (error class, hint telling the host what to do).
_STATUS_ERRORS: dict[int, tuple[type[ConnectorError], str]] = {
    400: (InvalidInput, "fix the input and try again"),
    401: (AuthenticationFailed, "check the credentials of the connection"),
    403: (PermissionDenied, "the credentials are not allowed to do this; check their permissions and scope"),
    404: (NotFound, "check the identifiers in the input"),
    409: (Conflict, "the request conflicts with the current state; change the input"),
    422: (Conflict, "the service refused the change; change the input"),
    429: (RateLimited, "slow down and retry later"),
}


def error_for_response(response: requests.Response, service: str = "the service") -> ConnectorError:
    """The typed error for a non-2xx answer (one table, one place)."""
    status = response.status_code
    message = _upstream_message(response)
    details: dict[str, Any] = {"status": status, "body": _snippet(response)}
    if status in _STATUS_ERRORS:
        cls, hint = _STATUS_ERRORS[status]
        code = {400: "rejected_by_service"}.get(status)
    elif status >= 500:
        cls, hint, code = UpstreamError, "the service failed; retry later", "server_error"
    elif 300 <= status < 400:
        cls, hint, code = UpstreamError, "redirects are not followed; check the endpoint URL", "unexpected_redirect"
    else:
        cls, hint, code = UpstreamError, "unexpected answer", "client_error"
    if status == 429:
        details["retry_after"] = parse_retry_after(response.headers.get("Retry-After"))
        if details["retry_after"] is not None:
            hint = f"retry after {details['retry_after']:g} s"
    return cls(f"{service} answered {status} ({message}); {hint}", code=code, **details)

