"""Every event exactly once: ids a host can repeat, a report that claims only what mParticle
said, and errors that say what to resend.

Everything runs through the engine against the sandbox over real HTTP. The derivation of
ids is checked against the formula written in docs/mparticle.md, computed here with the standard
library's ``json`` and ``uuid`` (not the connector's code).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from connector_mparticle.sandbox import Sandbox

from connector_core import ConnectorError, Engine, InvalidInput, OutcomeUnknown

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = json.loads((REPO_ROOT / "manifests" / "uploadEventBatch.json").read_text("utf-8"))
DOCS = (REPO_ROOT / "docs" / "mparticle.md").read_text("utf-8")  # the connector's documentation
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def readme_namespace() -> uuid.UUID:
    """The namespace docs/mparticle.md documents, read from docs/mparticle.md itself."""
    (found,) = set(re.findall(r"uuid5\((" + UUID.pattern + r")", DOCS))
    return uuid.UUID(found)


NAMESPACE = readme_namespace()


def documented_id(key: str, index: int, batch: dict) -> str:
    content = {k: v for k, v in batch.items() if k != "source_request_id"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return str(uuid.uuid5(NAMESPACE, f"{key}\n{index}\n{hashlib.sha256(canonical).hexdigest()}"))


SLEEPS: list[float] = []


@pytest.fixture(scope="module")
def engine() -> Engine:
    with Engine(sleep=SLEEPS.append) as built:
        yield built


@pytest.fixture
def sb(mparticle_sandbox: Sandbox, engine: Engine) -> Sandbox:
    engine.close()
    SLEEPS.clear()
    return mparticle_sandbox


def batch(i: int, **fields: Any) -> dict:
    return {
        "environment": "development",
        "user_identities": {"customer_id": f"cust-{i}"},
        "events": [{"event_type": "custom_event", "data": {
            "event_name": "Tap", "custom_event_type": "navigation", "custom_attributes": {"n": i, "price": 9.99}}}],
        **fields,
    }


def run(engine: Engine, sb: Sandbox, body: Any, key: str | None = None) -> dict:
    properties = {"jsonBody": body} if key is None else {"jsonBody": body, "idempotencyKey": key}
    output = engine.execute("uploadEventBatch", properties, sb.config).output
    problems = [e.message for e in jsonschema.Draft202012Validator(MANIFEST["outputSchema"]).iter_errors(output)]
    assert not problems, problems
    return output


def fails(engine: Engine, sb: Sandbox, body: Any, key: str | None = None, error_type=ConnectorError,
          **inputs: Any) -> ConnectorError:
    properties = {"jsonBody": body, **inputs} if key is None else {"jsonBody": body, "idempotencyKey": key, **inputs}
    with pytest.raises(error_type) as caught:
        engine.execute("uploadEventBatch", properties, sb.config)
    report = caught.value.details.get("report")
    if report is not None:
        problems = [e.message for e in jsonschema.Draft202012Validator(MANIFEST["outputSchema"]).iter_errors(report)]
        assert not problems, problems
    return caught.value


def kept_ids(sb: Sandbox) -> list[str]:
    return [b["source_request_id"] for b in sb.batches]


# --------------------------------------------------------------------------- ids from a key


def test_ids_follow_the_documented_derivation(sb, engine):
    batches = [batch(i) for i in range(3)]
    output = run(engine, sb, batches, key="exec-41/step-2")
    assert output["sourceRequestIds"] == [documented_id("exec-41/step-2", i, b) for i, b in enumerate(batches)]
    assert all(uuid.UUID(i).version == 5 for i in output["sourceRequestIds"])
    assert kept_ids(sb) == output["sourceRequestIds"]


def test_repeating_a_call_with_the_same_key_and_body_sends_the_same_ids(sb, engine):
    batches = [batch(i) for i in range(150)]
    first = run(engine, sb, batches, key="run-1")
    again = run(engine, sb, json.dumps(batches, indent=1), key="run-1")  # same content as JSON text
    assert again["sourceRequestIds"] == first["sourceRequestIds"]
    state = sb.state()
    assert (state["batches_accepted"], state["duplicates_dropped"]) == (150, 150)


def test_key_order_and_spacing_do_not_change_the_ids(sb, engine):
    original = batch(7)
    reordered = json.loads(json.dumps(dict(reversed(list(original.items())))))
    reordered["events"][0]["data"] = dict(reversed(list(reordered["events"][0]["data"].items())))
    one = run(engine, sb, [original, batch(8)], key="k")["sourceRequestIds"]
    two = run(engine, sb, json.dumps([reordered, batch(8)], indent=4), key="k")["sourceRequestIds"]
    assert one == two


def test_a_different_body_under_the_same_key_gets_different_ids(sb, engine):
    batches = [batch(i) for i in range(4)]
    first = run(engine, sb, batches, key="exec-9")["sourceRequestIds"]
    changed = copy.deepcopy(batches)
    changed[2]["events"][0]["data"]["custom_attributes"]["n"] = 99
    second = run(engine, sb, changed, key="exec-9")["sourceRequestIds"]
    assert [a == b for a, b in zip(first, second)] == [True, True, False, True]
    assert sb.state()["batches_accepted"] == 5  # nothing of the second upload was lost


def test_a_different_key_gets_different_ids(sb, engine):
    batches = [batch(i) for i in range(3)]
    first = run(engine, sb, batches, key="a")["sourceRequestIds"]
    second = run(engine, sb, batches, key="b")["sourceRequestIds"]
    assert not set(first) & set(second)


def test_equal_batches_in_one_upload_get_different_ids(sb, engine):
    same = batch(1)
    output = run(engine, sb, [same, same, same], key="k")
    assert len(set(output["sourceRequestIds"])) == 3
    assert sb.state()["events_accepted"] == 3  # three taps are three events


def test_batches_with_their_own_id_keep_it_under_a_key(sb, engine):
    own = str(uuid.uuid4())
    output = run(engine, sb, [batch(0, source_request_id=own), batch(1), batch(2, source_request_id=None)], key="k")
    ids = output["sourceRequestIds"]
    assert ids[0] == own
    assert ids[1:] == [documented_id("k", 1, batch(1)), documented_id("k", 2, batch(2))]


@pytest.mark.parametrize("key", [None, ""], ids=["absent", "empty"])
def test_without_a_key_ids_are_random(sb, engine, key):
    batches = [batch(i) for i in range(2)]
    first = run(engine, sb, batches, key=key)["sourceRequestIds"]
    second = run(engine, sb, batches, key=key)["sourceRequestIds"]
    assert all(uuid.UUID(i).version == 4 for i in first + second)
    assert not set(first) & set(second)


def test_the_key_must_be_a_string(sb, engine):
    error = fails(engine, sb, [batch(0)], key=42, error_type=InvalidInput)
    assert [f.path for f in error.faults] == ["$.idempotencyKey"]
    assert sb.requests == []


def test_canonical_form_does_not_depend_on_key_order():
    hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
    from connector_mparticle.request_ids import derive_id
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=8),
                        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                          max_leaves=12)

    @hypothesis.given(st.dictionaries(st.text(max_size=6), values, max_size=6), st.randoms())
    @hypothesis.settings(max_examples=50, deadline=None)
    def check(content, rnd):
        items = list(content.items())
        rnd.shuffle(items)
        shuffled = dict(items)
        assert derive_id("k", 3, content) == derive_id("k", 3, shuffled) == documented_id("k", 3, content)

    check()


def test_the_written_out_uuid5_is_uuid5():
    hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
    from connector_mparticle.request_ids import id_from_canonical
    from hypothesis import strategies as st

    @hypothesis.given(st.text(max_size=20), st.integers(0, 10**12), st.binary(max_size=64))
    @hypothesis.settings(max_examples=200, deadline=None)
    def check(key, index, canonical):
        expected = uuid.uuid5(NAMESPACE, f"{key}\n{index}\n{hashlib.sha256(canonical).hexdigest()}")
        assert id_from_canonical(key, index, canonical) == str(expected)
        assert uuid.UUID(id_from_canonical(key, index, canonical)).version == 5

    check()


def test_canonical_form_of_small_floats_and_exponent_like_text():
    from connector_mparticle.request_ids import derive_id

    content = {"sku": "spring-sale-2025", "code": "1e-5", "tiny": [1e-05, 2.5e-07, 1.5e-05, -1e-10], "ok": 0.0001}
    assert derive_id("k", 0, content) == documented_id("k", 0, content)


def test_canonical_form_of_floats_of_every_magnitude_and_number_like_text():
    """orjson writes the canonical bytes unless its number format may differ from the
    standard library's; whatever the float or text, the bytes are the documented ones."""
    hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
    from connector_mparticle.request_ids import canonical_json
    from hypothesis import strategies as st

    texts = st.text(alphabet="0123456789.e-E+x ", max_size=12)
    scalars = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.floats(-1e-3, 1e-3), texts,
                        st.integers(-(2**63), 2**64 - 1))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                          max_leaves=8)

    @hypothesis.given(st.dictionaries(texts, values, max_size=4))
    @hypothesis.settings(max_examples=300, deadline=None)
    def check(content):
        expected = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        assert canonical_json(content) == expected

    check()


