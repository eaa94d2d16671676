"""``getAccount`` through ``connector serve`` against the same call through the Python API.

One command (after ``pip install -e '.[serve]'``), printing each target with PASS or FAIL
(exit status 1 when one fails)::

    python bench/bench_serve.py      # defaults: 10 rounds x 150 latency calls, 3 x 4 s throughput, 8 clients
    python bench/bench_serve.py --calls 150 --rounds 10 --seconds 4 --reps 3 --clients 8 --workers 2

The mParticle sandbox runs in a child process (``SandboxProcess``) for every variant, and
``connector serve`` in another (``--connections`` naming the sandbox, access log on as
deployed, logs to /dev/null), so sandbox, service and client do not share an interpreter
lock. The service runs with ``--workers`` set to the number of CPUs, as one would deploy it:
a single Python process runs one call's Python code at a time, and a host calling the Python
API from threads is held to one core the same way, which is what the comparison is about
(``--workers 1`` measures a single process). Variants, side by side and interleaved so drift
hits all alike:

- ``connector serve, libcurl``: the service, every guard on (Host/Origin, media type, body
  limit, correlation id, access log), through one libcurl handle (``pycurl``, from
  bench/requirements.txt), so one keep-alive connection: the HTTP client that hosts outside
  Python link against (curl, PHP, R, most C and C++ programs), and the verdict's variant;
- ``connector serve``: the same service and request through one keep-alive
  ``http.client.HTTPConnection`` (Python's own client; it also carries the throughput runs).
  Its header parsing goes through ``email.parser``, which costs more per call than the
  service's guards, so it is printed beside the verdict, not as it;
- floor: a bare ASGI app on the same uvicorn (uvloop, httptools) that only reads the body,
  runs ``Connection.execute`` in a thread and answers ``Result.to_dict()``, in one process:
  what any Python HTTP service in front of the engine costs on this machine (for reference;
  ``--no-floor`` skips it);
- Python API: ``Connection.execute("getAccount", ...)`` on an open connection in this process;
- ``connector serve, raw client`` (reference, latency only): the same service and request
  through a raw keep-alive socket that sends prepared bytes and reads the answer by its
  Content-Length: the least any client could cost;
- ``connector serve --pin-workers`` (reference; ``--no-pinned`` skips it): a second service,
  the same but with worker N bound to CPU N, so a call's hand-offs between the event loop and
  the call thread stay on one core; through libcurl for latency and ``http.client`` for
  throughput, like the service above. The verdict stays on the service as started by default.

1. Latency: one caller, one call at a time, ``--rounds`` rounds of ``--calls`` calls per
   variant, alternating the order. Reported: median and p90 per call, CPU per call (this
   process plus the server's processes, not the sandbox) and the ratio of medians
   (target: the service through libcurl <= 1.5x the Python API). Then where the CPU of a call went, from
   ``/proc`` per thread: the client (this process), the servers' event-loop threads, their
   other threads (the call itself, in a worker thread) and the sandbox. The sandbox does the
   same work for every variant, so its CPU per call is a witness of the machine: when it
   costs more behind a server than behind the Python API, the same instructions cost more
   because three processes take turns on the cores (caches, migrations), not because
   anything did more work.
   Then, for reference, the service through libcurl against the Python API again with the
   sandbox ``--far-ms`` (20) milliseconds away, as mParticle is from any host: what the hop
   adds to a call that waits on the network (not the verdict, which stays on the sandbox at 0 ms).
2. Throughput: ``--clients`` callers (8) for ``--seconds`` each: keep-alive clients in threads
   for the servers, threads sharing one ``Connection`` for the Python API; ``--reps``
   repetitions alternating. Reported: calls/s (median of the repetitions) and the ratio
   (target: service >= 0.8x the Python API).
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
import threading
import time
from pathlib import Path
from typing import Callable

from connector_mparticle.sandbox.process import SandboxProcess

from bench_deps import import_or_install
from connector_core import Engine

PROPERTIES = {"accountId": "1001"}
pycurl = import_or_install("pycurl")


def floor_app(connection, inline: bool = False, pool: bool = False) -> Callable:
    """The floor: a bare ASGI app doing only the call, no routing, guards, logging or error mapping.

    It reads the body, runs ``Connection.execute`` in a thread (``loop.run_in_executor`` on a
    ``ThreadPoolExecutor``; with ``pool``, ``connector serve``'s own ``CallPool`` hand-off; with
    ``inline``, on the event loop itself, blocking it: bench_serve_stacks.py's lower bound) and
    answers ``Result.to_dict()``; any GET answers ``{}`` (readiness).
    """
    import asyncio
    import concurrent.futures

    import orjson

    from connector_core.serve.pool import CallPool

    executor = concurrent.futures.ThreadPoolExecutor(32)
    calls = CallPool(32)

    def call(body: bytes) -> bytes:
        return orjson.dumps(connection.execute("getAccount", orjson.loads(body)["properties"]).to_dict())

    def in_pool(body: bytes) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def job() -> None:
            try:
                out = call(body)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request
                loop.call_soon_threadsafe(future.set_exception, exc)
            else:
                loop.call_soon_threadsafe(future.set_result, out)

        calls.submit(job)
        return future

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] != "POST":
            out = b"{}"
        elif inline:
            out = call(body)
        elif pool:
            out = await in_pool(body)
        else:
            out = await asyncio.get_running_loop().run_in_executor(executor, call, body)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})

    return app


def serve_floor(app: Callable) -> None:
    """Serve ``app`` with uvicorn (uvloop, httptools) on a free loopback port; prints its URL first."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(json.dumps({"url": "http://127.0.0.1:%d" % sock.getsockname()[1]}), flush=True)
    uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, server_header=False, lifespan="off",
                                  timeout_keep_alive=30)).run(sockets=[sock])


