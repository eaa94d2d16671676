"""The named steps of the retry loop, the attempt records and credential errors.

``classify`` is fed real failures from a loopback server (refused, timed out, dropped,
answered); ``may_repeat`` and ``RetryPolicy.next_wait`` are checked case by case; the
records a capability reads (``ctx.attempts``) are checked through the engine; and errors
of a credentials request are shown never to be about the request's resource, for the
built-in OAuth2 scheme and for a plugin's scheme that maps its token answer carelessly.
"""

from __future__ import annotations

import copy
import random

import pytest
import requests
from httpserver import Answer, closed_port
from toy import TOY_CONNECTOR, Capability, capability_manifest, token_issuer, toy_config, toy_pm

from connector_core import Engine, InvalidConfig, NetworkError, NotFound, OutcomeUnknown, RetryPolicy, hookimpl
from connector_core.auth import Auth, AuthScheme, credential_key
from connector_core.http import (
    ANSWER_LOST,
    ANSWERED,
    EXECUTED,
    NOT_EXECUTED,
    NOT_SENT,
    UNKNOWN,
    Attempt,
    CallStats,
    Transport,
    classify,
    error_for_response,
    may_repeat,
)

# -- step 1: classify -------------------------------------------------------------------


def exchange(url: str, read_timeout: float = 5.0):
    with requests.Session() as session:
        try:
            return session.get(url, timeout=(5.0, read_timeout))
        except requests.RequestException as exc:
            return exc


def test_a_refused_connection_was_not_sent():
    attempt = classify("POST", "u", exchange(f"http://127.0.0.1:{closed_port()}/x"))
    assert (attempt.phase, attempt.failure, attempt.status, attempt.outcome) == (NOT_SENT, "connection failed", None, NOT_EXECUTED)


def test_a_read_timeout_lost_the_answer(server):
    server.route("GET", "/slow", Answer(200, delay=1.0))
    attempt = classify("POST", "u", exchange(server.url + "/slow", read_timeout=0.2))
    assert (attempt.phase, attempt.failure, attempt.outcome) == (ANSWER_LOST, "timed out", UNKNOWN)


def test_a_dropped_connection_lost_the_answer(server):
    server.route("GET", "/drop", Answer(drop=True))
    attempt = classify("POST", "u", exchange(server.url + "/drop"))
    assert (attempt.phase, attempt.failure, attempt.outcome) == (ANSWER_LOST, "connection failed", UNKNOWN)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, EXECUTED), (201, EXECUTED), (202, EXECUTED), (204, EXECUTED), (302, UNKNOWN), (400, NOT_EXECUTED),
     (401, NOT_EXECUTED), (404, NOT_EXECUTED), (409, NOT_EXECUTED), (429, NOT_EXECUTED), (500, UNKNOWN), (503, UNKNOWN)],
)
def test_an_answer_is_classified_by_its_status(server, status, outcome):
    server.route("GET", "/s", Answer(status))
    attempt = classify("DELETE", "u", exchange(server.url + "/s"))
    assert (attempt.phase, attempt.status, attempt.failure, attempt.outcome) == (ANSWERED, status, None, outcome)


# -- step 2: may_repeat -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "unsafe_write", "safe"),
    [
        (Attempt("POST", "u", NOT_SENT, failure="connection failed"), True, True),
        (Attempt("POST", "u", ANSWERED, 429), True, True),
        (Attempt("POST", "u", ANSWER_LOST, failure="timed out"), False, True),
        (Attempt("POST", "u", ANSWER_LOST, failure="connection failed"), False, True),
        (Attempt("POST", "u", ANSWERED, 503), False, True),
        (Attempt("POST", "u", ANSWERED, 500), False, True),
    ],
)
def test_may_repeat_an_unsafe_write_only_when_it_certainly_did_not_execute(attempt, unsafe_write, safe):
    assert may_repeat(attempt, retry_safe=False) is unsafe_write
    assert may_repeat(attempt, retry_safe=True) is safe


# -- step 3: next_wait --------------------------------------------------------------------


def test_next_wait_backs_off_with_jitter_until_the_retries_are_spent():
    policy = RetryPolicy(max_retries=3, backoff=1.0, max_backoff=3.0, max_total_wait=100, rng=random.Random(1))
    waits = [policy.next_wait(n, 0.0, None) for n in range(4)]
    assert waits[3] is None
    for n, wait in enumerate(waits[:3]):
        assert 0 <= wait <= min(3.0, 2**n)


def test_next_wait_takes_retry_after_and_keeps_the_total_under_the_cap():
    policy = RetryPolicy(max_retries=5, max_total_wait=10.0)
    assert policy.next_wait(0, 0.0, 4.0) == 4.0
    assert policy.next_wait(1, 6.0, 4.0) == 4.0  # exactly at the cap
    assert policy.next_wait(1, 6.5, 4.0) is None  # would exceed it
    assert policy.next_wait(0, 0.0, 11.0) is None  # a Retry-After beyond the cap ends the retries


# -- step 4: records ----------------------------------------------------------------------


def transport(sleeps, **policy):
    return Transport(requests.Session(), policy=RetryPolicy(**policy), timeout=(5, 0.3), sleep=sleeps)


