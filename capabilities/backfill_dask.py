"""Backfills on Dask: upload a ``dask.bag`` of batches, or a Dask DataFrame of events.

Needs the ``dask`` extra (``pip install 'connector-framework[dask]'``)::

    from dask.distributed import Client
    from connector_mparticle.backfill_dask import upload_bag, upload_dataframe

    client = Client("scheduler:8786")
    config = {"clientID": {"$env": "MP_CLIENT_ID"}, "clientSecret": {"$env": "MP_CLIENT_SECRET"},
              "apiKey": {"$env": "MP_API_KEY"}, "apiSecret": {"$env": "MP_API_SECRET"}, "pod": "US1"}
    report = upload_bag(client, db.read_text("s3://bucket/events-*.ndjson").map(json.loads), config)
    report = upload_dataframe(client, dd.read_parquet("s3://bucket/events/"), config, user_id="customer_id")
    print(report.to_dict())

How it runs:

* One connection per worker: a worker plugin opens it when the worker joins and closes it
  when it leaves; tasks find it by name. A ``Connection`` never travels (it does not pickle).
* Secrets stay out of the task graph: tasks carry the plugin's name, not the config. The
  config travels once, to each worker's plugin; write its secrets as ``{"$env": NAME}``
  references and they are read from each worker's environment and never leave it.
* The rate budget (batches/s) is split evenly across the workers; the tasks of one worker
  share its part (one :class:`backfill.Pacer` per worker).
* Each partition is uploaded by :func:`backfill.upload`; its ids derive from the key, the
  partition number and the position in the partition, so rerunning the same job with the
  same partitions sends the same ids and mParticle drops what it already has. The partition
  reports are summed into one :class:`backfill.UploadReport`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .backfill import DEFAULT_CONCURRENCY, DEFAULT_RATE, Pacer, UploadReport, combine_reports, upload

try:
    from distributed import WorkerPlugin, get_worker
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("connector_mparticle.backfill_dask needs the dask extra: pip install 'connector-framework[dask]'") from exc

__all__ = ["events_to_batches", "upload_bag", "upload_dataframe"]

CONNECTOR = "mparticle"


class _Uploader(WorkerPlugin):
    """Holds one worker's connection and pacer."""

    def __init__(self, config: Mapping[str, Any], rate: float) -> None:
        self.config = dict(config)
        self.rate = rate
        self.connection = None
        self.pacer: Pacer | None = None
        self._engine = None

    def setup(self, worker) -> None:
        from connector_core import Engine

        self._engine = Engine()
        self.connection = self._engine.connect(self.config, connector=CONNECTOR)
        self.pacer = Pacer(self.rate)

    def teardown(self, worker) -> None:
        if self.connection is not None:
            self.connection.close()
        if self._engine is not None:
            self._engine.close()


def _upload_partition(batches: Iterable[dict], partition: int, plugin: str, key: str, options: dict) -> UploadReport:
    uploader = get_worker().plugins[plugin]
    return upload(uploader.connection, batches, pacer=uploader.pacer, idempotency_key=f"{key}\npartition {partition}", **options)


def _run(client, parts, upload_part: Callable, config, *, rate, concurrency, historical, idempotency_key, fail_fast) -> UploadReport:
    from dask import delayed

    workers = max(1, len(client.scheduler_info()["workers"]))
    name = f"connector-mparticle-upload-{uuid.uuid4().hex}"
    client.register_plugin(_Uploader(config, rate / workers), name=name)
    options = {"concurrency": concurrency, "historical": historical, "fail_fast": fail_fast}
    try:
        tasks = [delayed(upload_part, pure=False)(part, i, name, idempotency_key, options) for i, part in enumerate(parts)]
        reports = client.compute(tasks, sync=True)
    finally:
        client.unregister_worker_plugin(name)
    return combine_reports(reports)


