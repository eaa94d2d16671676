"""Backfills on Dask: throughput of ``upload_bag`` with one and with two worker processes.

One command (after ``pip install -e '.[dask]'``)::

    python bench/bench_backfill_dask.py [--batches 2000] [--events-per-batch 100]

A ``LocalCluster`` (worker processes, one thread each, no dashboard) uploads a bag of
batches (each event with a unique marker) to the sandbox in a child process, with the rate
budget raised; the sandbox must count every marker once. Reported: events/s per cluster size
and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import dask.bag as db
from connector_mparticle.backfill_dask import upload_bag
from connector_mparticle.sandbox import SandboxProcess
from distributed import Client, LocalCluster


def batch(i: int, events: int) -> dict:
    return {
        "environment": "development",
        "user_identities": {"customer_id": f"user-{i}"},
        "events": [{"event_type": "custom_event",
                    "data": {"event_name": "Viewed", "custom_event_type": "other", "custom_attributes": {"m": f"{i}.{j}"}}}
                   for j in range(events)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--events-per-batch", type=int, default=100)
    args = parser.parse_args()
    total = args.batches * args.events_per_batch
    results = {}
    with SandboxProcess("--max-batches", "100") as sandbox:
        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                    Client(cluster) as client:
                sandbox.reset()
                sandbox.configure(marker_attribute="m")
                bag = db.from_sequence(range(args.batches), npartitions=8).map(batch, args.events_per_batch)
                started = time.perf_counter()
                report = upload_bag(client, bag, sandbox.config, rate=1_000_000, concurrency=2)
                seconds = time.perf_counter() - started
                markers = sandbox.event_markers()
                assert report.status == "accepted" and markers["distinct"] == markers["events"] == total, markers
                results[workers] = total / seconds
                print(f"{workers} worker(s): {total:,} events in {seconds:.1f} s, {results[workers]:,.0f} events/s "
                      f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    print(f"2 workers / 1 worker: {results[2] / results[1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
