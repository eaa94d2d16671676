"""``SandboxProcess``: the sandbox in a child process, driven through its admin API.

Benchmarks want this: in the test process the sandbox and the code under test would share
one interpreter lock and measure each other. Method names match ``Sandbox``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from typing import Any


class SandboxProcess:
    """Run ``python -m connector_mparticle.sandbox *cli_args`` and talk to it over HTTP."""

    def __init__(self, *cli_args: str, python: str = sys.executable, startup_timeout: float = 15.0):
        self._argv = [python, "-m", "connector_mparticle.sandbox", *cli_args]
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen | None = None
        self.config: dict[str, str] = {}

    def start(self) -> SandboxProcess:
        """Start the child and wait for its config line; returns ``self``."""
        self._process = subprocess.Popen(self._argv, stdout=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self._process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self._startup_timeout)
        if not lines or not lines[0].strip():
            code = self.stop()
            raise RuntimeError(f"the sandbox process did not start (exit code {code}): {' '.join(self._argv)}")
        self.config = json.loads(lines[0])
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the child and wait; returns its exit code."""
        process, self._process = self._process, None
        if process is None:
            return None
        process.terminate()
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
        finally:
            process.stdout.close()

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (benchmarks read its CPU time)."""
        return self._process.pid if self._process is not None else None

    @property
    def url(self) -> str:
        return self.config["platformUrl"]

    def _admin(self, action: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            f"{self.url}/_sandbox/{action}", data=data, method="GET" if data is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def state(self) -> dict[str, Any]:
        return self._admin("state")

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._admin("requests")

    @property
    def batches(self) -> list[dict[str, Any]]:
        return self._admin("batches")

    def event_markers(self) -> dict[str, Any]:
        return self._admin("markers")

    def reset(self) -> None:
        self._admin("reset", {})

    def set_faults(self, group: str, **fields: Any) -> dict[str, Any]:
        return self._admin("faults", {"group": group, **fields})

    def set_rate_limit(self, group: str, limit: int | None = None, **fields: Any) -> Any:
        return self._admin("rate-limits", {"group": group, "limit": limit, **fields})

    def fail_next(self, target: str, count: int = 1, **fields: Any) -> dict[str, Any]:
        return self._admin("fail-next", {"target": target, "count": count, **fields})

    def advance_clock(self, seconds: float) -> float:
        return self._admin("clock", {"seconds": seconds})

    def set_latency(self, ms: float = 0.0, max_ms: float | None = None) -> dict[str, Any]:
        return self._admin("latency", {"ms": ms, "max_ms": max_ms})

    def configure(self, **settings: Any) -> dict[str, Any]:
        return self._admin("settings", settings)
