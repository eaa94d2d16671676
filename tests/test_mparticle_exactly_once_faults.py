"""0 lost, 0 doubled: uploads of thousands of batches through the sandbox's fault injection,
with the host doing what each error tells it to, until the upload is done.

Every event carries a unique marker (a custom attribute); the sandbox counts the markers of
the events it accepted (``Sandbox.event_markers``), which a doubled event would carry twice
under a new ``source_request_id``, so the count does not rest on the ids under test.

The host follows the error's message, in one of two ways:

* ``key``: repeat the same call with the same ``idempotencyKey`` and ``jsonBody``;
* ``ids``: (no key) resend only the batches the report lists as ``unknown`` or ``failed``,
  each with the ``source_request_id`` the report gives it.

Faults are random per request (seeded), plus scripted runs of failures long enough to
exhaust the HTTP layer's retries, so the host has to act. Requests go out concurrently (the
default), so each scripted run targets the request holding one batch (``match``: that
batch's first marker), whatever order the requests arrive in.
"""

from __future__ import annotations

from typing import Any

import pytest
from connector_mparticle.sandbox import Sandbox

from connector_core import ConnectorError, Engine

BATCHES = 2000
MARKER = "exactly_once_marker"


@pytest.fixture(scope="module")
def engine() -> Engine:
    with Engine(sleep=lambda seconds: None) as built:  # Retry-After and backoff cost no time
        yield built


@pytest.fixture
def sb(mparticle_sandbox: Sandbox, engine: Engine) -> Sandbox:
    engine.close()
    mparticle_sandbox.configure(marker_attribute=MARKER)
    return mparticle_sandbox


def make_batches(n: int = BATCHES, events: int = 2) -> list[dict]:
    return [
        {
            "user_identities": {"customer_id": f"c{i % 97}"},
            "events": [
                {"event_type": "custom_event", "data": {"event_name": "Tap", "custom_event_type": "other",
                                                        "custom_attributes": {MARKER: f"{i}.{j}"}}}
                for j in range(events)
            ],
        }
        for i in range(n)
    ]


def host_uploads(engine: Engine, config: dict, batches: list[dict], strategy: str, max_calls: int = 40) -> tuple[dict, list[str]]:
    """Upload as a host would: on an error, act as its message says; return the last output
    and the category of every error seen."""
    key = "flow-execution-7/step-3" if strategy == "key" else None
    body = batches
    categories: list[str] = []
    for _ in range(max_calls):
        properties: dict[str, Any] = {"jsonBody": body}
        if key is not None:
            properties["idempotencyKey"] = key
        try:
            return engine.execute("uploadEventBatch", properties, config).output, categories
        except ConnectorError as error:
            categories.append(error.category)
            report = error.details.get("report")
            assert report is not None, error.to_dict()  # every error after sending carries the report
            assert report["refused"]["count"] == 0, report["errors"]  # the batches are valid
            if strategy == "ids":
                assert "Do not repeat this call unchanged" in error.message or "can be repeated as it is" in error.message
                sent = body
                body = [
                    {**sent[i], "source_request_id": rid}
                    for group in ("unknown", "failed")
                    for i, rid in zip(report[group]["batches"], report[group]["sourceRequestIds"])
                ]
            else:
                assert "same idempotencyKey" in error.message or "can be repeated as it is" in error.message
    raise AssertionError(f"the upload did not finish in {max_calls} calls: {categories}")


def assert_exactly_once(sb: Sandbox, n: int = BATCHES, events: int = 2) -> None:
    markers = sb.event_markers()
    assert markers["doubled"] == 0, markers["doubled_examples"]
    assert markers["distinct"] == n * events, f"{n * events - markers['distinct']} events lost"
    assert markers["events"] == n * events
    assert set(sb.marker_counts) == {f"{i}.{j}" for i in range(n) for j in range(events)}


def holding(batch: int) -> str:
    """Text only the request body that carries batch ``batch`` of ``make_batches()`` contains."""
    return f'"{MARKER}":"{batch}.0"'


