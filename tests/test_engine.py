"""The engine: config and input validation, secrets, plugin failures, results, connections, tokens."""

from __future__ import annotations

import json
import logging
import threading

import attrs
import pytest
import requests
from httpserver import Answer
from toy import (
    SECRET,
    TOY_CONNECTOR,
    Capability,
    Crash,
    Echo,
    Get,
    Shout,
    capability_manifest,
    token,
    token_issuer,
    toy_config,
    toy_pm,
    variant,
)

from connector_core import (
    AuthenticationFailed,
    ConnectorError,
    Engine,
    InvalidConfig,
    InvalidInput,
    PluginError,
    Result,
    declare_connector,
    hookimpl,
)

TOKEN_PATH = "/oauth/token"


@pytest.fixture
def engine(sleeps, clock):
    with Engine(toy_pm(), sleep=sleeps, clock=clock) as engine:
        yield engine


@pytest.fixture
def config(server):
    server.route("POST", TOKEN_PATH, token_issuer())
    return toy_config(server.url)


def item(request):
    return Answer(200, json={"id": request.path.rsplit("/", 1)[-1]})


def assert_no_secret(error: ConnectorError, *secrets: str) -> None:
    """No secret in any view of the error a host could print, log or send."""
    views = [str(error), repr(error), json.dumps(error.to_dict(), default=str), error.message]
    views += [str(f) for f in error.faults]
    views.append(str(getattr(error, "plugin_traceback", "")))
    for secret in secrets:
        for view in views:
            assert secret not in view


# -- config validation -----------------------------------------------------------------


def test_every_config_fault_is_reported_with_its_path(engine):
    config = {"clientSecret": 42, "maxRetries": -1, "region": "Europe", "clientSecrte": "x"}
    with pytest.raises(InvalidConfig) as caught:
        engine.execute("toyEcho", {"name": "a"}, config)
    error = caught.value
    assert [f.path for f in error.faults] == ["$.clientId", "$.clientSecret", "$.clientSecrte", "$.maxRetries", "$.region"]
    messages = {f.path: f.message for f in error.faults}
    assert messages["$.clientId"] == "is required"
    assert "did you mean 'clientSecret'?" in messages["$.clientSecrte"]
    assert messages["$.region"] == "must be a two-letter region such as eu"
    assert error.exit_code == 4 and error.category == "config"


def test_secret_in_a_config_field_that_fails_validation_is_masked(engine, caplog):
    too_long = SECRET * 3  # breaks maxLength, and jsonschema quotes the value
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(InvalidConfig) as caught:
            engine.execute("toyEcho", {"name": "a"}, {"clientId": "c", "clientSecret": too_long})
    error = caught.value
    assert [f.path for f in error.faults] == ["$.clientSecret"]
    assert "***" in error.faults[0].message
    assert_no_secret(error, too_long, SECRET)
    assert SECRET not in caplog.text


def test_config_must_be_an_object(engine):
    with pytest.raises(InvalidConfig, match="must be a JSON object"):
        engine.execute("toyEcho", {"name": "a"}, ["not", "an", "object"])


def test_required_config_of_a_capability_is_required_only_for_it(engine):
    config = {"clientId": "c", "clientSecret": "sec-Xy8-value"}
    assert engine.execute("toyEcho", {"name": "a"}, config).output == {"echo": {"name": "a"}}
    with pytest.raises(InvalidConfig) as caught:
        engine.execute("toyNeedsAccount", {}, config)
    assert [(f.path, f.message) for f in caught.value.faults] == [("$.accountId", "is required by toyNeedsAccount")]
    assert engine.execute("toyNeedsAccount", {}, dict(config, accountId=7)).output == {"accountId": 7}


def test_env_references_in_config_are_resolved(engine, server, config, monkeypatch):
    monkeypatch.setenv("TOY_CLIENT_SECRET", SECRET)
    server.route("GET", "/api/items/1", item)
    config["clientSecret"] = {"$env": "TOY_CLIENT_SECRET"}
    config["clientId"] = {"$env": "TOY_CLIENT_ID_UNSET", "default": "fallback-id"}
    assert engine.execute("toyGet", {"id": "1"}, config).output == {"item": {"id": "1"}}
    (token_request,) = server.requests_to("POST", TOKEN_PATH)
    assert token_request.json()["client_secret"] == SECRET
    assert token_request.json()["client_id"] == "fallback-id"


def test_env_references_are_resolved_by_connect_too(engine, monkeypatch):
    monkeypatch.setenv("TOY_CLIENT_SECRET", SECRET)
    with engine.connect({"clientId": "c", "clientSecret": {"$env": "TOY_CLIENT_SECRET"}}) as connection:
        assert connection.config["clientSecret"] == SECRET
        with pytest.raises(InvalidInput) as caught:  # and the resolved value is known to be secret
            connection.execute("toyEcho", {"name": SECRET, "count": SECRET})
    assert_no_secret(caught.value, SECRET)


def test_missing_env_variable_is_a_config_fault_at_its_path(engine, monkeypatch):
    monkeypatch.delenv("TOY_MISSING", raising=False)
    with pytest.raises(InvalidConfig) as caught:
        engine.execute("toyEcho", {"name": "a"}, {"clientId": "c", "clientSecret": {"$env": "TOY_MISSING"}})
    (fault,) = caught.value.faults
    assert fault.path == "$.clientSecret"
    assert "TOY_MISSING is not set" in fault.message



