"""mParticle answers the sandbox never gives, served by a scripted loopback server.

The sandbox answers like mParticle does today; these tests pin what the connector does
with answers that are legal in shape but unusual in content, such as an envelope that
lists several accounts. Accounts are matched by id (or, for a creation, by name), never
taken by their position in the answer.
"""

from __future__ import annotations

import pytest
from httpserver import Answer

from connector_core import Engine, UpstreamError

TOKEN = {"access_token": "answers-token-1", "token_type": "Bearer", "expires_in": 28800}


def account(account_id, name):
    return {"id": account_id, "name": name, "data_type": "account"}


def envelope(*accounts):
    return {"data": list(accounts), "dataType": "account", "errors": None}


@pytest.fixture(scope="module")
def engine():
    with Engine() as built:
        yield built


@pytest.fixture
def config(server):
    server.route("POST", "/oauth/token", Answer(200, json=TOKEN))
    return {
        "clientID": "answers-client",
        "clientSecret": "answers-secret-value",
        "authUrl": f"{server.url}/oauth/token",
        "platformUrl": server.url,
        "maxRetries": 0,
    }


def test_get_account_picks_the_asked_account_out_of_several_by_id(engine, server, config):
    server.route("GET", "/v1/accounts/1001", Answer(200, json=envelope(account(1002, "Staging"), account("1001", "Production"))))
    output = engine.execute("getAccount", {"accountId": "1001"}, config).output
    assert output == {"account": {"id": 1001, "name": "Production", "data_type": "account"}}


def test_get_account_refuses_an_answer_listing_other_accounts_only(engine, server, config):
    server.route("GET", "/v1/accounts/1001", Answer(200, json=envelope(account(1002, "Staging"), account(1003, "Test"))))
    with pytest.raises(UpstreamError) as caught:
        engine.execute("getAccount", {"accountId": "1001"}, config)
    error = caught.value
    assert (error.code, error.details["status"]) == ("invalid_response", 200)
    assert error.message == "mParticle answered 200 without account 1001; it listed 2 other account(s)"


def test_get_account_refuses_a_single_account_that_is_not_the_one_asked_for(engine, server, config):
    server.route("GET", "/v1/accounts/1001", Answer(200, json=envelope(account(1002, "Staging"))))
    with pytest.raises(UpstreamError) as caught:
        engine.execute("getAccount", {"accountId": "1001"}, config)
    assert caught.value.code == "invalid_response"
    assert "without account 1001" in caught.value.message


def test_update_account_picks_the_renamed_account_out_of_several_by_id(engine, server, config):
    answer = envelope(account(1002, "Staging"), account(1001, "Renamed"))
    server.route("PUT", "/v1/accounts/1001", Answer(202, json=answer))
    output = engine.execute("updateAccount", {"accountId": "1001", "updatedName": "Renamed"}, config).output
    assert output == {"account": {"id": 1001, "name": "Renamed", "data_type": "account"}}


def test_update_account_refuses_an_answer_listing_other_accounts_only(engine, server, config):
    answer = envelope(account(1002, "Staging"), account(1003, "Renamed"))
    server.route("PUT", "/v1/accounts/1001", Answer(202, json=answer))
    with pytest.raises(UpstreamError) as caught:
        engine.execute("updateAccount", {"accountId": "1001", "updatedName": "Renamed"}, config)
    error = caught.value
    assert (error.code, error.details["status"]) == ("invalid_response", 202)
    assert error.message == "mParticle answered 202 without account 1001; it listed 2 other account(s)"


def test_update_account_answered_without_a_body_reports_the_requested_change(engine, server, config):
    server.route("PUT", "/v1/accounts/1001", Answer(202))
    output = engine.execute("updateAccount", {"accountId": "1001", "updatedName": "Renamed"}, config).output
    assert output == {"account": {"id": 1001, "name": "Renamed"}}


def test_create_account_picks_the_new_account_out_of_several_by_name(engine, server, config):
    answer = envelope(account(1002, "Staging"), account(3001, "Brand new"))
    server.route("POST", "/v1/accounts", Answer(200, json=answer))
    output = engine.execute("createAccount", {"displayName": "Brand new"}, config).output
    assert output == {"account": {"id": 3001, "name": "Brand new", "data_type": "account"}}


def test_create_account_never_takes_another_accounts_id(engine, server, config):
    # Any 2xx means the account was created (issue 10); an answer that lists only another
    # account gives no id for it, so the output names the new account without one.
    server.route("POST", "/v1/accounts", Answer(200, json=envelope(account(1002, "Staging"))))
    output = engine.execute("createAccount", {"displayName": "Brand new"}, config).output
    assert output == {"account": {"name": "Brand new"}}
