"""``connector upload-events`` against the sandbox: throughput, peak memory, concurrency, pacing.

One command (after ``pip install -e .``)::

    python bench/bench_backfill.py                 # everything, about 3 minutes on 2 cores
    python bench/bench_backfill.py --only memory   # one part: memory, latency, concurrency, budget

The input is an NDJSON file of 1,000,000 realistic events (``--events``), 10 per batch, each
with a unique marker attribute, about 360 MB, written once to ``--data`` (default the system
temporary directory) and reused. Every upload runs ``connector upload-events`` in a fresh
process (so its peak RSS, read with ``os.wait4``, is that of a process that reads the file),
against the sandbox in another child process (``SandboxProcess``), which checks every batch.
The sandbox counts accepted events; every run must end with all events accepted once.

1. ``memory``: the whole file at 0 ms latency with the budget raised (``--rate 1e9``):
   events/s and peak RSS (target: under 200 MB), of the command and of the command with its
   worker processes.
2. ``latency``: the whole file with the sandbox 20 ms away, budget raised.
3. ``concurrency``: 20 ms away, budget raised, the first ``--subset`` events (default 200,000)
   with ``--concurrency 1`` and with the default concurrency, side by side (target: >= 5x,
   over the uploads' own durations, which leave out process start-up), with the default
   ``--workers auto`` and with ``--workers 0`` (everything in one process); then the CPU each
   request cost the command, its workers and the sandbox, and the best ratio those allow on
   this machine's CPUs. Start-ups are left out of the CPU per request: the
   command's with its workers, measured as an upload of one batch with as many workers.
   The commands run byte-compiled, as an installed package does.
5. ``text``: ``uploadEventBatch`` with a ``jsonBody`` of JSON text (``--text-events``,
   default 100,000 events, 100 per batch) in a fresh process: the peak RSS it adds over the
   process before the text was built, against the text's size (target: at most 3x; the text
   itself is 1x).
4. ``budget``: the default budget (270 batches/s) against a sandbox 20 ms away that itself
   enforces 270 per second, for ``--budget-seconds`` (default 20 s) worth of batches
   (target: within 10% of 270 batches/s, and no 429).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_deps import compile_sources
from connector_mparticle.backfill_cli import workers_for
from connector_mparticle.sandbox import SandboxProcess

CONNECTOR = str(Path(sys.executable).parent / "connector")
# The commands run as an installed package runs: byte-compiled (see main), and free to use
# the bytecode whatever this environment says.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
EVENTS_PER_BATCH = 10


def make_file(path: Path, events: int) -> Path:
    """NDJSON of ``events`` events, ``EVENTS_PER_BATCH`` per batch (one user each), about 360 bytes per event."""
    if path.exists():
        return path
    rng = random.Random(7)
    names = ["Viewed product", "Added to cart", "Searched", "Opened app", "Shared"]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for b in range(events // EVENTS_PER_BATCH):
            stamp = 1_700_000_000_000 + b * 1000
            batch = {
                "environment": "production",
                "user_identities": {"customer_id": f"customer-{b:08d}", "email": f"user{b}@example.com"},
                "user_attributes": {"plan": rng.choice(["free", "pro", "team"]), "country": "FR"},
                "device_info": {"platform": "web"},
                "events": [
                    {"event_type": "custom_event", "data": {
                        "event_name": rng.choice(names), "custom_event_type": "navigation",
                        "timestamp_unixtime_ms": stamp + j,
                        "custom_attributes": {"marker": f"{b}.{j}", "sku": f"SKU-{rng.randrange(10**6):06d}",
                                              "price": round(rng.uniform(1, 500), 2), "category": "shoes",
                                              "campaign": "spring-sale-2025", "referrer": "https://example.com/landing"},
                    }}
                    for j in range(EVENTS_PER_BATCH)
                ],
            }
            f.write(json.dumps(batch, separators=(",", ":")) + "\n")
    tmp.rename(path)
    return path


def head(path: Path, events: int) -> Path:
    out = path.with_name(f"{path.stem}-first{events}.ndjson")
    if not out.exists():
        with open(path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
            for _ in range(events // EVENTS_PER_BATCH):
                dst.write(src.readline())
    return out


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) of a running process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its children (the --workers processes), from /proc."""
    total = 0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(child) for child in f.read().split()]
    except OSError:
        pass
    for one in pids:
        try:
            with open(f"/proc/{one}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
    return total


def run_upload(sandbox: SandboxProcess, source: Path, *options: str) -> dict:
    """One ``connector upload-events`` in a fresh process: its summary, wall time, peak RSS
    (the command's own, from ``os.wait4``, and that of the command with its worker processes,
    sampled every 20 ms), and the CPU the command (workers included; ``own_cpu`` without them)
    and the sandbox spent."""
    sandbox.reset()
    config = Path(tempfile.gettempdir()) / f"bench-backfill-{os.getpid()}.json"
    config.write_text(json.dumps(sandbox.config))
    sandbox_cpu = _cpu(sandbox.pid)
    started = time.perf_counter()
    child = subprocess.Popen([CONNECTOR, "upload-events", str(source), "--config", str(config), *options],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    peak = [0]
    finished = threading.Event()

    def sample() -> None:
        while not finished.wait(0.02):
            peak[0] = max(peak[0], _tree_rss(child.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = child.stdout.read()
    err = child.stderr.read()
    finished.set()
    sampler.join()
    # Ended but not reaped: /proc still has its own CPU apart from that of its reaped workers.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    with open(f"/proc/{child.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    sandbox_cpu = _cpu(sandbox.pid) - sandbox_cpu
    config.unlink(missing_ok=True)
    if child.returncode != 0:
        raise SystemExit(f"upload-events failed ({child.returncode}): {err.decode()[-2000:]}")
    summary = json.loads(out)
    state = sandbox.state()
    assert state["events_accepted"] == summary["events"] == summary["acknowledged"]["events"], (state, summary)
    return {"summary": summary, "wall": wall, "rss_mb": usage.ru_maxrss / 1024, "tree_mb": peak[0] / 2**20,
            "cpu": usage.ru_utime + usage.ru_stime, "own_cpu": own, "sandbox_cpu": sandbox_cpu, "sandbox": state}


def line(name: str, result: dict) -> str:
    s = result["summary"]
    requests = max(1, s["requests"])
    return (f"{name:<44} {s['events']:>9,} events {result['wall']:7.1f} s  "
            f"{s['events'] / result['wall']:>9,.0f} events/s  {s['acknowledged']['count'] / result['wall']:>8,.0f} batches/s  "
            f"peak RSS {result['rss_mb']:6.1f} MB (with workers {result['tree_mb']:6.1f} MB, sampled)  "
            f"CPU per request: command {result['cpu'] / requests * 1000:.1f} ms, sandbox "
            f"{result['sandbox_cpu'] / requests * 1000:.1f} ms  429s {s['rateLimited']}  load average {os.getloadavg()[0]:.1f}")


TEXT_CHILD = r"""
import json, resource, sys
from connector_core import Engine
config, events = json.loads(sys.argv[1]), int(sys.argv[2])
def rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
engine = Engine()
connection = engine.connect(config, connector="mparticle")
base = max(rss_now(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
with open(sys.argv[3], encoding="utf-8") as f:  # written by the parent: only the text enters this process
    text = f.read()
output = connection.execute("uploadEventBatch", {"jsonBody": text, "idempotencyKey": "bench"}).output
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"text": len(text), "added": peak - base, "events": output["acknowledged"]["events"]}))
"""


def run_text(sandbox: SandboxProcess, events: int, data: Path) -> str:
    path = data / f"bench-backfill-text-{events}.json"
    if not path.exists():
        per = 100
        with open(path, "w", encoding="utf-8") as f:
            f.write("[")
            for b in range(events // per):
                batch = {"environment": "production", "user_identities": {"customer_id": f"c{b}"}, "events": [
                    {"event_type": "custom_event", "data": {"event_name": "Viewed", "custom_event_type": "navigation",
                                                            "custom_attributes": {"marker": f"{b}.{j}", "sku": "SKU-000123"}}}
                    for j in range(per)]}
                f.write(("," if b else "") + json.dumps(batch, separators=(",", ":")))
            f.write("]")
    sandbox.reset()
    out = subprocess.run([sys.executable, "-c", TEXT_CHILD, json.dumps(sandbox.config), str(events), str(path)],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    assert result["events"] == events == sandbox.state()["events_accepted"], (result, sandbox.state())
    ratio = result["added"] / result["text"]
    return (f"uploadEventBatch, {events:,} events as {result['text'] / 1e6:.1f} MB of JSON text: peak RSS added "
            f"{result['added'] / 1e6:.1f} MB = {ratio:.2f}x the text (target <= 3x: {'met' if ratio <= 3 else 'NOT met'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=200_000)
    parser.add_argument("--budget-seconds", type=float, default=20.0)
    parser.add_argument("--data", default=tempfile.gettempdir())
    parser.add_argument("--text-events", type=int, default=100_000)
    parser.add_argument("--only", choices=["memory", "latency", "concurrency", "budget", "text"])
    args = parser.parse_args()
    compile_sources()
    source = make_file(Path(args.data) / f"bench-backfill-{args.events}.ndjson", args.events)
    print(f"input: {source} ({source.stat().st_size / 1e6:.0f} MB, {args.events:,} events, "
          f"{EVENTS_PER_BATCH} per batch); sandbox in a child process", flush=True)
    fast = ("--rate", "1e9")
    with SandboxProcess("--max-batches", "1000") as sandbox:
        if args.only in (None, "text"):
            print(run_text(sandbox, args.text_events, Path(args.data)), flush=True)
        if args.only in (None, "memory"):
            print(line("whole file, 0 ms", run_upload(sandbox, source, *fast)), flush=True)
        sandbox.set_latency(20)
        if args.only in (None, "latency"):
            print(line("whole file, 20 ms", run_upload(sandbox, source, *fast)), flush=True)
        if args.only in (None, "concurrency"):
            subset = head(source, args.subset)
            # The default (--workers auto) against everything in one process (--workers 0, the
            # engine before worker processes), each with one connection and the default eight.
            runs = {}
            for workers in ("auto", "0"):
                for concurrency in ("1", None):
                    extra = ("--concurrency", concurrency) if concurrency else ()
                    result = run_upload(sandbox, subset, *fast, "--workers", workers, *extra)
                    runs[workers, concurrency] = result
                    print(line(f"subset, 20 ms, --workers {workers}, " + (f"--concurrency {concurrency}" if concurrency
                                                                              else "default concurrency"), result),
                          flush=True)
            for workers in ("auto", "0"):
                one, many = runs[workers, "1"], runs[workers, None]
                # The ratio of the uploads' own durations: each process also spends a second or more
                # starting Python and importing, the same for both, which would flatten the ratio.
                ratio = one["summary"]["durationSeconds"] / many["summary"]["durationSeconds"]
                print(f"--workers {workers}: default concurrency / one connection: {ratio:.2f}x over the uploads' "
                      f"durations ({one['wall'] / many['wall']:.2f}x over whole processes) (target >= 5x: "
                      f"{'met' if ratio >= 5 else 'NOT met'}); load average {os.getloadavg()[0]:.1f}", flush=True)
            # What a command costs that does not depend on the input (Python, imports, the
            # token, starting its workers, the summary): an upload of one batch with as many
            # workers, left out of the CPU per request.
            for workers in ("auto", "0"):
                many = runs[workers, None]
                requests = many["summary"]["requests"]
                count = workers_for([str(subset)], workers)
                start = min((run_upload(sandbox, head(source, EVENTS_PER_BATCH), *fast, "--workers", str(count))
                             for _ in range(3)), key=lambda run: run["cpu"])
                print(f"command start-up with {count} worker process(es) (an upload of one batch, best of 3): "
                      f"{start['cpu']:.2f} s of CPU", flush=True)
                own = (many["own_cpu"] - start["own_cpu"]) / requests
                helpers = (many["cpu"] - many["own_cpu"] - (start["cpu"] - start["own_cpu"])) / requests
                sandbox_per = many["sandbox_cpu"] / requests
                single = runs[workers, "1"]["summary"]["durationSeconds"] / requests
                # No schedule beats the busiest process (the command's sending threads and reading
                # share one interpreter lock; the workers share the preparing) nor all of the CPU
                # on all of the CPUs.
                bound = max(own, helpers / count if count else 0, sandbox_per,
                            (own + helpers + sandbox_per) / (os.cpu_count() or 1))
                print(f"--workers {workers} ({count} worker process(es)), default concurrency, CPU per request with "
                      f"start-ups left out ({start['cpu']:.2f} s): command {own * 1000:.1f} ms, its workers "
                      f"{helpers * 1000:.1f} ms (together {(own + helpers) * 1000:.1f} ms; whole command "
                      f"{many['cpu'] / requests * 1000:.1f} ms), sandbox {sandbox_per * 1000:.1f} ms; on "
                      f"{os.cpu_count()} CPUs at best {bound * 1000:.1f} ms per request; one connection takes "
                      f"{single * 1000:.1f} ms, so at most {single / bound:.1f}x on this machine", flush=True)
        if args.only in (None, "budget"):
            subset = head(source, int(270 * args.budget_seconds) * EVENTS_PER_BATCH)
            sandbox.set_rate_limit("events", 270, window_seconds=1)
            paced = run_upload(sandbox, subset)
            sandbox.set_rate_limit("events", None)
            batches = paced["summary"]["acknowledged"]["count"]
            seconds = paced["summary"]["durationSeconds"]
            print(line("default budget, 20 ms, sandbox limit 270/s", paced))
            print(f"paced upload: {batches / seconds:.1f} batches/s over {seconds:.1f} s of sending "
                  f"({batches / seconds / 270:.1%} of 270; target within 10%)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
