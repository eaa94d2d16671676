"""Runs ``connector serve``'s application on 127.0.0.1 in a thread, for tests and benchmarks."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from connector_core.serve.app import Service, create_app
from connector_core.serve.commands import _bind


class ServedApp:
    """uvicorn serving ``Service(engine, ...)`` on a free loopback port until the block ends."""

    def __init__(self, engine: Any, connections: Any = None, **settings: Any) -> None:
        settings.setdefault("allowed_hosts", {"127.0.0.1", "localhost", "::1"})
        self.service = Service(engine, connections or {}, **settings)
        self.url = ""

    def __enter__(self) -> ServedApp:
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
