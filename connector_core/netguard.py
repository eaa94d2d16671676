"""Where a connection may go, and how long an answer may take.

**Egress.** Under a :class:`~connector_core.policy.HostPolicy` that refuses loopback or
private addresses, a connection resolves its host once, checks every address the name
resolves to against the project's own table (:func:`address_kind`; Python's
``ipaddress`` answers differently across 3.10-3.13 for forms such as ``::ffff:127.0.0.1``)
and connects to a checked address. TLS still uses the host name for SNI and certificate
verification, so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot switch the peer.

**Total time.** urllib3's read timeout applies to each ``recv``, so a server that sends a
byte a second keeps a request alive forever. While a response is awaited, its socket is
registered with the :data:`WATCHDOG`, which shuts the socket down when the request's total
time limit passes, for slow headers as for slow bodies.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests.adapters
import urllib3.connection
import urllib3.connectionpool

# (network, kind): every range that is not the public Internet. Checked in order; the
# embedded IPv4 address of the translation forms is checked again (see address_kind).
_V4 = [
    ("0.0.0.0/8", "this-network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "reserved"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved"),
    ("198.51.100.0/24", "reserved"),
    ("203.0.113.0/24", "reserved"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
]
_V6 = [
    ("::1/128", "loopback"),
    ("::/128", "this-network"),
    ("64:ff9b:1::/48", "private"),
    ("100::/64", "reserved"),
    ("2001::/23", "reserved"),
    ("2001:db8::/32", "reserved"),
    ("3fff::/20", "reserved"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "reserved"),
    ("ff00::/8", "multicast"),
]
_V4_TABLE = [(ipaddress.ip_network(n), k) for n, k in _V4]
_V6_TABLE = [(ipaddress.ip_network(n), k) for n, k in _V6]
# IPv6 forms that carry an IPv4 address.
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")  # IPv4-mapped
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # IPv4-translated (SIIT)
_COMPATIBLE = ipaddress.ip_network("::/96")  # IPv4-compatible (deprecated)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def _embedded(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, IPv4-translated, NAT64 or 6to4 address carries."""
    value = int(address)
    if address in _MAPPED or address in _TRANSLATED or address in _NAT64:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    return None


def address_kind(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """``None`` for a public address; otherwise what it is: ``loopback``, ``private``,
    ``shared``, ``this-network``, ``link-local``, ``unique-local``, ``multicast`` or
    ``reserved``. IPv4 addresses inside IPv6 (IPv4-mapped, IPv4-translated,
    IPv4-compatible, NAT64, 6to4) are judged by the IPv4 address they carry."""
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    if isinstance(ip, ipaddress.IPv4Address):
        return next((kind for network, kind in _V4_TABLE if ip in network), None)
    for network, kind in _V6_TABLE:
        if ip in network:
            return kind
    if ip in _COMPATIBLE:  # deprecated, never routed
        return "reserved"
    embedded = _embedded(ip)
    return address_kind(embedded) if embedded is not None else None


class EgressRefused(OSError):
    """A host name resolved to an address the host policy refuses (raised while connecting)."""

    def __init__(self, host: str, kind: str) -> None:
        super().__init__(f"{host} resolves to a {kind} address, which this host does not allow")
        self.host = host
        self.kind = kind


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver)."""
    return list(dict.fromkeys(info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))


class EgressRule:
    """Which address kinds a connection may reach, and how names are resolved."""

    def __init__(self, *, allow_loopback: bool, allow_private: bool, resolver: Callable[[str, int], list[str]] | None = None) -> None:
        self.allow_loopback = allow_loopback
        self.allow_private = allow_private
        self.resolver = resolver or system_resolver

    def allowed(self, kind: str | None) -> bool:
        if kind is None:
            return True
        return self.allow_loopback if kind == "loopback" else self.allow_private

    def pick(self, host: str, port: int) -> str:
        """The address to connect to: every address of ``host`` checked, the first returned."""
        try:
            addresses = self.resolver(host, port)
        except OSError:
            raise
        except Exception as exc:  # a resolver's bug must still end as a connection failure
            raise OSError(f"resolving {host} failed: {type(exc).__name__}") from exc
        if not addresses:
            raise OSError(f"{host} did not resolve to any address")
        for address in addresses:
            kind = address_kind(address)
            if not self.allowed(kind):
                raise EgressRefused(host, kind or "refused")
        return addresses[0]


def find_refusal(exc: BaseException | None) -> EgressRefused | None:
    """The :class:`EgressRefused` somewhere inside a ``requests``/``urllib3`` exception."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, EgressRefused):
            return item
        stack.extend(item.args)
        stack.extend((getattr(item, "reason", None), item.__cause__, item.__context__))
    return None


# -- the watchdog -------------------------------------------------------------------------------------