def test_orjsons_bytes_are_kept_unless_a_number_may_be_written_otherwise():
    """The guard in front of orjson: a digit followed by "e-", or "0.0000", sends the batch to
    the standard library; anything else keeps orjson's bytes (text such as "sale-2025" too)."""
    hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
    from connector_mparticle.request_ids import _may_differ
    from hypothesis import strategies as st

    reference = re.compile(rb"0\.0000|[0-9]e-")
    for raw, verdict in [(b'{"sku":"spring-sale-2025"}', False), (b'[2.5e-7]', True), (b'[0.00001]', True),
                         (b'{"a":"e-"}', False), (b'e-', False), (b'[1e16,0.0001]', False), (b'"0.0000"', True)]:
        assert _may_differ(raw) is verdict, raw

    @hypothesis.given(st.binary(max_size=40) | st.text(alphabet="0123456789.e-x\"", max_size=30).map(str.encode))
    @hypothesis.settings(max_examples=300, deadline=None)
    def check(raw):
        assert _may_differ(raw) is (reference.search(raw) is not None)

    check()


# --------------------------------------------------------------------------- ids that collide


def test_different_batches_sharing_an_id_are_refused_before_sending(sb, engine):
    shared = str(uuid.uuid4())
    batches = [batch(0), batch(1, source_request_id=shared), batch(2), batch(3, source_request_id=shared)]
    error = fails(engine, sb, batches, error_type=InvalidInput)
    assert [f.path for f in error.faults] == ["$.jsonBody[1].source_request_id", "$.jsonBody[3].source_request_id"]
    assert "$.jsonBody[3]" in error.faults[0].message and "$.jsonBody[1]" in error.faults[1].message
    assert "nothing was sent" in error.message
    assert sb.requests == []


