"""The HTTP layer: retries, retry safety of writes, timeouts, redirects, URL safety, error mapping, auth, logs."""

from __future__ import annotations

import base64
import copy
import logging
import pickle
import random
import ssl

import pytest
import requests
from httpserver import Answer, TestServer, closed_port
from test_netguard import RawServer, quick_ok
from toy import API_SECRET, SECRET, TOY_CONNECTOR, BasicPing, token, token_issuer, toy_config, toy_pm

from connector_core import (
    AuthenticationFailed,
    Conflict,
    ConnectorError,
    Engine,
    HttpClient,
    InvalidConfig,
    InvalidInput,
    NetworkError,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    PluginError,
    RateLimited,
    RetryPolicy,
    UpstreamError,
)
from connector_core.http import (
    Transport,
    check_url,
    error_for_response,
    parse_retry_after,
    new_session,
    read_json,
)

TOKEN_PATH = "/oauth/token"


@pytest.fixture
def engine(sleeps):
    with Engine(toy_pm(), sleep=sleeps) as engine:
        yield engine


@pytest.fixture
def config(server):
    server.route("POST", TOKEN_PATH, token_issuer())
    return toy_config(server.url)


OK_ITEM = Answer(200, json={"id": "1"})


def unsafe_posts(server):
    return server.requests_to("POST", "/api/items")


# -- retries ---------------------------------------------------------------------------


def test_get_is_retried_on_server_errors_then_succeeds(engine, server, config, sleeps):
    server.queue("GET", "/api/items/1", Answer(503), Answer(502), Answer(500), Answer(504), OK_ITEM)
    result = engine.execute("toyGet", {"id": "1"}, dict(config, maxRetries=4))
    assert result.output == {"item": {"id": "1"}}
    # Five attempts at the item, plus the token request the call needed first.
    assert (result.retries, result.http_requests) == (4, 6)
    assert len(server.requests_to("GET", "/api/items/1")) == 5
    assert len(server.requests_to("POST", TOKEN_PATH)) == 1
    assert len(sleeps) == 4
    for attempt, wait in enumerate(sleeps):  # full jitter under an exponential ceiling
        assert 0 <= wait <= 0.5 * 2**attempt


def test_429_waits_for_retry_after(engine, server, config, sleeps):
    server.queue("GET", "/api/items/1", Answer(429, headers={"Retry-After": "2"}), OK_ITEM)
    result = engine.execute("toyGet", {"id": "1"}, config)
    assert sleeps == [2.0]
    assert result.retries == 1


def test_retry_after_beyond_the_cap_surfaces_the_rate_limit_at_once(engine, server, config, sleeps):
    server.route("GET", "/api/items/1", Answer(429, headers={"Retry-After": "120"}, json={"message": "slow down"}))
    with pytest.raises(RateLimited) as caught:
        engine.execute("toyGet", {"id": "1"}, dict(config, maxRetryWaitSeconds=30))
    error = caught.value
    assert error.details["retry_after"] == 120.0
    assert error.details["status"] == 429
    assert "retry after 120 s" in error.message
    assert sleeps == []
    assert len(server.requests_to("GET", "/api/items/1")) == 1


def test_retries_exhausted_raise_upstream_error_with_status_and_body(engine, server, config, sleeps):
    server.route("GET", "/api/items/1", Answer(503, body="maintenance window"))
    with pytest.raises(UpstreamError) as caught:
        engine.execute("toyGet", {"id": "1"}, dict(config, maxRetries=2))
    error = caught.value
    assert error.code == "server_error"
    assert error.details["status"] == 503
    assert error.details["body"] == "maintenance window"
    assert "maintenance window" in error.message
    assert len(server.requests_to("GET", "/api/items/1")) == 3
    assert len(sleeps) == 2


