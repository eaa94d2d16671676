"""The mParticle connector end to end: every capability through ``connector_core.Engine``
against the mParticle sandbox over real HTTP on loopback.

What each capability sends (method, path, query, headers, body) is compared with the
documented API; outputs are checked against the manifests' output schemas and values
against the sandbox's state or its raw answers. Errors, retries, write safety and the
token cache are exercised with the sandbox's fault switches. No mocks: ``Engine(sleep=...)``
records retry waits instead of sleeping, ``Engine(clock=...)`` moves token expiry, and a
``requests`` response hook (``Engine(session_factory=...)``) observes what really went
over the wire.

Uploads live in ``test_mparticle_uploads.py``, the ``connector`` command in
``test_mparticle_cli.py``.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import uuid
from pathlib import Path
from typing import Any, Callable

import jsonschema
import pytest
import requests
from connector_mparticle.sandbox import Sandbox

from connector_core import (
    AuthenticationFailed,
    Conflict,
    Connection,
    ConnectorError,
    Engine,
    InvalidConfig,
    InvalidInput,
    NetworkError,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    RateLimited,
    UpstreamError,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = REPO_ROOT / "manifests"
CAPABILITIES = (
    "createAccount", "getAccount", "updateAccount", "deleteAccount",
    "getAudiences", "getCalculatedAttributes", "uploadEventBatch",
)
AUDIENCE = "https://api.mparticle.com"
TOKEN_LIFETIME = 28800  # the sandbox's (and mParticle's) token lifetime, seconds
TIMEOUT = 5

# Seeded sandbox data (connector_mparticle/sandbox/seed.py).
ACCOUNT = 1001  # has applications and audiences
EMPTY_ACCOUNT = 1002  # no applications: may be deleted
OTHER_ORG_ACCOUNT = 2001
WORKSPACE = 5001
OTHER_ORG_WORKSPACE = 6001
MISSING = 9999


# --------------------------------------------------------------------------- helpers


class Sleeps(list):
    """``sleep`` for the engine: records each wait instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Clock:
    """A monotonic clock for the engine that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Wire:
    """What the connector's sessions really sent and got back (a ``requests`` response hook).

    ``on_response`` callbacks run after each answer, between two requests of one call,
    so a test can change the sandbox's switches mid-call.
    """

    def __init__(self) -> None:
        self.exchanges: list[dict[str, Any]] = []
        self.on_response: list[Callable[[requests.Response], None]] = []
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self.exchanges.clear()
            self.on_response.clear()

    def session(self) -> requests.Session:
        session = Connection._new_session()
        session.hooks["response"].append(self._hook)
        return session

    def _hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        request = response.request
        with self._lock:
            self.exchanges.append({
                "method": request.method,
                "url": request.url,
                "authorization": request.headers.get("Authorization"),
                "status": response.status_code,
                "body": response.content,
            })
            callbacks = list(self.on_response)
        for callback in callbacks:
            callback(response)


SLEEPS = Sleeps()
CLOCK = Clock()
WIRE = Wire()


@pytest.fixture(scope="module")
def engine() -> Engine:
    """The engine as a host builds it: installed entry points, real sleeping and clock."""
    with Engine() as built:
        yield built


@pytest.fixture(scope="module")
def rig() -> Engine:
    """An engine from the installed entry points that records retry waits instead of
    sleeping, runs on ``CLOCK`` and lets ``WIRE`` watch every exchange."""
    with Engine(sleep=SLEEPS, clock=CLOCK, session_factory=WIRE.session) as built:
        yield built


@pytest.fixture
def sb(mparticle_sandbox: Sandbox, engine: Engine, rig: Engine) -> Sandbox:
    """The sandbox in its seeded state; cached connections and recorders start empty."""
    engine.close()  # cached connections hold tokens the sandbox reset has revoked
    rig.close()
    SLEEPS.clear()
    WIRE.clear()
    return mparticle_sandbox


def manifest(capability: str) -> dict:
    return json.loads((MANIFESTS / f"{capability}.json").read_text("utf-8"))


def assert_shape(capability: str, output: Any) -> None:
    """``output`` matches the capability's output schema (checked here, not by the engine)."""
    validator = jsonschema.Draft202012Validator(manifest(capability)["outputSchema"])
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(output)]
    assert not problems, problems


def account_in_state(sb: Sandbox, account_id: int) -> dict | None:
    return next((a for a in sb.state()["accounts"] if a["id"] == account_id), None)


def accounts_named(sb: Sandbox, name: str) -> list[dict]:
    return [a for a in sb.state()["accounts"] if a["name"] == name]


def platform_requests(sb: Sandbox) -> list[dict]:
    return [r for r in sb.requests if r["endpoint"] != "token"]


def endpoint_log(sb: Sandbox, endpoint: str) -> list[dict]:
    return [r for r in sb.requests if r["endpoint"] == endpoint]


