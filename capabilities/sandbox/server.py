"""A lean HTTP/1.1 server: keep-alive, one thread per connection, Content-Length bodies.

``http.server.BaseHTTPRequestHandler`` parses headers with the email package and writes a
response in several pieces; on this project's 2-core machine that capped one keep-alive
client near 1,300 requests/s. This server reads a request with buffered ``readline`` calls
and answers with one ``sendall``, so the sandbox is never the bottleneck of a benchmark.

What it deliberately does not do: chunked request bodies (answered 411), pipelining beyond
reading requests in order, TLS. The handler is any callable ``Request -> Response``.
"""

from __future__ import annotations

import selectors
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

MAX_LINE = 64 * 1024
MAX_HEADERS = 100
MAX_BODY = 16 * 1024 * 1024

DROP = "drop"
TRUNCATE = "truncate"
RESET = "reset"

_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BLANK = (b"\r\n", b"\n")


class Request:
    """One parsed request. Header names are lower-case; ``query`` keeps each first value."""

    __slots__ = ("method", "path", "query_string", "headers", "body", "prelude", "_query")

    def __init__(self, method: str, path: str, query_string: str, headers: dict[str, str], body: bytes, prelude: Any = None):
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self.prelude = prelude  # what the server's on_head hook decided before the body was read
        self._query: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            parsed = parse_qs(self.query_string, keep_blank_values=True)
            self._query = {name: values[0] for name, values in parsed.items()}
        return self._query

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lower-case ('' when absent)."""
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()


class Response:
    """A status, a body and extra headers; ``effect`` asks the server to misbehave on purpose.

    ``effect`` is None (answer normally), ``DROP`` (close the connection without answering),
    ``RESET`` (abort it with a TCP reset, without answering) or ``TRUNCATE`` (send the head
    and half the body, then close; half the status line when there is no body).
    """

    __slots__ = ("status", "body", "headers", "effect")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        effect: str | None = None,
    ):
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []
        self.effect = effect


Handler = Callable[[Request], Response]
# Called with (method, path, headers) once the head of a request is read, before its body:
# RESET aborts the connection there; anything else reaches the handler as ``request.prelude``.
HeadHook = Callable[[str, str, dict], Any]

_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class HTTPServer:
    """Serve ``handler`` on ``host:port`` (port 0 picks a free one) until ``stop()``."""

    def __init__(
        self, handler: Handler, host: str, port: int = 0, *, idle_timeout: float = 120.0, on_head: HeadHook | None = None,
    ):
        self._handler = handler
        self._on_head = on_head
        self._idle_timeout = idle_timeout
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=128)
        self._listener.setblocking(False)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._stopping = False
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"sandbox-accept-{self.port}", daemon=True)

    def start(self) -> None:
        self._acceptor.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting, close every open connection and wait for their threads."""
        if self._stopping:
            return
        self._stopping = True
        self._wake_w.send(b"x")
        if self._acceptor.is_alive():
            self._acceptor.join(timeout)
        self._listener.close()
        with self._lock:
            connections = list(self._connections.items())
        for conn, _ in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for _, thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._wake_r.close()
        self._wake_w.close()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        conn, _ = self._listener.accept()
                    except OSError:  # the client gave up between select and accept
                        continue
                    thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                    with self._lock:
                        self._connections[conn] = thread
                    thread.start()

    def _serve(self, conn: socket.socket) -> None:
        rfile = None
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(self._idle_timeout)
            rfile = conn.makefile("rb", buffering=64 * 1024)
            while not self._stopping and self._serve_one(conn, rfile):
                pass
        except (OSError, ValueError):  # reset, idle timeout, or stop() closed the socket
            pass
        finally:
            if rfile is not None:
                rfile.close()
            conn.close()
            with self._lock:
                self._connections.pop(conn, None)

    def _serve_one(self, conn: socket.socket, rfile) -> bool:
        """Read one request, answer it; return whether the connection stays open."""
        try:
            request, keep_alive = self._read_request(conn, rfile)
        except _BadRequest as exc:
            body = b'{"errors":[{"code":"BAD_REQUEST","message":"%s"}]}' % str(exc).encode("ascii")
            self._send(conn, "GET", Response(exc.status, body, [("Content-Type", "application/json")]), False)
            return False
        if request is None:
            return False
        if request is RESET:
            _abort(conn)
            return False
        try:
            response = self._handler(request)
        except Exception:  # a sandbox bug must not kill the connection thread silently
            traceback.print_exc(file=sys.stderr)
            body = b'{"errors":[{"code":"INTERNAL_ERROR","message":"sandbox bug, see its stderr"}]}'
            response = Response(500, body, [("Content-Type", "application/json")])
        return self._send(conn, request.method, response, keep_alive)

    def _read_request(self, conn: socket.socket, rfile) -> tuple[Request | None, bool]:
        line = rfile.readline(MAX_LINE + 1)
        while line in _BLANK:  # RFC 9112 §2.2: ignore empty lines before a request line
            line = rfile.readline(MAX_LINE + 1)
        if not line:
            return None, False
        if len(line) > MAX_LINE:
            raise _BadRequest(414, "request line too long")
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise _BadRequest(400, "malformed request line")
        method = parts[0].decode("latin-1")
        target = parts[1].decode("latin-1")
        version = parts[2]

        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            raw = rfile.readline(MAX_LINE + 1)
            if raw in _BLANK:
                break
            if not raw:
                return None, False
            if len(raw) > MAX_LINE:
                raise _BadRequest(431, "header line too long")
            name, sep, value = raw.partition(b":")
            if not sep:
                raise _BadRequest(400, "malformed header line")
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        else:
            raise _BadRequest(431, "too many headers")

        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection if version == b"HTTP/1.1" else "keep-alive" in connection

        if "transfer-encoding" in headers:
            raise _BadRequest(411, "chunked request bodies are not supported; send Content-Length")
        prelude = None
        if self._on_head is not None:
            prelude = self._on_head(method, target.partition("?")[0], headers)
            if prelude is RESET:  # abort before reading the body: the client may still be sending it
                return RESET, False
        length = headers.get("content-length")
        if length is None:
            if method in _BODY_METHODS:
                raise _BadRequest(411, "Content-Length required")
            body = b""
        else:
            if not (length.isascii() and length.isdigit()):
                raise _BadRequest(400, "invalid Content-Length")
            size = int(length)
            if size > MAX_BODY:
                raise _BadRequest(413, "request body too large")
            if size and headers.get("expect", "").lower() == "100-continue":
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = rfile.read(size) if size else b""
            if len(body) < size:
                return None, False

        if not target.startswith("/"):
            if not target.startswith(("http://", "https://")):
                raise _BadRequest(400, "unsupported request target")
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        path, _, query_string = target.partition("?")
        return Request(method, path, query_string, headers, body, prelude), keep_alive

    def _send(self, conn: socket.socket, method: str, response: Response, keep_alive: bool) -> bool:
        if response.effect == DROP:
            return False
        if response.effect == RESET:
            _abort(conn)
            return False
        body = response.body
        head = [
            b"HTTP/1.1 %d %s\r\n" % (response.status, _REASONS.get(response.status, b"Unknown")),
            b"Server: mparticle-sandbox\r\nDate: %s\r\n" % _http_date(),
        ]
        if response.status != 204:  # RFC 9110 §8.6: no Content-Length on 204
            head.append(b"Content-Length: %d\r\n" % len(body))
        for name, value in response.headers:
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        if not keep_alive:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        data = b"".join(head)
        if response.effect == TRUNCATE:
            # Without a body to cut, cut the status line: a client must not read a status.
            conn.sendall(data + body[: len(body) // 2] if body else data[: data.index(b"\r\n") // 2])
            return False
        conn.sendall(data if method == "HEAD" else data + body)
        return keep_alive


def _abort(conn: socket.socket) -> None:
    """Make the coming close send a TCP reset (RST) instead of an orderly FIN."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
