"""A small programmable HTTP/1.1 server on 127.0.0.1 for the core's HTTP tests.

Answers are scripted per ``(method, path)``: :meth:`TestServer.queue` adds answers used
once each, in order; :meth:`TestServer.route` sets the answer used whenever the queue of
that route is empty. An answer can be a :class:`Answer` or a callable taking the
:class:`Recorded` request and returning one. Every request received is recorded (method,
path, query, headers, body, client port) before it is answered, so a test can count what
reached the server even when the answer is a dropped connection or a delay.

    with TestServer() as server:
        server.queue("GET", "/items/1", Answer(503), Answer(200, json={"id": 1}))
        ...
        assert [r.path for r in server.requests] == ["/items/1", "/items/1"]
"""

from __future__ import annotations

import collections
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, urlsplit

import attrs
from requests.structures import CaseInsensitiveDict


@attrs.frozen
class Answer:
    """One scripted answer: status, headers, body (``json`` wins over ``body``), delay, or a dropped connection."""

    status: int = 200
    json: Any = None
    body: bytes | str = b""
    headers: Mapping[str, str] = attrs.field(factory=dict)
    delay: float = 0.0
    drop: bool = False

    def payload(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if self.json is not None:
            headers.setdefault("Content-Type", "application/json")
            return json.dumps(self.json).encode("utf-8"), headers
        body = self.body.encode("utf-8") if isinstance(self.body, str) else self.body
        return body, headers


@attrs.frozen
class Recorded:
    """One request the server received."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: CaseInsensitiveDict = attrs.field(eq=False)
    body: bytes
    client_port: int

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


NOT_SCRIPTED = Answer(599, json={"error": "no answer scripted for this request"})

Script = Answer | Callable[[Recorded], Answer]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be observed
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = Recorded(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=CaseInsensitiveDict(self.headers.items()),
            body=body,
            client_port=self.client_address[1],
        )
        owner = self.server.owner
        answer = owner._next(record)
        if answer.delay:
            owner._stopping.wait(answer.delay)
        if answer.drop or owner._stopping.is_set():
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        data, headers = answer.payload()
        try:
            self.send_response(answer.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:  # the client gave up (read timeout)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many threads connect at once in the concurrency tests
    owner: "TestServer"

    def handle_error(self, request, client_address) -> None:  # a client hanging up is not an error here
        pass


class TestServer:
    """A scripted HTTP server on an ephemeral loopback port (see the module docstring)."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[tuple[str, str], collections.deque] = collections.defaultdict(collections.deque)
        self._routes: dict[tuple[str, str], Script] = {}
        self._requests: list[Recorded] = []
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue(self, method: str, path: str, *answers: Script) -> "TestServer":
        """Answer the next requests to ``method path`` with ``answers``, one each, in order."""
        with self._lock:
            self._queues[(method.upper(), path)].extend(answers)
        return self

    def route(self, method: str, path: str, answer: Script) -> "TestServer":
        """Answer every request to ``method path`` with ``answer`` once its queue is empty."""
        with self._lock:
            self._routes[(method.upper(), path)] = answer
        return self

    def _next(self, record: Recorded) -> Answer:
        with self._lock:
            self._requests.append(record)
            key = (record.method, record.path)
            queue = self._queues.get(key)
            script = queue.popleft() if queue else self._routes.get(key, NOT_SCRIPTED)
        return script(record) if callable(script) else script

    @property
    def requests(self) -> list[Recorded]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method.upper() and r.path == path]

    def close(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "TestServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
