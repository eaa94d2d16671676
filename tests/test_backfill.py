"""Backfills: the upload engine (``connector_mparticle.backfill``) and ``connector upload-events``.

Everything runs over real HTTP against the sandbox, which checks every batch it receives
and drops batches whose ``source_request_id`` it has seen. Events are counted by a marker
(a unique custom attribute per event), not by ids: an event sent twice under two ids would
be counted twice.
"""

from __future__ import annotations

import collections
import enum
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from connector_mparticle.backfill import (
    HISTORICAL_PATH,
    Pacer,
    StateFile,
    derive_request_id,
    upload,
)
from connector_mparticle.sandbox import SandboxProcess

from connector_core import Engine, InvalidInput
from connector_core.cli import main

DAY_MS = 24 * 3600 * 1000


def make_batch(i: int, events: int = 3, *, tag: str = "m", stamp: int | None = None) -> dict:
    def data(j):
        d = {"event_name": "Viewed", "custom_event_type": "navigation", "custom_attributes": {"marker": f"{tag}{i}.{j}"}}
        if stamp is not None:
            d["timestamp_unixtime_ms"] = stamp
        return d

    return {
        "environment": "development",
        "user_identities": {"customer_id": f"user-{i}"},
        "events": [{"event_type": "custom_event", "data": data(j)} for j in range(events)],
    }


def markers(batches) -> collections.Counter:
    return collections.Counter(
        event["data"]["custom_attributes"]["marker"] for batch in batches for event in batch.get("events") or ()
    )


def assert_each_once(sb_batches, expected: set[str]) -> None:
    seen = markers(sb_batches)
    lost = expected - set(seen)
    doubled = {m: n for m, n in seen.items() if n > 1}
    assert not lost and not doubled, f"{len(lost)} lost, {len(doubled)} doubled"
    assert set(seen) == expected


@pytest.fixture
def sb(mparticle_sandbox):
    return mparticle_sandbox


@pytest.fixture(scope="module")
def engine():
    with Engine() as engine:
        yield engine


@pytest.fixture
def connection(sb, engine):
    with engine.connect(sb.config, connector="mparticle") as conn:
        yield conn


# -- the engine --------------------------------------------------------------------------------


def test_every_event_arrives_once_and_a_refused_batch_goes_to_the_dead_letter(sb, connection):
    batches = [make_batch(i) for i in range(300)]
    batches[7] = {**batches[7], "events": [{"event_type": "custom_event", "data": {"event_name": "x"}}]}
    dead = []
    report = upload(connection, iter(batches), rate=10_000, dead_letter=dead.append)
    assert report.status == "partial"
    assert (report.batches, report.acknowledged_batches, report.refused_batches) == (300, 299, 1)
    assert report.acknowledged_events == 299 * 3 and report.refused_events == 1
    assert [d["index"] for d in dead] == [7] and dead[0]["batch"] == batches[7]
    assert dead[0]["reasons"] == [{"path": "$[7].events[0].data.custom_event_type",
                                   "message": dead[0]["reasons"][0]["message"]}]
    assert "custom_event_type" in dead[0]["reasons"][0]["message"]
    assert_each_once(sb.batches, {f"m{i}.{j}" for i in range(300) if i != 7 for j in range(3)})
    summary = report.to_dict()
    assert summary["refused"]["batches"] == [7] and summary["unknown"]["count"] == 0


class _Flag(enum.Enum):
    ON = 1

    @property
    def value(self):  # orjson 3.13 crashed the process serialising such a member
        raise RuntimeError("no value")


class _Text(str):
    pass


