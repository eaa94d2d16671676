"""The generic HTTP layer: URL safety, auth strategies, one retry policy, error mapping.

Every connection owns one ``requests.Session``. Requests always carry a timeout, never
follow redirects (so credentials only reach the endpoint's own host) and are retried by
one policy: 429 and 5xx with exponential backoff and full jitter, ``Retry-After``
honoured, total waiting capped. Whether a request may be repeated after an ambiguous
failure (timeout after sending, dropped connection, 5xx) is decided in one place,
:meth:`Transport.send`, from the ``retry_safe`` flag the caller passes.
"""

from __future__ import annotations

import base64
import email.utils
import ipaddress
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import attrs
import requests
import requests.auth
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
    RateLimited,
    UpstreamError,
)
from .redact import Redactor

log = logging.getLogger("connector_core.http")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BODY_SNIPPET = 2000


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


class CallStats:
    """Counters of one capability call (HTTP attempts and retries)."""

    __slots__ = ("requests", "retries")

    def __init__(self) -> None:
        self.requests = 0
        self.retries = 0


class OAuth2ClientCredentials(requests.auth.AuthBase):
    """OAuth2 client-credentials grant with a cached token.

    The token is fetched once and shared by every thread of the connection (single
    flight under a lock), refreshed ``refresh_margin`` seconds before it expires (or at
    half its life, for short-lived tokens), and refreshed once when the service answers
    401 (:meth:`invalidate`). A rejection of the credentials is remembered for
    ``reject_for`` seconds, so threads waiting for the token do not each ask again.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        transport: Transport,
        audience: str | None = None,
        scope: str | None = None,
        request_format: str = "json",
        clock: Callable[[], float] = time.monotonic,
        refresh_margin: float = 60.0,
        reject_for: float = 10.0,
        redactor: Redactor | None = None,
    ) -> None:
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._transport = transport
        self._audience = audience
        self._scope = scope
        self._format = request_format
        self._clock = clock
        self._margin = refresh_margin
        self._reject_for = reject_for
        self._rejection: tuple[AuthenticationFailed, float] | None = None
        self._redactor = redactor
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials(token_url={self.token_url!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def token(self, stats: CallStats | None = None) -> str:
        """The cached access token, fetching a new one when missing or about to expire.

        A fetch counts its HTTP attempts into ``stats`` (the call that needed the token).
        """
        token = self._token
        if token is not None and self._clock() < self._expires_at:
            return token
        with self._lock:
            now = self._clock()
            if self._token is not None and now < self._expires_at:
                return self._token
            if self._rejection is not None and now < self._rejection[1]:
                raise self._rejection[0].copy()
            try:
                self._token, lifetime = self._fetch(stats)
            except AuthenticationFailed as exc:
                self._rejection = (exc, self._clock() + self._reject_for)
                raise
            self._rejection = None
            self._expires_at = self._clock() + max(lifetime - self._margin, lifetime / 2)
            return self._token

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (only if it is still ``token``, when given)."""
        with self._lock:
            if token is None or token == self._token:
                self._token = None
                self._expires_at = 0.0

    def _fetch(self, stats: CallStats | None) -> tuple[str, float]:
        body = {"client_id": self._client_id, "client_secret": self._client_secret, "grant_type": "client_credentials"}
        if self._audience:
            body["audience"] = self._audience
        if self._scope:
            body["scope"] = self._scope
        payload: dict[str, Any] = {"json": body} if self._format == "json" else {"data": body}
        response = self._transport.send("POST", self.token_url, retry_safe=True, stats=stats, **payload)
        if response.status_code in (400, 401, 403):
            detail = _upstream_message(response)
            raise AuthenticationFailed(
                f"the token endpoint rejected the client credentials ({response.status_code}: {detail}); "
                "check the client ID, client secret and token URL of the connection",
                status=response.status_code,
                body=_snippet(response),
            )
        if response.status_code != 200:
            raise error_for_response(response, "the token endpoint")
        data = read_json(response, "the token endpoint")
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise UpstreamError("the token endpoint answered without an access_token", code="invalid_response", status=200)
        if self._redactor is not None:
            self._redactor.add(token)
        expires_in = data.get("expires_in")
        return token, float(expires_in) if isinstance(expires_in, (int, float)) and expires_in > 0 else 3600.0


