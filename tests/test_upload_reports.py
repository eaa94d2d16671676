"""Summed upload reports: uploads of consecutive parts of one input (Dask partitions, files
read one after the other) reported as one upload of the whole input.

The parts are uploaded for real to the sandbox, which refuses the batches it finds invalid;
the expected positions are counted out by hand from the inputs below.
"""

from __future__ import annotations

import pytest
from connector_mparticle.backfill import combine_reports, upload
from connector_mparticle.upload_report import UploadReport

from connector_core import Engine


def batch(tag: str, i: int, *, valid: bool = True) -> dict:
    data = {"event_name": "Viewed", "custom_attributes": {"marker": f"{tag}{i}"}}
    if valid:
        data["custom_event_type"] = "navigation"
    return {"environment": "development", "user_identities": {"customer_id": f"user-{i}"},
            "events": [{"event_type": "custom_event", "data": data}, {"event_type": "custom_event", "data": data}]}


@pytest.fixture(scope="module")
def parts(mparticle_sandbox_server):
    """Part one: 5 batches, the third (index 2) invalid, one request answered 429 first.
    Part two: 4 batches, the second (index 1, index 6 of the whole) invalid."""
    sandbox = mparticle_sandbox_server
    sandbox.reset()
    first = [batch("a", i, valid=i != 2) for i in range(5)]
    second = [batch("b", i, valid=i != 1) for i in range(4)]
    with Engine() as engine, engine.connect(sandbox.config, connector="mparticle") as connection:
        sandbox.fail_next("uploadBulkEvents", 1, status=429, retry_after=0)
        one = upload(connection, first, rate=100_000, concurrency=1)
        two = upload(connection, second, rate=100_000, concurrency=1)
    return one, two


def test_the_summed_report_counts_every_part(parts):
    summed = combine_reports(parts).to_dict()
    assert summed["status"] == "partial"
    assert (summed["batches"], summed["events"]) == (9, 18)
    assert (summed["acknowledged"]["count"], summed["acknowledged"]["events"]) == (7, 14)
    assert (summed["refused"]["count"], summed["refused"]["events"]) == (2, 4)
    assert (summed["retries"], summed["rateLimited"]) == (1, 1)


def test_positions_in_a_later_part_are_shifted_by_the_batches_before_it(parts):
    summed = combine_reports(parts).to_dict()
    assert summed["acknowledged"]["batches"] == [0, 1, 3, 4, 5, 7, 8]
    assert summed["refused"]["batches"] == [2, 6]
    assert [(e["fate"], e["batches"]) for e in summed["errors"]] == [("refused", [2]), ("refused", [6])]
    reasons = summed["refused"]["reasons"]
    assert [r["index"] for r in reasons] == [2, 6]
    # The JSON path of each reason points into the whole input too.
    assert [[x["path"] for x in r["reasons"]] for r in reasons] == [
        ["$[2].events[0].data.custom_event_type", "$[2].events[1].data.custom_event_type"],
        ["$[6].events[0].data.custom_event_type", "$[6].events[1].data.custom_event_type"],
    ]


def test_a_summed_report_lists_only_its_first_positions_but_counts_them_all(parts):
    summed = UploadReport.combine(parts, limit=3).to_dict()
    assert summed["listLimit"] == 3
    assert summed["sourceRequestIds"] == parts[0].ids[:3] and summed["batches"] == 9
    assert summed["acknowledged"]["count"] == 7 and summed["acknowledged"]["batches"] == [0, 1, 3]
    assert summed["refused"]["count"] == 2 and summed["refused"]["batches"] == [2, 6]
    assert [r["index"] for r in summed["refused"]["reasons"]] == [2, 6]
    summed = UploadReport.combine(parts, limit=1).to_dict()
    assert summed["refused"]["batches"] == [2] and [r["index"] for r in summed["refused"]["reasons"]] == [2]
    assert [e["batches"] for e in summed["errors"]] == [[2]]


