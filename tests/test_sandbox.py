"""The mParticle sandbox over real HTTP, with plain ``requests`` calls: one test per rule.

No connector code is involved: these tests pin down what the sandbox serves, so the
connector's own tests can rely on it.
"""

from __future__ import annotations

import argparse
import base64
import copy
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from connector_mparticle.sandbox import Sandbox, SandboxProcess, add_arguments
from connector_mparticle.sandbox.__main__ import main as sandbox_main
from shared_folder import shared_path

# mParticle's documented request limit (256 KB per request), written out.
MAX_REQUEST_BYTES = 256 * 1024

pytest_plugins = ["pytester"]

REPO_ROOT = Path(__file__).resolve().parent.parent
AUDIENCE = "https://api.mparticle.com"
TIMEOUT = 5
CONFIG_KEYS = {"clientID", "clientSecret", "apiKey", "apiSecret", "pod", "authUrl", "platformUrl", "eventsUrl"}


def batch(n_events: int = 1, **fields) -> dict:
    events = [
        {"event_type": "custom_event", "data": {"event_name": f"Click {i}", "custom_event_type": "navigation"}}
        for i in range(n_events)
    ]
    return {"environment": "development", "user_identities": {"customer_id": "u1"}, "events": events, **fields}


@pytest.fixture
def sb(mparticle_sandbox: Sandbox) -> Sandbox:
    return mparticle_sandbox


def token_request(sb: Sandbox, **fields) -> requests.Response:
    config = sb.config
    body = {
        "client_id": config["clientID"], "client_secret": config["clientSecret"],
        "audience": AUDIENCE, "grant_type": "client_credentials", **fields,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return requests.post(config["authUrl"], json=body, timeout=TIMEOUT)


def bearer(sb: Sandbox) -> dict[str, str]:
    response = token_request(sb)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def call(sb: Sandbox, method: str, path: str, headers: dict | None = None, **kwargs) -> requests.Response:
    return requests.request(method, sb.url + path, headers=headers, timeout=TIMEOUT, **kwargs)


def api(sb: Sandbox, method: str, path: str, **kwargs) -> requests.Response:
    """A Platform API call with a fresh valid token."""
    return call(sb, method, path, headers=bearer(sb), **kwargs)


def upload(sb: Sandbox, body, path: str = "/events", auth=None, **kwargs) -> requests.Response:
    auth = auth or (sb.config["apiKey"], sb.config["apiSecret"])
    if isinstance(body, bytes):
        kwargs.setdefault("headers", {"Content-Type": "application/json"})
        return requests.post(sb.config["eventsUrl"] + path, data=body, auth=auth, timeout=TIMEOUT, **kwargs)
    return requests.post(sb.config["eventsUrl"] + path, json=body, auth=auth, timeout=TIMEOUT, **kwargs)


def error_codes(response: requests.Response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]


# =============================================================================== starting it


def test_config_is_a_complete_connector_config_on_one_port(sb):
    config = sb.config
    assert set(config) == CONFIG_KEYS
    assert config["pod"] == "US1"
    assert sb.url.startswith("http://127.0.0.1:")
    assert config["platformUrl"] == sb.url
    assert config["authUrl"] == f"{sb.url}/oauth/token"
    assert config["eventsUrl"] == f"{sb.url}/v2"


def test_start_and_stop_without_context_manager():
    sandbox = Sandbox(seed=0).start()
    url = sandbox.url
    assert requests.get(url + "/_sandbox/state", timeout=TIMEOUT).status_code == 200
    sandbox.stop()
    sandbox.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/_sandbox/state", timeout=TIMEOUT)


def test_context_manager_closes_idle_keep_alive_connections():
    with Sandbox() as sandbox:
        session = requests.Session()
        assert session.get(sandbox.url + "/_sandbox/state", timeout=TIMEOUT).ok
        port = sandbox.port
    with pytest.raises(requests.ConnectionError):
        session.get(f"http://127.0.0.1:{port}/_sandbox/state", timeout=TIMEOUT)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "example.com", "::"])
def test_non_loopback_host_is_refused(host):
    with pytest.raises(ValueError, match="not a loopback address"):
        Sandbox(host)


def test_non_loopback_host_is_served_when_explicitly_allowed():
    with Sandbox("0.0.0.0", allow_remote=True) as sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")
        assert requests.get(sandbox.url + "/_sandbox/state", timeout=TIMEOUT).ok


def test_localhost_binds_the_loopback_address():
    with Sandbox("localhost") as sandbox:
        assert sandbox.url.startswith("http://127.0.0.1:")


def test_fixture_gives_every_test_a_reset_sandbox(pytester):
    pytester.makepyfile(
        """
        import requests

        def test_a(mparticle_sandbox):
            mparticle_sandbox.set_rate_limit("platform", 1)
            mparticle_sandbox.advance_clock(10)
            requests.get(mparticle_sandbox.url + "/nope", timeout=5)
            assert mparticle_sandbox.state()["requests_total"] == 1

        def test_b(mparticle_sandbox):
            state = mparticle_sandbox.state()
            assert state["requests_total"] == 0
            assert state["rate_limits"] == {} and state["clock_offset"] == 0
        """
    )
    # The plugin is loaded by its pytest11 entry point's name, as `-p connector_mparticle` does
    # for a user who turns autoloading off; autoloading every installed plugin (hypothesis,
    # xdist, schemathesis, anyio...) into this process would cost more than the test itself.
    pytester.runpytest("--disable-plugin-autoload", "-p", "connector_mparticle", "-p", "no:cacheprovider").assert_outcomes(passed=2)


# =============================================================================== OAuth token


def test_token_success(sb):
    response = token_request(sb)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 28800
    assert response.headers["Cache-Control"] == "no-store"


def test_token_accepts_a_form_encoded_body(sb):
    config = sb.config
    response = requests.post(config["authUrl"], data={
        "client_id": config["clientID"], "client_secret": config["clientSecret"],
        "audience": AUDIENCE, "grant_type": "client_credentials",
    }, timeout=TIMEOUT)
    assert response.status_code == 200 and response.json()["token_type"] == "Bearer"


@pytest.mark.parametrize("fields", [
    {"client_secret": "wrong"}, {"client_id": "nobody"}, {"client_secret": None}, {"client_id": 42},
    # Secrets of any characters are refused like any wrong secret, never a 500.
    {"client_secret": "s\u00e9cret"}, {"client_secret": "\ud800"}, {"client_secret": "\u2603" * 40},
])
def test_token_wrong_credentials_is_401_access_denied(sb, fields):
    response = token_request(sb, **fields)
    assert response.status_code == 401
    assert response.json() == {"error": "access_denied", "error_description": "Unauthorized"}