def test_a_batch_from_python_that_is_not_json_data_is_refused_at_its_path_not_encoded(sb, connection):
    # The batch checker leaves custom flags free-form, so only the JSON-data check stands
    # between a Python caller's objects and the encoder.
    batches = [make_batch(i) for i in range(4)]
    flags = {"f": _Flag.ON}
    batches[1] = {**batches[1], "events": [{**batches[1]["events"][0], "data": {**batches[1]["events"][0]["data"], "custom_flags": flags}}]}
    batches[2] = {**batches[2], "user_attributes": {_Text("a"): "b", 3: "c"}}
    dead = []
    report = upload(connection, batches, rate=10_000, dead_letter=dead.append)
    assert (report.acknowledged_batches, report.refused_batches) == (2, 2)
    assert [(d["index"], [r["path"] for r in d["reasons"]]) for d in dead] == [
        (1, ["$[1].events[0].data.custom_flags.f"]), (2, ["$[2].user_attributes"])]
    assert dead[0]["reasons"][0]["message"] == "is a _Flag, which is not JSON data"
    assert dead[1]["reasons"][0]["message"].startswith("has a key that is not a string (int 3)")
    assert_each_once(sb.batches, {f"m{i}.{j}" for i in (0, 3) for j in range(3)})


def test_fail_fast_stops_at_the_first_refused_batch(sb, connection):
    batches = [make_batch(i) for i in range(250)]
    batches[120] = {"events": "not a list"}
    report = upload(connection, batches, rate=10_000, fail_fast=True, concurrency=1)
    assert report.status == "stopped" and report.error.code == "invalid_input"
    assert report.error.faults[0].path == "$[120].events"
    assert report.acknowledged_batches <= 120 and report.refused_batches == 1
    assert sb.state()["batches_accepted"] == report.acknowledged_batches


def test_ids_are_the_same_for_the_same_input_so_a_second_upload_is_dropped(sb, connection):
    batches = [make_batch(i) for i in range(150)]
    first = upload(connection, batches, rate=10_000)
    ids = [b["source_request_id"] for b in sb.batches]
    second = upload(connection, batches, rate=10_000)
    assert first.acknowledged_batches == second.acknowledged_batches == 150
    state = sb.state()
    assert state["batches_accepted"] == 150 and state["duplicates_dropped"] == 150
    assert len(set(ids)) == 150
    assert "source_request_id" not in batches[0]  # the caller's dicts are not changed
    other = upload(connection, batches, rate=10_000, idempotency_key="second backfill")
    assert other.acknowledged_batches == 150 and sb.state()["batches_accepted"] == 300


def test_derived_ids_depend_on_key_position_and_content():
    a = derive_request_id("", 0, b'{"x":1}')
    assert a == derive_request_id("", 0, b'{"x":1}')
    assert len({a, derive_request_id("k", 0, b'{"x":1}'), derive_request_id("", 1, b'{"x":1}'),
                derive_request_id("", 0, b'{"x":2}')}) == 4


def test_given_ids_are_kept_and_null_ids_replaced(sb, connection):
    batches = [{**make_batch(0), "source_request_id": "mine-0"}, {**make_batch(1), "source_request_id": None}]
    upload(connection, batches, rate=10_000)
    got = [b["source_request_id"] for b in sb.batches]
    assert got[0] == "mine-0" and got[1] and got[1] != "mine-0"
    assert list(sb.batches[1]).count("source_request_id") == 1


def test_requests_stay_within_100_batches_and_256_kb(sb, connection):
    small = [make_batch(i, 1) for i in range(250)]
    big = [{**make_batch(1000 + i, 1), "user_attributes": {"blob": "x" * 60_000}} for i in range(9)]
    report = upload(connection, small + big, rate=100_000)
    assert report.acknowledged_batches == 259
    bodies = [r for r in sb.requests if r["path"] == "/v2/bulkevents"]
    sizes = [len(r["json"]) for r in bodies]
    assert sizes == [100, 100, 54, 4, 1] or max(sizes) <= 100
    assert report.requests == len(bodies) and sb.state()["requests_by_status"] == {"202": len(bodies)}


