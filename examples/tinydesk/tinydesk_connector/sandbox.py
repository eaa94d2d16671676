"""A local stand-in for Tinydesk: token endpoint, REST API and export API on one loopback port.

``with Sandbox() as sandbox:`` serves on ``127.0.0.1`` (a free port) until the block ends;
``sandbox.config`` is a connector config pointing every URL at it, and ``sandbox.requests``
lists what it was sent, so a test can prove which requests happened (and that none did).
The ``sandbox`` hook lets ``connector run tinydesk.listTickets --sandbox`` use it too.

Served (every answer is JSON):

* ``POST /oauth/token``: form-encoded ``grant_type=client_credentials``, ``client_id``,
  ``client_secret`` → ``{"access_token", "token_type", "expires_in"}``; a wrong client → 401.
* ``POST /api/v2/tickets``: bearer token; ``{"subject", "requester": {"email"}, "priority",
  "tags"}`` → 201 ``{"ticket": {...}}``; a blank subject → 422; no or unknown token → 401.
* ``GET /export/v1/tickets?status=&limit=``: HTTP Basic (agent email and API token) →
  ``{"data": [...]}``, newest first; wrong credentials → 401.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connector_core import hookimpl

TITLE = "Tinydesk sandbox"

CLIENT_ID = "demo-client"
CLIENT_SECRET = "demo-client-secret"
AGENT_EMAIL = "agent@tinydesk.example"
API_TOKEN = "demo-agent-token"

SEED = [
    {"id": 1, "subject": "Password reset", "status": "open", "priority": "normal", "requester": {"email": "bo@example.com"}, "tags": []},
    {"id": 2, "subject": "Invoice missing", "status": "open", "priority": "high", "requester": {"email": "cy@example.com"}, "tags": ["billing"]},
    {"id": 3, "subject": "Thanks!", "status": "closed", "priority": "low", "requester": {"email": "di@example.com"}, "tags": []},
]


class Sandbox:
    """The Tinydesk stand-in (thread-safe; one per test or per session)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.tickets: list[dict[str, Any]] = [dict(t) for t in SEED]
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the sandbox is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def config(self) -> dict[str, str]:
        """A config of the tinydesk connector whose every URL points here."""
        return {
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
            "agentEmail": AGENT_EMAIL,
            "apiToken": API_TOKEN,
            "apiUrl": f"{self.url}/api",
            "tokenUrl": f"{self.url}/oauth/token",
            "exportUrl": f"{self.url}/export/v1",
        }

    def start(self) -> Sandbox:
        sandbox = self

        class Handler(_Handler):
            owner = sandbox

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: stop() waits for it, once per test.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="tinydesk-sandbox", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the service ---------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        with self._lock:
            self.requests.append({"method": method, "path": path, "query": query, "content_type": headers.get("content-type", "")})
            if (method, path) == ("POST", "/oauth/token"):
                return self._token(headers, body)
            if (method, path) == ("POST", "/api/v2/tickets"):
                return self._create(headers, body)
            if (method, path) == ("GET", "/export/v1/tickets"):
                return self._list(headers, query)
            return 404, {"error": "not_found", "message": f"no route {method} {path}"}

    def _token(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return 400, {"error": "invalid_request", "error_description": "send the token request form-encoded"}
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return 401, {"error": "invalid_client", "error_description": "unknown client or wrong secret"}
        token = secrets.token_urlsafe(16)
        self._tokens.add(token)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": form.get("scope", "")}

    def _create(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self._tokens:
            return 401, {"error": "unauthorized", "message": "a valid bearer token is required"}
        try:
            data = json.loads(body)
        except ValueError:
            return 400, {"error": "bad_request", "message": "the body is not JSON"}
        subject = data.get("subject") if isinstance(data, dict) else None
        if not isinstance(subject, str) or not subject.strip():
            return 422, {"error": "validation", "message": "subject must not be blank"}
        ticket = {
            "id": max(t["id"] for t in self.tickets) + 1,
            "subject": subject,
            "status": "open",
            "priority": data.get("priority", "normal"),
            "requester": {"email": data.get("requester", {}).get("email", "")},
            "tags": list(data.get("tags", [])),
        }
        self.tickets.append(ticket)
        return 201, {"ticket": ticket}

    def _list(self, headers: dict[str, str], query: dict[str, str]) -> tuple[int, Any]:
        expected = "Basic " + base64.b64encode(f"{AGENT_EMAIL}:{API_TOKEN}".encode()).decode()
        if headers.get("authorization") != expected:
            return 401, {"error": "unauthorized", "message": "wrong agent email or API token"}
        status = query.get("status", "open")
        limit = int(query.get("limit", "20"))
        rows = sorted((t for t in self.tickets if t["status"] == status), key=lambda t: -t["id"])
        return 200, {"data": rows[:limit], "next": None}


class _Handler(BaseHTTPRequestHandler):
    owner: Sandbox
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read sandbox.requests
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        status, payload = self.owner.handle(self.command, parts.path, query, headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _serve


@contextlib.contextmanager
def _running():
    with Sandbox() as sandbox:
        yield sandbox.config


@hookimpl
def sandbox(connector):
    """``connector run ... --sandbox`` for the tinydesk connector."""
    return _running() if connector == "tinydesk" else None
