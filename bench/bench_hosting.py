"""Calls that end and tokens that survive tenant churn: the figures of docs/operators.md's
"Hosting untrusted configs" section, measured side by side in one run.

    python bench/bench_hosting.py [--tenants 1000]

1. A server that trickles its answer a byte every 0.5 s (for minutes): how long a
   ``getAccount`` with ``timeoutSeconds=2, maxRetries=0`` lasts (target: under 5 s).
2. 32 threads sharing a connection whose token endpoint accepts connections and never
   answers (``connectTimeoutSeconds=2, timeoutSeconds=2``): when the last one fails
   (target: within 2x connect+read = 8 s) and how many token requests were made.
3. N tenants taking turns twice through ``engine.execute``: token requests with the
   engine's token cache, against a cache no larger than the connection cache (16), which
   is what caching tokens per connection amounted to.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from connector_core import ConnectorError, Engine
from connector_core.tokens import TokenCache


def serve_raw(handle) -> tuple[socket.socket, int]:
    sock = socket.create_server(("127.0.0.1", 0), backlog=128)

    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return sock, sock.getsockname()[1]


def trickle(conn: socket.socket) -> None:
    try:
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000:
            conn.sendall(bytes([byte]))
            time.sleep(0.5)
    except OSError:
        pass


def hang(conn: socket.socket) -> None:
    try:
        conn.recv(65536)
        time.sleep(600)
    except OSError:
        pass


class Counted(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    tokens = 0
    lock = threading.Lock()

    def log_message(self, *args) -> None:
        pass

    def _answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with Counted.lock:
            Counted.tokens += 1
        self._answer({"access_token": "tok-" + body["client_id"], "expires_in": 3600})

    def do_GET(self) -> None:
        self._answer({"data": {"id": 1003, "name": "Acme"}})


def config(auth_url: str, platform_url: str, **changes) -> dict:
    return {"clientID": "tenant", "clientSecret": "bench-secret", "authUrl": auth_url, "platformUrl": platform_url,
            "maxRetries": 0, **changes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    args = parser.parse_args()
    api = ThreadingHTTPServer(("127.0.0.1", 0), Counted)
    api.daemon_threads = True
    threading.Thread(target=api.serve_forever, daemon=True).start()
    api_url = f"http://127.0.0.1:{api.server_address[1]}"
    rows = []

    slow, slow_port = serve_raw(trickle)
    with Engine() as engine:
        started = time.monotonic()
        try:
            engine.execute("mparticle.getAccount", {"accountId": "1003"},
                           config(f"{api_url}/oauth/token", f"http://127.0.0.1:{slow_port}", timeoutSeconds=2))
        except ConnectorError as exc:
            outcome = exc.code
        rows.append(("trickling server (1 byte / 0.5 s), timeoutSeconds=2, maxRetries=0", f"ended in {time.monotonic() - started:.2f} s ({outcome})", "< 5 s"))

    hung, hung_port = serve_raw(hang)
    with Engine() as engine, engine.connect(config(f"http://127.0.0.1:{hung_port}/oauth/token", api_url,
                                                   connectTimeoutSeconds=2, timeoutSeconds=2)) as connection:
        ends: list[float] = []

        def call() -> None:
            try:
                connection.execute("mparticle.getAccount", {"accountId": "1003"})
            except ConnectorError:
                ends.append(time.monotonic())

        threads = [threading.Thread(target=call) for _ in range(32)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rows.append(("32 threads, token endpoint never answers (connect 2 s + read 2 s)",
                     f"all {len(ends)} failed by {max(ends) - started:.2f} s", "< 8 s"))

    for label, cache in (("engine token cache", None), ("token cache of 16 (per-connection caching)", TokenCache(max_entries=16))):
        Counted.tokens = 0
        with Engine() as engine:
            if cache is not None:
                engine.tokens = cache
            tenants = [config(f"{api_url}/oauth/token", api_url, clientID=f"tenant-{i}", clientSecret=f"secret-of-tenant-{i}")
                       for i in range(args.tenants)]
            started = time.monotonic()
            for _ in range(2):
                for tenant in tenants:
                    engine.execute("mparticle.getAccount", {"accountId": "1003"}, tenant)
            elapsed = time.monotonic() - started
        rows.append((f"{args.tenants} tenants taking turns twice, {label}",
                     f"{Counted.tokens} token requests for {2 * args.tenants} calls ({2 * args.tenants / elapsed:.0f} calls/s)", ""))

    slow.close()
    hung.close()
    api.shutdown()
    width = max(len(r[0]) for r in rows)
    for label, result, target in rows:
        print(f"{label:<{width}}  {result}  {target}")


if __name__ == "__main__":
    main()
