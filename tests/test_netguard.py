"""Egress checks and the watchdog, at the seam where they act: sockets and real servers on loopback.

- the address table, against written-out cases (IPv4, IPv6 and the IPv6 forms that carry
  an IPv4 address), independent of the Python version's ``ipaddress``;
- a resolver stand-in (names the tests invent, mapped to loopback or to refused ranges):
  every address is checked, the connection goes to the checked address, and an HTTPS
  server with a certificate made by ``trustme`` shows that TLS still verifies the name;
- trickling servers (one byte a second, in the headers or in the body) cut off at the
  limit by the watchdog.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest
import requests

from connector_core.netguard import WATCHDOG, EgressRefused, EgressRule, GuardedAdapter, Watchdog, address_kind, find_refusal

ADDRESSES = {
    "8.8.8.8": None,
    "1.1.1.1": None,
    "2606:4700:4700::1111": None,
    "2a00:1450:4001:80b::200e": None,
    "127.0.0.1": "loopback",
    "127.255.255.254": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "172.31.255.255": "private",
    "192.168.1.1": "private",
    "100.64.0.1": "shared",
    "100.127.255.255": "shared",
    "0.0.0.0": "this-network",
    "0.1.2.3": "this-network",
    "::": "this-network",
    "169.254.169.254": "link-local",
    "fe80::1": "link-local",
    "fe80::1%eth0": "link-local",
    "fd00::1": "unique-local",
    "fc00::1": "unique-local",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "192.0.2.1": "reserved",
    "198.18.0.1": "reserved",
    "2001:db8::1": "reserved",
    "fec0::1": "reserved",
    "::127.0.0.1": "reserved",  # IPv4-compatible
    # IPv4-mapped, IPv4-translated, NAT64 and 6to4 forms are judged by the IPv4 address inside.
    "::ffff:127.0.0.1": "loopback",
    "::ffff:7f00:1": "loopback",
    "::ffff:10.0.0.1": "private",
    "::ffff:169.254.169.254": "link-local",
    "::ffff:8.8.8.8": None,
    "::ffff:0:127.0.0.1": "loopback",
    "64:ff9b::127.0.0.1": "loopback",
    "64:ff9b::a9fe:a9fe": "link-local",
    "64:ff9b::8.8.8.8": None,
    "64:ff9b:1::1": "private",
    "2002:7f00:0001::1": "loopback",
    "2002:a00:1::": "private",
    "2002:0808:0808::1": None,
}


@pytest.mark.parametrize("address, kind", ADDRESSES.items(), ids=list(ADDRESSES))
def test_the_address_table(address, kind):
    assert address_kind(address) == kind


def test_every_resolved_address_is_checked_and_a_checked_one_is_used():
    answers = {"mixed.test": ["93.184.215.14", "10.0.0.7"], "public.test": ["93.184.215.14", "2606:4700::1"],
               "loop.test": ["127.0.0.1"], "mapped.test": ["::ffff:127.0.0.1"]}
    rule = EgressRule(allow_loopback=False, allow_private=False, resolver=lambda host, port: answers[host])
    assert rule.pick("public.test", 443) == "93.184.215.14"
    for host, kind in (("mixed.test", "private"), ("loop.test", "loopback"), ("mapped.test", "loopback")):
        with pytest.raises(EgressRefused) as caught:
            rule.pick(host, 443)
        assert caught.value.kind == kind and str(caught.value) == f"{host} resolves to a {kind} address, which this host does not allow"
    relaxed = EgressRule(allow_loopback=True, allow_private=False, resolver=lambda host, port: answers[host])
    assert relaxed.pick("loop.test", 443) == "127.0.0.1"
    with pytest.raises(EgressRefused):
        relaxed.pick("mixed.test", 443)


class RawServer:
    """A loopback TCP server that answers each connection with ``script(conn)`` (optionally over TLS)."""

    def __init__(self, script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.server_names: list[str | None] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
                self.server_names.append(getattr(conn, "sni", None))
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            self.script(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def trickle_headers(conn: socket.socket) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Slow: " + b"x" * 240:
        conn.sendall(bytes([byte]))
        time.sleep(0.25)


def trickle_body(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 240\r\n\r\n")
    for _ in range(240):
        conn.sendall(b"x")
        time.sleep(0.25)


def quick_ok(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


def guarded_session(rule: EgressRule | None = None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(rule, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@pytest.mark.parametrize("script", [trickle_headers, trickle_body], ids=["slow-headers", "slow-body"])
def test_the_watchdog_cuts_a_trickling_answer_off_at_its_limit(script):
    server = RawServer(script)
    try:
        session = guarded_session()
        started = time.monotonic()
        # Each byte comes well within the 2 s read timeout, so only the total limit ends this
        # answer, which would otherwise take a minute (timings: bench/bench_hosting.py).
        with WATCHDOG.limit(1.0) as guard, pytest.raises(requests.RequestException):
            session.get(f"http://127.0.0.1:{server.port}/", timeout=(2, 2))
        assert guard.fired and time.monotonic() - started < 30
    finally:
        server.close()


def test_answers_within_the_limit_are_untouched():
    server = RawServer(quick_ok)
    try:
        with WATCHDOG.limit(5.0) as guard:
            assert guarded_session().get(f"http://127.0.0.1:{server.port}/", timeout=(2, 2)).text == "ok"
        assert not guard.fired
    finally:
        server.close()


def test_a_short_limit_fires_on_time_while_a_longer_one_is_pending():
    # The watchdog sleeps until the earliest deadline and is woken only by an earlier one:
    # a short limit arriving while it sleeps for a long one must still end its answer on time.
    watchdog = Watchdog()
    waiting, silent = socket.socketpair()
    trickled, server = socket.socketpair()
    try:
        with watchdog.limit(60.0) as long:
            watchdog.watch(waiting)
            time.sleep(0.2)  # the watchdog is asleep until the long limit's deadline
            with watchdog.limit(0.3) as short:
                started = time.monotonic()
                watchdog.watch(trickled)
                trickled.settimeout(10)
                assert trickled.recv(1) == b""  # shut down by the watchdog, not answered
                assert short.fired and time.monotonic() - started < 5
            assert not long.fired
        # Requests that finished leave no sockets behind, however far away their deadline.
        assert long.sockets == [] and short.sockets == []
    finally:
        for sock in (waiting, silent, trickled, server):
            sock.close()


def test_a_refused_address_is_never_connected_to():
    server = RawServer(quick_ok)
    try:
        rule = EgressRule(allow_loopback=False, allow_private=False, resolver=lambda host, port: ["127.0.0.1"])
        with pytest.raises(requests.ConnectionError) as caught:
            guarded_session(rule).get(f"http://tenant.test:{server.port}/", timeout=(2, 2))
        assert find_refusal(caught.value).kind == "loopback"
        allowed = EgressRule(allow_loopback=True, allow_private=False, resolver=lambda host, port: ["127.0.0.1"])
        assert guarded_session(allowed).get(f"http://tenant.test:{server.port}/", timeout=(2, 2)).text == "ok"
    finally:
        server.close()


def test_tls_verifies_the_name_while_the_connection_goes_to_the_checked_address(tmp_path):
    trustme = pytest.importorskip("trustme", reason="trustme (a test dependency) makes the test certificates")
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("api.tenant.test").configure_cert(context)
    server_names: list[str] = []
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    server = RawServer(quick_ok, tls=context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    resolver = {"api.tenant.test": ["127.0.0.1"], "other.tenant.test": ["127.0.0.1"]}
    rule = EgressRule(allow_loopback=True, allow_private=False, resolver=lambda host, port: resolver[host])
    try:
        session = guarded_session(rule)
        response = session.get(f"https://api.tenant.test:{server.port}/", timeout=(2, 2), verify=str(bundle))
        assert response.text == "ok" and server_names == ["api.tenant.test"]  # SNI carried the name
        # Same address, another name: the certificate does not match it, so TLS refuses.
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"https://other.tenant.test:{server.port}/", timeout=(2, 2), verify=str(bundle))
    finally:
        server.close()