def floor_server() -> None:
    """The floor's process: uvicorn serving :func:`floor_app`. Whatever ``connector serve`` costs
    above it is the service's own; below it, only leaving Python's HTTP stack would go. Reads
    the sandbox config as one JSON line on stdin."""
    serve_floor(floor_app(Engine().connect(json.loads(sys.stdin.readline()))))


class ServeProcess:
    """``connector serve`` in a child process on a free loopback port."""

    def __init__(self, argv: list[str], stdin: str | None = None) -> None:
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if stdin is not None:
            self.process.stdin.write(stdin)
        self.process.stdin.close()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{' '.join(argv)} did not start (exit code {self.process.wait()})")
        self.url = json.loads(line)["url"]
        host, port = self.url.rsplit("//", 1)[1].rsplit(":", 1)
        self.host, self.port = host, int(port)
        deadline = time.monotonic() + 30
        while True:
            try:
                client = self.client()
                client.request("GET", "/readyz")
                if client.getresponse().status == 200:
                    client.close()
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("connector serve never became ready")
            time.sleep(0.1)

    def client(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=30)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def service_call(client: http.client.HTTPConnection) -> Callable[[], None]:
    body = json.dumps({"properties": PROPERTIES, "connection": "sandbox"}).encode()
    headers = {"Content-Type": "application/json"}

    def call() -> None:
        client.request("POST", "/v1/capabilities/mparticle.getAccount/execute", body, headers)
        response = client.getresponse()
        data = json.loads(response.read())
        if response.status != 200 or data["output"]["account"]["id"] != 1001:
            raise RuntimeError(f"service answered {response.status}: {data}")

    return call