def test_a_summed_report_lists_1000_positions_unless_told_otherwise(parts):
    assert UploadReport.combine(parts).to_dict()["listLimit"] == 1000


def test_the_summed_duration_is_the_longest_part_and_the_rates_follow_from_it(parts):
    one, two = parts
    longest = max(one.duration, two.duration)
    summed = combine_reports(parts).to_dict()
    assert summed["durationSeconds"] == round(longest, 3)
    # 14 events in 7 batches acknowledged over the parts (see the fixture)
    assert summed["eventsPerSecond"] == round(14 / longest, 1)
    assert summed["batchesPerSecond"] == round(7 / longest, 1)
    # Rates to a tenth, for each part alone too (8 and 6 events acknowledged): three measured
    # durations, so a rate whose tenths happen to be 0 in one of them does not hide a rounding.
    assert [combine_reports([part]).to_dict()["eventsPerSecond"] for part in parts] == [
        round(8 / one.duration, 1), round(6 / two.duration, 1)]
    assert [combine_reports([part]).to_dict()["batchesPerSecond"] for part in parts] == [
        round(4 / one.duration, 1), round(3 / two.duration, 1)]


def test_a_refused_batch_keeps_its_first_20_reasons(mparticle_sandbox):
    events = [{"event_type": "custom_event", "data": {"event_name": f"e{i}"}} for i in range(25)]  # no custom_event_type
    bad = {"environment": "development", "user_identities": {"customer_id": "u"}, "events": events}
    with Engine() as engine, engine.connect(mparticle_sandbox.config, connector="mparticle") as connection:
        report = upload(connection, [bad], rate=100_000)
    (refused,) = report.to_dict()["refused"]["reasons"]
    assert [r["path"] for r in refused["reasons"]] == [f"$[0].events[{i}].data.custom_event_type" for i in range(20)]


def test_a_summed_report_is_stopped_by_the_first_part_an_error_stopped(mparticle_sandbox):
    """Part one stopped on refused credentials (401), part two on an unknown endpoint (404):
    the sum says it stopped, with the error of the earlier part."""
    with Engine() as engine, engine.connect(mparticle_sandbox.config, connector="mparticle") as connection:
        mparticle_sandbox.fail_next("uploadBulkEvents", status=401)
        one = upload(connection, [batch("a", i) for i in range(2)], rate=100_000, concurrency=1)
        mparticle_sandbox.fail_next("uploadBulkEvents", status=404)
        two = upload(connection, [batch("b", i) for i in range(3)], rate=100_000, concurrency=1)
        ok = upload(connection, [batch("c", 0)], rate=100_000, concurrency=1)
    summed = combine_reports([ok, one, two]).to_dict()
    assert summed["status"] == "stopped"
    assert (summed["error"]["code"], summed["error"]["status"]) == ("authentication_failed", 401)
    assert summed["failed"]["batches"] == [1, 2, 3, 4, 5] and summed["acknowledged"]["batches"] == [0]
    summed = combine_reports([ok, two, one]).to_dict()
    assert (summed["error"]["code"], summed["error"]["status"]) == ("not_found", 404)
    assert "error" not in combine_reports([ok]).to_dict() and combine_reports([ok]).to_dict()["status"] == "accepted"
    # One typed error for the whole input, as uploadEventBatch gives: credentials before a 404.
    error = combine_reports([ok, two, one]).error_to_raise()
    assert (error.code, error.details["status"]) == ("authentication_failed", 401)
    assert "(of 6 batch(es): 1 acknowledged, 5 failed)." in error.message
    # A backfill derives its ids from the input, so running it again sends the same ids: the
    # advice is to repeat it, never the warning given to uploads with random ids.
    assert "Repeat this call" in error.message and "Do not repeat" not in error.message
    assert error.details["report"]["failed"]["batches"] == [1, 2, 3, 4, 5]