def test_equal_batches_sharing_an_id_are_sent_and_mparticle_keeps_one(sb, engine):
    same = batch(0, source_request_id=str(uuid.uuid4()))
    output = run(engine, sb, [same, copy.deepcopy(same)])
    assert output["status"] == "accepted"
    assert (sb.state()["batches_accepted"], sb.state()["duplicates_dropped"]) == (1, 1)


# --------------------------------------------------------------------------- no fixed ids anywhere


def test_examples_describe_and_readme_carry_no_fixed_id(cli_describe):
    manifest_text = json.dumps(MANIFEST)
    assert '"source_request_id"' not in manifest_text
    assert not UUID.findall(manifest_text)
    assert "source_request_id" not in cli_describe.split("Example input:")[1].split("Example output:")[0]
    # The only UUID in docs/mparticle.md is the documented namespace of derived ids.
    assert set(UUID.findall(DOCS)) == {str(NAMESPACE)}


@pytest.fixture
def cli_describe(capsys) -> str:
    from connector_core.cli import main

    assert main(["describe", "uploadEventBatch"]) == 0
    return capsys.readouterr().out


def test_describe_explains_when_to_pass_a_key(cli_describe):
    text = " ".join(cli_describe.split())
    assert "idempotencyKey" in text
    assert "execution or step" in text and "Never a constant" in text