def test_total_wait_is_capped(engine, server, config, sleeps):
    server.route("GET", "/api/items/1", Answer(503, headers={"Retry-After": "4"}))
    with pytest.raises(UpstreamError):
        engine.execute("toyGet", {"id": "1"}, dict(config, maxRetries=10, maxRetryWaitSeconds=10))
    assert sleeps == [4.0, 4.0]  # a third wait would pass the 10 s cap
    assert len(server.requests_to("GET", "/api/items/1")) == 3


# -- writes that are not safe to repeat ------------------------------------------------


def test_unsafe_post_answered_503_is_outcome_unknown_and_not_repeated(engine, server, config, sleeps):
    server.route("POST", "/api/items", Answer(503))
    with pytest.raises(OutcomeUnknown) as caught:
        engine.execute("toyCreate", {"name": "a"}, config)
    assert caught.value.details["status"] == 503
    assert caught.value.exit_code == 11
    assert "check the remote state before repeating it" in caught.value.message
    assert len(unsafe_posts(server)) == 1
    assert sleeps == []


def test_unsafe_post_with_a_dropped_connection_is_outcome_unknown(engine, server, config):
    server.route("POST", "/api/items", Answer(drop=True))
    with pytest.raises(OutcomeUnknown, match="connection failed"):
        engine.execute("toyCreate", {"name": "a"}, config)
    assert len(unsafe_posts(server)) == 1


def test_unsafe_post_timing_out_is_outcome_unknown(engine, server, config):
    server.route("POST", "/api/items", Answer(201, json={"id": "1"}, delay=1.0))
    with pytest.raises(OutcomeUnknown, match="timed out"):
        engine.execute("toyCreate", {"name": "a"}, dict(config, timeoutSeconds=0.3))
    assert len(unsafe_posts(server)) == 1


def test_unsafe_post_throttled_with_429_is_repeated(engine, server, config, sleeps):
    # A 429 means the request was not processed, so repeating it cannot duplicate anything.
    server.queue("POST", "/api/items", Answer(429, headers={"Retry-After": "1"}), Answer(201, json={"id": "1"}))
    assert engine.execute("toyCreate", {"name": "a"}, config).output == {"item": {"id": "1"}}
    assert len(unsafe_posts(server)) == 2
    assert sleeps == [1.0]


def test_retry_safe_write_is_repeated(engine, server, config):
    server.queue("PUT", "/api/items/1", Answer(503), Answer(drop=True), OK_ITEM)
    result = engine.execute("toyPut", {"id": "1"}, config)
    assert result.output == {"item": {"id": "1"}}
    assert result.retries == 2
    assert len(server.requests_to("PUT", "/api/items/1")) == 3


def test_get_timing_out_is_retried_then_network_error(engine, server, config, sleeps):
    server.route("GET", "/api/items/2", Answer(200, json={}))
    engine.execute("toyGet", {"id": "2"}, config)  # the token, fetched without the short timeout (busy machines)
    server.route("GET", "/api/items/1", Answer(200, json={}, delay=1.0))
    with pytest.raises(NetworkError, match="timed out") as caught:
        engine.execute("toyGet", {"id": "1"}, dict(config, timeoutSeconds=0.3, maxRetries=1))
    assert caught.value.details["attempts"] == 2
    assert len(server.requests_to("GET", "/api/items/1")) == 2
    assert len(sleeps) == 1


def test_refused_connection_is_retried_even_for_unsafe_writes(engine, server, config, sleeps):
    # Nothing was sent, so repeating cannot duplicate the write.
    config = dict(config, apiUrl=f"http://127.0.0.1:{closed_port()}/api", maxRetries=2)
    with pytest.raises(NetworkError) as caught:
        engine.execute("toyCreate", {"name": "a"}, config)
    error = caught.value
    assert error.details["attempts"] == 3
    assert error.exit_code == 10
    assert len(sleeps) == 2
    assert unsafe_posts(server) == []


# -- redirects and where credentials go ------------------------------------------------


