"""The mParticle connector against hand-written ``requests`` code and the official SDK.

One command (after ``pip install -e .``; the official SDK of bench/requirements.txt is
installed on first run when missing)::

    python bench/bench_connector.py            # sandbox in a child process (reported) and in-process
    python bench/bench_connector.py --mode child --calls 2000 --reps 7 --profile

Everything runs against the local mParticle sandbox on loopback, side by side in one run,
with the variants interleaved so drift (CPU frequency, other load) hits them alike. Loops
are bounded; the default run takes about a minute on a 2-core machine (< 3 minutes).

1. ``getAccount`` latency. ``Connection.execute("getAccount", ...)`` on an open
   ``connector_core`` connection (token cached, input and output validated) against a plain
   ``requests.Session`` GET of ``/v1/accounts/1001?accountId=1001`` with the same kind of
   token (fetched once) that checks the status and parses the JSON; and, for information, the
   same with ``Session.trust_env = False`` (no proxy/netrc/CA lookups in the environment on
   each request, which a default Session does and the connector does once per connection).
   ``--calls`` calls each (default 2000), in rounds of 50 that rotate which variant goes
   first. Reported: median and p90 per call, and the ratio of medians (target: connector <=
   1.2x the default plain Session).

2. ``uploadEventBatch`` throughput: 100 batches x 100 realistic events (custom events with
   attributes, screen views, purchases; one user per batch), sent

   * by the connector: ``Connection.execute("uploadEventBatch", {"jsonBody": batches})`` with
     the batches as Python dicts; it checks every batch, then packs them into
     ``/v2/bulkevents`` requests of at most 100 batches and 256 KB (orjson encoding);
   * by plain ``requests`` with the *same* packing (computed beforehand with
     ``connector_mparticle.batches.chunk_batches``), in two flavours:
     ``plain json.dumps``: each request body serialised inside the timed region with
     ``json.dumps(chunk, separators=(",", ":"), ensure_ascii=False)`` and sent with
     ``data=`` (what a hand-written client does; ``json=`` is not used because its spaced
     output makes the same chunks exceed 256 KB and the API refuses them), and
     ``plain pre-encoded``: the exact bytes the connector sends, serialised before the clock
     starts (pure transport, a floor no client that serialises can reach);
   * by the official ``mparticle`` package (PyPI ``mparticle``, the swagger-generated Events
     API client): ``EventsApi(config).bulk_upload_events(chunk)`` with ``Configuration.host``
     set to the sandbox's ``eventsUrl`` and the input key/secret as Basic credentials. Its
     input is ``mparticle.Batch`` model objects, built before the clock starts (favouring
     the SDK) and checked to serialise to exactly the same batches; it serialises with
     ``json.dumps`` defaults (spaces), so its chunks are packed by its own body size to stay
     within 256 KB (a few more requests). It does not check batches.

   Every batch carries a ``source_request_id`` already, so connector and plain requests send
   identical bytes. The sandbox is reset between uploads (outside the clock) and must report
   all 10,000 events accepted after each. ``--reps`` repetitions (default 11) in rotating
   order; reported: median events/s per variant and the ratios (targets: connector >= plain
   requests loop: connector >= 1.5x plain json.dumps; connector >= 4x the official package).

Where the sandbox runs: ``--mode child`` (``SandboxProcess``: server and client do not share
an interpreter lock; the numbers this script reports as the result), ``--mode inproc``
(server threads in this process, competing with the client for the GIL, which slows every
variant and distorts ratios) or ``--mode both`` (default: child first, then in-process for
comparison). When a target is missed, or with ``--profile``, cProfile shows where the
connector's time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.metadata
import io
import json
import os
import pstats
import statistics
import sys
import time
import uuid
from typing import Any, Callable

import requests
from connector_mparticle.batches import (
    MAX_BATCHES_PER_REQUEST,
    MAX_REQUEST_BYTES,
    chunk_batches,
)
from bench_deps import import_or_install
from connector_mparticle.sandbox import Sandbox, SandboxProcess

from connector_core import Engine


mparticle = import_or_install("mparticle")  # the official SDK, from bench/requirements.txt

ACCOUNT = "1001"
BATCHES = 100
EVENTS_PER_BATCH = 100
ROUND = 50
AUDIENCE = "https://api.mparticle.com"
JSON = {"Content-Type": "application/json"}


# --------------------------------------------------------------------------- data


def make_batches(n_batches: int = BATCHES, n_events: int = EVENTS_PER_BATCH) -> list[dict]:
    """Realistic batches: one user each, a session of custom events, screen views and purchases."""
    base_ms = 1_764_000_000_000
    batches = []
    for user in range(n_batches):
        session = str(uuid.uuid4())
        events = []
        for i in range(n_events):
            common = {"timestamp_unixtime_ms": base_ms + user * 1000 + i, "source_message_id": str(uuid.uuid4()),
                      "session_uuid": session}
            kind = i % 10
            if kind in (0, 4, 8):
                events.append({"event_type": "screen_view", "data": {
                    **common, "screen_name": f"Product {i}", "custom_attributes": {"referrer": "search", "position": str(i % 7)}}})
            elif kind == 9:
                events.append({"event_type": "commerce_event", "data": {**common, "product_action": {
                    "action": "purchase", "transaction_id": f"T-{user}-{i}", "total_amount": 119.8, "tax_amount": 19.13,
                    "products": [{"id": f"SKU-{i:05d}", "name": "Trail Runner", "brand": "Acme", "category": "Shoes",
                                  "price": 59.9, "quantity": 2}]}}})
            else:
                events.append({"event_type": "custom_event", "data": {
                    **common, "event_name": "Add to Wishlist", "custom_event_type": "user_preference",
                    "custom_attributes": {"sku": f"SKU-{i:05d}", "category": "shoes", "price": "59.90", "colour": "blue"}}})
        batches.append({
            "source_request_id": str(uuid.uuid4()),
            "environment": "production",
            "mpid": 8_000_000_000 + user,
            "user_identities": {"email": f"user{user}@example.com", "other_id_2": f"loyalty-{user}"},
            "user_attributes": {"$country": "DE", "$city": "Berlin", "plan": "gold", "newsletter": "yes"},
            "device_info": {"platform": "Android", "os_version": "14", "device_model": "Pixel 8",
                            "locale_language": "de", "locale_country": "DE"},
            "application_info": {"application_name": "Acme Shop", "application_version": "5.2.1", "package": "com.acme.shop"},
            "events": events,
        })
    return batches


def sdk_batch(batch: dict):
    """The same batch as ``mparticle`` SDK model objects."""
    m = mparticle
    events = []
    for event in batch["events"]:
        data = dict(event["data"])
        kind = event["event_type"]
        if kind == "custom_event":
            events.append(m.AppEvent(**data))
        elif kind == "screen_view":
            events.append(m.ScreenViewEvent(**data))
        else:
            action = dict(data.pop("product_action"))
            products = [m.Product(**p) for p in action.pop("products")]
            events.append(m.CommerceEvent(product_action=m.ProductAction(**action, products=products), **data))
    identities = batch["user_identities"]
    out = m.Batch(
        environment=batch["environment"], source_request_id=batch["source_request_id"], mpid=batch["mpid"],
        user_identities=m.UserIdentities(email=identities["email"], other_id_2=identities["other_id_2"]),
        user_attributes=dict(batch["user_attributes"]),
        device_info=m.DeviceInformation(**batch["device_info"]),
        application_info=m.ApplicationInformation(**batch["application_info"]),
    )
    out.events = events  # the setter wraps each event as {"event_type", "data"}
    return out


def pack(items: list, size: Callable[[Any], int]) -> list[list]:
    """Greedy packing into requests of at most 100 items and 256 KB (``[`` + items joined by ``,`` + ``]``)."""
    chunks: list[list] = []
    current: list = []
    total = 1
    for item in items:
        n = size(item)
        if current and (len(current) >= MAX_BATCHES_PER_REQUEST or total + 1 + n + 1 > MAX_REQUEST_BYTES):
            chunks.append(current)
            current, total = [], 1
        total += n + (1 if current else 0)
        current.append(item)
    if current:
        chunks.append(current)
    return chunks


# --------------------------------------------------------------------------- statistics


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def profile(label: str, fn: Callable[[], Any], top: int = 18) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    print(f"\n  cProfile of {label} (sorted by own time, top {top}):")
    for line in lines[start:start + top + 1]:
        print("   " + line[:150])


# --------------------------------------------------------------------------- 1. getAccount


def bench_get(config: dict, engine: Engine, calls: int, show_profile: bool) -> dict:
    connection = engine.connect(config)
    session = requests.Session()
    token = session.post(config["authUrl"], json={
        "client_id": config["clientID"], "client_secret": config["clientSecret"],
        "audience": AUDIENCE, "grant_type": "client_credentials"}, timeout=30).json()["access_token"]
    url = f"{config['platformUrl']}/v1/accounts/{ACCOUNT}"
    bearer = {"Authorization": f"Bearer {token}"}

    def plain() -> dict:
        response = session.get(url, params={"accountId": ACCOUNT}, headers=bearer, timeout=30)
        response.raise_for_status()
        return response.json()["data"][0]

    lean = requests.Session()
    lean.trust_env = False  # no proxy/netrc/CA lookups in the environment on every request

    def plain_lean() -> dict:
        response = lean.get(url, params={"accountId": ACCOUNT}, headers=bearer, timeout=30)
        response.raise_for_status()
        return response.json()["data"][0]

    def connector() -> dict:
        return connection.execute("getAccount", {"accountId": ACCOUNT}).output["account"]

    assert plain()["id"] == plain_lean()["id"] == connector()["id"] == int(ACCOUNT)
    for _ in range(200):  # warm the pools and caches
        plain()
        plain_lean()
        connector()

    times: dict[str, list[float]] = {"connector": [], "plain": [], "plain_lean": []}
    variants = [("connector", connector), ("plain", plain), ("plain_lean", plain_lean)]
    clock = time.perf_counter
    rounds = max(1, calls // ROUND)
    for r in range(rounds):
        shift = r % len(variants)
        for name, fn in variants[shift:] + variants[:shift]:
            bucket = times[name]
            for _ in range(ROUND):
                start = clock()
                fn()
                bucket.append(clock() - start)

    result = {name: {"median_ms": statistics.median(v) * 1000, "p90_ms": pct(v, 0.9) * 1000, "calls": len(v)}
              for name, v in times.items()}
    ratio = result["connector"]["median_ms"] / result["plain"]["median_ms"]
    print(f"\n1. getAccount latency, {rounds * ROUND} calls each, interleaved in rounds of {ROUND}")
    print(f"   {'variant':<44}{'median ms':>10}{'p90 ms':>10}")
    for name, label in (("connector", "connector (Connection.execute)"), ("plain", "plain requests.Session GET"),
                        ("plain_lean", "plain requests.Session, trust_env=False")):
        print(f"   {label:<44}{result[name]['median_ms']:>10.3f}{result[name]['p90_ms']:>10.3f}")
    p90_ratio = result["connector"]["p90_ms"] / result["plain"]["p90_ms"]
    lean_ratio = result["connector"]["median_ms"] / result["plain_lean"]["median_ms"]
    verdict = "met" if ratio <= 1.2 else "MISSED"
    print(f"   ratio connector/plain: median {ratio:.3f}x, p90 {p90_ratio:.3f}x   (target <= 1.2x median: {verdict})")
    print(f"   ratio connector/plain with trust_env=False: median {lean_ratio:.3f}x   (for information)")
    if show_profile or ratio > 1.2:
        profile("500 connector getAccount calls", lambda: [connector() for _ in range(500)])
    session.close()
    lean.close()
    connection.close()
    return {"ratio": ratio, "lean_ratio": lean_ratio, **result}


# --------------------------------------------------------------------------- 2. upload


def bench_upload(config: dict, engine: Engine, reps: int, reset: Callable[[], None], state: Callable[[], dict],
                 show_profile: bool) -> dict:
    batches = make_batches()
    events = sum(len(b["events"]) for b in batches)
    chunks = chunk_batches(batches)  # the connector's packing: (members, body bytes)
    encoded = [body for _, body in chunks]
    groups = [members for members, _ in chunks]
    for group, body in zip(groups, encoded):  # plain json.dumps produces the very same bytes
        assert json.dumps(group, separators=(",", ":"), ensure_ascii=False).encode() == body
    connection = engine.connect(config)
    session = requests.Session()
    auth = (config["apiKey"], config["apiSecret"])
    bulk = config["eventsUrl"] + "/bulkevents"

    def run_connector() -> None:
        output = connection.execute("uploadEventBatch", {"jsonBody": batches}).output
        assert output["status"] == "accepted" and output["acknowledged"]["events"] == events, output

    def run_plain_dumps() -> None:
        for group in groups:
            body = json.dumps(group, separators=(",", ":"), ensure_ascii=False).encode()
            response = session.post(bulk, data=body, headers=JSON, auth=auth, timeout=60)
            assert response.status_code == 202, response.text[:300]

    def run_plain_bytes() -> None:
        for body in encoded:
            response = session.post(bulk, data=body, headers=JSON, auth=auth, timeout=60)
            assert response.status_code == 202, response.text[:300]

    variants: list[tuple[str, Callable[[], None]]] = [
        ("connector", run_connector), ("plain json.dumps", run_plain_dumps), ("plain pre-encoded", run_plain_bytes)]
    sdk_requests = None
    if mparticle is not None:
        models = [sdk_batch(b) for b in batches]
        sanitize = mparticle.ApiClient.sanitize_for_serialization
        assert [sanitize(m) for m in models] == batches, "the SDK models must serialise to the same batches"
        sdk_groups = pack(models, lambda m: len(json.dumps(sanitize(m)).encode()))
        sdk_requests = len(sdk_groups)
        sdk_config = mparticle.Configuration()
        sdk_config.host = config["eventsUrl"]
        sdk_config.api_key = config["apiKey"]
        sdk_config.api_secret = config["apiSecret"]
        api = mparticle.EventsApi(sdk_config)

        def run_sdk() -> None:
            for group in sdk_groups:
                api.bulk_upload_events(group)

        variants.append(("official mparticle SDK", run_sdk))
    else:
        print("   (the mparticle package is not installed: pip install -r bench/requirements.txt)")

    def timed(fn: Callable[[], None]) -> float:
        reset()
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        counters = state()
        assert (counters["batches_accepted"], counters["events_accepted"]) == (BATCHES, events), counters
        return elapsed

    for _, fn in variants:  # warm up: connections, imports, caches
        timed(fn)
    seconds: dict[str, list[float]] = {name: [] for name, _ in variants}
    for rep in range(reps):
        shift = rep % len(variants)
        for name, fn in variants[shift:] + variants[:shift]:
            seconds[name].append(timed(fn))

    rates = {name: events / statistics.median(v) for name, v in seconds.items()}
    size = sum(len(b) for b in encoded)
    print(f"\n2. uploadEventBatch: {BATCHES} batches x {EVENTS_PER_BATCH} events ({size / 1e6:.2f} MB compact JSON, "
          f"{len(encoded)} bulk requests of <= 256 KB{f'; the SDK needs {sdk_requests}' if sdk_requests else ''}), "
          f"{reps} repetitions in rotating order, median")
    print(f"   {'variant':<26}{'events/s':>12}{'ms/upload':>11}   (all runs, ms)")
    for name, values in seconds.items():
        runs = " ".join(f"{v * 1000:.0f}" for v in values)
        print(f"   {name:<26}{rates[name]:>12,.0f}{statistics.median(values) * 1000:>11.1f}   ({runs})")
    ratios = {
        "connector/plain json.dumps": rates["connector"] / rates["plain json.dumps"],
        "connector/plain pre-encoded": rates["connector"] / rates["plain pre-encoded"],
    }
    if "official mparticle SDK" in rates:
        ratios["connector/official SDK"] = rates["connector"] / rates["official mparticle SDK"]
    targets = {"connector/plain json.dumps": 1.5, "connector/official SDK": 4.0}
    missed = False
    for name, value in ratios.items():
        target = targets.get(name)
        note = "" if target is None else f"   (target >= {target}x: {'met' if value >= target else 'MISSED'})"
        missed |= target is not None and value < target
        print(f"   ratio {name:<30}{value:>7.2f}x{note}")
    if show_profile or missed:
        reset()
        profile("one connector upload (client side)", run_connector)
    session.close()
    connection.close()
    return {"rates": rates, "ratios": ratios}


# --------------------------------------------------------------------------- main


def run_all(label: str, config: dict, reset, state, args) -> dict:
    print(f"\n=== sandbox {label} at {config['platformUrl']} ===")
    with Engine() as engine:
        get = bench_get(config, engine, args.calls, args.profile)
        reset()
        upload = bench_upload(config, engine, args.reps, reset, state, args.profile)
    return {"get": get, "upload": upload}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("child", "inproc", "both"), default="both",
                        help="where the sandbox runs (default both; the child-process numbers are the result)")
    parser.add_argument("--calls", type=int, default=2000, help="getAccount calls per variant (default 2000, max 10000)")
    parser.add_argument("--reps", type=int, default=11, help="upload repetitions per variant (default 11, max 25)")
    parser.add_argument("--profile", action="store_true", help="print cProfile of the connector even when targets are met")
    args = parser.parse_args()
    args.calls = max(ROUND, min(args.calls, 10_000))
    args.reps = max(1, min(args.reps, 25))
    started = time.perf_counter()
    versions = {}
    for name in ("requests", "orjson", "mparticle"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    print(f"python {sys.version.split()[0]}, " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    results = {}
    if args.mode in ("child", "both"):
        with SandboxProcess() as sandbox:
            results["child"] = run_all("in a child process (reported result)", sandbox.config, sandbox.reset, sandbox.state, args)
    if args.mode in ("inproc", "both"):
        with Sandbox(max_batches=2 * BATCHES, max_logged_requests=100) as sandbox:
            results["inproc"] = run_all("in this process (shares the GIL; for comparison)", sandbox.config,
                                        sandbox.reset, sandbox.state, args)
    print("\nsummary (ratios; >1 means the connector is faster for uploads, slower for latency):")
    for mode, result in results.items():
        ratios = ", ".join(f"{k} {v:.2f}x" for k, v in result["upload"]["ratios"].items())
        print(f"  {mode:<7} getAccount connector/plain median {result['get']['ratio']:.3f}x "
              f"(vs trust_env=False {result['get']['lean_ratio']:.3f}x); upload {ratios}")
    print(f"done in {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f} (other jobs on the "
          "machine slow the sequential variants more than the concurrent connector: compare runs at low load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