@pytest.mark.parametrize("audience", ["https://api.mparticle.com/", "https://example.com", None])
def test_token_wrong_audience_is_403(sb, audience):
    response = token_request(sb, audience=audience)
    assert response.status_code == 403
    assert response.json()["error"] == "access_denied"
    assert "Service not enabled within domain" in response.json()["error_description"]


@pytest.mark.parametrize("fields, error", [
    ({"grant_type": None}, "invalid_request"),
    ({"grant_type": "password"}, "unsupported_grant_type"),
])
def test_token_missing_or_unsupported_grant_is_400(sb, fields, error):
    response = token_request(sb, **fields)
    assert response.status_code == 400
    assert response.json()["error"] == error and response.json()["error_description"]


@pytest.mark.parametrize("body, content_type", [
    (b"{not json", "application/json"), (b"[1, 2]", "application/json"), (b"client_id=x", "text/plain"),
])
def test_token_malformed_body_is_400_invalid_request(sb, body, content_type):
    response = requests.post(sb.config["authUrl"], data=body, headers={"Content-Type": content_type}, timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_token_lifetime_is_configurable():
    with Sandbox(token_lifetime=60) as sandbox:
        assert token_request(sandbox).json()["expires_in"] == 60
        sandbox.configure(token_lifetime=5)
        assert token_request(sandbox).json()["expires_in"] == 5


def test_token_expires_on_the_injectable_clock():
    now = [1_700_000_000.0]
    with Sandbox(clock=lambda: now[0], token_lifetime=100) as sandbox:
        headers = bearer(sandbox)
        now[0] += 99
        assert call(sandbox, "GET", "/v1/accounts?accountId=1001", headers).status_code == 200
        now[0] += 1
        response = call(sandbox, "GET", "/v1/accounts?accountId=1001", headers)
        assert response.status_code == 401
        assert "expired" in response.json()["errors"][0]["message"]


def test_token_requests_are_counted(sb):
    token_request(sb)
    token_request(sb, client_secret="wrong")
    token_request(sb)
    state = sb.state()
    assert state["token_requests"] == 3 and state["tokens_issued"] == 2


# =============================================================================== Platform API


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "},
])
def test_platform_without_a_valid_bearer_token_is_401(sb, headers):
    response = call(sb, "GET", "/v1/accounts?accountId=1001", headers)
    assert response.status_code == 401
    body = response.json()
    assert body["data"] is None and body["dataType"] == "account" and error_codes(response) == ["UNAUTHORIZED"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method, path", [
    ("GET", "/v1/accounts"), ("GET", "/v1/accounts/1001"), ("PUT", "/v1/accounts/1001"),
    ("DELETE", "/v1/accounts"), ("GET", "/v1/audiences"), ("GET", "/v1/accounts?accountId="),
])
def test_v1_call_without_account_id_is_401(sb, method, path):
    response = api(sb, method, path, json={"name": "x"} if method == "PUT" else None)
    assert response.status_code == 401
    assert "accountId" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("path", [
    "/v1/accounts?accountId=2001",            # another organisation's account
    "/v1/accounts?accountId=9999",            # unknown
    "/v1/accounts?accountId=abc",             # not a number
    "/v1/accounts/2001?accountId=2001",
    "/v1/accounts/2001?accountId=1001",       # path account out of scope
    "/v1/accounts/1001?accountId=2001",       # query account out of scope
    "/v1/audiences?accountId=2001",
])
def test_account_outside_the_credentials_scope_is_404(sb, path):
    response = api(sb, "GET", path)
    assert response.status_code == 404
    assert error_codes(response) == ["NOT_FOUND"] and response.json()["data"] is None


def test_other_organisation_sees_only_its_own_accounts(sb):
    token = token_request(sb, client_id="globex-client-id", client_secret="globex-client-secret").json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert [a["id"] for a in call(sb, "GET", "/v1/accounts?accountId=2001", headers).json()["data"]] == [2001]
    assert call(sb, "GET", "/v1/accounts?accountId=1001", headers).status_code == 404


def test_get_account_is_a_single_element_envelope(sb):
    response = api(sb, "GET", "/v1/accounts/1002?accountId=1002")
    assert response.status_code == 200
    assert response.json() == {
        "data": [{
            "id": 1002, "name": "Acme Staging", "data_type": "account",
            "created_on": "2019-03-14T09:31:07.004", "last_modified_on": "2022-11-21T08:03:44.870",
        }],
        "dataType": "account",
        "errors": None,
    }


def test_list_accounts_is_an_envelope_of_every_account_in_scope(sb):
    response = api(sb, "GET", "/v1/accounts?accountId=1001")
    assert response.status_code == 200
    body = response.json()
    assert body["dataType"] == "account" and body["errors"] is None
    assert [account["id"] for account in body["data"]] == [1001, 1002, 1003]


def test_create_account_is_201_with_the_new_account_which_joins_the_scope(sb):
    response = api(sb, "POST", "/v1/accounts", json={"name": "Acme Europe"})
    assert response.status_code == 201
    body = response.json()
    assert body["dataType"] == "account" and body["errors"] is None
    (account,) = body["data"]
    assert isinstance(account["id"], int) and account["name"] == "Acme Europe" and account["data_type"] == "account"
    assert time.strptime(account["created_on"], "%Y-%m-%dT%H:%M:%S.%f")  # ISO, no zone
    assert account["last_modified_on"] == account["created_on"]
    listed = api(sb, "GET", f"/v1/accounts?accountId={account['id']}").json()["data"]
    assert account["id"] in [a["id"] for a in listed]
    assert api(sb, "GET", f"/v1/accounts/{account['id']}?accountId={account['id']}").json()["data"] == [account]


def test_create_account_checks_an_optional_account_id(sb):
    assert api(sb, "POST", "/v1/accounts?accountId=1001", json={"name": "With scope"}).status_code == 201
    assert api(sb, "POST", "/v1/accounts?accountId=2001", json={"name": "Out of scope"}).status_code == 404


def test_update_account_is_202_with_the_updated_account(sb):
    response = api(sb, "PUT", "/v1/accounts/1002?accountId=1002", json={"name": "Acme QA"})
    assert response.status_code == 202
    (account,) = response.json()["data"]
    assert account["id"] == 1002 and account["name"] == "Acme QA"
    assert account["last_modified_on"] != "2022-11-21T08:03:44.870"
    assert api(sb, "GET", "/v1/accounts/1002?accountId=1002").json()["data"][0]["name"] == "Acme QA"


def test_update_account_may_keep_its_own_name_in_another_case(sb):
    response = api(sb, "PUT", "/v1/accounts/1002?accountId=1002", json={"name": "ACME STAGING"})
    assert response.status_code == 202 and response.json()["data"][0]["name"] == "ACME STAGING"