def test_a_request_mparticle_refuses_is_narrowed_to_the_refused_batches(sb, connection):
    sb.fail_next("uploadBulkEvents", 1, status=400)
    report = upload(connection, [make_batch(i) for i in range(40)], rate=100_000)
    assert report.status == "accepted" and report.acknowledged_batches == 40
    assert_each_once(sb.batches, {f"m{i}.{j}" for i in range(40) for j in range(3)})

    sb.reset()
    sb.fail_next("uploadBulkEvents", 3, status=400)
    dead = []
    report = upload(connection, [make_batch(i) for i in range(2)], rate=100_000, dead_letter=dead.append)
    assert report.refused_batches == 2 and report.acknowledged_batches == 0
    assert "mParticle refused this batch" in dead[0]["reasons"][0]["message"]
    assert dead[0]["batch"]["source_request_id"]  # the dead letter keeps the id it was sent with


def test_429_slows_down_honours_retry_after_and_loses_nothing(sb, connection):
    sb.fail_next("uploadBulkEvents", 2, status=429, retry_after=1)
    started = time.monotonic()
    report = upload(connection, [make_batch(i) for i in range(300)], rate=100_000, concurrency=3)
    assert time.monotonic() - started >= 1.0  # everyone waited out the Retry-After
    assert report.status == "accepted" and report.rate_limited == 2
    assert_each_once(sb.batches, {f"m{i}.{j}" for i in range(300) for j in range(3)})


def test_answers_lost_after_the_sandbox_kept_the_batches_double_nothing(sb, connection):
    sb.set_faults("events", drop_rate=0.15, error_rate=0.1, statuses=[502, 503], after=True)
    report = upload(connection, [make_batch(i) for i in range(600)], rate=100_000, concurrency=4)
    assert report.status == "accepted" and report.acknowledged_batches == 600
    assert sb.state()["duplicates_dropped"] > 0  # resent with the same ids, dropped by mParticle
    assert_each_once(sb.batches, {f"m{i}.{j}" for i in range(600) for j in range(3)})


def test_historical_auto_routes_old_batches_after_checking_that_endpoints_rules(sb, connection):
    now = int(time.time() * 1000)
    old = [make_batch(i, 2, tag="old", stamp=now - 40 * DAY_MS) for i in range(30)]
    new = [make_batch(i, 2, tag="new", stamp=now - DAY_MS) for i in range(20)]
    mixed = make_batch(99, 1, tag="mixed", stamp=now - 40 * DAY_MS)
    mixed["events"].append({"event_type": "custom_event", "data": {
        "event_name": "x", "custom_event_type": "other", "timestamp_unixtime_ms": now - 3600_000}})
    dead = []
    report = upload(connection, old + new + [mixed], historical="auto", rate=100_000, dead_letter=dead.append)
    assert report.historical == 30 and report.acknowledged_batches == 50
    assert sb.state()["historical_batches"] == 30
    assert {r["path"] for r in sb.requests if r["endpoint"] != "token"} == {"/v2/bulkevents", "/v2" + HISTORICAL_PATH}
    assert dead[0]["index"] == 50 and dead[0]["reasons"][0]["path"] == "$[50].events[1].data.timestamp_unixtime_ms"
    assert "72 hours" in dead[0]["reasons"][0]["message"]


def test_historical_always_refuses_batches_without_timestamps_before_sending(sb, connection):
    dead = []
    report = upload(connection, [make_batch(0), {"events": []}], historical="always", rate=100_000, dead_letter=dead.append)
    assert report.refused_batches == 2 and report.requests == 0
    assert [r["reasons"][0]["path"] for r in dead] == ["$[0].events[0].data.timestamp_unixtime_ms", "$[1].events"]


def test_bad_options_are_typed_errors(connection):
    with pytest.raises(InvalidInput) as err:
        upload(connection, [], historical="sometimes")
    assert err.value.faults[0].path == "$.historical"
    with pytest.raises(InvalidInput):
        upload(connection, [], concurrency=0)
    with pytest.raises(InvalidInput):
        upload(connection, [], rate=0)


# -- pacing --------------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_the_pacer_spaces_requests_by_their_batches():
    clock = Clock()
    pacer = Pacer(200, clock=clock, sleep=clock.sleep)
    for n in (100, 100, 50, 100):
        pacer.acquire(n)
    assert clock.slept == [0.5, 0.5, 0.25]  # 350 batches in 1.25 s before the last request
    assert clock.now == 101.25


