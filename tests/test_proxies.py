"""The environment's proxy carries the calls to remote hosts, never those to loopback.

A small forward proxy runs on loopback in the test (absolute-form HTTP requests, relayed
with ``http.client``; ``CONNECT`` tunnels recorded and refused). A control request through
plain ``requests`` shows it really proxies; then the connector, with ``HTTP_PROXY`` pointing
at it and ``NO_PROXY`` empty, sends its token request (client secret in the body) and its
calls straight to the service on loopback, and asks the proxy for a tunnel to a remote host.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests
from httpserver import Answer

from connector_core import Engine, NetworkError

SECRET = "proxy-test-s3cret"


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def _relay(self) -> None:
        target = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        self.server.seen.append((self.command, self.path, body))
        upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream.request(self.command, target.path + (f"?{target.query}" if target.query else ""), body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = do_PUT = do_DELETE = _relay

    def do_CONNECT(self) -> None:  # a tunnel to a remote host: recorded, refused (no network here)
        self.server.seen.append((self.command, self.path, None))
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()


class ForwardProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[tuple[str, str, bytes | None]] = []
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def proxy():
    server = ForwardProxy()
    yield server
    server.close()


def test_loopback_never_goes_through_the_environment_proxy(proxy, server, monkeypatch):
    server.route("POST", "/oauth/token", Answer(200, json={"access_token": "tok-proxy-test", "expires_in": 3600}))
    server.route("GET", "/v1/accounts/1003", Answer(200, json={"data": {"id": 1003, "name": "Acme"}}))
    # The proxy works: a plain requests call through it reaches the service.
    assert requests.get(f"{server.url}/v1/accounts/1003", proxies={"http": proxy.url}, timeout=5).json()["data"]["id"] == 1003
    assert [path for _, path, _ in proxy.seen] == [f"{server.url}/v1/accounts/1003"]
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "")
    config = {"clientID": "tenant", "clientSecret": SECRET, "authUrl": f"{server.url}/oauth/token",
              "platformUrl": server.url, "eventsUrl": f"{server.url}/v2", "maxRetries": 0}
    for host in ("127.0.0.1", "localhost"):
        local = {k: v.replace("127.0.0.1", host) if isinstance(v, str) else v for k, v in config.items()}
        with Engine() as engine:
            assert engine.execute("mparticle.getAccount", {"accountId": "1003"}, local).output["account"]["id"] == 1003
    assert len(proxy.seen) == 1  # only the control request
    assert [r.path for r in server.requests].count("/oauth/token") == 2


def test_a_remote_host_is_reached_through_the_environment_proxy(proxy, monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "")
    remote = "https://api.mparticle-proxy.invalid"  # .invalid never resolves: only the proxy can get there
    config = {"clientID": "tenant", "clientSecret": SECRET, "authUrl": f"{remote}/oauth/token",
              "platformUrl": remote, "maxRetries": 0}
    with Engine() as engine, pytest.raises(NetworkError) as caught:
        engine.execute("mparticle.getAccount", {"accountId": "1003"}, config)
    # The token request asked the proxy for a tunnel (the secret would travel inside it, encrypted).
    assert proxy.seen == [("CONNECT", "api.mparticle-proxy.invalid:443", None)]
    assert SECRET not in str(caught.value.to_dict())
