"""What the serving hop costs on other Python HTTP stacks: the evidence behind ``connector serve``'s.

One command (after ``pip install -e '.[serve]'``; it installs ``pycurl`` and ``granian`` from
bench/requirements.txt on first use)::

    python bench/bench_serve_stacks.py            # 10 rounds x 100 calls per variant
    python bench/bench_serve_stacks.py --rounds 20 --calls 100

``getAccount`` against the sandbox (a child process, 0 ms away), one keep-alive libcurl handle
per variant, one call at a time, rounds interleaved in alternating order so drift hits all
alike. Every server runs in a child process with one worker:

- ``Python API``: ``Connection.execute`` in this process, the baseline of every ratio;
- ``connector serve (uvicorn)``: the service as shipped, every guard and the access log on;
- ``connector serve's app on granian``: the same Starlette app (the same ``Service`` and
  ``create_app``, lifespan and all) behind granian's ASGI interface, a Rust HTTP server;
- ``bare app, uvicorn, call in a thread``: an ASGI app doing only the call, in a thread pool
  (what any asyncio service in front of the engine costs; ``bench_serve.py``'s floor);
- ``bare app, uvicorn, call on the loop``: the same app calling the engine on the event loop
  itself. It blocks the loop for the whole call, so one slow call would stall every other
  request and the health checks: no service can run that way; it is the lower bound of the
  thread hand-off's cost;
- ``bare WSGI app, granian``: a WSGI app doing only the call, run by granian in one of its
  blocking threads (HTTP in Rust, no event loop, no hand-off between Python threads);
- on one CPU (the server's process bound to the first CPU this bench may use, as
  ``connector serve --pin-workers`` binds a worker): ``connector serve --pin-workers``, the bare
  app handing the call to ``connector serve``'s ``CallPool``, and the bare app calling on the
  loop. The last is the floor of any asyncio service here; the one before, that floor plus the
  least hand-off to a thread measured.

Printed per variant: the median latency and its ratio to the Python API (``connector serve``'s
target is 1.5x, measured by ``bench_serve.py``), CPU per call (this process and the server's,
not the sandbox) and the server's voluntary context switches per call (each a sleep and a
wake-up of a thread: the hand-offs, from ``/proc``). Nothing is a verdict: this compares stacks.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from connector_mparticle.sandbox.process import SandboxProcess

from bench_deps import import_or_install
from bench_serve import ServeProcess, api_call, cpu_seconds, curl_call, floor_app, ms, serve_floor, threads, timed
from connector_core import Engine

CONFIG_ENV = "BENCH_SERVE_STACKS_CONFIG"  # the sandbox config, for the bare apps
CONNECTIONS_ENV = "BENCH_SERVE_STACKS_CONNECTIONS"  # the connections file, for connector serve's app
EXECUTE = "/v1/capabilities/mparticle.getAccount/execute"


# -- the servers' applications (imported by granian in its worker process) ----------------


def bare_wsgi_app() -> Callable:
    """granian ``--factory`` target: a bare WSGI app doing only the call, in granian's thread."""
    import orjson

    connection = Engine().connect(json.loads(os.environ[CONFIG_ENV]))

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        if environ["REQUEST_METHOD"] == "POST":
            body = orjson.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
            out = orjson.dumps(connection.execute("getAccount", body["properties"]).to_dict())
        else:
            out = b"{}"
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
        return [out]

    return app


def service_app() -> Any:
    """granian ``--factory`` target: ``connector serve``'s own app, as the command builds it."""
    from connector_core.config import load_connections
    from connector_core.policy import HostPolicy
    from connector_core.serve.app import Service, create_app
    from connector_core.serve.commands import LOOPBACK_NAMES, _configure_logging

    access_lines = _configure_logging(False, True)  # the access log on, as deployed (stderr goes to /dev/null)
    service = Service(Engine(), load_connections(os.environ[CONNECTIONS_ENV]), allowed_hosts=set(LOOPBACK_NAMES),
                      caller_policy=HostPolicy.untrusted(), access_lines=access_lines)
    return create_app(service)


def uvicorn_server(mode: str) -> None:
    """``bench_serve.py``'s floor app on uvicorn: the call in a thread (``thread``), in a ``CallPool``
    thread (``pool``) or on the loop (``inline``); ``-pinned`` binds the process to one CPU first."""
    mode, _, pinned = mode.partition("-")
    if pinned:
        from connector_core.serve.commands import pin_to_cpu

        pin_to_cpu(min(os.sched_getaffinity(0)))
    serve_floor(floor_app(Engine().connect(json.loads(os.environ[CONFIG_ENV])), inline=mode == "inline", pool=mode == "pool"))


# -- the bench -----------------------------------------------------------------------------


