"""Tests of the tinydesk connector, run against its sandbox (nothing leaves the machine)."""

import io
import json

import pytest

from connector_core import AuthenticationFailed, InvalidConfig, InvalidInput
from connector_core.cli import main

CAPABILITIES = ["tinydesk.createTicket", "tinydesk.listTickets"]


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_contract(check_contract, capability):
    # From the manifest alone: examples valid, near misses refused before any request.
    report = check_contract(capability)
    assert report.near_misses and report.near_miss_requests == 0


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_contract_against_the_sandbox(check_contract, sandbox, capability):
    report = check_contract(capability, config=sandbox.config)
    # The sandbox saw the example calls and nothing else: the near misses sent nothing.
    assert len(sandbox.requests) == report.example_requests > 0


def test_create_ticket_uses_an_oauth_token(engine, sandbox):
    result = engine.execute(
        "tinydesk.createTicket",
        {"subject": "Cannot log in", "requesterEmail": "ada@example.com", "tags": ["login"]},
        sandbox.config,
    )
    assert result.output == {
        "ticket": {"id": 4, "subject": "Cannot log in", "status": "open", "priority": "normal", "requesterEmail": "ada@example.com", "tags": ["login"]}
    }
    token, create = sandbox.requests
    assert (token["path"], token["content_type"]) == ("/oauth/token", "application/x-www-form-urlencoded")
    assert (create["method"], create["path"]) == ("POST", "/api/v2/tickets")
    # The token is cached: a second ticket costs one request.
    engine.execute("tinydesk.createTicket", {"subject": "Again", "requesterEmail": "ada@example.com"}, sandbox.config)
    assert [r["path"] for r in sandbox.requests[2:]] == ["/api/v2/tickets"]


def test_list_tickets_uses_basic_auth(engine, sandbox):
    result = engine.execute("listTickets", {"status": "open", "limit": 5}, sandbox.config)
    assert result.output == {
        "tickets": [{"id": 2, "subject": "Invoice missing", "status": "open"}, {"id": 1, "subject": "Password reset", "status": "open"}],
        "count": 2,
    }
    assert [(r["path"], r["query"]) for r in sandbox.requests] == [("/export/v1/tickets", {"status": "open", "limit": "5"})]


def test_a_wrong_client_secret_is_an_auth_error_that_shows_no_secret(engine, sandbox):
    config = {**sandbox.config, "clientSecret": "not-the-secret"}
    with pytest.raises(AuthenticationFailed) as caught:
        engine.execute("createTicket", {"subject": "Hi", "requesterEmail": "ada@example.com"}, config)
    assert "not-the-secret" not in json.dumps(caught.value.to_dict())
    assert [r["path"] for r in sandbox.requests] == ["/oauth/token"]


def test_each_capability_needs_only_its_own_credentials(engine, sandbox):
    basic_only = {k: v for k, v in sandbox.config.items() if k not in ("clientId", "clientSecret")}
    assert engine.execute("listTickets", {}, basic_only).output["count"] == 2
    with pytest.raises(InvalidConfig) as caught:
        engine.execute("createTicket", {"subject": "Hi", "requesterEmail": "ada@example.com"}, basic_only)
    assert {f.path for f in caught.value.faults} == {"$.clientId", "$.clientSecret"}


def test_bad_input_is_refused_with_its_path_before_any_request(engine, sandbox):
    with pytest.raises(InvalidInput) as caught:
        engine.execute("createTicket", {"subject": " ", "requesterEmail": "ada@example", "tags": ["Login"]}, sandbox.config)
    assert {f.path for f in caught.value.faults} == {"$.subject", "$.requesterEmail", "$.tags[0]"}
    assert sandbox.requests == []


def test_the_cli_runs_a_capability_against_the_sandbox():
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", "tinydesk.listTickets", "--sandbox", "--properties", '{"status": "closed"}'], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert json.loads(out.getvalue()) == {"tickets": [{"id": 3, "subject": "Thanks!", "status": "closed"}], "count": 1}