def raw_call(host: str, port: int) -> Callable[[], None]:
    """The same request as :func:`service_call` through a raw keep-alive socket: prepared bytes
    out, the answer read by its Content-Length (a reference for a cheap HTTP client)."""
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = json.dumps({"properties": PROPERTIES, "connection": "sandbox"}).encode()
    request = (f"POST /v1/capabilities/mparticle.getAccount/execute HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    pending = b""

    def call() -> None:
        nonlocal pending
        sock.sendall(request)
        while b"\r\n\r\n" not in pending:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the service closed the connection")
            pending += chunk
        head, _, rest = pending.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in lines[1:] if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            rest += sock.recv(65536)
        data, pending = json.loads(rest[:length]), rest[length:]
        if lines[0].split()[1] != b"200" or data["output"]["account"]["id"] != 1001:
            raise RuntimeError(f"service answered {lines[0]!r}: {data}")

    call.close = sock.close  # type: ignore[attr-defined]
    return call


def curl_call(host: str, port: int, path: str = "/v1/capabilities/mparticle.getAccount/execute") -> Callable[[], None]:
    """The same request as :func:`service_call` through libcurl (pycurl), one handle reused, so
    one keep-alive connection: the HTTP client most hosts outside Python link against."""
    import io

    handle = pycurl.Curl()
    handle.setopt(pycurl.URL, f"http://{host}:{port}{path}")
    handle.setopt(pycurl.POSTFIELDS, json.dumps({"properties": PROPERTIES, "connection": "sandbox"}))
    handle.setopt(pycurl.HTTPHEADER, ["Content-Type: application/json", "Expect:"])
    handle.setopt(pycurl.TCP_NODELAY, 1)
    handle.setopt(pycurl.TIMEOUT, 30)

    def call() -> None:
        buffer = io.BytesIO()
        handle.setopt(pycurl.WRITEDATA, buffer)
        handle.perform()
        status = handle.getinfo(pycurl.RESPONSE_CODE)
        data = json.loads(buffer.getvalue())
        if status != 200 or data["output"]["account"]["id"] != 1001:
            raise RuntimeError(f"service answered {status}: {data}")

    call.close = handle.close  # type: ignore[attr-defined]
    return call


def api_call(connection) -> Callable[[], None]:
    def call() -> None:
        if connection.execute("getAccount", PROPERTIES).output["account"]["id"] != 1001:
            raise RuntimeError("wrong account")

    return call


def _family(pid: int) -> list[int]:
    """``pid`` and its children (a supervisor's workers), from /proc."""
    try:
        return [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    except OSError:
        return [pid]


def _stat_seconds(path: str) -> float | None:
    """User + system CPU seconds in a /proc ``stat`` file, None when it is gone."""
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its children (the workers) so far (Linux /proc), 0 elsewhere."""
    return sum(_stat_seconds(f"/proc/{one}/stat") or 0.0 for one in _family(pid))


def threads(pid: int) -> list[tuple[int, int]]:
    """(process id, thread id) of every thread of process ``pid`` and its children (the workers), from /proc."""
    found = []
    for one in _family(pid):
        try:
            found += [(one, int(tid)) for tid in os.listdir(f"/proc/{one}/task")]
        except OSError:
            continue
    return found


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of the event-loop (main) threads and of the other threads of process ``pid``
    and its children (the workers), from /proc (Linux; zeros elsewhere)."""
    loops = others = 0.0
    for one, tid in threads(pid):
        seconds = _stat_seconds(f"/proc/{one}/task/{tid}/stat") or 0.0
        if tid == one:
            loops += seconds
        else:
            others += seconds
    return loops, others


def far_latency(sandbox: SandboxProcess, variants: dict[str, Callable[[], None]], far_ms: float, calls: int) -> None:
    """The latency comparison again with the sandbox ``far_ms`` away (a reference: real mParticle
    is tens of milliseconds from any host; the verdict stays on the sandbox at 0 ms)."""
    sandbox.set_latency(far_ms)
    try:
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for call in variants.values():
            timed(call, 3)
        for round_ in range(4):
            for name in (list(variants) if round_ % 2 == 0 else list(reversed(variants))):
                samples[name] += timed(variants[name], max(1, calls // 4))
    finally:
        sandbox.set_latency(0)
        for call in variants.values():
            getattr(call, "close", lambda: None)()
    medians = {name: statistics.median(s) for name, s in samples.items()}
    (service, service_median), (api, api_median) = medians.items()
    print(f"  reference: with the sandbox {far_ms:g} ms away (as a real service is), {len(samples[api])} calls each:"
          f" {service} median {ms(service_median)}, {api} {ms(api_median)}: {service_median / api_median:.2f}x"
          f" ({ms(service_median - api_median)} per call)")


def timed(call: Callable[[], None], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def throughput(make_call: Callable[[], Callable[[], None]], clients: int, seconds: float) -> float:
    calls = [make_call() for _ in range(clients)]
    counts = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker(i: int) -> None:
        call = calls[i]
        start.wait()
        while time.perf_counter() < stop_at[0]:
            call()
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - began)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


SERVICE, FLOOR, API = "connector serve", "floor (bare uvicorn app)", "Python API"
RAW = "connector serve, raw client"
CURL = "connector serve, libcurl"
PINNED = "serve --pin-workers"
PINNED_CURL = "serve --pin-workers, libcurl"


def main() -> int:
    if sys.argv[1:] == ["--floor-server"]:
        floor_server()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=150, help="latency calls per variant per round (default 150)")
    parser.add_argument("--rounds", type=int, default=10,
                        help="latency rounds (default 10: short rounds, so a burst of load elsewhere hits every variant)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent callers for throughput (default 8)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per throughput run (default 4)")
    parser.add_argument("--reps", type=int, default=3, help="throughput repetitions per variant (default 3)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="connector serve --workers (default: the number of CPUs, as deployed)")
    parser.add_argument("--far-ms", type=float, default=20.0,
                        help="also compare latency with the sandbox this many ms away, for reference (default 20; 0 skips)")
    parser.add_argument("--far-calls", type=int, default=80, help="calls per variant with the sandbox far away (default 80)")
    parser.add_argument("--no-floor", dest="floor", action="store_false", help="skip the bare uvicorn reference")
    parser.add_argument("--no-pinned", dest="pinned", action="store_false",
                        help="skip the reference service started with --pin-workers")
    args = parser.parse_args()
    if pycurl is None:
        print("the latency verdict needs pycurl (libcurl): pip install -r bench/requirements.txt", file=sys.stderr)
        return 2

    with SandboxProcess() as sandbox, Engine() as engine, tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "connections.json"
        path.write_text(json.dumps({"connections": {"sandbox": {"connector": "mparticle", "config": sandbox.config}}}))
        serve = [str(Path(sys.executable).parent / "connector"), "serve", "--port", "0", "--connections", str(path),
                 "--workers", str(args.workers)]
        servers = {SERVICE: ServeProcess(serve)}
        try:
            if args.floor:
                servers[FLOOR] = ServeProcess([sys.executable, __file__, "--floor-server"], json.dumps(sandbox.config) + "\n")
            if args.pinned:
                servers[PINNED] = ServeProcess([*serve, "--pin-workers"])
            with engine.connect(sandbox.config) as connection:
                clients = {name: server.client() for name, server in servers.items() if name != PINNED}
                raw = raw_call(servers[SERVICE].host, servers[SERVICE].port)
                curl = curl_call(servers[SERVICE].host, servers[SERVICE].port)
                variants = {**{name: service_call(client) for name, client in clients.items()}, API: api_call(connection),
                            RAW: raw, CURL: curl}
                pids = {**{name: server.process.pid for name, server in servers.items()}, API: None,
                        RAW: servers[SERVICE].process.pid, CURL: servers[SERVICE].process.pid}
                if args.pinned:
                    variants[PINNED_CURL] = curl_call(servers[PINNED].host, servers[PINNED].port)
                    pids[PINNED_CURL] = servers[PINNED].process.pid
                for call in variants.values():  # warm up: tokens, pools, caches
                    timed(call, 50)
                samples: dict[str, list[float]] = {name: [] for name in variants}
                # CPU seconds by where they were spent: this process, the servers' event-loop threads,
                # their other threads (the calls), the sandbox.
                parts = {name: [0.0, 0.0, 0.0, 0.0] for name in variants}

                def cpu_now(pid: int | None) -> list[float]:
                    loops, others = thread_cpu(pid) if pid else (0.0, 0.0)
                    return [time.process_time(), loops, others, cpu_seconds(sandbox.pid)]

                for round_ in range(args.rounds):
                    order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
                    for name in order:
                        before = cpu_now(pids[name])
                        samples[name] += timed(variants[name], args.calls)
                        parts[name] = [total + now - then for total, now, then in zip(parts[name], cpu_now(pids[name]), before)]
                for client in clients.values():
                    client.close()
                for name in (RAW, CURL, PINNED_CURL):
                    getattr(variants.get(name), "close", lambda: None)()
                medians = {name: statistics.median(s) for name, s in samples.items()}
                per_call = {name: [x / len(samples[name]) for x in parts[name]] for name in variants}
                print(f"getAccount latency, {args.rounds} x {args.calls} calls per variant, one keep-alive client"
                      f" (sandbox and servers in child processes; connector serve --workers {args.workers})")
                for name, s in samples.items():
                    p90 = statistics.quantiles(s, n=10)[-1]
                    print(f"  {name:<28} median {ms(medians[name])}   p90 {ms(p90)}   CPU per call {ms(sum(per_call[name][:3]))}")
                latency_ratio = medians[CURL] / medians[API]
                print(f"  ratio {CURL} / {API}: {latency_ratio:.2f}x (target <= 1.5x)  {verdict(latency_ratio <= 1.5)}")
                print(f"  reference: {SERVICE} (Python's http.client) / {API} {medians[SERVICE] / medians[API]:.2f}x")
                if args.floor:
                    print(f"  reference: floor / {API} {medians[FLOOR] / medians[API]:.2f}x;"
                          f" {SERVICE} above the floor {ms(medians[SERVICE] - medians[FLOOR])} per call")
                print(f"  reference: {RAW} / {API} {medians[RAW] / medians[API]:.2f}x (the same service and request;"
                      " the client's own cost nearly gone)")
                if args.pinned:
                    print(f"  reference: {PINNED_CURL} / {API} {medians[PINNED_CURL] / medians[API]:.2f}x (worker N on CPU N:"
                          " the loop and the call thread share a core)")
                if args.far_ms > 0:
                    far_latency(sandbox, {CURL: curl_call(servers[SERVICE].host, servers[SERVICE].port), API: api_call(connection)},
                                args.far_ms, args.far_calls)
                print("CPU per call by where it went (client: this process; loop / call threads: the server's"
                      " event-loop threads / its other threads; sandbox: identical work in every variant)")
                for name, (client, loops, others, sandbox_cpu) in per_call.items():
                    server = f"loop threads {ms(loops)}   call threads {ms(others)}   " if pids[name] else ""
                    print(f"  {name:<28} client {ms(client)}   {server}sandbox {ms(sandbox_cpu)}")
                witness = max(per_call[name][3] for name in variants if pids[name]) / per_call[API][3] if per_call[API][3] else float("nan")
                print(f"  the sandbox's same work costs {witness:.2f}x its CPU behind a server than behind the Python API:"
                      " what a third process taking turns on the cores does to every process's cost per call")

                makers = {**{name: (lambda server=server: service_call(server.client())) for name, server in servers.items()},
                          API: lambda: api_call(connection)}
                rates: dict[str, list[float]] = {name: [] for name in makers}
                for rep in range(args.reps):
                    order = list(makers) if rep % 2 == 0 else list(reversed(makers))
                    for name in order:
                        rates[name].append(throughput(makers[name], args.clients, args.seconds))
                rate = {name: statistics.median(r) for name, r in rates.items()}
                print(f"getAccount throughput, {args.clients} concurrent callers (keep-alive clients / threads sharing one"
                      f" Connection), {args.reps} x {args.seconds:g} s per variant")
                for name, r in rates.items():
                    print(f"  {name:<28} {rate[name]:8.0f} calls/s   (runs: {', '.join(f'{x:.0f}' for x in r)})")
                throughput_ratio = rate[SERVICE] / rate[API]
                print(f"  ratio {SERVICE} / {API}: {throughput_ratio:.2f}x (target >= 0.8x)  {verdict(throughput_ratio >= 0.8)}")
                if args.floor:
                    print(f"  reference: floor / {API} {rate[FLOOR] / rate[API]:.2f}x")
                if args.pinned:
                    print(f"  reference: {PINNED} / {API} {rate[PINNED] / rate[API]:.2f}x")
        finally:
            for server in servers.values():
                server.stop()
    print(f"cpus: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} (wall-clock ratios are only meaningful on an idle machine;"
          " CPU per call counts this process and the server's processes, not the sandbox)")
    return 0 if latency_ratio <= 1.5 and throughput_ratio >= 0.8 else 1


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


if __name__ == "__main__":
    sys.exit(main())