def test_a_backfill_report_lists_1000_batches_per_fate_and_counts_them_all(mparticle_sandbox):
    with Engine() as engine, engine.connect(mparticle_sandbox.config, connector="mparticle") as connection:
        # One request at a time: the first 1000 recorded are the first 1000 of the input.
        report = upload(connection, [batch("a", i) for i in range(1001)], rate=100_000, concurrency=1).to_dict()
    assert (report["listLimit"], report["batches"], report["acknowledged"]["count"]) == (1000, 1001, 1001)
    assert report["acknowledged"]["batches"] == list(range(1000))
    assert len(report["acknowledged"]["sourceRequestIds"]) == len(report["sourceRequestIds"]) == 1000


def test_a_batch_the_checker_refuses_is_listed_with_its_first_reason(mparticle_sandbox):
    unknown_type = {"event_type": "no_such_type", "data": {}}
    two_faults = {**batch("a", 1, valid=False), "events": [batch("a", 1, valid=False)["events"][0], unknown_type]}
    with Engine() as engine, engine.connect(mparticle_sandbox.config, connector="mparticle") as connection:
        report = upload(connection, [batch("a", 0), two_faults], rate=100_000).to_dict()
    assert [(e["fate"], e["batches"], e["message"]) for e in report["errors"]] == [
        ("refused", [1], "custom_event needs 'custom_event_type' (one of: navigation, location, search, transaction, "
                         "user_content, user_preference, social, media, attribution, other)")]
    assert [r["path"] for r in report["refused"]["reasons"][0]["reasons"]] == [
        "$[1].events[0].data.custom_event_type", "$[1].events[1].event_type"]


def test_an_error_of_a_category_the_report_does_not_rank_still_comes_before_refusals():
    """UploadReport, as a host of the backfill's Python API or another plugin uses it: a
    batch failed by an error whose category has no place in CATEGORY_ORDER (here a plugin
    error) gives that error, keeping the refused batch's fault, not a crash."""
    from connector_mparticle.upload_report import CATEGORY_ORDER, FAILED, REFUSED, Sent

    from connector_core import InvalidInput, PluginError

    assert "plugin" not in CATEGORY_ORDER
    report = UploadReport(["id-0", "id-1"], [2, 3], keyed=False)
    report.add(Sent([0], REFUSED, InvalidInput("mParticle answered 400 (bad batch)")))
    report.add(Sent([1], FAILED, PluginError("the sender broke")))
    error = report.error_to_raise()
    assert type(error) is PluginError
    assert error.message.startswith("the sender broke (of 2 batch(es): 1 refused, 1 failed). ")
    assert [(f.path, f.message) for f in error.faults] == [("$.jsonBody[0]", "mParticle answered 400 (bad batch)")]
    assert error.details["report"]["failed"] == {"count": 1, "events": 3, "batches": [1], "sourceRequestIds": ["id-1"]}
    # Just before input: after every category that is ranked, such as conflict (409).
    from connector_core import Conflict

    report = UploadReport(["id-0", "id-1", "id-2"], [1, 1, 1], keyed=False)
    report.add(Sent([0], FAILED, PluginError("the sender broke")))
    report.add(Sent([1], FAILED, Conflict("mParticle answered 409", status=409)))
    report.add(Sent([2], REFUSED, InvalidInput("mParticle answered 400 (bad batch)")))
    assert type(report.error_to_raise()) is Conflict


def test_a_sum_with_an_interrupted_part_is_interrupted(mparticle_sandbox):
    def interrupted():  # the host's input stops as Ctrl-C stops it
        yield batch("a", 0)
        raise KeyboardInterrupt

    with Engine() as engine, engine.connect(mparticle_sandbox.config, connector="mparticle") as connection:
        whole = upload(connection, [batch("b", 0)], rate=100_000)
        cut = upload(connection, interrupted(), rate=100_000)
    assert (whole.interrupted, cut.interrupted) == (False, True)
    assert combine_reports([whole, cut]).interrupted and combine_reports([cut, whole]).interrupted
    assert not combine_reports([whole, whole]).interrupted