def upload_bag(
    client,
    bag,
    config: Mapping[str, Any],
    *,
    rate: float = DEFAULT_RATE,
    concurrency: int = DEFAULT_CONCURRENCY,
    historical: str = "never",
    idempotency_key: str = "",
    fail_fast: bool = False,
) -> UploadReport:
    """Upload every batch of ``bag`` (a ``dask.bag.Bag`` of batch dicts) on ``client``'s cluster.

    ``rate`` is the budget of the whole cluster, split across its workers; ``concurrency``
    the connections each partition upload uses. Returns the partitions' reports summed.
    """
    return _run(client, bag.to_delayed(), _upload_partition, config, rate=rate, concurrency=concurrency,
                historical=historical, idempotency_key=idempotency_key, fail_fast=fail_fast)


def events_to_batches(
    frame,
    user_id: str,
    *,
    identity: str = "customer_id",
    events_per_batch: int = 100,
    environment: str = "production",
    to_event: Callable[[dict], dict] | None = None,
) -> list[dict]:
    """Batches of a pandas DataFrame of events, one user per batch, at most ``events_per_batch`` events.

    Each row is one event: ``to_event(row)`` when given, else a ``custom_event`` whose
    ``event_name`` (required), ``custom_event_type`` (default ``other``) and
    ``timestamp_unixtime_ms`` come from the columns of those names and every other column
    (but ``user_id``) becomes a custom attribute. Missing values are left out.
    """
    convert = to_event or _default_event
    batches = []
    for uid, rows in frame.groupby(user_id, sort=False):
        records = rows.drop(columns=[user_id]).to_dict("records")
        events = [convert({k: v for k, v in r.items() if not _missing(v)}) for r in records]
        for start in range(0, len(events), events_per_batch):
            batches.append({
                "environment": environment,
                "user_identities": {identity: str(uid)},
                "events": events[start:start + events_per_batch],
            })
    return batches


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """numpy scalars as Python values (orjson and the checker want plain ints, floats, strs)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _default_event(row: dict) -> dict:
    row = {k: _plain(v) for k, v in row.items()}
    data: dict[str, Any] = {"event_name": row.pop("event_name", None), "custom_event_type": row.pop("custom_event_type", "other")}
    stamp = row.pop("timestamp_unixtime_ms", None)
    if stamp is not None:
        data["timestamp_unixtime_ms"] = int(stamp)
    if row:
        data["custom_attributes"] = row
    return {"event_type": "custom_event", "data": data}


def _upload_frame(frame, partition: int, plugin: str, key: str, options: dict) -> UploadReport:
    grouping = options.pop("grouping")
    return _upload_partition(events_to_batches(frame, **grouping), partition, plugin, key, options)


def upload_dataframe(
    client,
    frame,
    config: Mapping[str, Any],
    *,
    user_id: str,
    identity: str = "customer_id",
    events_per_batch: int = 100,
    environment: str = "production",
    to_event: Callable[[dict], dict] | None = None,
    rate: float = DEFAULT_RATE,
    concurrency: int = DEFAULT_CONCURRENCY,
    historical: str = "never",
    idempotency_key: str = "",
    fail_fast: bool = False,
) -> UploadReport:
    """Upload a Dask DataFrame of events (one row per event, a ``user_id`` column).

    Each partition's rows are grouped by user into batches (:func:`events_to_batches`; a
    user whose rows span partitions gets a batch per partition) and uploaded as
    :func:`upload_bag` does. Returns the partitions' reports summed.
    """
    grouping = {"user_id": user_id, "identity": identity, "events_per_batch": events_per_batch,
                "environment": environment, "to_event": to_event}

    def part(frame, partition, plugin, key, options):
        return _upload_frame(frame, partition, plugin, key, {**options, "grouping": grouping})

    return _run(client, frame.to_delayed(), part, config, rate=rate, concurrency=concurrency,
                historical=historical, idempotency_key=idempotency_key, fail_fast=fail_fast)
