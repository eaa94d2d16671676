"""``getAccount`` through ``connector serve`` against the same call through the Python API.

One command (after ``pip install -e '.[serve]'``)::

    python bench/bench_serve.py                 # defaults: 5 rounds x 300 latency calls, 3 x 4 s throughput
    python bench/bench_serve.py --calls 300 --rounds 5 --seconds 4 --clients 8

The mParticle sandbox runs in a child process (``SandboxProcess``) and ``connector serve``
in another (``--connections`` naming the sandbox, access log on as deployed, logs to
/dev/null), so server, service and client do not share an interpreter lock. Side by side,
interleaved so drift hits both alike:

1. Latency: one caller, one call at a time. The service through one keep-alive
   ``http.client.HTTPConnection`` (the cheapest client a host could use: POST the JSON body,
   read the answer, parse it) against ``Connection.execute("getAccount", ...)`` on an open
   connection in this process. Rounds of ``--calls`` calls alternate which goes first.
   Reported: median and p90 per call and the ratio of medians (target: service <= 1.5x).

2. Throughput: ``--clients`` threads (8) for ``--seconds`` each, the service with one
   keep-alive connection per thread against the same number of threads sharing one
   ``Connection`` in this process; ``--reps`` repetitions alternating. Reported: calls/s per
   variant (median of the repetitions) and the ratio (target: service >= 0.8x).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from connector_mparticle.sandbox.process import SandboxProcess

from connector_core import Engine

PROPERTIES = {"accountId": "1001"}


class ServeProcess:
    """``connector serve`` in a child process on a free loopback port."""

    def __init__(self, connections: Path, *extra: str) -> None:
        argv = [str(Path(sys.executable).parent / "connector"), "serve", "--port", "0", "--connections", str(connections), *extra]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"connector serve did not start (exit code {self.process.wait()})")
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


def api_call(connection) -> Callable[[], None]:
    def call() -> None:
        if connection.execute("getAccount", PROPERTIES).output["account"]["id"] != 1001:
            raise RuntimeError("wrong account")

    return call


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc), 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="latency calls per variant per round (default 300)")
    parser.add_argument("--rounds", type=int, default=5, help="latency rounds (default 5)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent callers for throughput (default 8)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per throughput run (default 4)")
    parser.add_argument("--reps", type=int, default=3, help="throughput repetitions per variant (default 3)")
    args = parser.parse_args()

    with SandboxProcess() as sandbox, Engine() as engine, tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "connections.json"
        path.write_text(json.dumps({"connections": {"sandbox": {"connector": "mparticle", "config": sandbox.config}}}))
        serve = ServeProcess(path)
        try:
            with engine.connect(sandbox.config) as connection:
                client = serve.client()
                variants = {"service (HTTP, keep-alive)": service_call(client), "Python API": api_call(connection)}
                for call in variants.values():  # warm up: tokens, pools, caches
                    timed(call, 50)
                samples: dict[str, list[float]] = {name: [] for name in variants}
                cpu = {name: 0.0 for name in variants}  # CPU of this process and the service, not the sandbox
                for round_ in range(args.rounds):
                    order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
                    for name in order:
                        before = time.process_time() + cpu_seconds(serve.process.pid)
                        samples[name] += timed(variants[name], args.calls)
                        cpu[name] += time.process_time() + cpu_seconds(serve.process.pid) - before
                client.close()
                medians = {name: statistics.median(s) for name, s in samples.items()}
                print(f"getAccount latency, {args.rounds} x {args.calls} calls per variant (sandbox and service in child processes)")
                for name, s in samples.items():
                    p90 = statistics.quantiles(s, n=10)[-1]
                    print(f"  {name:<28} median {ms(medians[name])}   p90 {ms(p90)}   CPU per call {ms(cpu[name] / len(s))}")
                latency_ratio = medians["service (HTTP, keep-alive)"] / medians["Python API"]
                print(f"  ratio service / Python API: {latency_ratio:.2f}x (target <= 1.5x)")

                rates: dict[str, list[float]] = {"service": [], "Python API": []}
                makers = {"service": lambda: service_call(serve.client()), "Python API": lambda: api_call(connection)}
                for rep in range(args.reps):
                    order = list(makers) if rep % 2 == 0 else list(reversed(makers))
                    for name in order:
                        rates[name].append(throughput(makers[name], args.clients, args.seconds))
                rate = {name: statistics.median(r) for name, r in rates.items()}
                print(f"getAccount throughput, {args.clients} concurrent callers, {args.reps} x {args.seconds:g} s per variant")
                print(f"  service, {args.clients} keep-alive clients      {rate['service']:8.0f} calls/s   (runs: {', '.join(f'{r:.0f}' for r in rates['service'])})")
                print(f"  Python API, {args.clients} threads, one Connection {rate['Python API']:8.0f} calls/s   (runs: {', '.join(f'{r:.0f}' for r in rates['Python API'])})")
                throughput_ratio = rate["service"] / rate["Python API"]
                print(f"  ratio service / Python API: {throughput_ratio:.2f}x (target >= 0.8x)")
        finally:
            serve.stop()
    print(f"cpus: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} (wall-clock ratios are only meaningful on an idle machine;"
          " CPU per call counts this process and the service, not the sandbox)")
    return 0 if latency_ratio <= 1.5 and throughput_ratio >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