class GranianProcess:
    """granian serving a ``--factory`` target of this module on a free loopback port."""

    def __init__(self, interface: str, target: str, env: dict[str, str]) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))  # granian takes a port number, not a socket: pick a free one
        self.port = probe.getsockname()[1]
        probe.close()
        argv = [sys.executable, "-m", "granian", "--interface", interface, "--host", "127.0.0.1", "--port", str(self.port),
                "--workers", "1", "--no-log", "--working-dir", str(Path(__file__).parent), "--factory",
                f"{Path(__file__).stem}:{target}"]
        if interface != "wsgi":
            argv[3:3] = ["--loop", "uvloop"]
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                client.request("GET", "/healthz")
                if client.getresponse().status == 200:
                    break
            except OSError:
                pass
            finally:
                client.close()
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"granian did not start: {' '.join(argv)}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def voluntary_switches(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid`` and its children so far (Linux /proc)."""
    total = 0
    for one, tid in threads(pid):
        try:
            with open(f"/proc/{one}/task/{tid}/status") as status:
                total += sum(int(line.split()[1]) for line in status if line.startswith("voluntary_ctxt_switches"))
        except OSError:  # the thread ended
            pass
    return total


API = "Python API"
SERVE = "connector serve (uvicorn)"
GRANIAN_SERVE = "connector serve's app on granian"
THREAD = "bare app, uvicorn, call in a thread"
INLINE = "bare app, uvicorn, call on the loop"
WSGI = "bare WSGI app, granian"
SERVE_PINNED = "connector serve --pin-workers"
POOL_PINNED = "bare app, CallPool thread, one CPU"
INLINE_PINNED = "bare app, call on the loop, one CPU"


def main() -> int:
    if sys.argv[1:2] == ["--uvicorn-server"]:
        uvicorn_server(sys.argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per variant per round (default 100)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds (default 10)")
    parser.add_argument("--no-granian", dest="granian", action="store_false", help="skip the two granian variants")
    parser.add_argument("--no-pinned", dest="pinned", action="store_false", help="skip the three variants on one CPU")
    args = parser.parse_args()
    if import_or_install("pycurl") is None or (args.granian and import_or_install("granian") is None):
        print("this bench needs pycurl and granian (or --no-granian): pip install -r bench/requirements.txt", file=sys.stderr)
        return 2

    with SandboxProcess() as sandbox, Engine() as engine, tempfile.TemporaryDirectory() as folder:
        connections = Path(folder) / "connections.json"
        connections.write_text(json.dumps({"connections": {"sandbox": {"connector": "mparticle", "config": sandbox.config}}}))
        os.environ[CONFIG_ENV] = json.dumps(sandbox.config)  # for the bare apps' processes
        os.environ[CONNECTIONS_ENV] = str(connections)
        env = dict(os.environ)
        servers: dict[str, Any] = {}
        try:
            servers[SERVE] = ServeProcess([str(Path(sys.executable).parent / "connector"), "serve", "--port", "0",
                                           "--connections", str(connections), "--workers", "1"])
            if args.granian:
                servers[GRANIAN_SERVE] = GranianProcess("asgi", "service_app", env)
            servers[THREAD] = ServeProcess([sys.executable, __file__, "--uvicorn-server", "thread"])
            servers[INLINE] = ServeProcess([sys.executable, __file__, "--uvicorn-server", "inline"])
            if args.granian:
                servers[WSGI] = GranianProcess("wsgi", "bare_wsgi_app", env)
            if args.pinned:
                servers[SERVE_PINNED] = ServeProcess([str(Path(sys.executable).parent / "connector"), "serve", "--port", "0",
                                                      "--connections", str(connections), "--workers", "1", "--pin-workers"])
                servers[POOL_PINNED] = ServeProcess([sys.executable, __file__, "--uvicorn-server", "pool-pinned"])
                servers[INLINE_PINNED] = ServeProcess([sys.executable, __file__, "--uvicorn-server", "inline-pinned"])
            with engine.connect(sandbox.config) as connection:
                variants: dict[str, tuple[Callable[[], None], int | None]] = {API: (api_call(connection), None)}
                for name, server in servers.items():
                    path = EXECUTE if "connector serve" in name else "/"
                    variants[name] = (curl_call("127.0.0.1", server.port, path), server.process.pid)
                for call, _ in variants.values():  # warm up: tokens, pools, caches
                    timed(call, 50)
                samples: dict[str, list[float]] = {name: [] for name in variants}
                spent = {name: [0.0, 0] for name in variants}  # CPU seconds, voluntary switches of the server

                def now(pid: int | None) -> tuple[float, int]:
                    return (time.process_time() + (cpu_seconds(pid) if pid else 0.0), voluntary_switches(pid) if pid else 0)

                for round_ in range(args.rounds):
                    for name in (list(variants) if round_ % 2 == 0 else list(reversed(variants))):
                        call, pid = variants[name]
                        before = now(pid)
                        samples[name] += timed(call, args.calls)
                        after = now(pid)
                        spent[name] = [spent[name][0] + after[0] - before[0], spent[name][1] + after[1] - before[1]]
                for call, _ in variants.values():
                    getattr(call, "close", lambda: None)()
        finally:
            for server in servers.values():
                server.stop()
    api = statistics.median(samples[API])
    print(f"getAccount, one keep-alive libcurl client, {args.rounds} x {args.calls} calls per variant, sandbox 0 ms away,"
          " one server process each")
    for name, values in samples.items():
        median = statistics.median(values)
        cpu, switches = (x / len(values) for x in spent[name])
        print(f"  {name:<36} median {ms(median)}  {median / api:5.2f}x   CPU per call {ms(cpu)}"
              f"   server's voluntary context switches per call {switches:4.1f}")
    print(f"cpus: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} (wall-clock ratios are only meaningful on an"
          " idle machine; CPU per call counts this process and the server's, not the sandbox)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