SCENARIOS = {
    # name: (random faults of the events group, scripted runs: (count, the batch whose request
    # they hit, failure fields)); requests carry 100 batches each.
    "reset-before-body": ({"reset_rate": 0.3}, [(4, 200, {"effect": "reset"}), (4, 900, {"effect": "reset"})]),
    "reset-after-accepted": ({"reset_rate": 0.3, "after": True}, [(4, 300, {"effect": "reset", "after": True})]),
    "answer-lost-after-accepted": ({"drop_rate": 0.3, "after": True}, [(4, 100, {"effect": "drop", "after": True}),
                                                                       (5, 600, {"effect": "drop", "after": True})]),
    "dropped-before-processing": ({"drop_rate": 0.3}, [(4, 400, {"effect": "drop"})]),
    "cut-off-answers": ({"truncate_rate": 0.3}, [(4, 200, {"effect": "truncate"})]),
    "5xx-bursts": ({"error_rate": 0.4}, [(4, 0, {"status": 503}), (6, 500, {"status": 500}), (4, 1200, {"status": 502})]),
    "5xx-after-accepted": ({"error_rate": 0.3, "after": True}, [(4, 200, {"status": 500, "after": True})]),
    "429-storms": ({"error_rate": 0.4, "statuses": [429]}, [(8, 100, {"status": 429, "retry_after": 2}),
                                                            (4, 700, {"status": 429, "retry_after": 1})]),
    "everything": ({"error_rate": 0.1, "statuses": [429, 500, 503], "drop_rate": 0.1, "truncate_rate": 0.05,
                    "reset_rate": 0.1, "after": True},
                   [(4, 100, {"effect": "reset"}), (4, 300, {"status": 429, "retry_after": 3}),
                    (4, 500, {"effect": "drop", "after": True}), (4, 700, {"status": 503})]),
}


# Every scenario with a key; the host that resends by ids where the fate of batches differs most.
CASES = [(scenario, "key") for scenario in SCENARIOS] + [
    (scenario, "ids") for scenario in ("reset-before-body", "answer-lost-after-accepted", "429-storms", "everything")
]


@pytest.mark.parametrize("scenario, strategy", CASES)
def test_no_event_lost_or_doubled(sb, engine, scenario, strategy):
    faults, runs = SCENARIOS[scenario]
    sb.set_faults("events", **faults)
    for count, at, fields in runs:
        sb.fail_next("uploadBulkEvents", count, match=holding(at), **fields)
    batches = make_batches()
    output, categories = host_uploads(engine, sb.config, batches, strategy)
    assert output["status"] == "accepted"
    assert categories, "the scripted runs must make the host act at least once"
    assert_exactly_once(sb)
    if scenario in ("answer-lost-after-accepted", "reset-after-accepted", "cut-off-answers"):
        assert "outcome_unknown" in categories
        assert sb.state()["duplicates_dropped"] > 0  # copies did arrive, and mParticle's de-duplication dropped them
    if scenario == "429-storms":
        assert set(categories) == {"rate_limited"}  # every attempt was answered: nothing to wonder about
    if scenario == "5xx-bursts":
        assert set(categories) == {"upstream"}


def test_a_server_slower_than_the_timeout_doubles_nothing(engine):
    """The client gives up on answers that come late; the server took the batches anyway."""
    with Sandbox(seed=3, latency_ms=(0.0, 60.0)) as slow:
        slow.configure(marker_attribute=MARKER)
        config = {**slow.config, "timeoutSeconds": 0.03}
        batches = make_batches(400)
        output, categories = host_uploads(engine, config, batches, "key", max_calls=60)
        assert output["status"] == "accepted"
        assert_exactly_once(slow, 400)
        assert slow.state()["duplicates_dropped"] > 0  # late answers: the batches had landed


def test_the_first_call_without_faults_sends_each_batch_once(sb, engine):
    output, categories = host_uploads(engine, sb.config, make_batches(), "ids")
    assert categories == [] and output["requests"] == 20
    assert_exactly_once(sb)
    assert sb.state()["duplicates_dropped"] == 0
