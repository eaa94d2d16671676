"""Backfills on Dask: a LocalCluster of two worker processes uploads to a sandbox process.

The Dask tests skip when the ``dask`` extra is not installed. Events are counted by marker in the
sandbox: none lost, none doubled.
"""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest
from connector_mparticle.sandbox import SandboxProcess

from connector_core import Engine

NEEDS = "the dask extra is not installed (pip install '.[dask]')"


@pytest.fixture(scope="module")
def dask():
    """dask, distributed and pandas, imported by the worker that runs these tests (not at collection)."""
    pytest.importorskip("distributed", reason=NEEDS)
    pd = pytest.importorskip("pandas", reason=NEEDS)
    import dask.bag
    import dask.dataframe
    from connector_mparticle.backfill_dask import upload_bag, upload_dataframe

    return SimpleNamespace(bag=dask.bag, dataframe=dask.dataframe, pd=pd, upload_bag=upload_bag, upload_dataframe=upload_dataframe)


@pytest.fixture(scope="module")
def sandbox():
    with SandboxProcess() as sb:
        yield sb


@pytest.fixture(scope="module")
def client(dask):
    import dask as dask_config
    from distributed import Client, LocalCluster

    # Worker processes fork from one server that imported distributed and its dependencies
    # once, instead of each spawning a fresh interpreter that imports them again.
    with dask_config.config.set({"distributed.worker.multiprocessing-method": "forkserver"}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def batch(i: int, events: int) -> dict:
    return {
        "environment": "development",
        "user_identities": {"customer_id": f"user-{i}"},
        "events": [{"event_type": "custom_event",
                    "data": {"event_name": "Viewed", "custom_event_type": "other", "custom_attributes": {"m": f"{i}.{j}"}}}
                   for j in range(events)],
    }


def test_a_bag_of_200000_events_arrives_exactly_once(dask, sandbox, client):
    sandbox.reset()
    sandbox.configure(marker_attribute="m")
    n, per = 2000, 100
    bag = dask.bag.from_sequence(range(n), npartitions=8).map(batch, per)
    secret_ref = {**sandbox.config, "apiSecret": {"$env": "MP_TEST_API_SECRET"}}
    client.run(lambda secret: __import__("os").environ.__setitem__("MP_TEST_API_SECRET", secret), sandbox.config["apiSecret"])
    graph = pickle.dumps(dict(bag.__dask_graph__()))
    assert sandbox.config["apiSecret"].encode() not in graph
    report = dask.upload_bag(client, bag, secret_ref, rate=1_000_000, concurrency=2)
    assert report.status == "accepted", report.to_dict()
    assert (report.batches, report.acknowledged_batches, report.acknowledged_events) == (n, n, n * per)
    assert sandbox.event_markers() == {"events": n * per, "distinct": n * per, "doubled": 0, "doubled_examples": {}}


def test_rerunning_the_same_job_sends_the_same_ids(dask, sandbox, client):
    sandbox.reset()
    bag = dask.bag.from_sequence(range(300), npartitions=3).map(batch, 1)
    first = dask.upload_bag(client, bag, sandbox.config, rate=1_000_000)
    again = dask.upload_bag(client, bag, sandbox.config, rate=1_000_000)
    assert first.acknowledged_batches == again.acknowledged_batches == 300
    state = sandbox.state()
    assert state["batches_accepted"] == 300 and state["duplicates_dropped"] == 300


def test_a_dataframe_of_events_is_grouped_by_user_and_uploaded(dask, sandbox, client):
    sandbox.reset()
    rows = 6000
    frame = dask.pd.DataFrame({
        "user": [f"u{i % 50}" for i in range(rows)],
        "event_name": ["Bought"] * rows,
        "m": [f"row{i}" for i in range(rows)],
        "price": [float(i) for i in range(rows)],
    })
    report = dask.upload_dataframe(client, dask.dataframe.from_pandas(frame, npartitions=4), sandbox.config, user_id="user",
                              events_per_batch=40, rate=1_000_000)
    assert report.status == "accepted" and report.acknowledged_events == rows
    batches = sandbox.batches
    assert all(len(b["events"]) <= 40 and len({e["data"]["custom_attributes"]["m"][3:] for e in b["events"]}) == len(b["events"])
               for b in batches)
    users = {b["user_identities"]["customer_id"] for b in batches}
    assert users == {f"u{i}" for i in range(50)}
    assert sorted(e["data"]["custom_attributes"]["m"] for b in batches for e in b["events"]) == sorted(frame["m"])
    first = next(e for b in batches for e in b["events"] if e["data"]["custom_attributes"]["m"] == "row7")
    assert first["data"]["custom_attributes"]["price"] == 7.0 and first["data"]["event_name"] == "Bought"


def test_a_connection_does_not_pickle(sandbox):
    with Engine() as engine, engine.connect(sandbox.config, connector="mparticle") as connection:
        with pytest.raises(Exception):
            pickle.dumps(connection)