def test_redirects_are_not_followed(engine, server, config):
    with TestServer() as elsewhere:
        elsewhere.route("GET", "/stolen", OK_ITEM)
        server.route("GET", "/api/items/1", Answer(302, headers={"Location": f"{elsewhere.url}/stolen"}))
        with pytest.raises(UpstreamError) as caught:
            engine.execute("toyGet", {"id": "1"}, config)
        assert elsewhere.requests == []
    assert caught.value.code == "unexpected_redirect"
    assert caught.value.details["status"] == 302


def test_credentials_reach_the_endpoint_host(engine, server, config):
    server.route("GET", "/api/items/a%2Fb", OK_ITEM)
    engine.execute("toyGet", {"id": "a/b"}, config)  # path parameters are percent-encoded
    (request,) = server.requests_to("GET", "/api/items/a%2Fb")
    assert request.headers["Authorization"] == f"Bearer {token(1)}"
    assert request.headers["User-Agent"].startswith("connector-framework/")


@pytest.mark.parametrize("path", ["//evil.example/x", "http://evil.example/x", "https://evil.example/x", "relative", "/a//b"])
def test_paths_cannot_leave_the_endpoint(path):
    client = HttpClient(None, base_url="https://api.toy.example/v1", auth=None, retry_safe=True, stats=None, service="Toy")
    with pytest.raises(ValueError, match="path must be relative"):
        client.url(path)
    assert client.url("/items/{id}", {"id": "x y/z"}) == "https://api.toy.example/v1/items/x%20y%2Fz"


def test_a_plugin_trying_another_host_fails_before_sending(engine, server, config):
    with pytest.raises(PluginError, match="path must be relative"):
        engine.execute("toyFetch", {"path": "//evil.example/x"}, config)
    assert server.requests == []


@pytest.mark.parametrize("field", ["apiUrl", "tokenUrl", "basicUrl"])
def test_plain_http_to_a_remote_host_is_invalid_config(engine, field):
    config = toy_config("https://ok.toy.example", **{field: "http://api.toy.example"})
    with pytest.raises(InvalidConfig) as caught:
        engine.connect(config, connector="toy")
    (fault,) = caught.value.faults
    assert fault.path == f"$.{field}"
    assert "must use https://" in fault.message


@pytest.mark.parametrize("url", ["https://api.toy.example", "https://api.toy.example/v2/", "http://127.0.0.1:9", "http://localhost:8080/x", "http://[::1]:9"])
def test_https_and_loopback_http_are_accepted(url):
    assert check_url(url, "apiUrl") == url.rstrip("/")


@pytest.mark.parametrize(
    "url, problem",
    [
        ("ftp://api.toy.example", "absolute http(s) URL"),
        ("api.toy.example", "absolute http(s) URL"),
        ("https://user:pw@api.toy.example", "must not carry credentials"),
        ("https://api.toy.example/?key=1", "query or fragment"),
        ("http://10.0.0.1", "must use https://"),
    ],
)
def test_unsafe_urls_are_rejected(url, problem):
    with pytest.raises(InvalidConfig, match="apiUrl") as caught:
        check_url(url, "apiUrl")
    assert problem in caught.value.faults[0].message
    assert caught.value.faults[0].path == "$.apiUrl"


def test_a_url_with_a_user_name_alone_is_refused_as_carrying_credentials():
    # https://TOKEN@host sends TOKEN as a Basic user name to whoever answers.
    with pytest.raises(InvalidConfig) as caught:
        check_url("https://tok-7f3a9c@api.toy.example", "apiUrl")
    (fault,) = caught.value.faults
    assert (fault.path, fault.message) == ("$.apiUrl", "must not carry credentials; put them in their own config fields")


# -- error mapping ---------------------------------------------------------------------


