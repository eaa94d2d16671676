"""How fast the mParticle sandbox answers one keep-alive urllib3 client.

Runs the sandbox in a child process (``SandboxProcess``) so the client and the server do
not share an interpreter lock, then measures, each for a bounded time:

* small requests/s: ``GET /v1/accounts/1001?accountId=1001`` with a valid bearer token;
* events/s through ``/v2/events``: one 100-event batch per request, every batch checked;
* events/s through ``/v2/bulkevents``: as many 100-event batches per request as fit in
  256 KB, and the sandbox's CPU per request (from ``/proc``, with the sandbox in a child
  process); then that CPU with and without the sandbox's msgspec pass over bulk bodies
  (``capabilities/sandbox/bulk.py``), side by side, rounds interleaved.

Request bodies are built before the clock starts, so the numbers are the sandbox's (and
the loopback's), not the client's JSON encoder. Loopback only; stops by itself (< 60 s).

    python bench/bench_sandbox.py [--seconds 3] [--in-process]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

import urllib3
from connector_mparticle.batches import MAX_REQUEST_BYTES
from connector_mparticle.sandbox import Sandbox, SandboxProcess, bulk

EVENTS_PER_BATCH = 100


def make_batch(n_events: int = EVENTS_PER_BATCH) -> dict:
    """A realistic batch: one user, custom events and screen views with attributes."""
    base_ms = int(time.time() * 1000) - 60_000
    events = []
    for i in range(n_events):
        if i % 4 == 3:
            events.append({"event_type": "screen_view", "data": {
                "screen_name": f"Product {i}", "timestamp_unixtime_ms": base_ms + i,
                "source_message_id": str(uuid.uuid4()),
            }})
        else:
            events.append({"event_type": "custom_event", "data": {
                "event_name": "Add to Wishlist", "custom_event_type": "user_preference",
                "timestamp_unixtime_ms": base_ms + i, "source_message_id": str(uuid.uuid4()),
                "custom_attributes": {"sku": f"SKU-{i:05d}", "category": "shoes", "price": "59.90"},
            }})
    return {
        "environment": "development",
        "user_identities": {"customer_id": "bench-user-1", "email": "bench@example.com"},
        "user_attributes": {"$country": "DE", "plan": "gold"},
        "device_info": {"platform": "web"},
        "source_request_id": "REQUEST-ID",
        "events": events,
    }


def bodies(batch: dict, count: int, per_request: int | None) -> list[bytes]:
    """``count`` request bodies, each batch with its own source_request_id (no dedup)."""
    template = json.dumps(batch, separators=(",", ":"))
    out = []
    for n in range(count):
        if per_request is None:
            out.append(template.replace("REQUEST-ID", f"r{n}").encode())
        else:
            items = [template.replace("REQUEST-ID", f"r{n}-{k}") for k in range(per_request)]
            out.append(("[" + ",".join(items) + "]").encode())
    return out


def timed(seconds: float, send, items: list) -> tuple[int, float]:
    """Call ``send`` on items in turn until ``seconds`` pass or items run out."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    for item in items:
        send(item)
        done += 1
        if (done & 15) == 0 and time.perf_counter() >= deadline:
            break
    return done, time.perf_counter() - start


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of process ``pid`` so far; 0 without one (in-process)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(config: dict, seconds: float, reset, pid: int | None = None) -> None:
    pool = urllib3.HTTPConnectionPool(config["platformUrl"].split("//")[1].split(":")[0],
                                      int(config["platformUrl"].rsplit(":", 1)[1]), maxsize=1, timeout=30)
    token = json.loads(pool.request("POST", "/oauth/token", json={
        "client_id": config["clientID"], "client_secret": config["clientSecret"],
        "audience": "https://api.mparticle.com", "grant_type": "client_credentials",
    }).data)["access_token"]

    bearer = {"Authorization": f"Bearer {token}"}

    def get(_):
        response = pool.request("GET", "/v1/accounts/1001?accountId=1001", headers=bearer)
        assert response.status == 200, response.status

    for _ in range(200):  # warm up
        get(None)
    n, elapsed = timed(seconds, get, range(10**7))
    print(f"small GET /v1/accounts/{{id}}:  {n / elapsed:8,.0f} requests/s  ({n} in {elapsed:.2f} s)")

    basic = urllib3.make_headers(basic_auth=f"{config['apiKey']}:{config['apiSecret']}")
    basic["Content-Type"] = "application/json"

    def post(path):
        def send(body):
            response = pool.request("POST", path, body=body, headers=basic)
            assert response.status == 202, (response.status, response.data[:300])
        return send

    batch = make_batch()
    single = len(json.dumps(batch, separators=(",", ":")))
    per_bulk = max(1, (MAX_REQUEST_BYTES - 2) // (single + 20))
    limit = int(seconds * 2000)  # far more than the sandbox can take in `seconds`
    reset()
    items = bodies(batch, limit, None)
    n, elapsed = timed(seconds, post("/v2/events"), items)
    print(f"POST /v2/events, 100-event batches ({single / 1024:.1f} KB): "
          f"{n * EVENTS_PER_BATCH / elapsed:8,.0f} events/s  ({n / elapsed:,.0f} batches/s)")
    reset()
    items = bodies(batch, max(1, limit // per_bulk), per_bulk)
    cpu = process_cpu(pid)
    n, elapsed = timed(seconds, post("/v2/bulkevents"), items)
    cpu = (process_cpu(pid) - cpu) / n * 1000
    print(f"POST /v2/bulkevents, {per_bulk} x 100-event batches ({len(items[0]) / 1024:.0f} KB): "
          f"{n * per_bulk * EVENTS_PER_BATCH / elapsed:8,.0f} events/s  ({n / elapsed:,.0f} requests/s)"
          + (f"  sandbox CPU {cpu:.2f} ms per request" if pid else "") + f"  load average {os.getloadavg()[0]:.1f}")
    pool.close()


# The sandbox with its bulk fast path switched off: the ordinary parse and walk for every body.
ORDINARY = ("import sys; from connector_mparticle.sandbox import bulk; bulk.msgspec = None; "
            "from connector_mparticle.sandbox.__main__ import main; sys.exit(main(sys.argv[1:]))")


def compare_bulk(seconds: float, rounds: int = 5) -> None:
    """The bulk phase against two sandbox processes, with and without msgspec's fast path,
    rounds interleaved: the sandbox's CPU per request of each, and their ratio."""
    ordinary = SandboxProcess()
    ordinary._argv = [sys.executable, "-c", ORDINARY]  # the same command, the fast path off
    with SandboxProcess() as fast, ordinary:
        batch = make_batch()
        per_bulk = max(1, (MAX_REQUEST_BYTES - 2) // (len(json.dumps(batch, separators=(",", ":"))) + 20))
        items = bodies(batch, int(seconds * 300), per_bulk)
        cpu: dict[str, list[float]] = {"msgspec": [], "ordinary": []}
        for _ in range(rounds):
            for name, sandbox in (("msgspec", fast), ("ordinary", ordinary)):
                config = sandbox.config
                host, port = config["platformUrl"].split("//")[1].rsplit(":", 1)
                pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=1, timeout=30)
                headers = {**urllib3.make_headers(basic_auth=f"{config['apiKey']}:{config['apiSecret']}"),
                           "Content-Type": "application/json"}

                def send(body: bytes, pool=pool, headers=headers) -> None:
                    answer = pool.request("POST", "/v2/bulkevents", body=body, headers=headers)
                    assert answer.status == 202, (answer.status, answer.data[:300])

                sandbox.reset()
                before = process_cpu(sandbox.pid)
                n, _ = timed(seconds / rounds, send, items)
                cpu[name].append((process_cpu(sandbox.pid) - before) / n * 1000)
                pool.close()
        median = {name: sorted(values)[len(values) // 2] for name, values in cpu.items()}
        print(f"sandbox CPU per bulk request ({per_bulk} x 100 events), {rounds} rounds interleaved: msgspec's pass "
              f"{median['msgspec']:.2f} ms, ordinary parse and walk {median['ordinary']:.2f} ms: "
              f"{median['ordinary'] / median['msgspec']:.2f}x  load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement (default 3, max 15)")
    parser.add_argument("--in-process", action="store_true",
                        help="serve from a thread of this process (shares the GIL with the client)")
    args = parser.parse_args()
    seconds = min(args.seconds, 15.0)
    if args.in_process:
        with Sandbox(max_batches=1000) as sandbox:
            print(f"sandbox in this process at {sandbox.url}")
            run(sandbox.config, seconds, sandbox.reset)
    else:
        with SandboxProcess() as sandbox:
            print(f"sandbox in a child process at {sandbox.url}; bulk bodies checked by "
                  + ("msgspec (the extra 'sandbox')" if bulk.msgspec else "Python (pip install '.[sandbox]' for msgspec)"))
            run(sandbox.config, seconds, sandbox.reset, sandbox.pid)
        if bulk.msgspec is not None:
            compare_bulk(seconds)


if __name__ == "__main__":
    main()