@pytest.mark.parametrize("method, path", [("POST", "/v1/accounts"), ("PUT", "/v1/accounts/1003?accountId=1003")])
@pytest.mark.parametrize("name", ["Acme Staging", "  acme staging "])
def test_duplicate_account_name_is_422(sb, method, path, name):
    response = api(sb, method, path, json={"name": name})
    assert response.status_code == 422
    body = response.json()
    assert body["data"] is None and error_codes(response) == ["VALIDATION_ERROR"]
    assert "unique" in body["errors"][0]["message"]


def test_same_account_name_in_another_organisation_is_allowed(sb):
    assert api(sb, "POST", "/v1/accounts", json={"name": "Globex Corporation"}).status_code == 201


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": 7}, {"name": None}, ["name"]])
def test_missing_or_invalid_account_name_is_422(sb, body):
    for method, path in [("POST", "/v1/accounts"), ("PUT", "/v1/accounts/1002?accountId=1002")]:
        response = api(sb, method, path, json=body)
        assert response.status_code == 422, (method, body)
        assert error_codes(response) == ["VALIDATION_ERROR"]


def test_account_body_that_is_not_json_is_400(sb):
    headers = {**bearer(sb), "Content-Type": "application/json"}
    response = call(sb, "POST", "/v1/accounts", headers, data=b'{"name": ')
    assert response.status_code == 400
    assert error_codes(response) == ["BAD_REQUEST"] and response.json()["dataType"] == "account"


def test_account_body_must_be_declared_json(sb):
    headers = {**bearer(sb), "Content-Type": "text/plain"}
    assert call(sb, "POST", "/v1/accounts", headers, data=b'{"name": "x"}').status_code == 415
    headers["Content-Type"] = "application/json; charset=utf-8"
    assert call(sb, "POST", "/v1/accounts", headers, data=b'{"name": "x"}').status_code == 201


def test_delete_account_is_202_with_an_empty_body(sb):
    response = api(sb, "DELETE", "/v1/accounts?accountId=1003")
    assert response.status_code == 202 and response.content == b""
    assert api(sb, "GET", "/v1/accounts/1003?accountId=1003").status_code == 404
    assert [a["id"] for a in api(sb, "GET", "/v1/accounts?accountId=1002").json()["data"]] == [1001, 1002]
    assert api(sb, "GET", "/platform/v2/workspaces/5004/calculatedattributes").status_code == 404


def test_delete_account_that_still_has_applications_is_422(sb):
    response = api(sb, "DELETE", "/v1/accounts?accountId=1001")
    assert response.status_code == 422
    assert error_codes(response) == ["VALIDATION_ERROR"] and "applications" in response.json()["errors"][0]["message"]
    assert api(sb, "GET", "/v1/accounts/1001?accountId=1001").status_code == 200


@pytest.mark.parametrize("method, path, allowed", [
    ("PUT", "/v1/accounts?accountId=1001", "GET, POST, DELETE"),
    ("DELETE", "/v1/accounts/1001?accountId=1001", "GET, PUT"),
    ("POST", "/v1/audiences?accountId=1001", "GET"),
    ("GET", "/v2/events", "POST"),
    ("GET", "/oauth/token", "POST"),
])
def test_unsupported_method_on_a_known_path_is_405(sb, method, path, allowed):
    response = api(sb, method, path)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert response.headers["Content-Type"] == "application/json" and response.json()


@pytest.mark.parametrize("path", ["/", "/v1/nothing", "/v1/accounts/", "/v2/events/1", "/v1/accounts/1/x"])
def test_unknown_path_is_404_json(sb, path):
    response = api(sb, "GET", path)
    assert response.status_code == 404
    assert error_codes(response) == ["NOT_FOUND"]


AUDIENCE_FIELDS = {
    "id", "name", "external_name", "size", "created_by", "last_modified_by", "last_modified_on", "is_calculated",
    "added_last_24_hours", "dropped_last_24_hours", "status", "data_type", "workspaces", "connected_outputs",
}


def test_audiences_are_a_bare_array_per_account(sb):
    response = api(sb, "GET", "/v1/audiences?accountId=1001")
    assert response.status_code == 200
    audiences = response.json()
    assert isinstance(audiences, list) and [a["id"] for a in audiences] == [7622, 7623, 7631]
    for audience in audiences:
        assert set(audience) == AUDIENCE_FIELDS and audience["data_type"] == "audience"
        for workspace in audience["workspaces"]:
            assert set(workspace) == {"name", "id", "data_type", "created_on"} and workspace["data_type"] == "workspace"
        for output in audience["connected_outputs"]:
            assert set(output) == {"provider_name", "configurations", "data_type"}
    assert [w["id"] for w in audiences[1]["workspaces"]] == [5001, 5002]
    assert [a["id"] for a in api(sb, "GET", "/v1/audiences?accountId=1002").json()] == [7701]
    assert api(sb, "GET", "/v1/audiences?accountId=1003").json() == []


CA_FIELDS = {
    "id", "name", "description", "created_by", "created_on", "last_modified_on", "last_modified_by",
    "active_definition", "draft_definition", "audience_count", "activated_on", "activated_by",
}


def test_calculated_attributes_are_a_bare_array_without_account_id(sb):
    response = api(sb, "GET", "/platform/v2/workspaces/5001/calculatedattributes")
    assert response.status_code == 200
    items = response.json()
    assert [ca["id"] for ca in items] == [101, 102, 103]
    assert all(set(ca) == CA_FIELDS for ca in items)
    assert items[0]["active_definition"]["recipe_type"] == "event" and "datapoint" in items[0]["active_definition"]
    assert items[2]["active_definition"] is None and items[2]["draft_definition"]["calculation_type"] == "most_frequent"
    assert api(sb, "GET", "/platform/v2/workspaces/5003/calculatedattributes").json() == []


@pytest.mark.parametrize("name, expected", [("Last seen", [102]), ("last seen", []), ("Last", []), ("", [101, 102, 103])])
def test_calculated_attributes_name_filter_is_exact(sb, name, expected):
    response = api(sb, "GET", "/platform/v2/workspaces/5001/calculatedattributes", params={"name": name})
    assert [ca["id"] for ca in response.json()] == expected


@pytest.mark.parametrize("workspace", ["6001", "9999", "abc", "5001x"])
def test_calculated_attributes_of_a_workspace_out_of_scope_is_404(sb, workspace):
    response = api(sb, "GET", f"/platform/v2/workspaces/{workspace}/calculatedattributes")
    assert response.status_code == 404 and error_codes(response) == ["NOT_FOUND"]


