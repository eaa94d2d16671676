"""Every call ends; tokens survive tenant churn; egress under the host policy, through the engine.

Loopback servers trickle (a byte at a time), hang (never answer) or hand tokens out and
count them. Timings are never asserted tightly here (``bench/bench_hosting.py`` measures
them); the bounds below only prove a call ended long before it otherwise would have.
"""

from __future__ import annotations

import threading
import time

import pytest
from httpserver import Answer, TestServer
from test_netguard import RawServer, trickle_body, trickle_headers

from connector_core import ConnectorError, Engine, HostPolicy, InvalidConfig, NetworkError, UpstreamError

SECRET = "calls-end-s3cret"


def mp_config(token_server: TestServer, platform_url: str | None = None, **changes) -> dict:
    config = {
        "clientID": "tenant",
        "clientSecret": SECRET,
        "authUrl": f"{token_server.url}/oauth/token",
        "platformUrl": platform_url or token_server.url,
        "maxRetries": 0,
    }
    config.update(changes)
    return config


@pytest.fixture
def tokens(server: TestServer) -> TestServer:
    server.route("POST", "/oauth/token", Answer(200, json={"access_token": "tok-calls-end", "expires_in": 3600}))
    return server


@pytest.mark.parametrize("script", [trickle_headers, trickle_body], ids=["slow-headers", "slow-body"])
def test_a_trickling_server_cannot_stretch_a_call(tokens, script):
    slow = RawServer(script)  # a minute of trickling, a byte every 0.25 s: well within the read timeout
    try:
        config = mp_config(tokens, f"http://127.0.0.1:{slow.port}", timeoutSeconds=1)
        started = time.monotonic()
        with Engine() as engine, pytest.raises(NetworkError) as caught:
            engine.execute("mparticle.getAccount", {"accountId": "1003"}, config)
        assert "timed out" in caught.value.message
        assert time.monotonic() - started < 30
    finally:
        slow.close()


def test_the_deadline_covers_backoff(tokens, sleeps):
    tokens.route("GET", "/v1/accounts/1003", Answer(503, json={"message": "busy"}, headers={"Retry-After": "5"}))
    config = mp_config(tokens, maxRetries=10, maxRetryWaitSeconds=600, deadlineSeconds=3)
    with Engine(sleep=sleeps) as engine, pytest.raises(UpstreamError):
        engine.execute("mparticle.getAccount", {"accountId": "1003"}, config)
    # A 5 s wait does not fit in a 3 s deadline: no wait, one attempt.
    assert sleeps == [] and len(tokens.requests_to("GET", "/v1/accounts/1003")) == 1


def test_the_waits_of_one_request_may_fill_the_wait_budget_exactly_and_no_more(tokens, sleeps):
    busy = lambda seconds: Answer(503, json={"message": "busy"}, headers={"Retry-After": str(seconds)})  # noqa: E731
    tokens.queue("GET", "/v1/accounts/1003", busy(2), busy(1), busy(1), Answer(200, json={"accountId": 1003}))
    config = mp_config(tokens, maxRetries=10, maxRetryWaitSeconds=3)
    with Engine(sleep=sleeps) as engine, pytest.raises(UpstreamError):
        engine.execute("mparticle.getAccount", {"accountId": "1003"}, config)
    # 2 s + 1 s is the whole budget of 3 s; one more second would exceed it: the third 503 ends the call.
    assert sleeps == [2.0, 1.0] and len(tokens.requests_to("GET", "/v1/accounts/1003")) == 3


def test_a_wait_that_overruns_the_deadline_ends_the_call_before_the_next_attempt(tokens):
    tokens.route("GET", "/v1/accounts/1003", Answer(503, json={"message": "busy"}, headers={"Retry-After": "0"}))
    config = mp_config(tokens, maxRetries=5, deadlineSeconds=0.3)
    # A timer that wakes late (a loaded host): the 0 s wait fits the deadline, the sleep outlasts it.
    with Engine(sleep=lambda seconds: time.sleep(seconds + 0.4)) as engine, pytest.raises(NetworkError) as caught:
        engine.execute("mparticle.getAccount", {"accountId": "1003"}, config)
    assert caught.value.code == "deadline_exceeded"
    assert caught.value.message == (
        f"GET {tokens.url}/v1/accounts/1003: the call's deadline passed before attempt 2; "
        "raise deadlineSeconds in the connection config or retry later"
    )
    assert len(tokens.requests_to("GET", "/v1/accounts/1003")) == 1