def test_the_demo_lets_the_connector_assign_the_id(capsys):
    from connector_core.cli import main

    assert main(["demo"]) == 0
    steps = [json.loads(part) for part in re.split(r"\n(?=\{)", capsys.readouterr().out.strip())]
    (upload,) = [s for s in steps if s.get("capability") == "uploadEventBatch"]
    assert "source_request_id" not in upload["properties"]["jsonBody"]
    (assigned,) = upload["output"]["sourceRequestIds"]
    assert uuid.UUID(assigned).version == 4


# --------------------------------------------------------------------------- errors that say what to resend


def test_lost_answers_make_outcome_unknown_with_every_id(sb, engine):
    batches = [batch(i) for i in range(250)]
    # The first request is acknowledged; all four attempts of the second (maxRetries 3) are
    # processed and lose their answer; the third is not sent (one request at a time).
    sb.fail_next("uploadBulkEvents", 4, effect="drop", after=True, skip=1)
    error = fails(engine, sb, batches, key="exec-1", error_type=OutcomeUnknown, concurrency=1)
    assert error.category == "outcome_unknown" and error.exit_code == 11
    report = error.details["report"]
    ids = report["sourceRequestIds"]
    assert report["status"] == "unknown" and report["requests"] == 2
    assert report["acknowledged"]["batches"] == list(range(100)) and report["acknowledged"]["sourceRequestIds"] == ids[:100]
    assert report["unknown"]["batches"] == list(range(100, 200)) and report["unknown"]["sourceRequestIds"] == ids[100:200]
    assert report["failed"]["batches"] == list(range(200, 250))
    assert [(e["fate"], e["code"]) for e in report["errors"]] == [("unknown", "network_error"), ("failed", "not_sent")]
    assert "same idempotencyKey" in error.message and "may or may not" in error.message
    # The host repeats the call as the message says: nothing is lost, nothing doubled.
    output = run(engine, sb, batches, key="exec-1")
    assert output["sourceRequestIds"] == ids and output["status"] == "accepted"
    assert sorted(kept_ids(sb)) == sorted(ids)
    assert sb.state()["events_accepted"] == 250


def test_without_a_key_the_error_says_not_to_repeat_unchanged(sb, engine):
    batches = [batch(i) for i in range(150)]
    # The request holding batch 100 (the second) is processed four times, its answer lost each time.
    sb.fail_next("uploadBulkEvents", 4, effect="drop", after=True, match='"customer_id":"cust-100"')
    error = fails(engine, sb, batches, error_type=OutcomeUnknown)
    assert "Do not repeat this call unchanged" in error.message
    report = error.details["report"]
    # The host resends the unknown batches with the ids the report lists.
    resend = [{**batches[i], "source_request_id": rid}
              for i, rid in zip(report["unknown"]["batches"], report["unknown"]["sourceRequestIds"])]
    assert run(engine, sb, resend)["status"] == "accepted"
    assert sorted(kept_ids(sb)) == sorted(report["sourceRequestIds"])
    assert sb.state()["events_accepted"] == 150


def test_a_lost_answer_of_a_single_batch_names_its_id(sb, engine):
    sb.fail_next("uploadEvents", 4, effect="drop", after=True)
    error = fails(engine, sb, batch(0), error_type=OutcomeUnknown)
    report = error.details["report"]
    assert report["unknown"]["batches"] == [0] and report["unknown"]["sourceRequestIds"] == kept_ids(sb)
    assert report["acknowledged"]["count"] == 0