def test_calculated_attributes_need_a_bearer_token(sb):
    assert call(sb, "GET", "/platform/v2/workspaces/5001/calculatedattributes").status_code == 401


def test_calculated_attributes_head_tells_whether_a_name_exists(sb):
    path = "/platform/v2/workspaces/5001/calculatedattributes"
    assert api(sb, "HEAD", path, params={"name": "Last seen"}).status_code == 204
    missing = api(sb, "HEAD", path, params={"name": "Nope"})
    assert missing.status_code == 404 and missing.content == b""


# =============================================================================== Events API


def test_upload_one_batch_is_202_with_no_body_and_kept(sb):
    sent = batch(3, source_request_id="r-1")
    response = upload(sb, sent)
    assert response.status_code == 202 and response.content == b""
    assert sb.batches == [sent] and len(sb.events) == 3
    state = sb.state()
    assert state["batches_accepted"] == 1 and state["events_accepted"] == 3


def test_upload_bulk_is_202_with_no_body_and_keeps_every_batch(sb):
    sent = [batch(2, source_request_id=f"r-{i}") for i in range(3)]
    response = upload(sb, sent, "/bulkevents")
    assert response.status_code == 202 and response.content == b""
    assert sb.batches == sent and sb.state()["events_accepted"] == 6


def test_events_accept_the_oauth_client_credentials_by_default(sb):
    config = sb.config
    assert upload(sb, batch(), auth=(config["clientID"], config["clientSecret"])).status_code == 202
    sb.configure(client_credentials_for_events=False)
    assert upload(sb, batch(), auth=(config["clientID"], config["clientSecret"])).status_code == 403
    assert upload(sb, batch()).status_code == 202


def test_events_without_authorization_is_401(sb):
    response = requests.post(sb.config["eventsUrl"] + "/events", json=batch(), timeout=TIMEOUT)
    assert response.status_code == 401 and error_codes(response) == ["UNAUTHORIZED"]
    assert response.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("authorization", [
    "Basic " + base64.b64encode(b"us1-sandbox-api-key:wrong").decode(),
    "Basic " + base64.b64encode(b"unknown:sandbox-api-secret").decode(),
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic " + base64.b64encode("us1-sandbox-api-key:s\u00e9cret".encode()).decode(),
    "Basic !!!not-base64",
    "Bearer " + base64.b64encode(b"us1-sandbox-api-key:sandbox-api-secret").decode(),
])
def test_events_with_invalid_authorization_is_403(sb, authorization):
    response = requests.post(sb.config["eventsUrl"] + "/events", json=batch(), timeout=TIMEOUT,
                             headers={"Authorization": authorization})
    assert response.status_code == 403 and error_codes(response) == ["FORBIDDEN"]


@pytest.mark.parametrize("path", ["/events", "/bulkevents"])
def test_events_malformed_json_is_400_with_error_body(sb, path):
    response = upload(sb, b'{"events": [', path)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["code"] == "BAD_REQUEST" and error["message"].startswith("$: ")


def test_events_invalid_batch_is_400_listing_each_fault_with_its_path(sb):
    invalid = {"environment": "staging", "events": [{"event_type": "custom_event", "data": {"event_name": "x"}}]}
    response = upload(sb, invalid)
    assert response.status_code == 400
    messages = [error["message"] for error in response.json()["errors"]]
    assert set(error_codes(response)) == {"BAD_REQUEST"}
    assert [m.split(":")[0] for m in messages] == ["$.environment", "$.events[0].data.custom_event_type"]
    assert sb.batches == []


def test_bulk_with_invalid_batches_is_202_keeping_the_valid_ones(sb):
    # mParticle: "if some batches fail and others succeed, the response is still 202 Accepted".
    good = [batch(1, source_request_id="g-0"), batch(2, source_request_id="g-1")]
    bad = {"environment": "staging", "events": [{"event_type": "custom_event", "data": {"event_name": "x"}}]}
    response = upload(sb, [good[0], "not a batch", good[1], bad], "/bulkevents")
    assert response.status_code == 202 and response.content == b""
    assert sb.batches == good
    state = sb.state()
    assert (state["batches_accepted"], state["events_accepted"], state["batches_rejected"], state["events_rejected"]) == (2, 3, 2, 1)
    rejected = sb.rejected_batches
    assert [(r["index"], r["batch"]) for r in rejected] == [(1, "not a batch"), (3, bad)]
    assert [f["path"] for f in rejected[1]["faults"]] == ["$[3].environment", "$[3].events[0].data.custom_event_type"]
    over_http = requests.get(sb.admin_url + "/rejected", timeout=TIMEOUT).json()
    assert [r["index"] for r in over_http] == [1, 3] and over_http[1]["faults"] == rejected[1]["faults"]


def test_bulk_with_only_invalid_batches_is_202_and_keeps_nothing(sb):
    response = upload(sb, ["x", {"events": "y"}], "/bulkevents")
    assert response.status_code == 202
    assert sb.batches == [] and sb.state()["batches_rejected"] == 2


def test_historical_bulk_with_an_invalid_batch_is_refused_whole(sb):
    old = 1_600_000_000_000
    valid = batch(1)
    valid["events"][0]["data"]["timestamp_unixtime_ms"] = old
    invalid = copy.deepcopy(valid)
    invalid["events"][0]["data"]["custom_event_type"] = "nope"
    response = upload(sb, [valid, invalid], "/bulkevents/historical")
    assert response.status_code == 400
    assert [e["message"].split(":")[0] for e in response.json()["errors"]] == ["$[1].events[0].data.custom_event_type"]
    assert sb.batches == []


def marked(n: int, start: int = 0, **fields) -> dict:
    events = [{"event_type": "custom_event", "data": {"event_name": "Tap", "custom_event_type": "other",
                                                       "custom_attributes": {"m": f"e{start + i}"}}} for i in range(n)]
    return {"events": events, **fields}


def test_event_markers_count_accepted_events_beyond_the_kept_batches():
    with Sandbox(max_batches=2) as small:
        small.configure(marker_attribute="m")
        for i in range(5):
            assert upload(small, marked(3, 3 * i, source_request_id=f"r{i}")).status_code == 202
        assert upload(small, marked(3, 0, source_request_id="r0")).status_code == 202  # same id: dropped
        assert upload(small, marked(2, 0, source_request_id="again")).status_code == 202  # e0, e1 doubled
        assert len(small.batches) == 2
        summary = small.event_markers()
        assert (summary["events"], summary["distinct"], summary["doubled"]) == (17, 15, 2)
        assert summary["doubled_examples"] == {"e0": 2, "e1": 2}
        assert small.marker_counts["e14"] == 1
        assert requests.get(small.admin_url + "/markers", timeout=TIMEOUT).json() == summary