def test_the_deadline_covers_token_fetches(server):
    server.route("POST", "/oauth/token", Answer(200, json={"access_token": "late"}, delay=20))
    config = mp_config(server, timeoutSeconds=30, deadlineSeconds=1)
    started = time.monotonic()
    with Engine() as engine, pytest.raises(NetworkError) as caught:
        engine.execute("mparticle.getAccount", {"accountId": "1003"}, config)
    assert time.monotonic() - started < 15
    assert caught.value.code in ("network_error", "deadline_exceeded")


def test_threads_waiting_for_a_failing_token_fetch_share_its_failure(server):
    server.route("POST", "/oauth/token", Answer(200, json={"access_token": "never"}, delay=30))
    config = mp_config(server, timeoutSeconds=1, connectTimeoutSeconds=1)
    errors: list[ConnectorError] = []
    with Engine() as engine, engine.connect(config) as connection:

        def call() -> None:
            try:
                connection.execute("mparticle.getAccount", {"accountId": "1003"})
            except ConnectorError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=call) for _ in range(32)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert len(errors) == 32 and {e.category for e in errors} == {"network"}
    # One fetch for all 32 (single flight for failures too), so they ended together.
    assert len(server.requests_to("POST", "/oauth/token")) == 1
    assert time.monotonic() - started < 30


def test_tenants_taking_turns_make_one_token_request_each(server):
    # 100 tenants (6x the connection cache) here; bench/bench_hosting.py runs 1,000.
    server.route("POST", "/oauth/token", lambda r: Answer(200, json={"access_token": "tok-" + r.json()["client_id"], "expires_in": 3600}))
    server.route("GET", "/v1/accounts/1003", Answer(200, json={"data": {"id": 1003, "name": "Acme"}}))
    tenants = [mp_config(server, clientID=f"tenant-{i}", clientSecret=f"secret-of-tenant-{i}") for i in range(100)]
    with Engine() as engine:
        for _ in range(2):
            for config in tenants:
                engine.execute("mparticle.getAccount", {"accountId": "1003"}, config)
        assert len(engine.tokens) == 100
    assert len(server.requests_to("POST", "/oauth/token")) == 100
    assert len(server.requests_to("GET", "/v1/accounts/1003")) == 200


def test_untrusted_egress_refuses_loopback_and_relaxes_on_its_own(tokens):
    tokens.route("GET", "/v1/accounts/1003", Answer(200, json={"data": {"id": 1003, "name": "Acme"}}))
    config = mp_config(tokens)
    overrides_only = HostPolicy.untrusted(allow_url_overrides=True)
    with Engine(host_policy=overrides_only) as engine, pytest.raises(InvalidConfig) as caught:
        engine.execute("mparticle.getAccount", {"accountId": "1003"}, config)
    assert caught.value.code == "egress_refused" and caught.value.exit_code == 4
    assert "resolves to a loopback address, which this host does not allow" in caught.value.message
    assert tokens.requests == []  # refused before connecting: the secret went nowhere
    relaxed = HostPolicy.untrusted(allow_url_overrides=True, allow_loopback=True)
    with Engine(host_policy=relaxed) as engine:
        assert engine.execute("mparticle.getAccount", {"accountId": "1003"}, config).output["account"]["id"] == 1003


def test_every_resolved_address_is_checked_through_the_engine(tokens):
    tokens.route("GET", "/v1/accounts/1003", Answer(200, json={"data": {"id": 1003, "name": "Acme"}}))
    answers = {"tenant.localhost": ["127.0.0.1"], "rebind.localhost": ["127.0.0.1", "169.254.169.254"]}
    policy = HostPolicy.untrusted(allow_url_overrides=True, allow_loopback=True, resolver=lambda host, port: answers.get(host, [host]))
    with Engine(host_policy=policy) as engine:
        config = mp_config(tokens, platform_url=tokens.url.replace("127.0.0.1", "tenant.localhost"))
        assert engine.execute("mparticle.getAccount", {"accountId": "1003"}, config).output["account"]["id"] == 1003
        assert tokens.requests_to("GET", "/v1/accounts/1003")[0].headers["Host"].startswith("tenant.localhost:")
        rebind = mp_config(tokens, platform_url=tokens.url.replace("127.0.0.1", "rebind.localhost"))
        with pytest.raises(InvalidConfig) as caught:
            engine.execute("mparticle.getAccount", {"accountId": "1003"}, rebind)
        assert "rebind.localhost resolves to a link-local address" in caught.value.message
    assert len(tokens.requests_to("GET", "/v1/accounts/1003")) == 1