def test_an_error_before_anything_was_taken_says_the_call_can_be_repeated(sb, engine):
    sb.fail_next("uploadBulkEvents", status=403)
    error = fails(engine, sb, [batch(i) for i in range(3)])
    assert error.category == "auth"
    assert "took none of the batches" in error.message
    assert error.details["report"]["failed"]["count"] == 3


@pytest.mark.parametrize("body", ["{not json", [], {"events": [{"event_type": "nope"}]}])
def test_every_error_before_sending_says_nothing_was_sent(sb, engine, body):
    error = fails(engine, sb, body, error_type=InvalidInput)
    assert error.message.count("nothing was sent") == 1
    assert sb.requests == []


def test_a_bad_pod_says_nothing_was_sent(sb, engine):
    with pytest.raises(ConnectorError) as caught:
        engine.execute("uploadEventBatch", {"jsonBody": batch(0)}, {**sb.config, "pod": "XX9", "eventsUrl": None})
    assert caught.value.category == "config"
    assert sb.requests == []


# --------------------------------------------------------------------------- which category wins


def test_the_error_category_is_the_first_that_applies_in_the_documented_order():
    from connector_mparticle.upload_report import FAILED, REFUSED, UNKNOWN, Sent, UploadReport

    from connector_core import (
        AuthenticationFailed,
        Conflict,
        InvalidConfig,
        NetworkError,
        NotFound,
        RateLimited,
        UpstreamError,
    )

    written = ("outcome_unknown", "network", "upstream", "rate_limited", "auth", "config", "not_found", "conflict", "input")
    documented = re.search(r"category is the first of (.*?) that applies", " ".join(DOCS.split())).group(1)
    assert tuple(re.findall(r"`(\w+)`", documented)) == written
    by_category = {
        "outcome_unknown": lambda i: Sent([i], UNKNOWN, NetworkError("reset")),
        "network": lambda i: Sent([i], FAILED, NetworkError("refused")),
        "upstream": lambda i: Sent([i], FAILED, UpstreamError("503", status=503)),
        "rate_limited": lambda i: Sent([i], FAILED, RateLimited("429", status=429)),
        "auth": lambda i: Sent([i], FAILED, AuthenticationFailed("401", status=401)),
        "config": lambda i: Sent([i], FAILED, InvalidConfig("bad pod"), attempts=0),
        "not_found": lambda i: Sent([i], FAILED, NotFound("404", status=404)),
        "conflict": lambda i: Sent([i], FAILED, Conflict("409", status=409)),
        "input": lambda i: Sent([i], REFUSED, InvalidInput("400", status=400)),
    }
    for a, first in enumerate(written):
        for second in written[a:]:
            for order in ((first, second), (second, first)):
                report = UploadReport(["id-0", "id-1", "id-2"], [1, 1, 1], keyed=True)
                report.add(Sent([0], "acknowledged"))
                for i, category in enumerate(order, start=1):
                    report.add(by_category[category](i))
                error = report.error_to_raise()
                if order == ("input", "input"):
                    assert error is None  # acknowledged and refused only: the output says partial
                    continue
                assert error.category == first, (order, error.category)
                assert error.details["report"]["acknowledged"]["sourceRequestIds"] == ["id-0"]


def test_an_unreachable_service_is_a_network_error_saying_nothing_was_sent(sb, engine):
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {**sb.config, "eventsUrl": f"http://127.0.0.1:{port}/v2"}
    with pytest.raises(ConnectorError) as caught:
        engine.execute("uploadEventBatch", {"jsonBody": [batch(i) for i in range(150)]}, config)
    error = caught.value
    assert error.category == "network" and error.exit_code == 10
    assert "Nothing was sent" in error.message
    report = error.details["report"]
    assert report["failed"]["count"] == 150 and report["unknown"]["count"] == 0
