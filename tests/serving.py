"""Runs ``connector serve``'s application on 127.0.0.1 in a thread, for tests and benchmarks."""

from __future__ import annotations

import importlib.util
import threading
import time
from typing import Any

import pytest

from connector_core.serve.commands import _bind


def needs_serve_extra() -> None:
    """Skip the calling test module where the serve extra is not installed.

    Looked for, not imported: every xdist worker collects the modules that call this, and
    only the one that runs them needs uvicorn and Starlette (imported by :class:`ServedApp`).
    """
    for name in ("uvicorn", "starlette"):
        if importlib.util.find_spec(name) is None:
            pytest.skip("the serve extra (starlette, uvicorn) is not installed", allow_module_level=True)


class ServedApp:
    """uvicorn serving ``Service(engine, ...)`` on a free loopback port until the block ends."""

    def __init__(self, engine: Any, connections: Any = None, **settings: Any) -> None:
        from connector_core.serve.app import Service

        settings.setdefault("allowed_hosts", {"127.0.0.1", "localhost", "::1"})
        self.service = Service(engine, connections or {}, **settings)
        self.url = ""

    def __enter__(self) -> ServedApp:
        import uvicorn

        from connector_core.serve.app import create_app

        sock = _bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(self.service), log_config=None, access_log=False, lifespan="on",
                                timeout_graceful_shutdown=5, server_header=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(15)