class Guard:
    """The total time limit of one request (see :meth:`Watchdog.limit`)."""

    __slots__ = ("seconds", "hard_deadline", "deadline", "sockets", "fired", "done")

    def __init__(self, seconds: float, hard_deadline: float | None) -> None:
        self.seconds = seconds
        self.hard_deadline = hard_deadline
        self.deadline: float | None = None
        self.sockets: list[socket.socket] = []
        self.fired = False
        self.done = False


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Watchdog:
    """One daemon thread that shuts down the sockets of requests past their time limit."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Guard]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        # When the thread will next look at the heap on its own (inf: only when notified).
        # Deadlines grow with time, so a new one is rarely earlier: most requests then
        # push without waking the thread, which would otherwise wake (and contend for the
        # interpreter lock with the request's own thread) on every call.
        self._wakes_at = math.inf

    @contextlib.contextmanager
    def limit(self, seconds: float, hard_deadline: float | None = None) -> Iterator[Guard]:
        """Limit the answer of the request made inside the block to ``seconds`` in total
        (counted from when the answer is awaited) and never past ``hard_deadline``
        (``time.monotonic()``). ``guard.fired`` tells whether the limit cut it off."""
        guard = Guard(seconds, hard_deadline)
        previous = getattr(self._local, "guard", None)
        self._local.guard = guard
        try:
            yield guard
        finally:
            guard.done = True
            guard.sockets = []  # a done guard may wait in the heap until its deadline: hold no sockets
            self._local.guard = previous

    def watch(self, sock: socket.socket | None) -> None:
        """Called by a guarded connection when it starts awaiting an answer on ``sock``."""
        guard = getattr(self._local, "guard", None)
        if guard is None or sock is None:
            return
        with self._cond:
            guard.sockets.append(sock)
            if guard.fired:
                _shutdown(sock)
                return
            if guard.deadline is None:
                deadline = time.monotonic() + guard.seconds
                if guard.hard_deadline is not None:
                    deadline = min(deadline, guard.hard_deadline)
                guard.deadline = deadline
                heap = self._heap
                while heap and heap[0][2].done:  # finished requests leave here, not by waking the thread
                    heapq.heappop(heap)
                heapq.heappush(heap, (deadline, next(self._order), guard))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="connector-watchdog", daemon=True)
                    self._thread.start()
                elif deadline < self._wakes_at:
                    self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wakes_at = math.inf
                    self._cond.wait()
                    continue
                deadline, _, guard = self._heap[0]
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._wakes_at = deadline
                    self._cond.wait(remaining)
                    continue
                heapq.heappop(self._heap)
                guard.fired = True
                for sock in guard.sockets:
                    _shutdown(sock)


WATCHDOG = Watchdog()


def guarded_request(session: requests.Session, method: str, url: str, *, timeout: tuple[float, float],
                    deadline: float | None = None, **kwargs: Any) -> requests.Response:
    """``session.request`` whose answer must come complete within the read timeout (and
    before ``deadline``, a ``time.monotonic()`` value), however slowly the server trickles.

    A cut-off answer raises ``requests.exceptions.ReadTimeout``.
    """
    connect, read = timeout
    if deadline is not None:
        left = max(0.001, deadline - time.monotonic())
        connect, read = min(connect, left), min(read, left)
    with WATCHDOG.limit(read, deadline) as guard:
        try:
            return session.request(method, url, timeout=(connect, read), **kwargs)
        except requests.RequestException as exc:
            if guard.fired:
                raise requests.exceptions.ReadTimeout(f"no complete answer within {read:g} s") from exc
            raise


# -- guarded connections --------------------------------------------------------------------------------


class _Guarded:
    egress: EgressRule | None = None

    def _new_conn(self):  # type: ignore[no-untyped-def]
        rule = self.egress
        if rule is None:
            return super()._new_conn()  # type: ignore[misc]
        # Resolve once, check every address, connect to a checked one; TLS keeps self.host.
        address = rule.pick(self._dns_host, self.port)  # type: ignore[attr-defined]
        saved, self._dns_host = self._dns_host, address  # type: ignore[attr-defined]
        try:
            return super()._new_conn()  # type: ignore[misc]
        finally:
            self._dns_host = saved

    def getresponse(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        WATCHDOG.watch(self.sock)  # type: ignore[attr-defined]
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class GuardedAdapter(requests.adapters.HTTPAdapter):
    """A ``requests`` adapter whose connections obey an :class:`EgressRule` (when given)
    and report to the :data:`WATCHDOG` while they await an answer."""

    def __init__(self, egress: EgressRule | None = None, **kwargs: Any) -> None:
        self._egress = egress
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        extra = {"egress": self._egress}
        http = type("GuardedHTTPConnection", (_Guarded, urllib3.connection.HTTPConnection), extra)
        https = type("GuardedHTTPSConnection", (_Guarded, urllib3.connection.HTTPSConnection), extra)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPConnectionPool", (urllib3.connectionpool.HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("GuardedHTTPSConnectionPool", (urllib3.connectionpool.HTTPSConnectionPool,), {"ConnectionCls": https}),
        }