class BasicAuth(requests.auth.AuthBase):
    """HTTP Basic auth (UTF-8), with a repr that shows no credentials."""

    def __init__(self, username: str, password: str, redactor: Redactor | None = None) -> None:
        self._header = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        if redactor is not None:
            redactor.add(self._header[6:])

    def __repr__(self) -> str:
        return "BasicAuth(***)"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._header
        return request


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach the server (safe to repeat)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


class Transport:
    """Sends the requests of one connection: session, timeouts, retry policy, logging."""

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
        auth: requests.auth.AuthBase | None = None,
        stats: CallStats | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request with retries; return the final response, whatever its status.

        Raises ``NetworkError`` when the service cannot be reached, ``OutcomeUnknown``
        when a request that is not ``retry_safe`` may have taken effect.
        """
        policy = self.policy
        waited = 0.0
        attempt = 0
        refreshed = False
        while True:
            token = auth.token(stats) if isinstance(auth, OAuth2ClientCredentials) else None
            started = time.perf_counter()
            if stats is not None:
                stats.requests += 1
            try:
                response = self.session.request(method, url, auth=auth, timeout=self.timeout, allow_redirects=False, **kwargs)
            except requests.RequestException as exc:
                elapsed = (time.perf_counter() - started) * 1000
                sent = not _never_sent(exc)
                # A status line came but the body was cut off or undecodable: the service answered badly.
                cut = isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError))
                kind = "timed out" if isinstance(exc, requests.Timeout) else "answered with a cut-off body" if cut else "connection failed"
                log.info("%s %s -> %s after %.1f ms (attempt %d)", method, url, kind, elapsed, attempt + 1)
                if sent and not retry_safe:
                    raise OutcomeUnknown(
                        f"{method} {url} {kind} after the request was sent, so it may or may not have taken effect; "
                        "check the remote state before repeating it",
                        url=url,
                    ) from None
                wait = policy.delay(attempt, None)
                if attempt < policy.max_retries and waited + wait <= policy.max_total_wait:
                    attempt, waited = attempt + 1, waited + wait
                    self._pause(method, url, kind, wait, attempt, stats)
                    continue
                if cut:
                    raise UpstreamError(
                        f"{method} {url} {kind} ({type(exc).__name__}) after {attempt + 1} attempt(s); retry later",
                        code="invalid_response",
                        url=url,
                        attempts=attempt + 1,
                    ) from None
                raise NetworkError(
                    f"{method} {url} {kind} ({type(exc).__name__}) after {attempt + 1} attempt(s); "
                    "check the URL and network, or raise the timeout in the connection config",
                    url=url,
                    attempts=attempt + 1,
                ) from None
            status = response.status_code
            log.info(
                "%s %s -> %d in %.1f ms (attempt %d)",
                method,
                self.redact(response.url or url),
                status,
                (time.perf_counter() - started) * 1000,
                attempt + 1,
            )
            if status == 401 and isinstance(auth, OAuth2ClientCredentials) and token is not None and not refreshed:
                # The token may have been revoked or expired early: fetch a new one once.
                refreshed = True
                auth.invalidate(token)
                continue
            if status not in policy.retry_statuses:
                return response
            if status != 429 and not retry_safe:
                raise OutcomeUnknown(
                    f"{method} {url} answered {status}, so it may or may not have taken effect; "
                    "check the remote state before repeating it",
                    url=url,
                    status=status,
                    body=_snippet(response),
                )
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            wait = policy.delay(attempt, retry_after)
            if attempt < policy.max_retries and waited + wait <= policy.max_total_wait:
                response.close()
                attempt, waited = attempt + 1, waited + wait
                self._pause(method, url, str(status), wait, attempt, stats)
                continue
            return response

    def _pause(self, method: str, url: str, why: str, wait: float, attempt: int, stats: CallStats | None) -> None:
        if stats is not None:
            stats.retries += 1
        log.warning("%s %s: %s, retry %d of %d in %.2f s", method, url, why, attempt, self.policy.max_retries, wait)
        self.sleep(wait)


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
    try:
        text = response.text
    except Exception:  # undecodable body
        return ""
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