@pytest.fixture
def client(server, sleeps):
    session = requests.Session()
    transport = Transport(session, policy=RetryPolicy(max_retries=0), timeout=(5, 5), sleep=sleeps)
    yield HttpClient(transport, base_url=server.url, auth=None, retry_safe=True, stats=None, service="Toy")
    session.close()


@pytest.mark.parametrize(
    "status, cls, code",
    [
        (400, InvalidInput, "rejected_by_service"),
        (401, AuthenticationFailed, "authentication_failed"),
        (403, PermissionDenied, "permission_denied"),
        (404, NotFound, "not_found"),
        (409, Conflict, "conflict"),
        (422, Conflict, "conflict"),
        (429, RateLimited, "rate_limited"),
        (500, UpstreamError, "server_error"),
        (502, UpstreamError, "server_error"),
        (503, UpstreamError, "server_error"),
        (418, UpstreamError, "client_error"),
        (301, UpstreamError, "unexpected_redirect"),
    ],
)
def test_status_codes_map_to_typed_errors(client, server, status, cls, code):
    server.route("GET", "/thing", Answer(status, json={"errors": [{"code": "E42", "message": "the service says no"}]}))
    with pytest.raises(cls) as caught:
        client.get("/thing")
    error = caught.value
    assert type(error) is cls
    assert error.code == code
    assert error.details["status"] == status
    assert "E42 the service says no" in error.message
    assert error.message.startswith(f"Toy answered {status} ")
    assert '"E42"' in error.details["body"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"error": "invalid_grant", "error_description": "expired"}, "expired"),
        ({"message": "plain message"}, "plain message"),
        ({"errors": ["first", "second"]}, "first; second"),
    ],
)
def test_upstream_messages_are_read_from_common_error_shapes(server, body, message):
    server.route("GET", "/x", Answer(400, json=body))
    response = requests.get(server.url + "/x", timeout=5)
    assert f"({message})" in error_for_response(response, "Toy").message


def test_a_non_json_error_body_is_quoted(client, server):
    server.route("GET", "/thing", Answer(404, body="<html>gone</html>"))
    with pytest.raises(NotFound, match="<html>gone</html>"):
        client.get("/thing")


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8", "text/plain; charset=no-such-charset", "application/octet-stream"])
def test_an_error_body_that_does_not_decode_is_still_quoted(client, server, content_type):
    server.route("GET", "/thing", Answer(500, body=b"bad \xff\xfe bytes", headers={"Content-Type": content_type}))
    with pytest.raises(UpstreamError) as caught:
        client.get("/thing")
    # Decoded as declared, or as guessed when the charset is unknown or missing (the guess is
    # the decoding library's); never an exception instead of the error.
    body = caught.value.details["body"]
    assert isinstance(body, str) and body.startswith("bad ") and body.endswith(" bytes") and len(body) <= 12


def test_every_2xx_answer_is_returned_and_300_is_an_error(client, server):
    server.route("GET", "/edge", Answer(299))
    assert client.get("/edge").status_code == 299
    server.route("GET", "/edge", Answer(300, body="pick one"))
    with pytest.raises(UpstreamError) as caught:
        client.get("/edge")
    assert caught.value.details["status"] == 300


def test_a_long_text_error_body_is_quoted_in_the_message_up_to_200_characters(client, server):
    server.route("GET", "/thing", Answer(404, body="x" * 199 + "yz" + "w" * 300))
    with pytest.raises(NotFound) as caught:
        client.get("/thing")
    assert "x" * 199 + "y" in caught.value.message and "yz" not in caught.value.message


def test_read_json_refuses_an_empty_body_unless_allowed(server):
    server.route("GET", "/empty", Answer(200))
    response = requests.get(server.url + "/empty", timeout=5)
    with pytest.raises(UpstreamError) as caught:
        read_json(response, "Toy")
    assert caught.value.code == "invalid_response"
    assert caught.value.message == "Toy answered 200 with a body that is not valid JSON; retry later"
    assert read_json(response, "Toy", allow_empty=True) is None