def raw_platform_get(sb: Sandbox, path: str, **params: Any) -> Any:
    """An independent oracle: the sandbox's own answer, fetched with plain requests."""
    config = sb.config
    token = requests.post(config["authUrl"], json={
        "client_id": config["clientID"], "client_secret": config["clientSecret"],
        "audience": AUDIENCE, "grant_type": "client_credentials",
    }, timeout=TIMEOUT).json()["access_token"]
    response = requests.get(config["platformUrl"] + path, params=params,
                            headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def small_batch(**fields: Any) -> dict:
    return {
        "environment": "development",
        "user_identities": {"customer_id": "cust-42", "email": "ada@example.com"},
        "events": [{"event_type": "custom_event", "data": {"event_name": "Signed up", "custom_event_type": "other"}}],
        **fields,
    }


def expect(error_type: type[ConnectorError], call: Callable[[], Any]) -> ConnectorError:
    """Run ``call``; it must raise exactly ``error_type`` (not a subclass or a parent)."""
    with pytest.raises(ConnectorError) as caught:
        call()
    assert type(caught.value) is error_type, repr(caught.value)
    return caught.value


# --------------------------------------------------------------------------- happy paths


def _check_create(sb, output, props):
    account = output["account"]
    assert account["name"] == props["displayName"]
    assert account_in_state(sb, account["id"])["name"] == props["displayName"]
    assert account["data_type"] == "account"


def _check_get(sb, output, props):
    assert output["account"] == {k: v for k, v in account_in_state(sb, ACCOUNT).items()
                                 if k in ("id", "name", "data_type", "created_on", "last_modified_on")}
    assert output["account"]["name"] == "Acme Production"


def _check_update(sb, output, props):
    assert output["account"]["id"] == EMPTY_ACCOUNT
    assert output["account"]["name"] == props["updatedName"]
    assert account_in_state(sb, EMPTY_ACCOUNT)["name"] == props["updatedName"]


def _check_delete(sb, output, props):
    assert output == {"deleted": True, "accountId": EMPTY_ACCOUNT}
    assert account_in_state(sb, EMPTY_ACCOUNT) is None
    assert account_in_state(sb, ACCOUNT) is not None  # only that one went


def _check_audiences(sb, output, props):
    expected = raw_platform_get(sb, "/v1/audiences", accountId=ACCOUNT)
    assert output["audiences"] == expected
    assert output["count"] == len(expected) == 3
    assert {a["id"] for a in output["audiences"]} == {7622, 7623, 7631}


def _check_calculated(sb, output, props):
    expected = raw_platform_get(sb, f"/platform/v2/workspaces/{WORKSPACE}/calculatedattributes")
    assert output["calculatedAttributes"] == expected
    assert output["count"] == len(expected) > 1


def _check_upload(sb, output, props):
    assert output["status"] == "accepted"
    assert (output["batches"], output["acknowledged"]["count"], output["acknowledged"]["events"], output["requests"]) == (1, 1, 1, 1)
    assert output["errors"] == []
    assert sb.batches == [props["jsonBody"]]
    assert output["sourceRequestIds"] == [props["jsonBody"]["source_request_id"]]


HAPPY = {
    "createAccount": (lambda: {"displayName": f"Test account {uuid.uuid4().hex[:8]}"}, _check_create),
    "getAccount": (lambda: {"accountId": str(ACCOUNT)}, _check_get),
    "updateAccount": (lambda: {"accountId": str(EMPTY_ACCOUNT), "updatedName": "Acme Staging (renamed)"}, _check_update),
    "deleteAccount": (lambda: {"accountId": str(EMPTY_ACCOUNT)}, _check_delete),
    "getAudiences": (lambda: {"accountId": ACCOUNT}, _check_audiences),  # integers are accepted too
    "getCalculatedAttributes": (lambda: {"workspace": str(WORKSPACE)}, _check_calculated),
    "uploadEventBatch": (lambda: {"jsonBody": small_batch(source_request_id=str(uuid.uuid4()))}, _check_upload),
}


def test_every_capability_is_installed(engine):
    assert set(engine.capabilities) >= {f"mparticle.{c}" for c in CAPABILITIES}
    for capability in CAPABILITIES:
        assert engine.registry.get(capability).manifest.connector == "mparticle"


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_capability_through_engine_execute(sb, engine, capability):
    make, check = HAPPY[capability]
    props = make()
    result = engine.execute(capability, props, sb.config)
    assert result.capability == capability
    assert_shape(capability, result.output)
    check(sb, result.output, props)
    assert result.http_requests >= 1 and result.retries == 0


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_capability_through_an_open_connection(sb, engine, capability):
    make, check = HAPPY[capability]
    props = make()
    with engine.connect(sb.config) as connection:
        result = connection.execute(capability, props)
    assert_shape(capability, result.output)
    check(sb, result.output, props)
    # Results carry the call's facts and serialise for hosts.
    meta = result.to_dict()["meta"]
    # A new connection fetches the Platform token first, and that request counts too.
    assert meta["http_requests"] == result.http_requests == (1 if capability == "uploadEventBatch" else 2)
    assert meta["retries"] == 0


def test_calculated_attributes_name_filter(sb, engine):
    everything = engine.execute("getCalculatedAttributes", {"workspace": WORKSPACE}, sb.config).output
    name = everything["calculatedAttributes"][1]["name"]
    filtered = engine.execute("getCalculatedAttributes", {"workspace": str(WORKSPACE), "nameOptional": name}, sb.config).output
    assert_shape("getCalculatedAttributes", filtered)
    assert filtered["count"] == 1
    assert filtered["calculatedAttributes"] == [everything["calculatedAttributes"][1]]
    none = engine.execute("getCalculatedAttributes", {"workspace": str(WORKSPACE), "nameOptional": "No such attribute"}, sb.config)
    assert none.output == {"calculatedAttributes": [], "count": 0}


def test_account_lifecycle_on_one_connection(sb, engine):
    with engine.connect(sb.config) as connection:
        created = connection.execute("createAccount", {"displayName": "Lifecycle Ltd"}).output["account"]
        account_id = str(created["id"])
        assert connection.execute("getAccount", {"accountId": account_id}).output["account"] == created
        renamed = connection.execute("updateAccount", {"accountId": account_id, "updatedName": "Lifecycle Plc"}).output
        assert renamed["account"]["name"] == "Lifecycle Plc"
        assert connection.execute("getAccount", {"accountId": account_id}).output["account"]["name"] == "Lifecycle Plc"
        assert connection.execute("deleteAccount", {"accountId": account_id}).output == {"deleted": True, "accountId": created["id"]}
        error = expect(NotFound, lambda: connection.execute("getAccount", {"accountId": account_id}))
    assert account_id in error.message
    assert account_in_state(sb, created["id"]) is None


# --------------------------------------------------------------------------- the wire


def test_requests_match_the_documented_api(sb, rig):
    """Method, path, query, headers and body of every capability, in order."""
    batch = small_batch(source_request_id="4b1f0a7e-1d2c-4b7a-9c55-0d2b8f0e6a11")
    bulk = [small_batch(source_request_id=f"bulk-{i}") for i in range(2)]
    with rig.connect(sb.config) as connection:
        new_id = connection.execute("createAccount", {"displayName": "Wire Co"}).output["account"]["id"]
        connection.execute("getAccount", {"accountId": str(new_id)})
        connection.execute("updateAccount", {"accountId": str(new_id), "updatedName": "Wire Company"})
        connection.execute("getAudiences", {"accountId": str(ACCOUNT)})
        connection.execute("getCalculatedAttributes", {"workspace": str(WORKSPACE)})
        connection.execute("getCalculatedAttributes", {"workspace": str(WORKSPACE), "nameOptional": "Last seen"})
        connection.execute("uploadEventBatch", {"jsonBody": batch})
        connection.execute("uploadEventBatch", {"jsonBody": bulk})
        connection.execute("deleteAccount", {"accountId": str(new_id)})

    expected = [
        # (method, path, query, auth scheme, JSON body or None)
        ("POST", "/oauth/token", {}, None, {
            "client_id": "sandbox-client-id", "client_secret": "[REDACTED]",  # the sandbox's log hides it
            "audience": AUDIENCE, "grant_type": "client_credentials"}),
        ("POST", "/v1/accounts", {}, "Bearer", {"name": "Wire Co"}),
        ("GET", f"/v1/accounts/{new_id}", {"accountId": str(new_id)}, "Bearer", None),
        ("PUT", f"/v1/accounts/{new_id}", {"accountId": str(new_id)}, "Bearer", {"name": "Wire Company"}),
        ("GET", "/v1/audiences", {"accountId": str(ACCOUNT)}, "Bearer", None),
        ("GET", f"/platform/v2/workspaces/{WORKSPACE}/calculatedattributes", {}, "Bearer", None),
        ("GET", f"/platform/v2/workspaces/{WORKSPACE}/calculatedattributes", {"name": "Last seen"}, "Bearer", None),
        ("POST", "/v2/events", {}, "Basic", batch),
        ("POST", "/v2/bulkevents", {}, "Basic", bulk),
        ("DELETE", "/v1/accounts", {"accountId": str(new_id)}, "Bearer", None),
    ]
    log = sb.requests
    seen = [(r["method"], r["path"], r["query"], r["headers"].get("authorization"), r["json"]) for r in log]
    assert seen == expected
    for entry in log:
        assert 200 <= entry["status"] < 300, entry
        headers = entry["headers"]
        if entry["json"] is not None:
            assert headers["content-type"] == "application/json", entry
        else:
            assert entry["body"] == "" and "content-type" not in headers, entry
        assert headers["user-agent"].startswith("connector-framework/")
    # The raw query strings: nothing beyond what the table says (no accountId on v2 or create).
    raw = [(x["method"], x["url"].split("?", 1)[1] if "?" in x["url"] else "") for x in WIRE.exchanges]
    assert raw == [
        ("POST", ""), ("POST", ""), ("GET", f"accountId={new_id}"), ("PUT", f"accountId={new_id}"),
        ("GET", f"accountId={ACCOUNT}"), ("GET", ""), ("GET", "name=Last+seen"), ("POST", ""), ("POST", ""),
        ("DELETE", f"accountId={new_id}"),
    ]
    # Bearer carries the token the token endpoint issued; Basic carries the input key and secret.
    token = json.loads(WIRE.exchanges[0]["body"])["access_token"]
    for exchange in WIRE.exchanges[1:]:
        if "/v2/" in exchange["url"] and "/platform/" not in exchange["url"]:
            assert exchange["authorization"] == basic("us1-sandbox-api-key", "sandbox-api-secret")
        else:
            assert exchange["authorization"] == f"Bearer {token}"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_token_request_body_is_json_with_the_client_credentials(sb, rig):
    with rig.connect(sb.config) as connection:
        connection.execute("getAccount", {"accountId": str(ACCOUNT)})
    (token_request,) = endpoint_log(sb, "token")
    assert token_request["headers"]["content-type"] == "application/json"
    assert "authorization" not in token_request["headers"]  # credentials go in the body only
    assert set(token_request["json"]) == {"client_id", "client_secret", "audience", "grant_type"}
    assert token_request["status"] == 200  # the sandbox checked the real secret
    sent = WIRE.exchanges[0]
    assert sent["url"] == sb.config["authUrl"]
    assert json.loads(sent["body"])["token_type"] == "Bearer"


@pytest.mark.parametrize("with_api_key", [True, False])
def test_events_basic_auth_uses_api_key_or_falls_back_to_client_credentials(sb, rig, with_api_key):
    config = dict(sb.config)
    if not with_api_key:
        del config["apiKey"], config["apiSecret"]
    request_id = str(uuid.uuid4())
    with rig.connect(config) as connection:
        output = connection.execute("uploadEventBatch", {"jsonBody": small_batch(source_request_id=request_id)}).output
    assert output["status"] == "accepted"
    user, password = ("us1-sandbox-api-key", "sandbox-api-secret") if with_api_key else ("sandbox-client-id", "sandbox-client-secret")
    (exchange,) = WIRE.exchanges
    scheme, _, encoded = exchange["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode("utf-8") == f"{user}:{password}"
    # The sandbox keys de-duplication by the API key it authenticated.
    assert (user, request_id) in sb.emulator.state.seen_request_ids
    assert endpoint_log(sb, "token") == []  # the Events API needs no OAuth token


def test_events_without_api_key_fail_when_client_credentials_are_not_an_input(sb, rig):
    sb.configure(client_credentials_for_events=False)
    config = {k: v for k, v in sb.config.items() if k not in ("apiKey", "apiSecret")}
    error = expect(PermissionDenied, lambda: rig.execute("uploadEventBatch", {"jsonBody": small_batch()}, config))
    assert error.details["status"] == 403
    assert "clientID/clientSecret (used because no apiKey is set)" in error.message
    assert rig.execute("uploadEventBatch", {"jsonBody": small_batch()}, sb.config).output["status"] == "accepted"


# --------------------------------------------------------------------------- config: pod and URLs


@pytest.mark.parametrize("pod, host", [("us1", "s2s.us1"), ("EU1", "s2s.eu1"), ("Us2", "s2s.us2"), ("au1", "s2s.au1")])
def test_pod_is_accepted_case_insensitively(sb, engine, pod, host):
    config = {k: v for k, v in sb.config.items() if k != "eventsUrl"}
    with engine.connect({**config, "pod": pod}) as connection:
        assert connection.base_url("events") == f"https://{host}.mparticle.com/v2"
    # With the sandbox's eventsUrl, the upload really runs with that pod spelling.
    output = engine.execute("uploadEventBatch", {"jsonBody": small_batch()}, {**sb.config, "pod": pod}).output
    assert output["status"] == "accepted" and len(sb.batches) == 1


@pytest.mark.parametrize("pod", ["xx9", "us1.evil.com", "US3", "eu1/../x", "", "us1 "])
def test_pod_outside_the_list_is_rejected_by_name_only_by_upload(sb, engine, pod):
    # The seed: the pod is "only required for 'Upload an event batch'"; other capabilities
    # ignore it, empty or not.
    config = {k: v for k, v in sb.config.items() if k != "eventsUrl"}
    with engine.connect({**config, "pod": pod}) as connection:
        assert connection.execute("getAccount", {"accountId": "1001"}).output["account"]["id"] == 1001
        error = expect(InvalidConfig, lambda: connection.execute("uploadEventBatch", {"jsonBody": small_batch()}))
    assert [f.path for f in error.faults] == ["$.pod"]
    if pod:
        assert "US1" in error.faults[0].message and "EU1" in error.faults[0].message
    assert "mparticle.com" not in str(error.to_dict())  # never pasted into a URL
    # The same with the sandbox's eventsUrl set: refused before any request.
    expect(InvalidConfig, lambda: engine.execute("uploadEventBatch", {"jsonBody": small_batch()}, {**sb.config, "pod": pod}))
    assert endpoint_log(sb, "uploadEvents") == []


def test_pod_is_required_only_by_upload(sb, engine):
    config = {k: v for k, v in sb.config.items() if k != "pod"}
    with engine.connect(config) as connection:
        for capability in CAPABILITIES:
            if capability == "uploadEventBatch":
                continue
            make, check = HAPPY[capability]
            props = make()
            check(sb, connection.execute(capability, props).output, props)
        error = expect(InvalidConfig, lambda: connection.execute("uploadEventBatch", {"jsonBody": small_batch()}))
    assert [f.path for f in error.faults] == ["$.pod"]
    assert "uploadEventBatch" in error.message
    assert endpoint_log(sb, "uploadEvents") == [] and sb.batches == []


@pytest.mark.parametrize("field", ["platformUrl", "authUrl", "eventsUrl"])
@pytest.mark.parametrize("url", ["http://api.example.com", "http://10.0.0.8:8080", "ftp://127.0.0.1/x", "https://user:pw@api.example.com"])
def test_unsafe_urls_are_rejected(sb, engine, field, url):
    error = expect(InvalidConfig, lambda: engine.connect({**sb.config, field: url}))
    assert [f.path for f in error.faults] == [f"$.{field}"]
    assert sb.requests == []


def test_http_loopback_urls_are_accepted(sb, engine):
    config = {**sb.config, "platformUrl": sb.config["platformUrl"].replace("127.0.0.1", "localhost")}
    assert engine.execute("getAccount", {"accountId": str(ACCOUNT)}, config).output["account"]["id"] == ACCOUNT


@pytest.mark.parametrize("change, word", [
    ({"clientSecret": None}, "clientSecret"),
    ({"clientID": None}, "clientID"),
    ({"apiSecret": None}, "apiSecret"),  # apiKey without apiSecret
    ({"apiKey": None}, "apiKey"),
    ({"podd": "US1"}, "podd"),
    ({"clientSecret": ""}, "clientSecret"),
    ({"timeoutSeconds": 0}, "timeoutSeconds"),
])
def test_invalid_configs_are_rejected_before_any_request(sb, engine, change, word):
    config = {k: v for k, v in {**sb.config, **change}.items() if v is not None}
    error = expect(InvalidConfig, lambda: engine.connect(config))
    assert any(word in f.path or word in f.message for f in error.faults), error.faults
    assert sb.requests == []


# --------------------------------------------------------------------------- invalid input


BAD_IDS = ["12/../3", "0", "abc", -1, 0, "-1", "1001/../1002", "1001?accountId=2001", "1001#x", "%2e%2e", " 1001",
           "1001 ", "01001", "", "1e3", 1.5, True, None, ["1001"], {"id": 1001}, "１００１", 10**18, "1001\n"]


@pytest.mark.parametrize("value", BAD_IDS, ids=repr)
@pytest.mark.parametrize("capability, field, extra", [
    ("getAccount", "accountId", {}),
    ("updateAccount", "accountId", {"updatedName": "Never"}),
    ("deleteAccount", "accountId", {}),
    ("getAudiences", "accountId", {}),
    ("getCalculatedAttributes", "workspace", {}),
])
def test_invalid_ids_are_rejected_before_any_request(sb, engine, capability, field, extra, value):
    error = expect(InvalidInput, lambda: engine.execute(capability, {field: value, **extra}, sb.config))
    assert [f.path for f in error.faults] == [f"$.{field}"]
    assert sb.requests == []  # not even a token request


@pytest.mark.parametrize("capability, props, path", [
    ("createAccount", {}, "$.displayName"),
    ("createAccount", {"displayName": "   "}, "$.displayName"),
    ("createAccount", {"displayName": ""}, "$.displayName"),
    ("createAccount", {"displayName": 42}, "$.displayName"),
    ("createAccount", {"displayName": "Ok", "accountId": "1001"}, "$.accountId"),
    ("updateAccount", {"accountId": "1002"}, "$.updatedName"),
    ("updateAccount", {"accountId": "1002", "updatedName": "\t"}, "$.updatedName"),
    ("uploadEventBatch", {}, "$.jsonBody"),
    ("uploadEventBatch", {"jsonBody": 42}, "$.jsonBody"),
    ("getAccount", "1001", "$"),
])
def test_invalid_properties_are_rejected_before_any_request(sb, engine, capability, props, path):
    error = expect(InvalidInput, lambda: engine.execute(capability, props, sb.config))
    assert path in [f.path for f in error.faults]
    assert sb.requests == []


# --------------------------------------------------------------------------- service errors


def test_wrong_client_secret_is_authentication_failed(sb, engine):
    secret = "not-the-secret-" + uuid.uuid4().hex
    error = expect(AuthenticationFailed, lambda: engine.execute("getAccount", {"accountId": "1001"}, {**sb.config, "clientSecret": secret}))
    assert error.code == "authentication_failed" and error.category == "auth" and error.exit_code == 5
    assert error.details["status"] == 401
    assert "client" in error.message and "secret" in error.message
    assert secret not in json.dumps(error.to_dict()) and secret not in str(error)
    # One token request, no retry of a refused credential, no Platform call.
    assert [r["endpoint"] for r in sb.requests] == ["token"]


def test_wrong_client_id_is_authentication_failed(sb, engine):
    error = expect(AuthenticationFailed, lambda: engine.execute("getAudiences", {"accountId": "1001"}, {**sb.config, "clientID": "nobody"}))
    assert error.code == "authentication_failed"


def test_wrong_events_secret_is_permission_denied(sb, engine):
    secret = "wrong-api-secret-" + uuid.uuid4().hex
    error = expect(PermissionDenied, lambda: engine.execute("uploadEventBatch", {"jsonBody": small_batch()}, {**sb.config, "apiSecret": secret}))
    assert error.code == "permission_denied" and error.category == "auth"
    assert error.details["status"] == 403
    assert "refused the input credentials apiKey/apiSecret (403)" in error.message
    assert secret not in json.dumps(error.to_dict())
    assert base64.b64encode(f"us1-sandbox-api-key:{secret}".encode()).decode() not in json.dumps(error.to_dict())
    assert sb.batches == [] and len(endpoint_log(sb, "uploadEvents")) == 1  # not retried


@pytest.mark.parametrize("capability, props", [
    ("getAccount", {"accountId": str(MISSING)}),
    ("updateAccount", {"accountId": str(MISSING), "updatedName": "Ghost"}),
    ("deleteAccount", {"accountId": str(MISSING)}),
    ("getAudiences", {"accountId": str(MISSING)}),
])
def test_missing_account_is_not_found_with_advice(sb, engine, capability, props):
    error = expect(NotFound, lambda: engine.execute(capability, props, sb.config))
    assert error.code == "not_found" and error.details["status"] == 404
    assert str(MISSING) in error.message and "check accountId" in error.message
    assert len(platform_requests(sb)) == 1  # a 404 is an answer, not retried


@pytest.mark.parametrize("capability, props, word", [
    ("getAccount", {"accountId": str(OTHER_ORG_ACCOUNT)}, "accountId"),
    ("updateAccount", {"accountId": str(OTHER_ORG_ACCOUNT), "updatedName": "Hijacked"}, "accountId"),
    ("deleteAccount", {"accountId": str(OTHER_ORG_ACCOUNT)}, "accountId"),
    ("getAudiences", {"accountId": str(OTHER_ORG_ACCOUNT)}, "accountId"),
    ("getCalculatedAttributes", {"workspace": str(OTHER_ORG_WORKSPACE)}, "workspace"),
    ("getCalculatedAttributes", {"workspace": str(MISSING)}, "workspace"),
])
def test_out_of_scope_is_not_found(sb, engine, capability, props, word):
    error = expect(NotFound, lambda: engine.execute(capability, props, sb.config))
    assert "scope" in error.message and f"check {word}" in error.message
    other = account_in_state(sb, OTHER_ORG_ACCOUNT)
    assert other["name"] == "Globex Corporation"  # untouched


def test_duplicate_name_on_create_is_conflict(sb, engine):
    before = len(sb.state()["accounts"])
    error = expect(Conflict, lambda: engine.execute("createAccount", {"displayName": "acme STAGING"}, sb.config))
    assert error.code == "conflict" and error.details["status"] == 422
    assert "unique" in error.message and "displayName" in error.message
    assert len(sb.state()["accounts"]) == before
    assert len(endpoint_log(sb, "createAccount")) == 1


def test_duplicate_name_on_update_is_conflict(sb, engine):
    error = expect(Conflict, lambda: engine.execute("updateAccount", {"accountId": "1003", "updatedName": "Acme Staging"}, sb.config))
    assert error.details["status"] == 422
    assert "unique" in error.message and "updatedName" in error.message
    assert account_in_state(sb, 1003)["name"] == "Acme Sandbox"


def test_delete_account_with_applications_is_conflict(sb, engine):
    error = expect(Conflict, lambda: engine.execute("deleteAccount", {"accountId": str(ACCOUNT)}, sb.config))
    assert "application" in error.message and error.details["status"] == 422
    assert account_in_state(sb, ACCOUNT) is not None


# --------------------------------------------------------------------------- retries


def test_short_retry_after_is_waited_and_retried(sb, rig):
    sb.fail_next("getAccount", 2, status=429, retry_after=2)
    result = rig.execute("getAccount", {"accountId": str(ACCOUNT)}, sb.config)
    assert result.output["account"]["id"] == ACCOUNT
    assert SLEEPS == [2.0, 2.0]  # Retry-After honoured, not a computed backoff
    assert result.retries == 2
    assert [r["status"] for r in endpoint_log(sb, "getAccount")] == [429, 429, 200]


def test_rate_limit_surfaces_after_retries_with_retry_after(sb, rig):
    sb.set_rate_limit("platform", limit=1, window_seconds=3600, retry_after=5)
    rig.execute("getAccount", {"accountId": str(ACCOUNT)}, sb.config)  # uses the budget
    error = expect(RateLimited, lambda: rig.execute("getAudiences", {"accountId": str(ACCOUNT)}, sb.config))
    assert error.code == "rate_limited" and error.category == "rate_limited"
    assert error.details["retry_after"] == 5.0 and error.details["status"] == 429
    assert "retry after 5" in error.message
    assert SLEEPS == [5.0, 5.0, 5.0]  # maxRetries (3) waits of Retry-After, then the host decides
    assert [r["status"] for r in endpoint_log(sb, "getAudiences")] == [429] * 4


def test_long_retry_after_is_not_waited(sb, rig):
    sb.fail_next("getAudiences", 4, status=429, retry_after=600)
    error = expect(RateLimited, lambda: rig.execute("getAudiences", {"accountId": str(ACCOUNT)}, sb.config))
    assert error.details["retry_after"] == 600.0
    assert SLEEPS == []  # longer than maxRetryWaitSeconds: give it back at once
    assert len(endpoint_log(sb, "getAudiences")) == 1


def test_rate_limited_upload(sb, rig):
    sb.set_rate_limit("events", limit=1, window_seconds=3600, retry_after=3)
    assert rig.execute("uploadEventBatch", {"jsonBody": small_batch()}, sb.config).output["status"] == "accepted"
    error = expect(RateLimited, lambda: rig.execute("uploadEventBatch", {"jsonBody": small_batch()}, sb.config))
    assert error.details["retry_after"] == 3.0
    assert len(sb.batches) == 1


@pytest.mark.parametrize("capability, props, endpoint", [
    ("getAccount", {"accountId": str(ACCOUNT)}, "getAccount"),
    ("getAudiences", {"accountId": str(ACCOUNT)}, "getAudiences"),
    ("getCalculatedAttributes", {"workspace": str(WORKSPACE)}, "getCalculatedAttributes"),
    ("updateAccount", {"accountId": str(EMPTY_ACCOUNT), "updatedName": "Retried"}, "updateAccount"),
    ("deleteAccount", {"accountId": str(EMPTY_ACCOUNT)}, "deleteAccount"),
    ("uploadEventBatch", {"jsonBody": small_batch()}, "uploadEvents"),
])
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_then_succeed(sb, rig, capability, props, endpoint, status):
    sb.fail_next(endpoint, 2, status=status)
    result = rig.execute(capability, props, sb.config)
    assert_shape(capability, result.output)
    assert result.retries == 2 and len(SLEEPS) == 2
    assert all(0 <= s <= 8 for s in SLEEPS)  # jittered backoff within the policy's ceiling
    assert [r["status"] for r in endpoint_log(sb, endpoint)] == [status, status, 202 if endpoint in ("updateAccount", "deleteAccount", "uploadEvents") else 200]


def test_server_errors_after_retries_are_upstream_error(sb, rig):
    sb.fail_next("getAccount", 4, status=500)
    error = expect(UpstreamError, lambda: rig.execute("getAccount", {"accountId": str(ACCOUNT)}, sb.config))
    assert error.code == "server_error" and error.details["status"] == 500
    assert len(endpoint_log(sb, "getAccount")) == 4 and len(SLEEPS) == 3


def test_max_retries_from_config(sb, rig):
    sb.fail_next("getAccount", 4, status=503)
    expect(UpstreamError, lambda: rig.execute("getAccount", {"accountId": str(ACCOUNT)}, {**sb.config, "maxRetries": 1}))
    assert len(endpoint_log(sb, "getAccount")) == 2 and len(SLEEPS) == 1


def test_dropped_connection_on_a_read_is_retried(sb, rig):
    sb.fail_next("getAudiences", 1, effect="drop")
    result = rig.execute("getAudiences", {"accountId": str(ACCOUNT)}, sb.config)
    assert result.output["count"] == 3 and result.retries == 1
    assert [r["status"] for r in endpoint_log(sb, "getAudiences")] == [None, 200]


def test_timeouts_on_reads_are_network_error(sb, rig):
    sb.set_faults("platform", latency_ms=600)
    config = {**sb.config, "timeoutSeconds": 0.15, "maxRetries": 1}
    error = expect(NetworkError, lambda: rig.execute("getAccount", {"accountId": str(ACCOUNT)}, config))
    assert error.code == "network_error" and error.details["attempts"] == 2
    assert "timed out" in error.message
    assert len(SLEEPS) == 1
    sb.set_faults("platform")
    _wait_for(lambda: len(endpoint_log(sb, "getAccount")) == 2)  # the server saw both attempts


def test_unreachable_service_is_network_error(sb, rig):
    with socket.socket() as bound:  # bound but not listening: connections are refused, and the port stays ours
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}"
        config = {**sb.config, "platformUrl": url, "authUrl": url + "/oauth/token", "maxRetries": 2}
        error = expect(NetworkError, lambda: rig.execute("getAccount", {"accountId": str(ACCOUNT)}, config))
    assert error.details["attempts"] == 3 and len(SLEEPS) == 2
    assert "connection failed" in error.message


def _wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    done = threading.Event()
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        done.wait(0.05)
    assert condition()


@pytest.mark.parametrize("effect", ["garbage", "truncate"])
def test_unreadable_2xx_body_is_upstream_invalid_response(sb, rig, effect):
    sb.fail_next("getAccount", 4, effect=effect)
    error = expect(UpstreamError, lambda: rig.execute("getAccount", {"accountId": str(ACCOUNT)}, sb.config))
    assert error.code == "invalid_response"
    assert "retry later" in error.message


def test_truncated_answer_to_a_read_is_retried(sb, rig):
    sb.fail_next("getAccount", 1, effect="truncate")
    result = rig.execute("getAccount", {"accountId": str(ACCOUNT)}, sb.config)
    assert result.output["account"]["id"] == ACCOUNT and result.retries == 1


def test_token_endpoint_errors(sb, rig):
    sb.fail_next("token", 1, status=503)
    assert rig.execute("getAccount", {"accountId": str(ACCOUNT)}, sb.config).output["account"]["id"] == ACCOUNT
    assert len(SLEEPS) == 1
    rig.close()
    sb.fail_next("token", 1, effect="garbage")
    error = expect(UpstreamError, lambda: rig.execute("getAccount", {"accountId": str(ACCOUNT)}, sb.config))
    assert error.code == "invalid_response"


# --------------------------------------------------------------------------- write safety


def test_create_whose_answer_was_lost_after_creating_is_outcome_unknown(sb, rig):
    sb.fail_next("createAccount", effect="drop", after=True)
    error = expect(OutcomeUnknown, lambda: rig.execute("createAccount", {"displayName": "Lost Answer Inc"}, sb.config))
    assert error.code == "outcome_unknown" and error.exit_code == 11
    assert "Lost Answer Inc" in error.message and error.details["name"] == "Lost Answer Inc"
    # First attempt created it (answer dropped); one deliberate re-send was refused by name.
    assert [r["status"] for r in endpoint_log(sb, "createAccount")] == [None, 422]
    assert len(accounts_named(sb, "Lost Answer Inc")) == 1
    assert SLEEPS == []


def test_create_dropped_before_creating_is_resent_once(sb, rig):
    sb.fail_next("createAccount", effect="drop", after=False)
    result = rig.execute("createAccount", {"displayName": "Second Try GmbH"}, sb.config)
    assert result.output["account"]["name"] == "Second Try GmbH"
    assert [r["status"] for r in endpoint_log(sb, "createAccount")] == [None, 201]
    assert [a["id"] for a in accounts_named(sb, "Second Try GmbH")] == [result.output["account"]["id"]]


def test_create_503_is_not_retried_blindly(sb, rig):
    sb.fail_next("createAccount", 1, status=503)
    result = rig.execute("createAccount", {"displayName": "After 503"}, sb.config)
    assert len(accounts_named(sb, "After 503")) == 1 and result.output["account"]["name"] == "After 503"
    # One failed attempt and exactly one deliberate re-send: no backoff loop.
    assert [r["status"] for r in endpoint_log(sb, "createAccount")] == [503, 201]
    assert SLEEPS == []


def test_create_failing_twice_is_outcome_unknown_after_two_requests(sb, rig):
    sb.fail_next("createAccount", 5, status=503)
    error = expect(OutcomeUnknown, lambda: rig.execute("createAccount", {"displayName": "Never Made"}, sb.config))
    assert "503" in error.message
    assert [r["status"] for r in endpoint_log(sb, "createAccount")] == [503, 503]
    assert accounts_named(sb, "Never Made") == [] and SLEEPS == []


def test_create_losing_both_answers_is_outcome_unknown(sb, rig):
    sb.fail_next("createAccount", 1, effect="drop", after=True)
    sb.fail_next("createAccount", 1, effect="drop", after=True)
    error = expect(OutcomeUnknown, lambda: rig.execute("createAccount", {"displayName": "Twice Lost"}, sb.config))
    assert [r["status"] for r in endpoint_log(sb, "createAccount")] == [None, None]
    assert len(accounts_named(sb, "Twice Lost")) == 1
    assert error.code == "outcome_unknown"
    assert "'Twice Lost'" in error.message and error.details["name"] == "Twice Lost"


def test_create_timing_out_is_resent_once_and_made_once(sb, rig):
    sb.set_faults("platform", latency_ms=400)
    config = {**sb.config, "timeoutSeconds": 0.15}
    error = expect(OutcomeUnknown, lambda: rig.execute("createAccount", {"displayName": "Slow Corp"}, config))
    assert "timed out" in error.message and "/v1/accounts" in error.message
    sb.set_faults("platform")
    _wait_for(lambda: len(endpoint_log(sb, "createAccount")) == 2)
    assert [r["status"] for r in endpoint_log(sb, "createAccount")] == [201, 422]  # answers the client never read
    assert len(accounts_named(sb, "Slow Corp")) == 1 and SLEEPS == []


def test_create_rate_limited_is_retried(sb, rig):
    # A 429 means "not processed", so even a non-retry-safe write may wait and repeat it.
    sb.fail_next("createAccount", 1, status=429, retry_after=1)
    result = rig.execute("createAccount", {"displayName": "Patient Co"}, sb.config)
    assert result.output["account"]["name"] == "Patient Co"
    assert SLEEPS == [1.0]
    assert [r["status"] for r in endpoint_log(sb, "createAccount")] == [429, 201]


def test_update_whose_answer_was_lost_is_retried(sb, rig):
    sb.fail_next("updateAccount", effect="drop", after=True)
    result = rig.execute("updateAccount", {"accountId": str(EMPTY_ACCOUNT), "updatedName": "Renamed Twice"}, sb.config)
    assert result.output["account"] == {**result.output["account"], "id": EMPTY_ACCOUNT, "name": "Renamed Twice"}
    assert account_in_state(sb, EMPTY_ACCOUNT)["name"] == "Renamed Twice"
    assert [r["status"] for r in endpoint_log(sb, "updateAccount")] == [None, 202]
    assert result.retries == 1


def test_delete_of_a_missing_account_on_the_first_attempt_is_not_found(sb, rig):
    error = expect(NotFound, lambda: rig.execute("deleteAccount", {"accountId": "9999"}, sb.config))
    assert "9999" in error.message and "accountId" in error.message


def test_delete_dropped_before_deleting_is_retried(sb, rig):
    sb.fail_next("deleteAccount", effect="drop", after=False)
    result = rig.execute("deleteAccount", {"accountId": str(EMPTY_ACCOUNT)}, sb.config)
    assert result.output["deleted"] is True
    assert [r["status"] for r in endpoint_log(sb, "deleteAccount")] == [None, 202]
    assert account_in_state(sb, EMPTY_ACCOUNT) is None


# deleteAccount reports what happened: deleted only on a success answer to a delete of this call;
# a 404 is not_found after attempts that certainly did not execute, outcome_unknown after one that may have.


@pytest.mark.parametrize(("account_id", "existing"), [(999999, False), (OTHER_ORG_ACCOUNT, True)])
def test_delete_throttled_then_404_is_not_found(sb, rig, account_id, existing):
    sb.fail_next("deleteAccount", status=429, retry_after=1)
    error = expect(NotFound, lambda: rig.execute("deleteAccount", {"accountId": str(account_id)}, sb.config))
    assert f"account {account_id} does not exist" in error.message
    assert [r["status"] for r in endpoint_log(sb, "deleteAccount")] == [429, 404]
    assert SLEEPS == [1.0]
    assert (account_in_state(sb, account_id) is not None) is existing


def test_delete_after_a_token_503_then_a_token_404_is_about_the_token_url_and_deletes_nothing(sb, rig):
    sb.fail_next("token", status=503)
    sb.fail_next("token", status=404)
    error = expect(InvalidConfig, lambda: rig.execute("deleteAccount", {"accountId": str(EMPTY_ACCOUNT)}, sb.config))
    assert "token endpoint" in error.message and "'authUrl'" in error.message
    assert str(EMPTY_ACCOUNT) not in error.message
    assert [f.path for f in error.faults] == ["$.authUrl"]
    assert endpoint_log(sb, "deleteAccount") == []
    assert account_in_state(sb, EMPTY_ACCOUNT) is not None


def test_a_token_404_is_never_account_not_found(sb, rig):
    sb.fail_next("token", status=404)
    error = expect(InvalidConfig, lambda: rig.execute("getAccount", {"accountId": str(ACCOUNT)}, sb.config))
    assert "does not exist" not in error.message and error.details["status"] == 404


@pytest.mark.parametrize("fault", [{"effect": "drop", "after": True}, {"status": 503, "after": True}])
def test_delete_404_after_an_attempt_of_unknown_outcome_is_outcome_unknown(sb, rig, fault):
    sb.fail_next("deleteAccount", **fault)
    error = expect(OutcomeUnknown, lambda: rig.execute("deleteAccount", {"accountId": str(EMPTY_ACCOUNT)}, sb.config))
    assert f"deleting account {EMPTY_ACCOUNT}" in error.message and error.details["accountId"] == EMPTY_ACCOUNT
    assert [r["status"] for r in endpoint_log(sb, "deleteAccount")] == [fault.get("status"), 404]
    assert account_in_state(sb, EMPTY_ACCOUNT) is None  # the first attempt did delete it


def test_upload_whose_answer_was_lost_is_resent_with_the_same_id(sb, rig):
    sb.fail_next("uploadEvents", effect="drop", after=True)
    result = rig.execute("uploadEventBatch", {"jsonBody": small_batch()}, sb.config)
    (request_id,) = result.output["sourceRequestIds"]
    uploads = endpoint_log(sb, "uploadEvents")
    assert [r["status"] for r in uploads] == [None, 202]
    assert [r["json"]["source_request_id"] for r in uploads] == [request_id, request_id]
    assert uploads[0]["body"] == uploads[1]["body"]  # byte for byte the same request
    state = sb.state()
    assert (state["batches_accepted"], state["duplicates_dropped"]) == (1, 1)
    assert [b["source_request_id"] for b in sb.batches] == [request_id]


def test_bulk_upload_whose_answer_was_lost_keeps_one_copy(sb, rig):
    batches = [small_batch() for _ in range(3)]
    sb.fail_next("uploadBulkEvents", effect="drop", after=True)
    result = rig.execute("uploadEventBatch", {"jsonBody": batches}, sb.config)
    assert result.output["status"] == "accepted" and result.output["acknowledged"]["count"] == 3
    state = sb.state()
    assert (state["batches_accepted"], state["duplicates_dropped"]) == (3, 3)
    assert [b["source_request_id"] for b in sb.batches] == result.output["sourceRequestIds"]


# --------------------------------------------------------------------------- tokens


def _seven(connection) -> None:
    created = connection.execute("createAccount", {"displayName": f"Token {uuid.uuid4().hex[:6]}"}).output["account"]
    connection.execute("getAccount", {"accountId": str(created["id"])})
    connection.execute("updateAccount", {"accountId": str(created["id"]), "updatedName": f"Token {uuid.uuid4().hex[:6]}"})
    connection.execute("getAudiences", {"accountId": str(ACCOUNT)})
    connection.execute("getCalculatedAttributes", {"workspace": str(WORKSPACE)})
    connection.execute("uploadEventBatch", {"jsonBody": small_batch()})
    connection.execute("deleteAccount", {"accountId": str(created["id"])})


def test_one_token_for_all_seven_capabilities_on_a_connection(sb, engine):
    with engine.connect(sb.config) as connection:
        _seven(connection)
        _seven(connection)
    state = sb.state()
    assert state["token_requests"] == 1 and state["tokens_issued"] == 1
    assert sum(state["requests_by_endpoint"].values()) == 1 + 2 * 7


def test_one_token_for_all_seven_capabilities_through_engine_execute(sb, engine):
    for capability in CAPABILITIES:
        make, check = HAPPY[capability]
        props = make()
        check(sb, engine.execute(capability, props, sb.config).output, props)
    # The checks fetch their own tokens with plain requests; count the connector's only.
    ours = [r for r in endpoint_log(sb, "token") if r["headers"]["user-agent"].startswith("connector-framework/")]
    assert len(ours) == 1


def test_one_token_across_threads(sb, engine):
    failures: list[BaseException] = []
    outputs: list[dict] = []
    barrier = threading.Barrier(8)
    with engine.connect(sb.config) as connection:

        def work() -> None:
            try:
                barrier.wait(5)
                for _ in range(5):
                    outputs.append(connection.execute("getAccount", {"accountId": str(ACCOUNT)}).output)
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not failures, failures
    assert len(outputs) == 40 and all(o["account"]["id"] == ACCOUNT for o in outputs)
    state = sb.state()
    assert state["token_requests"] == 1
    assert state["requests_by_endpoint"]["getAccount"] == 40


def test_one_token_across_threads_through_engine_execute(sb, engine):
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(4):
                engine.execute("getAudiences", {"accountId": str(ACCOUNT)}, dict(sb.config))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures, failures
    assert sb.state()["requests_by_endpoint"]["getAudiences"] == 32
    # Connections are cached by config and a token fetch is single-flight.
    assert sb.state()["token_requests"] == 1


def test_expired_token_is_replaced(sb, rig):
    with rig.connect(sb.config) as connection:
        connection.execute("getAccount", {"accountId": str(ACCOUNT)})
        connection.execute("getAccount", {"accountId": str(ACCOUNT)})
        assert sb.state()["token_requests"] == 1
        sb.advance_clock(TOKEN_LIFETIME + 1)
        CLOCK.advance(TOKEN_LIFETIME + 1)
        connection.execute("getAccount", {"accountId": str(ACCOUNT)})
    assert sb.state()["token_requests"] == 2
    # Refreshed before use: the sandbox never saw the expired token.
    assert [r["status"] for r in endpoint_log(sb, "getAccount")] == [200, 200, 200]


def test_token_refreshed_ahead_of_expiry(sb, rig):
    with rig.connect(sb.config) as connection:
        connection.execute("getAccount", {"accountId": str(ACCOUNT)})
        CLOCK.advance(TOKEN_LIFETIME - 30)  # inside the refresh margin
        connection.execute("getAccount", {"accountId": str(ACCOUNT)})
        CLOCK.advance(10)
        connection.execute("getAccount", {"accountId": str(ACCOUNT)})
    assert sb.state()["token_requests"] == 2


def test_token_expired_early_is_refreshed_once_on_401(sb, rig):
    with rig.connect(sb.config) as connection:
        connection.execute("getAccount", {"accountId": str(ACCOUNT)})
        sb.advance_clock(TOKEN_LIFETIME + 1)  # the service's clock only: the connector still trusts its token
        result = connection.execute("getAccount", {"accountId": str(ACCOUNT)})
    assert result.output["account"]["id"] == ACCOUNT
    assert [(r["endpoint"], r["status"]) for r in sb.requests] == [
        ("token", 200), ("getAccount", 200), ("getAccount", 401), ("token", 200), ("getAccount", 200),
    ]
    assert SLEEPS == []


def test_cached_connection_survives_a_revoked_token(sb, engine):
    engine.execute("getAccount", {"accountId": str(ACCOUNT)}, sb.config)
    sb.reset()  # every issued token is revoked
    assert engine.execute("getAccount", {"accountId": str(ACCOUNT)}, sb.config).output["account"]["id"] == ACCOUNT
    assert sb.state()["token_requests"] == 1


def test_a_401_that_persists_is_authentication_failed(sb, rig):
    sb.fail_next("getAccount", 3, status=401)
    error = expect(AuthenticationFailed, lambda: rig.execute("getAccount", {"accountId": str(ACCOUNT)}, sb.config))
    assert error.details["status"] == 401
    # One refresh of the token, then the host is told: no loop.
    assert [(r["endpoint"], r["status"]) for r in sb.requests] == [("token", 200), ("getAccount", 401), ("token", 200), ("getAccount", 401)]


# --------------------------------------------------------------------------- secrets


def test_secrets_stay_out_of_errors_and_logs(sb, rig, caplog):
    caplog.set_level("DEBUG")
    secret = "s3cr3t-" + uuid.uuid4().hex
    api_secret = "ap1-" + uuid.uuid4().hex
    errors = []
    for config, capability, props in [
        ({**sb.config, "clientSecret": secret}, "getAccount", {"accountId": "1001"}),
        ({**sb.config, "apiSecret": api_secret}, "uploadEventBatch", {"jsonBody": small_batch()}),
        ({**sb.config, "clientSecret": secret, "pod": secret}, "getAccount", {"accountId": "1001"}),
        ({**sb.config, "clientSecret": secret, "platformUrl": "http://evil.example/" + secret}, "getAccount", {"accountId": "1001"}),
    ]:
        with pytest.raises(ConnectorError) as caught:
            rig.execute(capability, props, config)
        errors.append(caught.value)
    # A secret of the wrong type: the schema's own message would quote the value.
    for wrong in (987654321, [secret]):
        with pytest.raises(InvalidConfig) as caught:
            rig.connect({**sb.config, "clientSecret": wrong})
        assert [f.path for f in caught.value.faults] == ["$.clientSecret"]
        assert "987654321" not in str(caught.value)
        errors.append(caught.value)
    # A token that was issued and then used in a failing call.
    sb.fail_next("getAccount", 4, status=500)
    with pytest.raises(UpstreamError) as caught:
        rig.execute("getAccount", {"accountId": "1001"}, sb.config)
    errors.append(caught.value)
    tokens = [json.loads(x["body"])["access_token"] for x in WIRE.exchanges if x["url"].endswith("/oauth/token") and x["status"] == 200]
    assert tokens
    text = "\n".join([json.dumps(e.to_dict(), default=str) + str(e) + repr(e) for e in errors] + [caplog.text])
    for value in [secret, api_secret, *tokens, base64.b64encode(f"us1-sandbox-api-key:{api_secret}".encode()).decode()]:
        assert value not in text
    assert "sandbox-client-secret" not in text and "sandbox-api-secret" not in text


def test_connection_repr_shows_no_secrets(sb, engine):
    with engine.connect(sb.config) as connection:
        connection.execute("getAccount", {"accountId": "1001"})
        shown = repr(connection) + repr(connection.auth("oauth")) + repr(connection.auth("basic")) + repr(connection.config)
    assert "BasicAuth(***)" in shown
    for value in ("sandbox-client-secret", "sandbox-api-secret", base64.b64encode(b"us1-sandbox-api-key:sandbox-api-secret").decode()):
        assert value not in shown.replace(repr(connection.config), "")