def test_the_pacer_halves_on_429_waits_retry_after_and_recovers_on_headroom():
    clock = Clock()
    pacer = Pacer(200, clock=clock, sleep=clock.sleep)
    pacer.observe(429, {"Retry-After": "3"})
    assert pacer.rate == 100 and pacer.rate_limited == 1
    pacer.acquire(100)
    assert clock.slept == [3.0]
    pacer.observe(202, {"X-mp-rate-limit-percentage-used": "97"})
    assert pacer.rate == 95
    for _ in range(40):
        pacer.observe(202, {"X-mp-rate-limit-percentage-used": "20"})
    assert pacer.rate == 200  # back to the budget, never above it
    pacer.observe(202, {})
    assert pacer.rate == 200


# -- resumable state -----------------------------------------------------------------------------


def test_a_state_file_skips_what_was_acknowledged(sb, connection, tmp_path):
    batches = [make_batch(i) for i in range(120)]
    state = StateFile(tmp_path / "s.json", "inputs-1")
    report = upload(connection, batches[:70], rate=100_000, state=state)
    assert report.acknowledged_batches == 70
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["acknowledged"] == [[0, 70]] and saved["fingerprint"] == "inputs-1"
    resumed = StateFile(tmp_path / "s.json", "inputs-1").load()
    report = upload(connection, batches, rate=100_000, state=resumed)
    assert report.skipped == 70 and report.acknowledged_batches == 50
    assert sb.state()["duplicates_dropped"] == 0
    assert_each_once(sb.batches, {f"m{i}.{j}" for i in range(120) for j in range(3)})
    with pytest.raises(InvalidInput) as err:
        StateFile(tmp_path / "s.json", "other inputs").load()
    assert "another upload" in err.value.message


# -- the command ------------------------------------------------------------------------------


@pytest.fixture
def config_file(sb, tmp_path):
    path = tmp_path / "mparticle.json"
    path.write_text(json.dumps(sb.config))
    return path