def test_successful_answers_are_returned(client, server):
    server.route("DELETE", "/thing", Answer(204))
    assert client.delete("/thing").status_code == 204


# -- retry policy ----------------------------------------------------------------------


def test_retry_after_as_an_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=lambda: 1445412480.0) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=lambda: 1445412600.0) == 0.0
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


class ScriptedRandom:
    """A random source to inject into ``RetryPolicy``: records each ``uniform(a, b)`` and
    answers the point ``fraction`` of the way from ``a`` to ``b``."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a + (b - a) * self.fraction


def test_the_backoff_ceiling_doubles_with_each_retry_up_to_max_backoff():
    rng = ScriptedRandom(1.0)
    policy = RetryPolicy(backoff=0.5, max_backoff=3.0, rng=rng)
    assert [policy.delay(attempt, None) for attempt in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert rng.calls == [(0, 0.5), (0, 1.0), (0, 2.0), (0, 3.0), (0, 3.0), (0, 3.0)]


def test_each_wait_is_the_random_draw_between_zero_and_its_ceiling():
    policy = RetryPolicy(backoff=1.0, max_backoff=8.0, rng=ScriptedRandom(0.25))
    assert [policy.delay(attempt, None) for attempt in range(4)] == [0.25, 0.5, 1.0, 2.0]


def test_waits_are_spread_over_the_whole_jitter_range():
    policy = RetryPolicy(backoff=1.0, max_backoff=8.0, rng=random.Random(20240611))
    waits = [policy.delay(2, None) for _ in range(400)]  # ceiling 4 s
    assert all(0 <= wait <= 4.0 for wait in waits)
    assert len(set(waits)) == 400  # random, not one fixed value
    assert min(waits) < 0.4 and max(waits) > 3.6  # from near zero to near the ceiling
    assert 1.6 < sum(waits) / len(waits) < 2.4  # centred on half the ceiling


def test_retry_after_replaces_the_random_wait():
    rng = ScriptedRandom(0.5)
    policy = RetryPolicy(backoff=1.0, max_backoff=5.0, rng=rng)
    assert policy.delay(3, 2.5) == 2.5
    assert policy.delay(0, -4.0) == 0.0  # a date in the past: retry at once
    assert rng.calls == []


def test_a_request_retried_three_times_waits_the_policy_s_growing_random_waits(server, sleeps):
    server.queue("GET", "/thing", Answer(503), Answer(502), Answer(500), Answer(200, json={}))
    policy = RetryPolicy(max_retries=3, backoff=0.5, max_backoff=8.0, rng=ScriptedRandom(0.5))
    with requests.Session() as session:
        transport = Transport(session, policy=policy, timeout=(5, 5), sleep=sleeps)
        response = transport.send("GET", f"{server.url}/thing", retry_safe=True)
    assert response.status_code == 200
    assert sleeps == [0.25, 0.5, 1.0]


def test_retry_policy_defaults_are_the_documented_ones():
    policy = RetryPolicy()
    assert (policy.max_retries, policy.backoff, policy.max_backoff, policy.max_total_wait) == (3, 0.5, 8.0, 30.0)
    assert policy.retry_statuses == {429, 500, 502, 503, 504}


def test_an_error_body_is_kept_up_to_2000_characters(client, server):
    server.route("GET", "/thing", Answer(500, body="x" * 1999 + "yz" + "w" * 3000))
    with pytest.raises(UpstreamError) as caught:
        client.get("/thing")
    assert caught.value.details["body"] == "x" * 1999 + "y..."


@pytest.mark.parametrize("answer", [{}, {"access_token": ""}, {"access_token": 5}], ids=["missing", "empty", "number"])
def test_a_token_answer_without_a_usable_access_token_is_an_invalid_response(engine, server, answer):
    server.route("POST", TOKEN_PATH, Answer(200, json=answer))
    with pytest.raises(UpstreamError) as caught:
        engine.execute("toyGet", {"id": "1"}, toy_config(server.url))
    error = caught.value
    assert (error.code, error.details["status"]) == ("invalid_response", 200)
    assert error.message == "the token endpoint answered without an access_token"
    assert server.requests_to("GET", "/api/items/1") == []


@pytest.mark.parametrize("expires_in", [None, "3600", -5, 0])
def test_a_token_without_a_usable_lifetime_is_kept_for_an_hour(server, sleeps, clock, expires_in):
    answer = {"access_token": "tok-lifetime", "token_type": "Bearer"}
    if expires_in is not None:
        answer["expires_in"] = expires_in
    server.route("POST", TOKEN_PATH, Answer(200, json=answer))
    server.route("GET", "/api/items/1", OK_ITEM)
    with Engine(toy_pm(), sleep=sleeps, clock=clock) as engine:
        config = toy_config(server.url)
        engine.execute("toyGet", {"id": "1"}, config)
        clock.advance(3539)  # an hour less the 60 s refresh margin, less one second
        engine.execute("toyGet", {"id": "1"}, config)
        assert len(server.requests_to("POST", TOKEN_PATH)) == 1
        clock.advance(2)
        engine.execute("toyGet", {"id": "1"}, config)
    assert len(server.requests_to("POST", TOKEN_PATH)) == 2


def test_logs_number_the_attempts_of_a_failing_connection(engine, server, config, caplog):
    config = dict(config, apiUrl=f"http://127.0.0.1:{closed_port()}/api", maxRetries=1)
    with caplog.at_level(logging.INFO, logger="connector_core.http"):
        with pytest.raises(NetworkError):
            engine.execute("toyGet", {"id": "1"}, config)
    attempts = [r.getMessage() for r in caplog.records if "/api/items/1 -> " in r.getMessage() and " after " in r.getMessage()]
    assert [m.rsplit("(", 1)[1] for m in attempts] == ["attempt 1)", "attempt 2)"]


# -- Basic auth ------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_uses_the_first_field_pair_when_set(engine, server, config):
    server.route("GET", "/basic/ping", Answer(200))
    engine.execute("toyBasicPing", {}, dict(config, apiKey="key-1", apiSecret=API_SECRET))
    assert server.requests_to("GET", "/basic/ping")[0].headers["Authorization"] == basic("key-1", API_SECRET)


def test_basic_auth_falls_back_to_the_second_field_pair(engine, server, config):
    server.route("GET", "/basic/ping", Answer(200))
    assert engine.execute("toyBasicPing", {}, config).output == {"status": 200}
    assert server.requests_to("GET", "/basic/ping")[0].headers["Authorization"] == basic("toy-client", SECRET)
    assert server.requests_to("POST", TOKEN_PATH) == []  # the Basic endpoint needs no token


def test_basic_auth_key_without_its_secret_is_invalid_config(engine, server, config):
    with pytest.raises(InvalidConfig) as caught:
        engine.execute("toyBasicPing", {}, dict(config, apiKey="key-1"))
    assert [f.path for f in caught.value.faults] == ["$.apiSecret"]
    assert server.requests == []


def test_basic_auth_without_any_username_names_the_field_and_the_scheme(server):
    single = copy.deepcopy(TOY_CONNECTOR)
    single["auth"]["basic"] = {"type": "basic", "usernameFields": ["apiKey"], "passwordFields": ["apiSecret"]}

    class SinglePairPing(BasicPing):
        CONNECTOR_MANIFEST = single

    with Engine(toy_pm(SinglePairPing())) as engine, pytest.raises(InvalidConfig) as caught:
        engine.execute("toyBasicPing", {}, toy_config(server.url))
    assert caught.value.message == "config field 'apiKey' is required (basic authentication)"
    assert [(f.path, f.message) for f in caught.value.faults] == [("$.apiKey", "is required (basic authentication)")]
    assert server.requests == []


# -- TLS ---------------------------------------------------------------------------------


def test_a_connection_session_verifies_certificates_against_the_system_store_or_the_bundle_the_environment_names(tmp_path, monkeypatch):
    trustme = pytest.importorskip("trustme", reason="trustme (a test dependency) makes the test certificates")
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(context)
    server = RawServer(quick_ok, tls=context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    url = f"https://localhost:{server.port}/"
    try:
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.delenv(name, raising=False)
        # No bundle named: the system's store, which does not know this test CA.
        with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            new_session().get(url, timeout=(2, 2))
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.setenv(name, str(bundle))
            assert new_session().get(url, timeout=(2, 2)).text == "ok"
            monkeypatch.delenv(name)
    finally:
        server.close()


# -- logging ---------------------------------------------------------------------------


def test_verbose_logs_name_method_url_and_status_and_no_secret(engine, server, config, caplog):
    server.queue("GET", "/api/items/1", Answer(503), OK_ITEM)
    with caplog.at_level(logging.INFO, logger="connector_core"):
        engine.execute("toyGet", {"id": "1"}, config)
    text = caplog.text
    assert f"POST {server.url}/oauth/token -> 200" in text
    assert f"GET {server.url}/api/items/1 -> 503" in text
    assert f"GET {server.url}/api/items/1 -> 200" in text
    assert "retry 1 of 3" in text
    assert "toyGet done" in text
    for secret in (SECRET, token(1)):
        assert secret not in text


def test_errors_are_picklable_for_process_pools():
    error = RateLimited("slow down", retry_after=3.0, status=429)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is RateLimited and clone.details == error.details and clone.message == "slow down"
    assert isinstance(clone, ConnectorError)


@pytest.mark.parametrize(("status", "outcome"), [
    (199, "not_executed"), (200, "executed"), (299, "executed"), (300, "unknown"), (399, "unknown"),
    (400, "not_executed"), (429, "not_executed"), (499, "not_executed"), (500, "unknown"), (599, "unknown"),
])
def test_what_an_answered_attempt_did_follows_its_status_class(status, outcome):
    from connector_core.http import Attempt

    assert Attempt("POST", "https://api.example/x", "answered", status=status).outcome == outcome


def test_an_attempt_without_an_answer_may_have_taken_effect_unless_it_was_never_sent():
    from connector_core.http import Attempt

    assert Attempt("POST", "https://api.example/x", "answer_lost").outcome == "unknown"
    assert Attempt("POST", "https://api.example/x", "answer_lost", status=200).outcome == "unknown"
    assert Attempt("POST", "https://api.example/x", "not_sent").outcome == "not_executed"


@pytest.mark.parametrize(("status", "code"), [
    (300, "unexpected_redirect"), (399, "unexpected_redirect"), (418, "client_error"), (499, "client_error"),
    (500, "server_error"), (599, "server_error"),
])
def test_an_unlisted_status_is_typed_by_its_class(server, status, code):
    server.route("GET", "/x", Answer(status, json={"message": "nope"}))
    response = requests.get(server.url + "/x", allow_redirects=False, timeout=5)
    assert error_for_response(response).code == code


def test_an_attempt_is_an_ordinary_request_unless_marked_as_a_credentials_fetch():
    from connector_core.http import Attempt

    assert Attempt("GET", "https://api.example/x", "answered", status=200).credentials is False


def test_a_url_python_cannot_split_is_refused_as_not_absolute():
    with pytest.raises(InvalidConfig) as caught:
        check_url("https://[::1/x", "apiUrl")
    assert "must be an absolute http(s) URL" in str(caught.value)


def test_retry_policies_with_the_same_settings_are_equal_whatever_their_random_generator():
    from connector_core.http import RetryPolicy

    assert RetryPolicy() == RetryPolicy()
    assert RetryPolicy(max_total_wait=5.0) != RetryPolicy()