def test_event_markers_are_off_by_default_and_set_over_http(sb):
    upload(sb, marked(2))
    assert sb.event_markers()["events"] == 0
    answer = requests.post(sb.admin_url + "/settings", json={"marker_attribute": "m"}, timeout=TIMEOUT)
    assert answer.status_code == 200 and answer.json()["marker_attribute"] == "m"
    upload(sb, [marked(2, 10), marked(1, 12)], "/bulkevents")
    assert sb.event_markers()["distinct"] == 3
    bad = requests.post(sb.admin_url + "/settings", json={"marker_attribute": ""}, timeout=TIMEOUT)
    assert bad.status_code == 400 and "marker_attribute" in bad.json()["error"]
    sb.reset()
    assert sb.state()["settings"]["marker_attribute"] is None and sb.event_markers()["events"] == 0


@pytest.mark.parametrize("body", [batch(), [], "text"])
def test_bulk_body_must_be_a_non_empty_array(sb, body):
    response = upload(sb, body, "/bulkevents")
    assert response.status_code == 400 and error_codes(response) == ["BAD_REQUEST"]


def test_events_body_must_be_declared_json(sb):
    response = upload(sb, json.dumps(batch()).encode(), headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


def _padded_body(size: int) -> bytes:
    body = json.dumps(batch(user_attributes={"pad": ""})).encode()
    return body.replace(b'"pad": ""', b'"pad": "' + b"x" * (size - len(body)) + b'"')


@pytest.mark.parametrize("path", ["/events", "/bulkevents"])
def test_request_body_over_256_kb_is_413(sb, path):
    if path == "/bulkevents":
        body = b"[" + _padded_body(MAX_REQUEST_BYTES - 2) + b"]"
    else:
        body = _padded_body(MAX_REQUEST_BYTES)
    assert len(body) == MAX_REQUEST_BYTES
    assert upload(sb, body, path).status_code == 202
    response = upload(sb, body + b" ", path)
    assert response.status_code == 413
    assert error_codes(response) == ["REQUEST_TOO_LARGE"]


def test_bulk_of_more_than_100_batches_is_400(sb):
    assert upload(sb, [batch() for _ in range(100)], "/bulkevents").status_code == 202
    response = upload(sb, [batch() for _ in range(101)], "/bulkevents")
    assert response.status_code == 400
    assert "100" in response.json()["errors"][0]["message"]
    assert sb.state()["batches_accepted"] == 100


def test_duplicate_source_request_id_is_accepted_but_not_kept_again(sb):
    first = batch(2, source_request_id="same")
    assert upload(sb, first).status_code == 202
    assert upload(sb, batch(5, source_request_id="same")).status_code == 202
    assert upload(sb, [batch(source_request_id="same"), batch(source_request_id="new")], "/bulkevents").status_code == 202
    assert upload(sb, batch(), auth=(sb.config["clientID"], sb.config["clientSecret"])).status_code == 202
    # Dedup is per API key: the same id under the client id is a new batch.
    assert upload(sb, batch(source_request_id="same"), auth=(sb.config["clientID"], sb.config["clientSecret"])).status_code == 202
    state = sb.state()
    assert state["duplicates_dropped"] == 2
    assert [b.get("source_request_id") for b in sb.batches] == ["same", "new", None, "same"]
    assert state["events_accepted"] == 2 + 1 + 1 + 1


@pytest.mark.parametrize("sample", ["events-batch.sample.2021.json", "events-batch.sample.2026.json"])
def test_official_sample_batches_are_accepted(sb, sample):
    official = json.loads(shared_path(f"reference/specs/{sample}").read_text())
    assert upload(sb, official).status_code == 202
    assert upload(sb, [dict(official, source_request_id="other")], "/bulkevents").status_code == 202
    assert sb.state()["events_accepted"] == 2 * len(official["events"])


# =============================================================================== rate limits


def test_no_rate_limit_by_default(sb):
    headers = bearer(sb)
    responses = [call(sb, "GET", "/v1/accounts?accountId=1001", headers) for _ in range(20)]
    assert {r.status_code for r in responses} == {200}
    assert "X-mp-rate-limit-percentage-used" not in responses[0].headers


def test_rate_limit_answers_429_with_retry_after_and_exceeded_headers(sb):
    headers = bearer(sb)
    sb.set_rate_limit("platform", limit=2, window_seconds=30)
    first, second, third = (call(sb, "GET", "/v1/accounts?accountId=1001", headers) for _ in range(3))
    assert first.headers["X-mp-rate-limit-percentage-used"] == "50"
    assert second.headers["X-mp-rate-limit-percentage-used"] == "100"
    assert third.status_code == 429
    assert third.headers["X-mp-rate-limit-exceeded"] == "account"
    assert 1 <= int(third.headers["Retry-After"]) <= 30
    assert error_codes(third) == ["TOO_MANY_REQUESTS"] and third.json()["data"] is None
    sb.advance_clock(30)  # a new window
    assert call(sb, "GET", "/v1/accounts?accountId=1001", headers).status_code == 200


def test_rate_limits_are_per_group_with_their_own_scope_and_format(sb):
    sb.set_rate_limit("events", limit=1, window_seconds=60, retry_after=7)
    sb.set_rate_limit("token", limit=1, window_seconds=60, scope="org")
    assert upload(sb, batch()).headers["X-mp-rate-limit-percentage-used"] == "100"
    limited = upload(sb, batch())
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert limited.headers["X-mp-rate-limit-exceeded"] == "app" and error_codes(limited) == ["TOO_MANY_REQUESTS"]
    assert token_request(sb).status_code == 200
    token_limited = token_request(sb)
    assert token_limited.status_code == 429 and token_limited.json()["error"] == "too_many_requests"
    assert token_limited.headers["X-mp-rate-limit-exceeded"] == "org"
    sb.set_rate_limit("token", None)
    assert token_request(sb).status_code == 200
    assert sb.state()["batches_accepted"] == 1


def test_rate_limit_of_one_endpoint_leaves_the_rest_of_its_group_alone(sb):
    headers = bearer(sb)
    sb.set_rate_limit("getAudiences", limit=1, window_seconds=60, retry_after=3)
    assert call(sb, "GET", "/v1/audiences?accountId=1001", headers).status_code == 200
    limited = call(sb, "GET", "/v1/audiences?accountId=1001", headers)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert limited.headers["X-mp-rate-limit-exceeded"] == "account"  # the scope of its group
    assert call(sb, "GET", "/v1/accounts/1001?accountId=1001", headers).status_code == 200


# =============================================================================== faults


def _outcomes(sandbox: Sandbox, n: int, send) -> list:
    """What each of ``n`` requests got: a status, or the exception class name."""
    out = []
    for _ in range(n):
        try:
            response = send()
            out.append(response.status_code if response.headers.get("Content-Type") != "text/html" else "html")
        except requests.RequestException as exc:
            out.append(type(exc).__name__)
    return out


def _list_accounts(sandbox: Sandbox, headers: dict):
    return lambda: call(sandbox, "GET", "/v1/accounts?accountId=1001", headers)


@pytest.mark.parametrize("fault, signature", [
    ({"error_rate": 0.5, "statuses": [500, 503]}, {200, 500, 503}),
    ({"drop_rate": 0.5}, {200, "ConnectionError"}),
    ({"truncate_rate": 0.5}, {200, "ChunkedEncodingError"}),
    ({"garbage_rate": 0.5}, {200, "html"}),
])
def test_random_faults_are_deterministic_under_the_seed(sb, fault, signature):
    headers = bearer(sb)
    sb.set_faults("platform", **fault)
    first = _outcomes(sb, 24, _list_accounts(sb, headers))
    sb.reset()
    headers = bearer(sb)
    sb.set_faults("platform", **fault)
    assert _outcomes(sb, 24, _list_accounts(sb, headers)) == first
    assert set(first) == signature
    with Sandbox(seed=1) as other:
        other_headers = bearer(other)
        other.set_faults("platform", **fault)
        assert _outcomes(other, 24, _list_accounts(other, other_headers)) != first


def test_faults_apply_only_to_their_group(sb):
    headers = bearer(sb)
    sb.set_faults("events", error_rate=1.0, statuses=[503])
    response = upload(sb, batch())
    assert response.status_code == 503 and error_codes(response) == ["SERVICE_UNAVAILABLE"]
    assert call(sb, "GET", "/v1/accounts?accountId=1001", headers).status_code == 200
    assert sb.state()["batches_accepted"] == 0  # a fault before processing keeps nothing
    sb.set_faults("events")  # no fields: cleared
    assert upload(sb, batch()).status_code == 202


def test_faults_of_one_endpoint_take_precedence_over_its_group(sb):
    headers = bearer(sb)
    sb.set_faults("getAccount", error_rate=1.0, statuses=[502])
    assert call(sb, "GET", "/v1/accounts/1001?accountId=1001", headers).status_code == 502
    assert call(sb, "GET", "/v1/audiences?accountId=1001", headers).status_code == 200
    sb.set_faults("platform", error_rate=1.0, statuses=[503])
    assert call(sb, "GET", "/v1/accounts/1001?accountId=1001", headers).status_code == 502
    assert call(sb, "GET", "/v1/audiences?accountId=1001", headers).status_code == 503
    assert sb.state()["faults"]["getAccount"]["statuses"] == [502]


def test_injected_error_after_processing_keeps_the_write(sb):
    headers = bearer(sb)
    sb.set_faults("platform", error_rate=1.0, statuses=[504], after=True)
    response = call(sb, "POST", "/v1/accounts", headers, json={"name": "Written anyway"})
    assert response.status_code == 504 and response.json()["dataType"] == "account"
    assert "Written anyway" in [a["name"] for a in sb.state()["accounts"]]


def test_latency_delays_each_request_of_the_group():
    waits = []
    with Sandbox(sleep=waits.append) as sandbox:
        sandbox.set_faults("token", latency_ms=60)
        assert token_request(sandbox).status_code == 200
        assert token_request(sandbox).status_code == 200
        upload(sandbox, batch())
    assert waits == [0.06, 0.06]


@pytest.mark.parametrize("fields, message", [
    ({"error_rate": 0.6, "drop_rate": 0.6}, "error_rate + drop_rate + truncate_rate + garbage_rate + reset_rate must not exceed 1"),
    ({"error_rate": 2}, "error_rate must be between 0 and 1, got 2.0"),
    ({"statuses": [200]}, "statuses must be HTTP error codes (400-599), got [200]"),
    ({"latency_ms": -1}, "'latency_ms' must be >= 0: -1.0"),
    ({"bogus": 1, "error_rate": 0.1}, "unknown fault setting(s) 'bogus'; known: error_rate, statuses, latency_ms, drop_rate, "
                                      "truncate_rate, garbage_rate, reset_rate, after"),
])
def test_invalid_fault_settings_are_refused_with_what_is_wrong(sb, fields, message):
    with pytest.raises(ValueError) as caught:
        sb.set_faults("events", **fields)
    assert str(caught.value) == message
    assert sb.state()["faults"] == {}  # nothing was changed


def test_unknown_group_or_target_is_refused(sb):
    with pytest.raises(ValueError, match="unknown target 'oauth'"):
        sb.set_faults("oauth", error_rate=0.1)
    with pytest.raises(ValueError, match="unknown target 'getAcount'"):
        sb.set_rate_limit("getAcount", limit=1)
    with pytest.raises(ValueError, match="unknown target"):
        sb.fail_next("createAcount")


def test_fail_next_fails_exactly_the_next_requests_to_an_endpoint(sb):
    headers = bearer(sb)
    sb.fail_next("getAccount", 2, status=502)
    get = lambda: call(sb, "GET", "/v1/accounts/1001?accountId=1001", headers).status_code  # noqa: E731
    assert call(sb, "GET", "/v1/accounts?accountId=1001", headers).status_code == 200  # other endpoint
    assert [get(), get(), get()] == [502, 502, 200]


@pytest.mark.parametrize("effect", ["status", "reset", "drop"])
def test_fail_next_with_match_fails_only_requests_whose_body_holds_the_text(sb, effect):
    sb.fail_next("uploadEvents", 2, effect=effect, skip=1, match='"target"')
    target = batch(user_identities={"customer_id": "target"})
    other = batch(user_identities={"customer_id": "other"})

    def status(body) -> int | None:
        try:
            return upload(sb, body).status_code
        except requests.ConnectionError:
            return None

    failed = 503 if effect == "status" else None
    # Others pass whatever their order; the first matching request is skipped, the next two fail.
    assert [status(b) for b in (other, target, other, target, other, target, target)] == [
        202, 202, 202, failed, 202, failed, 202]
    assert sb.state()["pending_failures"] == []
    assert [b["user_identities"]["customer_id"] for b in sb.batches] == ["other", "target", "other", "other", "target"]


def test_fail_next_can_target_a_group_and_send_429(sb):
    sb.fail_next("events", status=429, retry_after=3)
    response = upload(sb, batch())
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3" and response.headers["X-mp-rate-limit-exceeded"] == "app"
    assert upload(sb, batch()).status_code == 202


def test_fail_next_drop_before_processing_loses_the_write(sb):
    headers = bearer(sb)
    sb.fail_next("createAccount", effect="drop")
    with pytest.raises(requests.ConnectionError):
        call(sb, "POST", "/v1/accounts", headers, json={"name": "Never created"})
    assert "Never created" not in [a["name"] for a in sb.state()["accounts"]]


def test_fail_next_drop_after_processing_keeps_the_write_and_loses_the_answer(sb):
    headers = bearer(sb)
    sb.fail_next("createAccount", effect="drop", after=True)
    with pytest.raises(requests.ConnectionError):
        call(sb, "POST", "/v1/accounts", headers, json={"name": "Ambiguous"})
    assert "Ambiguous" in [a["name"] for a in sb.state()["accounts"]]
    entry = sb.requests[-1]
    assert (entry["endpoint"], entry["status"], entry["effect"]) == ("createAccount", None, "drop")
    assert sb.state()["requests_by_status"]["dropped"] == 1
    # The retry sees the name taken: exactly what a connector must handle.
    assert call(sb, "POST", "/v1/accounts", headers, json={"name": "Ambiguous"}).status_code == 422


def test_fail_next_truncate_of_an_empty_answer_breaks_the_status_line(sb):
    sb.fail_next("uploadEvents", effect="truncate")
    with pytest.raises(requests.ConnectionError):
        upload(sb, batch())
    assert sb.state()["batches_accepted"] == 1  # truncation spoils a real answer


# =============================================================================== admin and inspection


def test_admin_state_reports_counters(sb):
    token_request(sb)
    upload(sb, batch(2))
    call(sb, "GET", "/nowhere")
    state = requests.get(sb.url + "/_sandbox/state", timeout=TIMEOUT).json()
    assert state["requests_total"] == 3 and state["token_requests"] == 1
    assert state["requests_by_status"] == {"200": 1, "202": 1, "404": 1}
    assert state["requests_by_endpoint"] == {"token": 1, "uploadEvents": 1, "unrouted": 1}
    assert state["events_accepted"] == 2 and state["batches_accepted"] == 1
    assert {a["id"] for a in state["accounts"]} == {1001, 1002, 1003, 2001}


def admin_post(sb: Sandbox, action: str, body) -> requests.Response:
    return requests.post(f"{sb.url}/_sandbox/{action}", json=body, timeout=TIMEOUT)


def test_admin_switches_faults_limits_and_failures(sb):
    assert admin_post(sb, "faults", {"group": "events", "error_rate": 1, "statuses": [502]}).status_code == 200
    assert upload(sb, batch()).status_code == 502
    assert admin_post(sb, "faults", {"group": "events"}).status_code == 200
    assert upload(sb, batch()).status_code == 202
    assert admin_post(sb, "rate-limits", {"group": "token", "limit": 1, "window_seconds": 60}).status_code == 200
    token_request(sb)
    assert token_request(sb).status_code == 429
    assert admin_post(sb, "fail-next", {"target": "uploadBulkEvents", "status": 500}).status_code == 200
    assert upload(sb, [batch()], "/bulkevents").status_code == 500
    assert sb.state()["rate_limits"]["token"]["limit"] == 1


def test_admin_reset_clock_and_settings(sb):
    headers = bearer(sb)
    upload(sb, batch())
    assert admin_post(sb, "clock", {"seconds": 28800}).json() == 28800
    assert call(sb, "GET", "/v1/accounts?accountId=1001", headers).status_code == 401
    assert admin_post(sb, "settings", {"token_lifetime": 30}).json()["token_lifetime"] == 30
    reset = admin_post(sb, "reset", {})
    assert reset.status_code == 200 and reset.json()["requests_total"] == 0
    assert sb.batches == [] and sb.state()["settings"]["token_lifetime"] == 28800


def test_admin_reads_requests_batches_and_config(sb):
    sent = batch(source_request_id="x")
    upload(sb, sent)
    assert requests.get(sb.url + "/_sandbox/batches", timeout=TIMEOUT).json() == [sent]
    assert requests.get(sb.url + "/_sandbox/config", timeout=TIMEOUT).json() == sb.config
    (entry,) = requests.get(sb.url + "/_sandbox/requests", timeout=TIMEOUT).json()
    assert entry["path"] == "/v2/events" and entry["json"] == sent


@pytest.mark.parametrize("method, action, body, status", [
    ("POST", "faults", {"group": "events", "error_rate": 3}, 400),
    ("POST", "faults", {"error_rate": 0.1}, 400),
    ("POST", "fail-next", {"target": "nope"}, 400),
    ("POST", "clock", [1], 400),
    ("GET", "faults", None, 405),
    ("GET", "nothing", None, 404),
])
def test_admin_rejects_bad_requests(sb, method, action, body, status):
    response = requests.request(method, f"{sb.url}/_sandbox/{action}", json=body, timeout=TIMEOUT)
    assert response.status_code == status and "error" in response.json()


def test_admin_requests_are_neither_counted_nor_faulted(sb):
    sb.set_faults("all", error_rate=1.0)
    assert requests.get(sb.url + "/_sandbox/state", timeout=TIMEOUT).status_code == 200
    assert sb.state()["requests_total"] == 0


def test_request_log_shows_what_was_sent_without_credentials(sb):
    headers = bearer(sb)
    call(sb, "PUT", "/v1/accounts/1002?accountId=1002", {**headers, "User-Agent": "probe/1"}, json={"name": "Renamed"})
    upload(sb, batch())
    token_entry, put, events = sb.requests
    assert token_entry["json"]["client_secret"] == "[REDACTED]" and token_entry["json"]["client_id"] == "sandbox-client-id"
    assert put["method"] == "PUT" and put["path"] == "/v1/accounts/1002" and put["query"] == {"accountId": "1002"}
    assert put["headers"]["authorization"] == "Bearer" and put["headers"]["user-agent"] == "probe/1"
    assert put["json"] == {"name": "Renamed"} and put["endpoint"] == "updateAccount" and put["status"] == 202
    assert events["headers"]["authorization"] == "Basic"
    dump = json.dumps(sb.requests)
    for secret in (sb.config["clientSecret"], sb.config["apiSecret"], headers["Authorization"].split()[1]):
        assert secret not in dump


def test_reset_restores_the_seeded_state_and_forgets_tokens(sb):
    headers = bearer(sb)
    api(sb, "DELETE", "/v1/accounts?accountId=1003")
    upload(sb, batch(source_request_id="a"))
    sb.set_faults("events", error_rate=1.0)
    sb.reset()
    assert call(sb, "GET", "/v1/accounts?accountId=1001", headers).status_code == 401
    assert [a["id"] for a in api(sb, "GET", "/v1/accounts?accountId=1001").json()["data"]] == [1001, 1002, 1003]
    assert upload(sb, batch(source_request_id="a")).status_code == 202
    assert sb.state()["duplicates_dropped"] == 0 and len(sb.batches) == 1


def test_kept_batches_and_log_are_bounded_but_counters_are_not():
    with Sandbox(max_batches=2, max_logged_requests=3) as sandbox:
        for i in range(5):
            assert upload(sandbox, batch(source_request_id=str(i))).status_code == 202
        assert [b["source_request_id"] for b in sandbox.batches] == ["2", "3", "4"][-2:]
        assert len(sandbox.requests) == 3
        assert sandbox.state()["batches_accepted"] == 5


# =============================================================================== HTTP plumbing


def raw_exchange(sb: Sandbox, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes or 2 s pass."""
    with socket.create_connection(("127.0.0.1", sb.port), timeout=2) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except socket.timeout:
            pass
    return b"".join(chunks)


def test_keep_alive_serves_many_requests_on_one_connection(sb):
    conn = http.client.HTTPConnection("127.0.0.1", sb.port, timeout=TIMEOUT)
    conn.request("GET", "/v1/nothing")
    conn.getresponse().read()
    sock = conn.sock
    for _ in range(3):
        conn.request("GET", "/v1/nothing")
        response = conn.getresponse()
        response.read()
        assert response.status == 404 and conn.sock is sock
    conn.close()


def test_connection_close_is_honoured(sb):
    answer = raw_exchange(sb, b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404 ") and b"Connection: close\r\n" in answer
    answer = raw_exchange(sb, b"GET /v1/nothing HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404 ") and b"Connection: close\r\n" in answer


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST /v2/events HTTP/1.1\r\nHost: x\r\n\r\n", b"411"),
    (b"POST /v2/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"411"),
    (b"POST /v2/events HTTP/1.1\r\nContent-Length: ten\r\n\r\n", b"400"),
    (b"NONSENSE\r\n\r\n", b"400"),
    (b"GET / SPDY/3\r\n\r\n", b"400"),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", b"431"),
])
def test_malformed_requests_get_a_4xx_and_the_connection_closes(sb, request_bytes, status):
    answer = raw_exchange(sb, request_bytes)
    assert answer.split(b" ")[1] == status and b"Connection: close" in answer


def test_expect_100_continue_is_answered(sb):
    body = json.dumps(batch()).encode()
    auth = base64.b64encode(f"{sb.config['apiKey']}:{sb.config['apiSecret']}".encode()).decode()
    with socket.create_connection(("127.0.0.1", sb.port), timeout=2) as sock:
        sock.sendall(
            b"POST /v2/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Basic %s\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (auth.encode(), len(body))
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert sock.recv(100).startswith(b"HTTP/1.1 202 ")


def test_concurrent_clients_are_served(sb):
    results = []

    def worker(n):
        session = requests.Session()
        results.extend(
            upload(sb, batch(source_request_id=f"{n}-{i}")).status_code for i in range(10)
        )
        session.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [202] * 80 and sb.state()["batches_accepted"] == 80


# =============================================================================== CLI and child process


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "connector_mparticle.sandbox", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_one_config_line_and_exits_0_on_signal(signum):
    process = _cli("--seed", "3", "--rate-limit", "platform=5/2", "--fault", 'events={"error_rate": 1, "statuses": [503]}')
    try:
        config = json.loads(process.stdout.readline())
        assert set(config) == CONFIG_KEYS
        state = requests.get(config["platformUrl"] + "/_sandbox/state", timeout=TIMEOUT).json()
        assert state["seed"] == 3
        assert state["rate_limits"]["platform"]["limit"] == 5 and state["rate_limits"]["platform"]["window_seconds"] == 2
        assert state["faults"]["events"]["statuses"] == [503]
        process.send_signal(signum)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0
    assert out == "" and "mParticle sandbox at" in err


@pytest.mark.parametrize("args, message", [
    (["--host", "0.0.0.0"], "not a loopback address"),
    (["--fault", "events=nope"], "--fault"),
    (["--rate-limit", "events"], "--rate-limit"),
    (["--token-lifetime", "0"], "token_lifetime"),
])
def test_cli_refuses_bad_options_with_exit_code_2(args, message, capsys):
    # In-process: the options are refused before anything listens; the signal tests above run the real process.
    assert sandbox_main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in json.loads(err)["message"]


def test_cli_arguments_can_be_added_to_a_host_parser():
    parser = argparse.ArgumentParser(prog="connector sandbox")
    add_arguments(parser)
    args = parser.parse_args(["--port", "8080", "--allow-remote", "--no-client-credentials-for-events"])
    assert (args.host, args.port, args.seed, args.allow_remote) == ("127.0.0.1", 8080, 0, True)
    assert args.client_credentials_for_events is False


def test_sandbox_process_is_driven_through_the_admin_api():
    with SandboxProcess("--seed", "5") as child:
        assert set(child.config) == CONFIG_KEYS
        child.fail_next("uploadEvents", status=500)
        assert upload(child, batch()).status_code == 500
        assert upload(child, batch(source_request_id="p")).status_code == 202
        assert child.batches == [batch(source_request_id="p")]
        assert child.state()["seed"] == 5 and child.requests[-1]["status"] == 202
        child.reset()
        assert child.state()["requests_total"] == 0
    assert child.stop() is None  # already stopped


@pytest.mark.parametrize("after", [False, True], ids=["before-the-body", "after-the-effect"])
def test_reset_aborts_the_connection(sb, after):
    sb.fail_next("uploadBulkEvents", effect="reset", after=after)
    big = [batch(50, source_request_id=f"x{i}") for i in range(20)]  # large enough to be still sending
    with pytest.raises(requests.ConnectionError):
        upload(sb, big, "/bulkevents")
    (entry,) = [r for r in sb.requests if r["endpoint"] == "uploadBulkEvents"]
    assert (entry["status"], entry["effect"]) == (None, "reset")
    assert entry["body"] == ("" if not after else entry["body"]) and (entry["body"] != "") == after
    assert sb.state()["batches_accepted"] == (20 if after else 0)
    assert upload(sb, batch(), "/events").status_code == 202  # the sandbox serves on


def test_random_resets_follow_the_seed(sb):
    def twenty_uploads() -> list:
        sb.reset()
        sb.set_faults("events", reset_rate=0.5)
        outcomes = []
        for i in range(20):
            try:
                outcomes.append(upload(sb, batch(source_request_id=f"r{i}")).status_code)
            except requests.ConnectionError:
                outcomes.append("reset")
        return outcomes

    outcomes = twenty_uploads()
    assert 0 < outcomes.count("reset") < 20 and set(outcomes) == {202, "reset"}
    assert twenty_uploads() == outcomes