def test_every_missing_env_variable_is_reported_at_once(engine, monkeypatch):
    for name in ("TOY_MISSING_ID", "TOY_MISSING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    config = {"clientId": {"$env": "TOY_MISSING_ID"}, "clientSecret": {"$env": "TOY_MISSING_SECRET"}}
    with pytest.raises(InvalidConfig) as caught:
        engine.execute("toyEcho", {"name": "a"}, config)
    assert [(f.path, f.message.split(";")[0]) for f in caught.value.faults] == [
        ("$.clientId", "environment variable TOY_MISSING_ID is not set"),
        ("$.clientSecret", "environment variable TOY_MISSING_SECRET is not set"),
    ]
    assert "TOY_MISSING_ID, TOY_MISSING_SECRET" in caught.value.message
    # A malformed reference is reported beside the unset ones.
    with pytest.raises(InvalidConfig) as caught:
        engine.execute("toyEcho", {"name": "a"}, {**config, "clientId": {"$env": ""}})
    assert [f.path for f in caught.value.faults] == ["$.clientId", "$.clientSecret"]

# -- input validation ------------------------------------------------------------------


def test_invalid_input_reports_every_fault_sorted_by_path(engine):
    echo_input = {"count": -1, "tags": [1, "ok", 2], "extra": True}
    with pytest.raises(InvalidInput) as caught:
        engine.execute("toyEcho", echo_input, {"clientId": "c", "clientSecret": "sec-Xy8-value"})
    error = caught.value
    assert [f.path for f in error.faults] == ["$.count", "$.extra", "$.name", "$.tags[0]", "$.tags[2]"]
    assert error.code == "invalid_input" and error.exit_code == 3
    assert "(5 problem(s))" in error.message


def test_secret_echoed_in_input_faults_is_masked(engine):
    with pytest.raises(InvalidInput) as caught:
        engine.execute("toyEcho", {"name": "a", "count": SECRET}, {"clientId": "c", "clientSecret": SECRET})
    assert "***" in caught.value.faults[0].message
    assert_no_secret(caught.value, SECRET)


class Rows(Capability):
    """Checks its ``rows`` as JSON data in its own pass (``checksInputData``): a list of ints it
    vouches for; anything else it leaves to ``ctx.check_input_data()``."""

    MANIFEST = capability_manifest(
        "toyRows",
        input_schema={"type": "object", "required": ["rows"], "additionalProperties": False,
                      "properties": {"rows": {"type": "array"}, "label": {"type": "string"}}},
        output_schema={"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}},
        checksInputData=["rows"],
    )

    @hookimpl
    def execute(self, ctx, properties):
        self.record(properties)
        if not all(type(row) is int for row in properties["rows"]):
            ctx.check_input_data()
        return {"count": len(properties["rows"])}


class CheckedWhole(Capability):
    """``toyRows`` as the engine checks it whole (no ``checksInputData``), calling
    ``ctx.check_input_data()`` all the same."""

    MANIFEST = variant(Rows.MANIFEST, id="toyWhole", checksInputData=[])

    @hookimpl
    def execute(self, ctx, properties):
        self.record(properties)
        ctx.check_input_data()
        return {"count": len(properties["rows"])}


class UniqueRows(Rows):
    """``toyRows`` whose schema looks into its rows (``uniqueItems`` compares them)."""

    MANIFEST = variant(Rows.MANIFEST, id="toyUnique", inputSchema={
        "type": "object", "required": ["rows"], "properties": {"rows": {"type": "array", "uniqueItems": True}}})


class Incomparable:
    def __eq__(self, other):
        raise TypeError("cannot be compared")

    __hash__ = object.__hash__


ROWS_CONFIG = {"clientId": "c", "clientSecret": "sec-Xy8-value"}


@pytest.fixture
def rows_engine(sleeps, clock):
    rows, whole, unique = Rows(), CheckedWhole(), UniqueRows()
    with Engine(toy_pm(rows, whole, unique), sleep=sleeps, clock=clock) as engine:
        yield engine, rows, whole


def _input_error(engine, capability_id: str, properties: dict) -> dict:
    with pytest.raises(InvalidInput) as caught:
        engine.execute(capability_id, properties, ROWS_CONFIG)
    error = caught.value.to_dict()
    error["message"] = error["message"].replace(capability_id, "CAPABILITY")
    return error


def test_a_property_the_capability_checks_itself_reaches_it_and_fails_as_if_the_engine_had_checked_it(rows_engine):
    engine, rows, whole = rows_engine
    properties = {"rows": [1, 2, {3}], "label": "x"}
    error = _input_error(engine, "toyRows", properties)
    assert len(rows.calls) == 1, "the listed property is the capability's to check: it ran"
    assert error["faults"] == [{"path": "$.rows[2]", "message": "is a set, which is not JSON data"}]
    assert error["message"] == "invalid input for CAPABILITY (1 problem(s))"
    assert error == _input_error(engine, "toyWhole", properties), "the same error as the engine's own check"
    assert whole.calls == [], "the engine refused it before the call"


def test_properties_the_capability_does_not_list_are_checked_before_the_call(rows_engine):
    engine, rows, _ = rows_engine
    error = _input_error(engine, "toyRows", {"rows": [1], "label": float("nan")})
    assert rows.calls == []
    assert error["faults"] == [{"path": "$.label", "message": "must be a finite number (NaN and Infinity are not JSON)"}]


def test_a_schema_fault_is_still_found_when_the_data_is_left_to_the_capability(rows_engine):
    engine, rows, _ = rows_engine
    error = _input_error(engine, "toyRows", {"rows": [1], "label": 7})
    assert rows.calls == []
    assert error["faults"] == [{"path": "$.label", "message": "7 is not of type 'string'"}]


def test_with_a_schema_fault_the_data_faults_of_the_listed_properties_come_first(rows_engine):
    engine, rows, _ = rows_engine
    properties = {"rows": [1, {3}], "label": 7}
    error = _input_error(engine, "toyRows", properties)
    assert rows.calls == []
    assert error["faults"] == [{"path": "$.rows[1]", "message": "is a set, which is not JSON data"}]
    assert error == _input_error(engine, "toyWhole", properties)


def test_input_that_is_not_an_object_is_refused_by_the_schema_when_the_capability_checks_its_data(rows_engine):
    engine, rows, _ = rows_engine
    for properties in ([{"rows": [1]}], "rows"):
        error = _input_error(engine, "toyRows", properties)
        assert error["code"] == "invalid_input" and [f["path"] for f in error["faults"]] == ["$"]
        assert "is not of type 'object'" in error["faults"][0]["message"]
    assert rows.calls == []


def test_a_schema_that_looks_into_a_listed_property_cannot_crash_on_what_is_not_json_data(rows_engine):
    # The engine has not checked rows when the schema compares them: an item whose == raises
    # is refused as not JSON data, as the engine's own check would, never a TypeError.
    engine, _, _ = rows_engine
    error = _input_error(engine, "toyUnique", {"rows": [Incomparable(), Incomparable()]})
    assert [f["path"] for f in error["faults"]] == ["$.rows[0]", "$.rows[1]"]
    assert all(f["message"] == "is a Incomparable, which is not JSON data" for f in error["faults"])
    assert engine.execute("toyUnique", {"rows": [1, 2]}, ROWS_CONFIG).output == {"count": 2}


def test_check_input_data_returns_for_json_data_and_for_a_capability_checked_whole(rows_engine):
    engine, rows, whole = rows_engine
    assert engine.execute("toyRows", {"rows": [1, "two", [3.5]]}, ROWS_CONFIG).output == {"count": 3}
    assert engine.execute("toyWhole", {"rows": [1, "two"]}, ROWS_CONFIG).output == {"count": 2}
    assert len(rows.calls) == 1 and len(whole.calls) == 1


# -- plugin failures -------------------------------------------------------------------


def test_plugin_exception_becomes_a_plugin_error_without_secrets(engine, caplog):
    with caplog.at_level(logging.DEBUG, logger="connector_core"):
        with pytest.raises(PluginError) as caught:
            engine.execute("toyCrash", {}, {"clientId": "c", "clientSecret": SECRET})
    error = caught.value
    assert error.code == "plugin_error" and error.exit_code == 12
    assert "'toyCrash'" in error.message and "ValueError" in error.message and "***" in error.message
    assert error.details == {"capability": "toyCrash", "exception": "ValueError"}
    # No plugin traceback chained to the host's, not even as an implicit __context__.
    assert error.__cause__ is None and error.__context__ is None and error.__suppress_context__
    assert "ValueError: could not parse ***" in error.plugin_traceback
    assert_no_secret(error, SECRET)
    assert "about to fail with secret ***" in caplog.text
    assert SECRET not in caplog.text


def test_typed_error_raised_by_a_plugin_is_redacted_and_keeps_its_class(engine):
    class Leaky(Capability):
        MANIFEST = capability_manifest("toyLeaky")

        @hookimpl
        def execute(self, ctx, properties):
            raise AuthenticationFailed(f"bad key {ctx.config['clientSecret']}", body={"echo": ctx.config["clientSecret"]})

    with Engine(toy_pm(Leaky())) as engine:
        with pytest.raises(AuthenticationFailed) as caught:
            engine.execute("toyLeaky", {}, {"clientId": "c", "clientSecret": SECRET})
    assert caught.value.message == "bad key ***"
    assert caught.value.details == {"body": {"echo": "***"}}
    assert_no_secret(caught.value, SECRET)


def test_output_breaking_the_output_schema_is_a_plugin_error(engine):
    with pytest.raises(PluginError) as caught:
        engine.execute("toyBadOutput", {}, {"clientId": "c", "clientSecret": "sec-Xy8-value"})
    error = caught.value
    assert error.code == "invalid_output"
    assert [f.path for f in error.faults] == ["$.count"]
    assert error.details["capability"] == "toyBadOutput"


def test_an_unknown_capability_on_a_connection_is_looked_up_in_its_connector(engine):
    with engine.connect({"clientId": "c", "clientSecret": "sec-Xy8-value"}) as connection:
        with pytest.raises(ConnectorError) as caught:
            connection.execute("toyEcha", {"name": "a"})
    assert caught.value.code == "unknown_capability"
    assert caught.value.message == (
        "no loaded plugin provides capability 'toyEcha' for connector 'toy'; did you mean 'toyEcho'? (see `connector plugins`)"
    )


def test_http_settings_default_to_the_documented_values(engine):
    # README: timeoutSeconds 30, connectTimeoutSeconds 10, maxRetries 3, maxRetryWaitSeconds 30.
    with engine.connect({"clientId": "c", "clientSecret": "sec-Xy8-value"}) as connection:
        assert connection.http.transport.timeout == (10.0, 30.0)
        assert (connection.http.policy.max_retries, connection.http.policy.max_total_wait) == (3, 30.0)
        assert connection.http.deadline_seconds == 120.0  # docs/operators.md: the whole call
    config = {"clientId": "c", "clientSecret": "sec-Xy8-value", "timeoutSeconds": 7, "connectTimeoutSeconds": 2,
              "maxRetries": 1, "maxRetryWaitSeconds": 4}
    with engine.connect(config) as connection:
        assert connection.http.transport.timeout == (2.0, 7.0)
        assert (connection.http.policy.max_retries, connection.http.policy.max_total_wait) == (1, 4.0)


# -- results ---------------------------------------------------------------------------


def test_result_is_frozen_and_counts_requests_and_retries(engine, server, config):
    server.queue("GET", "/api/items/9", Answer(503), item)
    result = engine.execute("toyGet", {"id": "9"}, config)
    assert isinstance(result, Result)
    assert result.capability == "toyGet"
    assert result.output == {"item": {"id": "9"}}
    # The token request this first call needed, then the 503 and its retry.
    assert (result.http_requests, result.retries) == (3, 1)
    assert isinstance(result.duration_ms, float) and result.duration_ms >= 0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.output = {}
    meta = result.to_dict()["meta"]
    assert (meta["http_requests"], meta["retries"]) == (3, 1)
    server.queue("GET", "/api/items/9", item)
    again = engine.execute("toyGet", {"id": "9"}, config)
    assert (again.http_requests, again.retries) == (1, 0)  # the token is cached now


# -- connections and tokens ------------------------------------------------------------


def test_repeated_calls_with_the_same_config_reuse_the_connection_and_token(engine, server, config):
    server.route("GET", "/api/items/1", item)
    for _ in range(5):
        engine.execute("toyGet", {"id": "1"}, dict(config))
    assert len(server.requests_to("POST", TOKEN_PATH)) == 1
    api = server.requests_to("GET", "/api/items/1")
    assert [r.headers["Authorization"] for r in api] == [f"Bearer {token(1)}"] * 5
    assert len({r.client_port for r in server.requests}) == 1  # one kept-alive TCP connection


def test_a_different_config_gets_its_own_connection(engine, server, config):
    server.route("GET", "/api/items/1", item)
    engine.execute("toyGet", {"id": "1"}, config)
    engine.execute("toyGet", {"id": "1"}, dict(config, clientId="other-client"))
    assert [r.json()["client_id"] for r in server.requests_to("POST", TOKEN_PATH)] == ["toy-client", "other-client"]


class RecordedSession(requests.Session):
    """A real session that remembers whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def test_engine_keeps_16_connections_and_closes_the_least_recently_used(sleeps):
    sessions: list[RecordedSession] = []

    def new_session() -> RecordedSession:
        sessions.append(RecordedSession())
        return sessions[-1]

    configs = [{"clientId": f"client-{n}", "clientSecret": "sec-Xy8-value"} for n in range(18)]
    with Engine(toy_pm(), sleep=sleeps, session_factory=new_session) as engine:
        for config in configs[:16]:
            engine.execute("toyEcho", {"name": "a"}, config)
        assert len(sessions) == 16 and not any(s.closed for s in sessions)
        engine.execute("toyEcho", {"name": "a"}, configs[0])  # reused, now the most recently used
        assert len(sessions) == 16
        engine.execute("toyEcho", {"name": "a"}, configs[16])  # a 17th: the least recently used goes
        assert len(sessions) == 17
        assert [n for n, s in enumerate(sessions) if s.closed] == [1]
        engine.execute("toyEcho", {"name": "a"}, configs[1])  # evicted, so opened again
        assert len(sessions) == 18
        assert [n for n, s in enumerate(sessions) if s.closed] == [1, 2]
        engine.execute("toyEcho", {"name": "a"}, configs[0])  # still kept
        assert len(sessions) == 18
    assert all(s.closed for s in sessions)


def test_threads_sharing_a_connection_fetch_one_token(server, sleeps):
    server.route("POST", TOKEN_PATH, token_issuer(delay=0.05))  # slow enough for the threads to pile up
    server.route("GET", "/api/items/1", item)
    threads_n, calls_n = 16, 5
    barrier = threading.Barrier(threads_n)
    results, errors = [], []
    with Engine(toy_pm(), sleep=sleeps) as engine, engine.connect(toy_config(server.url)) as connection:

        def work():
            barrier.wait()
            for _ in range(calls_n):
                try:
                    results.append(connection.execute("toyGet", {"id": "1"}).output)
                except Exception as exc:  # collected, asserted below
                    errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert results == [{"item": {"id": "1"}}] * (threads_n * calls_n)
    assert len(server.requests_to("POST", TOKEN_PATH)) == 1
    assert len(server.requests_to("GET", "/api/items/1")) == threads_n * calls_n


def test_token_is_refreshed_before_it_expires(engine, server, clock):
    server.route("POST", TOKEN_PATH, token_issuer(expires_in=120))  # refreshed 60 s early: after 60 s
    server.route("GET", "/api/items/1", item)
    config = toy_config(server.url)
    engine.execute("toyGet", {"id": "1"}, config)
    clock.advance(59)
    engine.execute("toyGet", {"id": "1"}, config)
    assert len(server.requests_to("POST", TOKEN_PATH)) == 1
    clock.advance(2)
    engine.execute("toyGet", {"id": "1"}, config)
    assert len(server.requests_to("POST", TOKEN_PATH)) == 2
    auth = [r.headers["Authorization"] for r in server.requests_to("GET", "/api/items/1")]
    assert auth == [f"Bearer {token(1)}", f"Bearer {token(1)}", f"Bearer {token(2)}"]


def test_a_short_lived_token_is_kept_for_half_its_life(engine, server, clock):
    server.route("POST", TOKEN_PATH, token_issuer(expires_in=30))  # shorter than the 60 s margin
    server.route("GET", "/api/items/1", item)
    config = toy_config(server.url)
    engine.execute("toyGet", {"id": "1"}, config)
    clock.advance(14)
    engine.execute("toyGet", {"id": "1"}, config)
    assert len(server.requests_to("POST", TOKEN_PATH)) == 1
    clock.advance(2)
    engine.execute("toyGet", {"id": "1"}, config)
    assert len(server.requests_to("POST", TOKEN_PATH)) == 2


def test_rejected_credentials_are_asked_for_once_by_many_threads(engine, server, clock):
    server.route("POST", TOKEN_PATH, Answer(401, json={"error": "access_denied"}, delay=0.05))
    errors = []
    with engine.connect(toy_config(server.url)) as connection:

        def work():
            try:
                connection.execute("toyGet", {"id": "1"})
            except AuthenticationFailed as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(errors) == 8 and all(e.code == "authentication_failed" for e in errors)
        assert len(server.requests_to("POST", TOKEN_PATH)) == 1
        clock.advance(11)  # the rejection is remembered for 10 s, then asked again
        with pytest.raises(AuthenticationFailed):
            connection.execute("toyGet", {"id": "1"})
    assert len(server.requests_to("POST", TOKEN_PATH)) == 2


def test_token_request_sends_the_client_credentials(engine, server, config):
    server.route("GET", "/api/items/1", item)
    engine.execute("toyGet", {"id": "1"}, config)
    (request,) = server.requests_to("POST", TOKEN_PATH)
    assert request.json() == {
        "client_id": "toy-client",
        "client_secret": SECRET,
        "grant_type": "client_credentials",
        "audience": "https://api.toy.example",
    }
    assert "Authorization" not in request.headers


def test_a_401_refreshes_the_token_once_and_repeats_the_request(engine, server, config):
    server.queue("GET", "/api/items/1", Answer(401, json={"message": "token revoked"}), item)
    result = engine.execute("toyGet", {"id": "1"}, config)
    assert result.output == {"item": {"id": "1"}}
    assert len(server.requests_to("POST", TOKEN_PATH)) == 2
    auth = [r.headers["Authorization"] for r in server.requests_to("GET", "/api/items/1")]
    assert auth == [f"Bearer {token(1)}", f"Bearer {token(2)}"]


def test_a_second_401_is_authentication_failed(engine, server, config):
    server.route("GET", "/api/items/1", Answer(401, json={"message": "not for you"}))
    with pytest.raises(AuthenticationFailed) as caught:
        engine.execute("toyGet", {"id": "1"}, config)
    assert caught.value.details["status"] == 401
    assert "not for you" in caught.value.message
    assert len(server.requests_to("POST", TOKEN_PATH)) == 2
    assert len(server.requests_to("GET", "/api/items/1")) == 2


def test_token_endpoint_rejecting_the_credentials(engine, server):
    server.route("POST", TOKEN_PATH, Answer(401, json={"error": "invalid_client", "error_description": f"bad secret {SECRET}"}))
    with pytest.raises(AuthenticationFailed) as caught:
        engine.execute("toyGet", {"id": "1"}, toy_config(server.url))
    error = caught.value
    assert "check the client ID, client secret and token URL" in error.message
    assert error.details["status"] == 401
    assert "bad secret ***" in error.message
    assert_no_secret(error, SECRET)
    assert server.requests_to("GET", "/api/items/1") == []


@pytest.mark.parametrize("status", [400, 403])
def test_token_endpoint_answering_400_or_403_is_a_credential_error(engine, server, status):
    # OAuth 2.0 (RFC 6749, 5.2) answers a bad client secret with 400 invalid_client.
    server.route("POST", TOKEN_PATH, Answer(status, json={"error": "invalid_client", "error_description": "unknown client"}))
    with pytest.raises(AuthenticationFailed) as caught:
        engine.execute("toyGet", {"id": "1"}, toy_config(server.url))
    error = caught.value
    assert (error.code, error.category, error.exit_code) == ("authentication_failed", "auth", 5)
    assert error.details["status"] == status
    assert "unknown client" in error.message and "check the client ID, client secret and token URL" in error.message
    assert server.requests_to("GET", "/api/items/1") == []


def test_invalidating_a_token_already_replaced_keeps_the_new_one(engine, server, config):
    with engine.connect(config) as connection:
        auth = connection.auth("oauth")
        assert auth.token() == token(1)
        auth.invalidate(token(1))
        assert auth.token() == token(2)
        auth.invalidate(token(1))  # a late 401 of a request that carried the old token
        assert auth.token() == token(2)
        auth.invalidate()
        assert auth.token() == token(3)
    assert len(server.requests_to("POST", TOKEN_PATH)) == 3


def test_a_401_to_a_token_another_thread_already_replaced_refreshes_nothing(engine, server, config):
    with engine.connect(config) as connection:
        auth = connection.auth("oauth")

        def refreshed_meanwhile(request):
            # While this request (sent with token 1) is in flight, another caller gets a 401
            # first and replaces the token; this request's own 401 then arrives late.
            auth.invalidate(token(1))
            auth.token()
            return Answer(401, json={"message": "token revoked"})

        server.queue("GET", "/api/items/1", refreshed_meanwhile, item)
        assert connection.execute("toyGet", {"id": "1"}).output == {"item": {"id": "1"}}
    auth_headers = [r.headers["Authorization"] for r in server.requests_to("GET", "/api/items/1")]
    assert auth_headers == [f"Bearer {token(1)}", f"Bearer {token(2)}"]
    assert len(server.requests_to("POST", TOKEN_PATH)) == 2


def test_upstream_error_body_echoing_secrets_and_tokens_is_masked(engine, server, config, caplog):
    def echo_back(request):
        return Answer(400, json={"message": f"bad request from {request.headers['Authorization']} / {SECRET}"})

    server.route("GET", "/api/items/1", echo_back)
    with caplog.at_level(logging.INFO, logger="connector_core"):
        with pytest.raises(InvalidInput) as caught:
            engine.execute("toyGet", {"id": "1"}, config)
    error = caught.value
    assert error.code == "rejected_by_service"
    assert "Bearer ***" in error.message and "Bearer ***" in error.details["body"]
    assert_no_secret(error, SECRET, token(1))
    assert SECRET not in caplog.text and token(1) not in caplog.text


def test_basic_credentials_echoed_by_the_service_are_masked(engine, server, config):
    server.route("GET", "/basic/ping", lambda r: Answer(403, body=f"refused {r.headers['Authorization']}"))
    with pytest.raises(ConnectorError) as caught:
        engine.execute("toyBasicPing", {}, config)
    assert caught.value.code == "permission_denied"
    assert "refused Basic ***" in caught.value.message


# -- what a connection may run ---------------------------------------------------------


def test_allow_restricts_the_capabilities_of_a_connection(engine):
    with engine.connect({"clientId": "c", "clientSecret": "sec-Xy8-value"}, allow=["toyEcho"]) as connection:
        assert connection.execute("toyEcho", {"name": "a"}).output == {"echo": {"name": "a"}}
        with pytest.raises(InvalidConfig) as caught:
            connection.execute("toyNeedsAccount", {})
    assert caught.value.code == "capability_not_allowed"
    assert "allowed: toyEcho" in caught.value.message


def test_a_capability_of_another_connector_is_refused():
    class OtherEcho(Echo):
        MANIFEST = capability_manifest("otherEcho", connector="other")
        CONNECTOR_MANIFEST = variant(TOY_CONNECTOR, id="other", title="Other service")

    with Engine(toy_pm(Echo(), OtherEcho())) as engine:
        # The config fits both connectors' schemas (same config), so the connector must be named.
        with pytest.raises(InvalidConfig, match=r"2 connector\(s\) loaded \(other, toy\) and the config fits several"):
            engine.connect({"clientId": "c", "clientSecret": "sec-Xy8-value"})
        with engine.connect({"clientId": "c", "clientSecret": "sec-Xy8-value"}, connector="toy") as connection:
            with pytest.raises(InvalidConfig) as caught:
                connection.execute("otherEcho", {"name": "a"})
        assert "belongs to connector 'other'" in caught.value.message
        # Engine.execute picks the capability's own connector.
        assert engine.execute("otherEcho", {"name": "a"}, {"clientId": "c", "clientSecret": "sec-Xy8-value"}).output == {"echo": {"name": "a"}}


def test_connection_repr_and_context_do_not_show_the_config(engine):
    seen = []

    class Peek(Capability):
        MANIFEST = capability_manifest("toyPeek")

        @hookimpl
        def execute(self, ctx, properties):
            seen.append(repr(ctx))
            return {}

    with Engine(toy_pm(Peek())) as peek_engine, peek_engine.connect({"clientId": "c", "clientSecret": SECRET}) as connection:
        connection.execute("toyPeek", {})
        assert SECRET not in repr(connection)
    assert seen and SECRET not in seen[0]


def test_a_results_duration_is_the_time_the_call_took(engine, config):
    import time

    started = time.perf_counter()
    result = engine.execute("toyEcho", {"name": "x"}, config)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert 0 <= result.duration_ms <= elapsed_ms


class StackLogger(Capability):
    """Logs where it is, with ``stack_info``, from a helper function of its own."""

    MANIFEST = capability_manifest("toyStackLogger")

    @hookimpl
    def execute(self, ctx, properties):
        def a_plugin_helper_function():
            ctx.log.warning("where am I", stack_info=True)

        a_plugin_helper_function()
        return {}


def test_ctx_log_stack_info_shows_the_plugins_own_frames(make_engine, config, caplog):
    engine = make_engine(StackLogger(), connectors=[TOY_CONNECTOR])
    with caplog.at_level(logging.WARNING, logger="connector_core.capability.toyStackLogger"):
        engine.execute("toyStackLogger", {}, config)
    (record,) = [r for r in caplog.records if r.getMessage().startswith("where am I")]
    text = record.getMessage()
    assert "\nStack (most recent call last):\n" in text
    frames = [line.strip() for line in text.splitlines() if line.strip().startswith("File ")]
    assert any(line.endswith("in a_plugin_helper_function") for line in frames)
    # The stack ends where the plugin called, not inside the engine's logging adapter.
    assert "connector_core/engine.py" not in frames[-1]


def test_a_secret_config_field_of_four_characters_is_accepted_and_of_three_refused(engine, server):
    assert engine.execute("toyEcho", {"name": "x"}, toy_config(server.url, clientSecret="abcd")).output == {"echo": {"name": "x"}}
    with pytest.raises(InvalidConfig) as caught:
        engine.execute("toyEcho", {"name": "x"}, toy_config(server.url, clientSecret="abc"))
    assert [(f.path, f.message) for f in caught.value.faults] == [
        ("$.clientSecret", "is too short for a secret: use at least 4 characters")]


class ChattyLogger(Capability):
    """Logs the ways a plugin author might: inside an except block, with arguments that do not fit."""

    MANIFEST = capability_manifest("toyChattyLogger")

    @hookimpl
    def execute(self, ctx, properties):
        try:
            raise KeyError("handled")
        except KeyError:
            ctx.log.warning("recovered without a traceback")
        ctx.log.info("count %d", "many")
        return {}


def test_ctx_log_records_point_at_the_plugin_and_keep_odd_arguments(make_engine, config, caplog):
    engine = make_engine(ChattyLogger(), connectors=[TOY_CONNECTOR])
    with caplog.at_level(logging.INFO, logger="connector_core.capability.toyChattyLogger"):
        engine.execute("toyChattyLogger", {}, config)
    recovered, counted = [r for r in caplog.records if r.name == "connector_core.capability.toyChattyLogger"]
    # No traceback unless asked for (exc_info), even inside an except block.
    assert recovered.getMessage() == "recovered without a traceback"
    # Arguments the format does not fit are shown after the message instead of failing the call.
    assert counted.getMessage() == "count %d ('many',)"
    # Each record names the plugin's line, not the engine's logging code.
    assert (recovered.funcName, counted.funcName) == ("execute", "execute")
    assert recovered.pathname == counted.pathname == __file__


def test_the_same_config_with_its_keys_in_another_order_reuses_the_connection(engine, server, config):
    server.route("GET", "/api/items/1", item)
    engine.execute("toyGet", {"id": "1"}, dict(config))
    engine.execute("toyGet", {"id": "1"}, dict(reversed(list(config.items()))))
    assert len(server.requests_to("POST", TOKEN_PATH)) == 1
    assert len({r.client_port for r in server.requests}) == 1  # one connection, one kept-alive socket


class LaterLogger(Capability):
    """Logs an exception it caught earlier, passing the exception itself as exc_info."""

    MANIFEST = capability_manifest("toyLaterLogger")

    @hookimpl
    def execute(self, ctx, properties):
        try:
            raise RuntimeError("failed earlier")
        except RuntimeError as exc:
            caught = exc
        ctx.log.warning("it failed", exc_info=caught)
        return {}


def test_ctx_log_with_an_exception_as_exc_info_shows_its_traceback_after_the_except_block(make_engine, config, caplog):
    engine = make_engine(LaterLogger(), connectors=[TOY_CONNECTOR])
    with caplog.at_level(logging.WARNING, logger="connector_core.capability.toyLaterLogger"):
        engine.execute("toyLaterLogger", {}, config)
    (record,) = [r for r in caplog.records if r.name == "connector_core.capability.toyLaterLogger"]
    text = record.getMessage()
    assert text.startswith("it failed\nTraceback (most recent call last):\n")
    assert text.endswith("RuntimeError: failed earlier")


# -- the output a capability returns ---------------------------------------------------


def test_a_results_dict_gives_its_duration_in_milliseconds_to_the_microsecond():
    result = Result("toy.toyEcho", {"echo": {"name": "x"}}, 12.3456789, 2, 1, "toy")
    assert result.to_dict() == {
        "capability": "toy.toyEcho",
        "connector": "toy",
        "output": {"echo": {"name": "x"}},
        "meta": {"duration_ms": 12.346, "http_requests": 2, "retries": 1},
    }


def test_text_a_service_answered_is_passed_on_even_when_it_is_not_valid_unicode(engine, server, config):
    # JSON may escape a lone surrogate; the plugin passes on what the service said (the CLI prints it escaped).
    server.route("GET", "/api/items/7", Answer(200, body='{"id": "7", "name": "bad \\ud800 name"}',
                                               headers={"Content-Type": "application/json"}))
    assert engine.execute("toyGet", {"id": "7"}, config).output == {"item": {"id": "7", "name": "bad \ud800 name"}}


class Tree(Capability):
    """Returns a list nested as deep as its input says (output the plugin builds itself)."""

    MANIFEST = capability_manifest("toyTree", input_schema={"type": "object", "required": ["depth"]})

    @hookimpl
    def execute(self, ctx, properties):
        tree: list = []
        for _ in range(properties["depth"] - 1):
            tree = [tree]
        return {"tree": tree}


def test_output_may_nest_128_levels_and_deeper_output_is_a_plugin_bug():
    with Engine(toy_pm(Tree())) as engine:
        # The output object is the first level, its list and the lists in it the other 127.
        output = engine.execute("toyTree", {"depth": 127}, {"clientId": "c", "clientSecret": "sec-Xy8-value"}).output
        depth, level = 1, output
        while level:
            level, depth = (level["tree"] if isinstance(level, dict) else level[0]), depth + 1
        assert depth == 128
        with pytest.raises(PluginError) as caught:
            engine.execute("toyTree", {"depth": 128}, {"clientId": "c", "clientSecret": "sec-Xy8-value"})
    assert caught.value.code == "invalid_output"
    assert [(f.path, f.message) for f in caught.value.faults] == [
        ("$.tree" + "[0]" * 127, "nests deeper than 128 levels of objects and arrays")]


# -- choosing the connector of a config ------------------------------------------------

# A second connector whose config has one more required field than the toy's (which allows no other).
OTHER_CONNECTOR = variant(
    TOY_CONNECTOR,
    id="other",
    title="Other service",
    config={
        **TOY_CONNECTOR["config"],
        "required": ["clientId", "clientSecret", "workspace"],
        "properties": {**TOY_CONNECTOR["config"]["properties"], "workspace": {"type": "string", "minLength": 1}},
    },
)


class OtherEcho(Echo):
    MANIFEST = capability_manifest("otherEcho", connector="other")
    CONNECTOR_MANIFEST = OTHER_CONNECTOR


def test_without_a_connector_named_the_config_picks_the_one_connector_whose_schema_it_fits(monkeypatch):
    with Engine(toy_pm(Echo(), OtherEcho())) as engine:
        with engine.connect({"clientId": "c", "clientSecret": "sec-Xy8-value"}) as toy:
            assert toy.connector.id == "toy"
        with engine.connect({"clientId": "c", "clientSecret": "sec-Xy8-value", "workspace": "w1"}) as other:
            assert other.connector.id == "other"
        # $env references are resolved before the config is fitted.
        monkeypatch.setenv("OTHER_WORKSPACE", "w2")
        with engine.connect({"clientId": "c", "clientSecret": "sec-Xy8-value", "workspace": {"$env": "OTHER_WORKSPACE"}}) as by_env:
            assert by_env.connector.id == "other"
        with pytest.raises(InvalidConfig) as caught:
            engine.connect({"clientId": "c"})
    assert caught.value.message == (
        "2 connector(s) loaded (other, toy) and the config fits none of their config schemas; "
        "name one with connector= (CLI: --connector)"
    )


def _toy_declared_twice_differently(*plugins):
    """The toy connector declared by two distributions with different manifests: it is refused."""
    pm = toy_pm(*plugins)
    declare_connector(pm, TOY_CONNECTOR, origin={"distribution": "toy-one"})
    declare_connector(pm, variant(TOY_CONNECTOR, title="Another toy"), origin={"distribution": "toy-two"})
    return pm


def test_a_config_for_no_loaded_connector_is_told_which_connectors_were_refused():
    with Engine(_toy_declared_twice_differently(Echo())) as engine:
        with pytest.raises(InvalidConfig) as caught:
            engine.connect({"clientId": "c", "clientSecret": "sec-Xy8-value"})
    assert caught.value.message == "no connector is loaded; refused: toy (see `connector plugins`)"
    with Engine(_toy_declared_twice_differently(Echo(), OtherEcho())) as engine:
        with pytest.raises(InvalidConfig) as caught:
            engine.connect({"clientId": "c", "clientSecret": "sec-Xy8-value"})
    assert caught.value.message == (
        "1 connector(s) loaded (other) and the config fits none of their config schemas; "
        "name one with connector= (CLI: --connector); refused: toy (see `connector plugins`)"
    )


def test_the_only_connector_checks_the_config_even_when_a_capability_plugin_was_rejected():
    pm = toy_pm(Echo())
    pm.register(Shout(), name="toyWrongName")  # rejected: its manifest id is toyShout
    with Engine(pm) as engine:
        assert [r.name for r in engine.registry.rejected] == ["toyWrongName"]
        with pytest.raises(InvalidConfig) as caught:
            engine.connect({"clientId": "c"})
    assert [(f.path, f.message) for f in caught.value.faults] == [("$.clientSecret", "is required")]


# -- what a host reads from a connection and its errors --------------------------------


def test_a_connection_uses_the_session_the_hosts_factory_made(server, config):
    made = []

    def factory():
        made.append(requests.Session())
        return made[-1]

    server.route("GET", "/api/items/1", item)
    with Engine(toy_pm(Get()), session_factory=factory) as engine, engine.connect(config) as connection:
        assert connection.session is made[0]
        assert connection.execute("toyGet", {"id": "1"}).output == {"item": {"id": "1"}}


def test_a_host_redacts_its_own_log_lines_with_the_connections_redactor(engine):
    import io

    from connector_core import RedactingFormatter

    with engine.connect({"clientId": "c", "clientSecret": SECRET}) as connection:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(RedactingFormatter(connection.redact))
        host_log = logging.getLogger("a_host_of_the_engine")
        host_log.addHandler(handler)
        try:
            host_log.warning("calling with %s", SECRET)
        finally:
            host_log.removeHandler(handler)
    assert stream.getvalue() == "calling with ***\n"


class Slow(Capability):
    """Takes at least 30 ms."""

    MANIFEST = capability_manifest("toySlow")

    @hookimpl
    def execute(self, ctx, properties):
        import time

        time.sleep(0.03)
        return {}


def test_a_results_duration_counts_the_time_the_plugin_took():
    with Engine(toy_pm(Slow())) as engine:
        result = engine.execute("toySlow", {}, {"clientId": "c", "clientSecret": "sec-Xy8-value"})
    assert 30 <= result.duration_ms < 30_000


class LogsWhatItCaught(Capability):
    """Logs the exception it is handling, the usual way (``exc_info=True``)."""

    MANIFEST = capability_manifest("toyLogsWhatItCaught")

    @hookimpl
    def execute(self, ctx, properties):
        try:
            raise LookupError("no such row")
        except LookupError:
            ctx.log.warning("skipped a row", exc_info=True)
        return {}


def test_ctx_log_with_exc_info_true_inside_an_except_block_shows_the_handled_traceback(config, caplog):
    with Engine(toy_pm(LogsWhatItCaught())) as engine, caplog.at_level(logging.WARNING, logger="connector_core.capability.toyLogsWhatItCaught"):
        engine.execute("toyLogsWhatItCaught", {}, config)
    (record,) = [r for r in caplog.records if r.name == "connector_core.capability.toyLogsWhatItCaught"]
    text = record.getMessage()
    assert text.startswith("skipped a row\nTraceback (most recent call last):\n")
    assert text.endswith("LookupError: no such row")


class RunsCrash(Capability):
    """A composite capability: runs toyCrash on its own connection and lets its error through."""

    MANIFEST = capability_manifest("toyRunsCrash")

    @hookimpl
    def execute(self, ctx, properties):
        return ctx.connection.execute("toyCrash", {}).output


def test_a_plugin_error_passed_through_by_a_calling_capability_keeps_the_plugins_traceback_redacted(config):
    with Engine(toy_pm(RunsCrash(), Crash())) as engine:
        with pytest.raises(PluginError) as caught:
            engine.execute("toyRunsCrash", {}, config)
    error = caught.value
    assert error.message == (
        "capability 'toyCrash' failed with ValueError: could not parse ***; this is a bug in the plugin, please report it"
    )
    assert error.plugin_traceback.startswith("Traceback (most recent call last):\n")
    assert error.plugin_traceback.rstrip().endswith("ValueError: could not parse ***")
    assert SECRET not in error.plugin_traceback


def test_an_upstream_body_as_long_as_the_policys_limit_is_kept_whole_and_a_longer_one_is_cut(sleeps, clock, server, config):
    from connector_core import HostPolicy

    server.route("GET", "/api/items/20", Answer(409, body="a" * 20))
    server.route("GET", "/api/items/21", Answer(409, body="b" * 21))
    with Engine(toy_pm(Get()), sleep=sleeps, clock=clock, host_policy=HostPolicy(max_error_body=20)) as engine:
        with pytest.raises(ConnectorError) as whole:
            engine.execute("toyGet", {"id": "20"}, config)
        with pytest.raises(ConnectorError) as cut:
            engine.execute("toyGet", {"id": "21"}, config)
    assert whole.value.details["body"] == "aaaaaaaaaaaaaaaaaaaa"
    assert cut.value.details["body"] == "bbbbbbbbbbbbbbbbbbbb..."


class LogsAt(Capability):
    """Logs through ``ctx.log.log`` with ``stack_info``, and an exception it made but never raised."""

    MANIFEST = capability_manifest("toyLogsAt")

    @hookimpl
    def execute(self, ctx, properties):
        def a_plugin_helper_function():
            ctx.log.log(logging.WARNING, "where am I", stack_info=True)

        a_plugin_helper_function()
        ctx.log.warning("refused a row", exc_info=ValueError("made, never raised"))
        return {}


def test_ctx_log_log_shows_the_stack_down_to_the_plugins_frame_and_an_unraised_exception_like_logging(config, caplog):
    with Engine(toy_pm(LogsAt())) as engine, caplog.at_level(logging.WARNING, logger="connector_core.capability.toyLogsAt"):
        engine.execute("toyLogsAt", {}, config)
    stack, unraised = [r.getMessage() for r in caplog.records if r.name == "connector_core.capability.toyLogsAt"]
    frames = [line.strip() for line in stack.splitlines() if line.strip().startswith("File ")]
    assert frames[-1].startswith(f'File "{__file__}"') and frames[-1].endswith("in a_plugin_helper_function")
    # As logging formats it: the exception without a traceback, since it has none.
    assert unraised == "refused a row\nValueError: made, never raised"