def run_cli(argv, capsys, stdin: bytes | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_upload_events_in_process_with_text_streams(sb, config_file):
    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO("".join(json.dumps(make_batch(i)) + "\n" for i in range(5)))
    code = main(["upload-events", "-", "--config", str(config_file)], stdin=stdin, stdout=out, stderr=err)
    assert code == 0 and json.loads(out.getvalue())["status"] == "accepted" and err.getvalue() == ""


def test_upload_events_reads_json_arrays_ndjson_gzip_and_stdin(sb, config_file, tmp_path, capsys, monkeypatch):
    (tmp_path / "a.json").write_text(json.dumps([make_batch(i) for i in range(0, 40)], indent=2))
    (tmp_path / "b.ndjson").write_text("\n".join(json.dumps(make_batch(i)) for i in range(40, 80)) + "\n")
    with gzip.open(tmp_path / "c.json.gz", "wt") as f:
        f.write(json.dumps([make_batch(i) for i in range(80, 120)]))
    stdin = "".join(json.dumps(make_batch(i)) + "\n" for i in range(120, 130)).encode()
    code, summary, err = run_cli(
        ["upload-events", str(tmp_path / "a.json"), str(tmp_path / "b.ndjson"), str(tmp_path / "c.json.gz"), "-",
         "--config", str(config_file), "--rate", "100000"], capsys, stdin, monkeypatch)
    assert code == 0, err
    assert err == ""  # no progress bar on a pipe
    assert summary["status"] == "accepted" and (summary["acknowledged"]["count"], summary["acknowledged"]["events"]) == (130, 390)
    assert summary["acknowledged"]["batches"] == list(range(130)) and summary["listLimit"] == 1000
    # The exactly-once report's shape, summed: every id listed against its position.
    assert summary["acknowledged"]["sourceRequestIds"] == summary["sourceRequestIds"]
    assert_each_once(sb.batches, {f"m{i}.{j}" for i in range(130) for j in range(3)})


def test_upload_events_writes_the_dead_letter_and_exits_3(sb, config_file, tmp_path, capsys):
    lines = [json.dumps(make_batch(i)) for i in range(20)]
    lines[4] = json.dumps({"events": [], "mpid": "12"})
    (tmp_path / "in.ndjson").write_text("\n".join(lines))
    dead = tmp_path / "dead.ndjson"
    code, summary, _ = run_cli(["upload-events", str(tmp_path / "in.ndjson"), "--config", str(config_file),
                                "--dead-letter", str(dead)], capsys)
    assert code == 3 and summary["status"] == "partial" and summary["refused"]["count"] == 1
    record = json.loads(dead.read_text())
    assert record["index"] == 4 and record["batch"] == {"events": [], "mpid": "12"}
    assert record["reasons"][0]["path"] == "$[4].mpid"


def test_upload_events_bad_files_are_typed_errors(sb, config_file, tmp_path, capsys):
    (tmp_path / "bad.json").write_text('[{"events": []}, {"events": [')
    code, summary, _ = run_cli(["upload-events", str(tmp_path / "bad.json"), "--config", str(config_file)], capsys)
    assert code == 3 and summary["status"] == "stopped"
    assert summary["error"]["faults"][0]["path"].endswith("[1]") and "premature EOF" in summary["error"]["message"]
    code, _, err = run_cli(["upload-events", str(tmp_path / "missing.json"), "--config", str(config_file)], capsys)
    assert code == 3 and "cannot read" in json.loads(err)["message"]
    code, _, err = run_cli(["upload-events", "-", "--config", str(config_file), "--state", str(tmp_path / "s")], capsys)
    assert code == 3 and json.loads(err)["faults"][0]["path"] == "$.state"


def test_upload_events_with_a_named_connection_needs_upload_allowed(sb, tmp_path, capsys):
    (tmp_path / "in.ndjson").write_text(json.dumps(make_batch(0)))
    connections = {"connections": {
        "reader": {"connector": "mparticle", "config": sb.config, "capabilities": ["mparticle.getAccount"]},
        "loader": {"connector": "mparticle", "config": sb.config, "capabilities": ["mparticle.uploadEventBatch"]},
    }}
    (tmp_path / "connections.json").write_text(json.dumps(connections))
    base = ["upload-events", str(tmp_path / "in.ndjson"), "--connections", str(tmp_path / "connections.json")]
    code, _, err = run_cli([*base, "--connection", "reader"], capsys)
    assert code == 4 and json.loads(err)["code"] == "capability_not_allowed"
    code, summary, _ = run_cli([*base, "--connection", "loader"], capsys)
    assert code == 0 and summary["acknowledged"]["events"] == 3
    code, _, err = run_cli(base[:2], capsys)  # the core's connect_from_args: no connection named
    assert code == 4 and "--config PATH or --connection NAME" in json.loads(err)["message"]


def test_a_killed_upload_rerun_delivers_every_event_exactly_once(tmp_path):
    """Kill -9 a real ``connector upload-events`` mid-upload, rerun it, count markers."""
    n = 1000
    source = tmp_path / "events.ndjson"
    source.write_text("".join(json.dumps(make_batch(i, 2)) + "\n" for i in range(n)))
    with SandboxProcess("--latency", "5-15") as sandbox:
        sandbox.configure(marker_attribute="marker")
        config = tmp_path / "config.json"
        config.write_text(json.dumps(sandbox.config))
        state = tmp_path / "state.json"
        argv = [str(Path(sys.executable).parent / "connector"), "upload-events", str(source), "--config", str(config),
                "--state", str(state), "--rate", "800", "--concurrency", "3"]
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while sandbox.state()["batches_accepted"] < n // 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.communicate()
        before = sandbox.state()["batches_accepted"]
        assert 0 < before < n, "the upload must be killed midway"
        finished = subprocess.run(argv, capture_output=True, timeout=120)
        assert finished.returncode == 0, finished.stderr
        summary = json.loads(finished.stdout)
        assert summary["skipped"]["count"] > 0  # the state file spared what was acknowledged
        assert summary["skipped"]["count"] + summary["acknowledged"]["count"] == n
        assert sandbox.event_markers() == {"events": 2 * n, "distinct": 2 * n, "doubled": 0, "doubled_examples": {}}
        assert sandbox.state()["batches_accepted"] == n


# -- the sandbox far away ---------------------------------------------------------------------


def test_the_sandbox_adds_fixed_or_random_latency(sb, connection):
    sb.set_latency(60)
    try:
        started = time.monotonic()
        upload(connection, [make_batch(0)], rate=100_000)
        assert time.monotonic() - started >= 0.06
        assert sb.state()["latency_ms"] == [60.0, 60.0]
        assert sb.set_latency(5, 25) == {"ms": 5.0, "max_ms": 25.0}
        with pytest.raises(ValueError):
            sb.set_latency(30, 10)
    finally:
        sb.set_latency(0)


def test_batch_files_read_pretty_printed_objects_and_name_the_bad_ndjson_line(tmp_path):
    from connector_mparticle.batch_files import iter_batches, iter_text_batches

    (tmp_path / "pretty.json").write_text(json.dumps(make_batch(0), indent=2) + "\n" + json.dumps(make_batch(1), indent=2))
    assert [b["user_identities"]["customer_id"] for b in iter_batches([str(tmp_path / "pretty.json")])] == ["user-0", "user-1"]
    (tmp_path / "bad.ndjson").write_text(json.dumps(make_batch(0)) + "\n\n" + '{"events": [}\n')
    with pytest.raises(InvalidInput) as err:
        list(iter_batches([str(tmp_path / "bad.ndjson")]))
    assert "line 3" in err.value.message and err.value.faults[0].path.endswith("[1]")
    text = json.dumps([make_batch(i) for i in range(3)] + [{"price": 1.5, "big": 2**62}])
    parsed = list(iter_text_batches(text))
    assert parsed[3] == {"price": 1.5, "big": 2**62} and type(parsed[3]["price"]) is float
    assert [b["user_identities"]["customer_id"] for b in parsed[:3]] == ["user-0", "user-1", "user-2"]


@pytest.mark.parametrize("fault, status, fate", [
    ({"error_rate": 1.0, "statuses": [503]}, "stopped", "failed"),  # every attempt answered: not taken
    ({"drop_rate": 1.0, "after": True}, "unknown", "unknown"),  # no answer: may have landed
])
def test_an_upload_the_service_keeps_failing_says_what_to_resend(sb, engine, fault, status, fate):
    sb.set_faults("events", **fault)
    with engine.connect({**sb.config, "maxRetries": 0}, connector="mparticle") as conn:
        report = upload(conn, [make_batch(i) for i in range(30)], rate=100_000, concurrency=1, max_rounds=0)
    summary = report.to_dict()
    assert summary["status"] == status and summary["acknowledged"]["count"] == 0
    assert summary[fate]["count"] == 30 and len(summary[fate]["sourceRequestIds"]) == 30
    assert summary["error"]["category"] == ("outcome_unknown" if fate == "unknown" else "upstream")
    if fate == "unknown":
        assert "rerun the same upload" in summary["error"]["message"]


def test_the_duration_and_the_progress_time_the_upload_itself(sb, connection):
    seen = []
    started = time.perf_counter()
    report = upload(connection, iter([make_batch(i) for i in range(400)]), rate=100_000, concurrency=4,
                    progress=seen.append)
    wall = time.perf_counter() - started
    assert report.acknowledged_batches == 400
    assert 0 < report.duration <= wall and 0 < report.to_dict()["durationSeconds"] <= round(wall, 3) + 0.001
    assert seen and all(0 < p.elapsed <= wall for p in seen)
    assert [p.elapsed for p in seen] == sorted(p.elapsed for p in seen)
