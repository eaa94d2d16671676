"""Admin endpoints under ``/_sandbox/``: read the state and flip switches over HTTP.

mParticle has no path starting with ``/_``, so these cannot clash with the emulated APIs.
Admin requests are neither faulted, rate limited, counted nor logged. Each POST body is a
JSON object whose fields are the keyword arguments of the ``Sandbox`` method of the same
purpose; errors answer 400 ``{"error": "..."}``.

==========================  ==============================================================
``GET  /_sandbox/state``    counters, accounts and active switches (``Sandbox.state()``)
``GET  /_sandbox/requests`` the request log (``Sandbox.requests``)
``GET  /_sandbox/batches``  accepted batches (``Sandbox.batches``)
``GET  /_sandbox/rejected`` batches of bulk requests dropped as invalid (``Sandbox.rejected_batches``)
``GET  /_sandbox/markers``  counts of the event marker attribute (``Sandbox.event_markers()``)
``GET  /_sandbox/config``   the connector config (``Sandbox.config``)
``POST /_sandbox/reset``    back to the seeded state (``Sandbox.reset()``)
``POST /_sandbox/faults``   ``{"group": "events", "error_rate": 0.5}`` (``set_faults``; a group or an endpoint)
``POST /_sandbox/rate-limits`` ``{"group": "getAccount", "limit": 5}`` (``set_rate_limit``; likewise)
``POST /_sandbox/fail-next``   ``{"target": "createAccount", "effect": "drop", "after": true}``
``POST /_sandbox/clock``    ``{"seconds": 28800}`` (``advance_clock``)
``POST /_sandbox/settings`` ``{"token_lifetime": 60}``, ``{"marker_attribute": "m"}`` (``configure``)
``POST /_sandbox/latency``  ``{"ms": 20, "max_ms": 40}`` (``set_latency``)
==========================  ==============================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .server import Request, Response

if TYPE_CHECKING:
    from .app import Emulator

PREFIX = "/_sandbox/"


_READS: dict[str, Callable[[Emulator], Any]] = {
    "state": lambda emulator: emulator.snapshot(),
    "requests": lambda emulator: emulator.state.request_log(),
    "batches": lambda emulator: emulator.state.kept_batches(),
    "rejected": lambda emulator: list(emulator.state.rejected),
    "markers": lambda emulator: emulator.state.marker_summary(),
    "config": lambda emulator: emulator.config,
}
# admin path -> Emulator method called with the body's fields as keyword arguments
_WRITES = {
    "reset": "reset",
    "faults": "set_faults",
    "rate-limits": "set_rate_limit",
    "fail-next": "fail_next",
    "clock": "advance_clock",
    "settings": "configure",
    "latency": "set_latency",
}


def _answer(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"), [("Content-Type", "application/json")])


def handle(emulator: Emulator, request: Request) -> Response:
    action = request.path[len(PREFIX):]
    if request.method == "GET" and action in _READS:
        return _answer(200, _READS[action](emulator))
    if request.method == "POST" and action in _WRITES:
        try:
            body = json.loads(request.body) if request.body.strip() else {}
        except ValueError as exc:
            return _answer(400, {"error": f"the body is not valid JSON: {exc}"})
        if not isinstance(body, dict):
            return _answer(400, {"error": "the body must be a JSON object"})
        try:
            result = getattr(emulator, _WRITES[action])(**body)
        except (TypeError, ValueError) as exc:  # attrs puts the message first in args
            return _answer(400, {"error": str(exc.args[0]) if exc.args else str(exc)})
        return _answer(200, emulator.snapshot() if result is None else result)
    if action in _READS or action in _WRITES:
        allowed = "GET" if action in _READS else "POST"
        return Response(405, b'{"error":"method not allowed"}', [("Content-Type", "application/json"), ("Allow", allowed)])
    known = ", ".join(PREFIX + name for name in [*_READS, *_WRITES])
    return _answer(404, {"error": f"unknown admin path {request.path}; known: {known}"})