def test_every_attempt_of_a_request_is_recorded(server, sleeps):
    server.queue("GET", "/r", Answer(503), Answer(drop=True), Answer(200, delay=1.0), Answer(200, json={}))
    stats = CallStats()
    response = transport(sleeps).send("GET", server.url + "/r", retry_safe=True, stats=stats)
    assert response.status_code == 200
    assert [(a.phase, a.status, a.failure, a.outcome) for a in stats.attempts] == [
        (ANSWERED, 503, None, UNKNOWN),
        (ANSWER_LOST, None, "connection failed", UNKNOWN),
        (ANSWER_LOST, None, "timed out", UNKNOWN),
        (ANSWERED, 200, None, EXECUTED),
    ]
    assert (stats.requests, stats.retries, len(sleeps)) == (4, 3, 3)


def test_the_records_survive_a_give_up_and_an_outcome_unknown(server, sleeps):
    url = f"http://127.0.0.1:{closed_port()}/x"
    stats = CallStats()
    with pytest.raises(NetworkError):
        transport(sleeps, max_retries=2).send("POST", url, retry_safe=False, stats=stats)
    assert [(a.method, a.phase, a.outcome) for a in stats.attempts] == [("POST", NOT_SENT, NOT_EXECUTED)] * 3

    server.queue("POST", "/w", Answer(429), Answer(502))
    stats = CallStats()
    with pytest.raises(OutcomeUnknown):
        transport(sleeps).send("POST", server.url + "/w", retry_safe=False, stats=stats)
    assert [(a.status, a.outcome) for a in stats.attempts] == [(429, NOT_EXECUTED), (502, UNKNOWN)]


class Attempts(Capability):
    """Deletes an item and returns what ``ctx.attempts`` says about the call."""

    MANIFEST = capability_manifest("toyAttempts", effect="delete", endpoints=["api"])

    @hookimpl
    def execute(self, ctx, properties):
        try:
            ctx.http("api").delete("/items/1")
        except NotFound:
            pass
        return {"attempts": [[a.method, a.url.rsplit("/", 2)[-2:], a.status, a.outcome, a.credentials] for a in ctx.attempts]}


def test_a_capability_reads_every_attempt_including_the_token_requests(server, sleeps):
    server.queue("POST", "/oauth/token", Answer(503))
    server.route("POST", "/oauth/token", token_issuer())
    server.queue("DELETE", "/api/items/1", Answer(429), Answer(500), Answer(404))
    with Engine(toy_pm(Attempts()), sleep=sleeps) as engine:
        output = engine.execute("toyAttempts", {}, toy_config(server.url)).output
    assert output["attempts"] == [
        ["POST", ["oauth", "token"], 503, UNKNOWN, True],
        ["POST", ["oauth", "token"], 200, EXECUTED, True],
        ["DELETE", ["items", "1"], 429, NOT_EXECUTED, False],
        ["DELETE", ["items", "1"], 500, UNKNOWN, False],
        ["DELETE", ["items", "1"], 404, NOT_EXECUTED, False],
    ]


# -- credential errors are never about the resource -------------------------------------------


def test_a_token_endpoint_404_is_invalid_config_naming_the_token_url(server, sleeps):
    server.route("POST", "/oauth/token", Answer(404, json={"message": "no such route"}))
    server.route("GET", "/api/items/1", Answer(200, json={}))
    with Engine(toy_pm(), sleep=sleeps) as engine, pytest.raises(InvalidConfig) as caught:
        engine.execute("toyGet", {"id": "1"}, toy_config(server.url))
    error = caught.value
    assert error.code == "invalid_config" and error.details["status"] == 404
    assert "token endpoint" in error.message and "'tokenUrl'" in error.message
    assert [f.path for f in error.faults] == ["$.tokenUrl"]
    assert server.requests_to("GET", "/api/items/1") == []


class CarelessToken(Auth):
    """A plugin's token auth that maps its token endpoint's answer with the generic table."""

    def __init__(self, env):
        self._env = env

    @property
    def credential_key(self):
        return credential_key("careless", "x")

    def signer(self, stats):
        response = self._env.send("POST", self._env.config["tokenUrl"], retry_safe=True, stats=stats)
        if response.status_code != 200:
            raise error_for_response(response, "the token endpoint")  # a 404 would be NotFound
        return self

    def __call__(self, request):
        request.headers["Authorization"] = "Token x"
        return request


class CarelessScheme(AuthScheme):
    type = "careless_token"

    def build(self, spec, env):
        return CarelessToken(env)


class CarelessPlugin:
    @hookimpl
    def register_auth_schemes(self, register):
        register(CarelessScheme())


class CarelessGet(Capability):
    CONNECTOR_MANIFEST = copy.deepcopy(TOY_CONNECTOR)
    CONNECTOR_MANIFEST["id"] = "careless"
    CONNECTOR_MANIFEST["auth"]["oauth"] = {"type": "careless_token"}
    MANIFEST = capability_manifest("carelessGet", connector="careless", endpoints=["api"])

    @hookimpl
    def execute(self, ctx, properties):
        ctx.http("api").get("/items/1")
        return {}


def test_any_schemes_credential_error_is_never_a_not_found_of_the_resource(server, sleeps):
    server.route("POST", "/oauth/token", Answer(404))
    with Engine(toy_pm(CarelessGet(), extensions=[("careless", CarelessPlugin())]), sleep=sleeps) as engine:
        with pytest.raises(InvalidConfig) as caught:
            engine.execute("carelessGet", {}, toy_config(server.url))
    assert "obtaining the credentials" in caught.value.message and caught.value.details["status"] == 404
    assert server.requests_to("GET", "/api/items/1") == []
