"""Tests of mparticle.findAudiences against the mParticle sandbox that connector-framework
ships (the ``mparticle_sandbox`` fixture: a local server, reset for each test)."""

import io
import json

import pytest

from connector_core import Engine, InvalidInput, NotFound
from connector_core.cli import main


@pytest.fixture
def engine():
    with Engine(strict=True) as engine:
        yield engine


def test_contract(check_contract):
    report = check_contract("mparticle.findAudiences")
    assert report.near_misses and report.near_miss_requests == 0


def test_contract_against_the_sandbox(check_contract, mparticle_sandbox):
    report = check_contract("mparticle.findAudiences", config=mparticle_sandbox.config)
    # The sandbox saw the example's token and audience requests and nothing else.
    assert [r["path"] for r in mparticle_sandbox.requests] == ["/oauth/token", "/v1/audiences"]
    assert report.example_requests == 2


def test_finds_audiences_by_name_largest_first(engine, mparticle_sandbox):
    found = engine.execute("mparticle.findAudiences", {"accountId": 1001, "nameContains": "CUSTOMERS"}, mparticle_sandbox.config)
    assert found.output == {"audiences": [{"id": 7623, "name": "High value customers", "size": 4210}], "count": 1}
    two = engine.execute("findAudiences", {"accountId": 1001, "nameContains": "s", "limit": 2}, mparticle_sandbox.config)
    assert [a["id"] for a in two.output["audiences"]] == [7631, 7622]


def test_an_account_out_of_scope_is_not_found(engine, mparticle_sandbox):
    with pytest.raises(NotFound):
        engine.execute("findAudiences", {"accountId": 2001, "nameContains": "loyalty"}, mparticle_sandbox.config)


def test_bad_input_never_reaches_mparticle(engine, mparticle_sandbox):
    with pytest.raises(InvalidInput) as caught:
        engine.execute("findAudiences", {"accountId": "1001", "nameContains": "  "}, mparticle_sandbox.config)
    assert {f.path for f in caught.value.faults} == {"$.accountId", "$.nameContains"}
    assert mparticle_sandbox.requests == []


def test_it_is_listed_with_the_connector_its_owner_declares():
    out, err = io.StringIO(), io.StringIO()
    assert main(["connectors", "mparticle", "--json"], stdout=out, stderr=err) == 0, err.getvalue()
    listing = json.loads(out.getvalue())
    assert "mparticle.findAudiences" in listing["capabilities"]
    assert listing["owner"] == ["connector-framework"]


def test_the_cli_runs_it_against_the_sandbox():
    out, err = io.StringIO(), io.StringIO()
    args = ["run", "findAudiences", "--sandbox", "--properties", '{"accountId": 1002, "nameContains": "qa"}']
    assert main(args, stdout=out, stderr=err) == 0, err.getvalue()
    assert json.loads(out.getvalue()) == {"audiences": [{"id": 7701, "name": "QA testers", "size": 14}], "count": 1}
