"""``Sandbox``: the emulator served over HTTP on a loopback port, with a Python handle."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

from . import seed as seeded
from .app import DEFAULT_TOKEN_LIFETIME, Emulator
from .server import HTTPServer


def url_host(host: str, allow_remote: bool = False) -> tuple[str, str]:
    """``(bind address, host for URLs)`` for ``host``; refuses non-loopback hosts unless allowed.

    The sandbox serves demo credentials and an unauthenticated admin API, so it must not be
    reachable from other machines by accident.
    """
    if host == "localhost":
        return "127.0.0.1", "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if not (address is not None and address.is_loopback) and not allow_remote:
        raise ValueError(
            f"refusing to serve the sandbox on {host!r}: it is not a loopback address and the sandbox "
            "exposes demo credentials and an unauthenticated admin API; use 127.0.0.1, or allow it "
            "explicitly (allow_remote=True, --allow-remote)"
        )
    if address is not None and address.is_unspecified:  # 0.0.0.0 / ::: reach it via loopback
        return host, "127.0.0.1" if address.version == 4 else "[::1]"
    return host, f"[{host}]" if address is not None and address.version == 6 else host


class Sandbox:
    """mParticle's OAuth, Platform and Events APIs on one local port, for tests and demos.

    >>> with Sandbox(seed=0) as sb:
    ...     config = sb.config          # a complete connector config pointing at the sandbox
    ...     sb.set_faults("events", error_rate=0.5, statuses=[503])
    ...     state = sb.state()          # counters, accounts, switches

    ``start()`` serves in background threads and returns the handle; ``stop()`` ends it.
    ``seed`` makes random faults repeatable. ``clock`` (epoch seconds) replaces the time
    source; ``advance_clock`` moves it forward either way. ``sleep`` is how injected
    latency waits. The remaining arguments set the
    demo credentials, the token lifetime, whether the OAuth client id/secret are accepted
    as Events API Basic credentials, and how many batches and requests are kept for
    inspection (counters always count everything). ``latency_ms`` delays every API request
    (a number, or ``(min, max)`` for a uniform random delay), as a far-away mParticle would.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 0,
        allow_remote: bool = False,
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
        self._bind_host, self._url_host = url_host(host, allow_remote)
        self._port = port
        self._credentials = {"clientID": client_id, "clientSecret": client_secret, "apiKey": api_key, "apiSecret": api_secret}
        self.emulator = Emulator(
            seed=seed, clock=clock, sleep=sleep, token_lifetime=token_lifetime,
            client_credentials_for_events=client_credentials_for_events,
            client_id=client_id, client_secret=client_secret, api_key=api_key, api_secret=api_secret,
            max_batches=max_batches, max_logged_requests=max_logged_requests, latency_ms=latency_ms,
        )
        self._server: HTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind the port and serve in background threads; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        self._server = HTTPServer(self.emulator, self._bind_host, self._port, on_head=self.emulator.on_head)
        self._server.start()
        self.emulator.config = self.config
        return self

    def stop(self) -> None:
        """Close the port and every open connection. Safe to call twice."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server else "stopped"
        return f"<Sandbox {where} seed={self.emulator.seed}>"

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        return self._server.port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:50123``; one port serves every path."""
        return f"http://{self._url_host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"{self.url}/_sandbox"

    @property
    def config(self) -> dict[str, str]:
        """A complete connector config: credentials, pod and the three base URLs."""
        return {
            **self._credentials,
            "pod": "US1",
            "authUrl": f"{self.url}/oauth/token",
            "platformUrl": self.url,
            "eventsUrl": f"{self.url}/v2",
        }

    # -- inspection ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Counters (token requests, accepted batches/events, duplicates dropped, requests by
        status and endpoint), accounts of every organisation, and the active switches."""
        return self.emulator.snapshot()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The request log, oldest first: method, path, query, headers (Authorization reduced
        to its scheme), body (text, token secrets redacted), json (parsed body or None),
        endpoint, status (None when dropped) and effect (the injected fault, if any)."""
        return self.emulator.state.request_log()

    @property
    def batches(self) -> list[dict[str, Any]]:
        """Accepted Events API batches, oldest first (duplicates are not kept)."""
        return self.emulator.state.kept_batches()

    @property
    def rejected_batches(self) -> list[dict[str, Any]]:
        """Batches a bulk request carried that failed validation, oldest first: ``index`` in
        the request, ``batch``, ``faults`` (path, message). mParticle answers such a request
        202 and drops them, as the sandbox does."""
        with self.emulator.state.lock:
            return list(self.emulator.state.rejected)

    def event_markers(self) -> dict[str, Any]:
        """Counts of the marker attribute set with ``configure(marker_attribute=...)`` over
        every accepted event (duplicates dropped by ``source_request_id`` not counted):
        ``events`` carrying a marker, ``distinct`` markers, ``doubled`` markers seen more
        than once (with up to 100 ``doubled_examples``). Not limited by ``max_batches``."""
        return self.emulator.state.marker_summary()

    @property
    def marker_counts(self) -> dict[Any, int]:
        """Every marker value with the number of accepted events that carried it."""
        with self.emulator.state.lock:
            return dict(self.emulator.state.markers)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event of the accepted batches, in order."""
        return [event for batch in self.batches for event in batch.get("events") or ()]

    # -- switches --------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the seeded state: data, tokens, counters, log, faults, limits, clock, settings."""
        self.emulator.reset()

    def set_faults(self, group: str, **fields: Any) -> dict[str, Any]:
        """Random faults for ``group`` (``token``, ``platform``, ``events`` or ``all``).

        Fields of ``FaultConfig``: ``error_rate``, ``statuses``, ``latency_ms``,
        ``drop_rate``, ``truncate_rate``, ``garbage_rate``, ``reset_rate``, ``after``. Replaces the group's
        previous faults; no fields clears them.
        """
        return self.emulator.set_faults(group, **fields)

    def set_rate_limit(
        self,
        group: str,
        limit: int | None = None,
        window_seconds: float = 1.0,
        retry_after: int | None = None,
        scope: str | None = None,
    ) -> dict[str, Any] | None:
        """At most ``limit`` requests per ``window_seconds`` for ``group``; then 429 with
        ``Retry-After`` and ``X-mp-rate-limit-exceeded: scope``. ``limit=None`` lifts it."""
        return self.emulator.set_rate_limit(group, limit, window_seconds, retry_after, scope)

    def fail_next(
        self,
        target: str,
        count: int = 1,
        *,
        status: int = 503,
        effect: str = "status",
        after: bool = False,
        retry_after: int | None = None,
        skip: int = 0,
        match: str | None = None,
    ) -> dict[str, Any]:
        """Spoil the next ``count`` requests to ``target`` (an endpoint name such as
        ``createAccount`` or ``uploadEvents``, or a group), after letting ``skip`` pass;
        with ``match``, only requests whose body contains that text count (a batch's id or
        marker: the same request whatever order concurrent requests arrive in).

        ``effect``: ``status`` (answer ``status``), ``drop`` (close unanswered),
        ``reset`` (abort with a TCP reset, before the body is read unless ``after``),
        ``truncate``, ``garbage`` (an HTML body) or ``empty`` (no body, the real status).
        ``after=True`` processes the request first, so a write
        takes effect while its answer is lost.
        """
        return self.emulator.fail_next(
            target, count, status=status, effect=effect, after=after, retry_after=retry_after, skip=skip, match=match,
        )

    def advance_clock(self, seconds: float) -> float:
        """Move the sandbox clock forward (expire tokens, end rate-limit windows)."""
        return self.emulator.advance_clock(seconds)

    def set_latency(self, ms: float = 0.0, max_ms: float | None = None) -> dict[str, Any]:
        """Delay every API request by ``ms`` milliseconds, or uniformly between ``ms`` and
        ``max_ms`` (admin requests are never delayed). Survives ``reset``."""
        return self.emulator.set_latency(ms, max_ms)

    def configure(
        self,
        token_lifetime: int | None = None,
        client_credentials_for_events: bool | None = None,
        marker_attribute: str | None = None,
    ) -> dict[str, Any]:
        """Change the token lifetime, the Events API credential rule or the event marker
        attribute (see ``event_markers``) until ``reset``."""
        return self.emulator.configure(token_lifetime, client_credentials_for_events, marker_attribute)
