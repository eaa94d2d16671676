"""Secrets never leave, in any encoding: every CLI command and error path, scanned.

Sentinel secrets mix ASCII, non-ASCII, quotes, backslashes, URL-reserved characters and
whitespace. Loopback servers stand in for mParticle and echo what they received (request
bodies with the client secret, Authorization headers with tokens and Basic credentials)
into error bodies and into successful answers. A plugin package installed for the test
logs the secret through its own module logger and through ``ctx.log.exception``. Everything
a host or CLI user can see is scanned for each secret in every spelling listed in
``spelled``, which is written out here independently of ``connector_core.redact``.
"""

from __future__ import annotations

import base64
import json
import logging
import traceback
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from httpserver import Answer, Recorded, TestServer, closed_port

from connector_core import ConnectorError, Engine, HostPolicy, InvalidConfig
from connector_core.cli import main
from connector_core.redact import Redactor

SENTINELS = [
    "Sentinel-ASCII-s3cret-0",
    "sëcrét-ünïcødé-密码-✓",
    'quo"te\'s-se\'cr"et',
    "back\\slash\\sec\\ret",
    "url&res=erv/ed?#%+:@[x]",
    "white space\tsecret\nline ",
]
IDS = ["ascii", "non-ascii", "quotes", "backslashes", "url-reserved", "whitespace"]
CLIENT_ID = "tenant-client-id"
EXAMPLE_BATCH = json.loads((Path(__file__).parent.parent / "manifests" / "uploadEventBatch.json").read_text("utf-8"))[
    "inputSchema"]["example"]["properties"]["jsonBody"]
TOKEN = "derived-T0ken/with+chars=="


def spelled(secret: str) -> set[str]:
    """The ways a secret may appear in text (see the module docstring)."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(json.dumps(secret)[1:-1])[1:-1],
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode(),
    }
    return {f for f in forms if len(f) >= 4}


def assert_clean(text: str, *secrets: str) -> None:
    for secret in secrets:
        for form in spelled(secret):
            assert form not in text, f"{secret!r} leaked as {form!r} in:\n{text[:3000]}"


def echo_everything(record: Recorded) -> dict:
    return {
        "method": record.method,
        "path": record.path,
        "authorization": record.headers.get("Authorization"),
        "body": record.body.decode("utf-8", "replace"),
    }


@pytest.fixture
def echo(server: TestServer):
    """A stand-in for mParticle that hands a token out and echoes every other request in its answers."""
    server.route("POST", "/oauth/token", Answer(200, json={"access_token": TOKEN, "expires_in": 3600}))
    server.route("GET", "/v1/accounts/1003", lambda r: Answer(200, json={"data": {"id": 1003, "name": json.dumps(echo_everything(r))}}))
    server.route("GET", "/v1/accounts/404", lambda r: Answer(404, json={"errors": [{"message": json.dumps(echo_everything(r))}]}))
    server.route("GET", "/v1/audiences", lambda r: Answer(500, body=json.dumps(echo_everything(r))))
    server.route("POST", "/v1/accounts", lambda r: Answer(409, json={"errors": [{"code": "taken", "message": r.body.decode()}]}))
    server.route("POST", "/v2/events", lambda r: Answer(400, json={"errors": [{"message": f"bad credentials {echo_everything(r)}"}]}))
    server.route("POST", "/v2/bulkevents", lambda r: Answer(400, json={"errors": [{"message": f"bad credentials {echo_everything(r)}"}]}))
    return server


def mp_config(server: TestServer, secret: str, **changes) -> dict:
    config = {
        "clientID": CLIENT_ID,
        "clientSecret": secret,
        "pod": "US1",
        "authUrl": f"{server.url}/oauth/token",
        "platformUrl": server.url,
        "eventsUrl": f"{server.url}/v2",
        "maxRetries": 0,
    }
    config.update(changes)
    return {k: v for k, v in config.items() if v is not None}


SPY_SOURCE = '''
import logging
from connector_core import hookimpl

log = logging.getLogger(__name__)


@hookimpl(wrapper=True)
def execute(ctx, properties):
    secret = ctx.config.get("clientSecret")
    log.warning("spy module logger: %s %r", secret, {"secret": secret})
    try:
        raise RuntimeError(f"spy inner failure {secret!r}")
    except RuntimeError:
        ctx.log.exception("spy ctx.log.exception with %s", secret)
        log.exception("spy module logger exception")
    ctx.log.warning("spy ctx.log stack", stack_info=True)
    return (yield)
'''


@pytest.fixture
def spy_plugin(fake_distribution):
    """An installed extension plugin that logs the client secret every way it can."""
    fake_distribution("secret-spy", entry_points={"secretSpy": "secret_spy_plugin"}, modules={"secret_spy_plugin": SPY_SOURCE})


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def config_file(echo, tmp_path):
    def write(secret: str, **changes) -> str:
        path = tmp_path / f"config-{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps(mp_config(echo, secret, **changes), ensure_ascii=False), "utf-8")
        return str(path)

    return write


def check_runs(capsys, echo, runs, *secrets) -> None:
    for expected, argv in runs:
        code, out, err = run_cli(capsys, *argv)
        assert code == expected, (argv, code, err[-3000:])
        assert "internal_error" not in err, err
        assert_clean(out + err, *secrets, TOKEN)
    # The runs did reach the echoing servers with the secret (the scan is not vacuous).
    received = [r.body.decode("utf-8") + str(r.headers.get("Authorization")) for r in echo.requests]
    assert any(form in text for text in received for form in spelled(secrets[0]))


# Every character class of the sentinels in one secret, for the full tour of the commands.
ALL_CLASSES = "Ünï密\"q'\\b&=/?#%+ \t\nend"


def test_every_cli_command_and_error_path_keeps_the_secret(echo, tmp_path, capsys, config_file, spy_plugin):
    secret = ALL_CLASSES
    connections = tmp_path / "connections.json"
    connections.write_text(json.dumps({"connections": {"tenant": {"config": mp_config(echo, secret)}}}), "utf-8")
    batch = json.dumps(EXAMPLE_BATCH)
    get_1003 = ["--properties", '{"accountId": "1003"}']
    echo.queue("POST", "/oauth/token", Answer(401, json={"error": "access_denied", "error_description": "refused"}))
    runs = [
        (5, ["run", "getAccount", "-v", "--config", config_file(secret), *get_1003]),
        (0, ["plugins"]),
        (0, ["plugins", "--json"]),
        (0, ["describe", "getAccount"]),
        (0, ["describe", "uploadEventBatch", "--json"]),
        (0, ["run", "getAccount", "-v", "--meta", "--config", config_file(secret), *get_1003]),
        (0, ["run", "getAccount", "--connection", "tenant", "--connections", str(connections), *get_1003]),
        (6, ["run", "getAccount", "-v", "--config", config_file(secret), "--properties", '{"accountId": "404"}']),
        (9, ["run", "getAudiences", "-v", "--config", config_file(secret), *get_1003]),
        (7, ["run", "createAccount", "--config", config_file(secret), "--properties", '{"displayName": "Ada"}']),
        (3, ["run", "uploadEventBatch", "-v", "--config", config_file(secret), "--properties", json.dumps({"jsonBody": batch})]),
        (3, ["run", "uploadEventBatch", "--config", config_file(secret, apiKey="tenant-api-key", apiSecret=secret),
             "--properties", json.dumps({"jsonBody": [EXAMPLE_BATCH] * 2})]),
        (4, ["run", "uploadEventBatch", "--config", config_file(secret, pod="Mars"),  # the pod matters only here
             "--properties", json.dumps({"jsonBody": batch})]),
        (4, ["run", "getAccount", "--config", config_file(secret, timeoutSeconds=secret), *get_1003]),
        (3, ["run", "getAccount", "--config", config_file(secret), "--properties", json.dumps({"accountId": secret})]),
        (10, ["run", "getAccount", "-v", "--config", config_file(secret, platformUrl=f"http://127.0.0.1:{closed_port()}"), *get_1003]),
        (0, ["check", "--config", config_file(secret)]),
        (0, ["check", "--offline", "--config", config_file(secret)]),
        (12, ["validate", config_file(secret)]),
    ]
    check_runs(capsys, echo, runs, secret)


@pytest.mark.parametrize("secret", SENTINELS, ids=IDS)
def test_each_sentinel_in_every_echo_the_cli_prints(secret, echo, capsys, config_file):
    # The token endpoint echoes the request (client secret JSON-escaped) in its refusal.
    echo.queue("POST", "/oauth/token", lambda r: Answer(401, json={"error": "access_denied", "error_description": r.body.decode()}))
    runs = [
        (5, ["check", "--config", config_file(secret)]),
        (0, ["run", "getAccount", "-v", "--config", config_file(secret), "--properties", '{"accountId": "1003"}']),
        (3, ["run", "uploadEventBatch", "--config", config_file(secret), "--properties", json.dumps({"jsonBody": EXAMPLE_BATCH})]),
        (4, ["run", "getAccount", "--config", config_file(secret, maxRetries=secret), "--properties", '{"accountId": "1003"}']),
    ]
    check_runs(capsys, echo, runs, secret)


def test_the_spy_plugin_really_logged_through_the_cli(echo, tmp_path, capsys, spy_plugin):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(mp_config(echo, SENTINELS[0])), "utf-8")
    code, out, err = run_cli(capsys, "run", "getAccount", "--config", str(path), "--properties", '{"accountId": "1003"}')
    assert code == 0
    # Module logger, its traceback, ctx.log's traceback: all there, all masked.
    assert "spy module logger: *** {'secret': '***'}" in err
    assert "spy ctx.log.exception with ***" in err and "RuntimeError: spy inner failure '***'" in err
    assert "spy module logger exception" in err and err.count("Traceback (most recent call last)") >= 2
    assert_clean(out + err, SENTINELS[0], TOKEN)


@pytest.mark.parametrize("secret", SENTINELS, ids=IDS)
def test_python_api_results_errors_chains_and_logs_keep_the_secret(secret, echo, caplog, spy_plugin):
    engine = Engine()
    config = mp_config(echo, secret, apiKey="tenant-api-key", apiSecret=secret[::-1])
    seen: list[str] = []
    with engine, caplog.at_level(logging.DEBUG):
        result = engine.execute("getAccount", {"accountId": "1003"}, config)
        seen += [repr(result), json.dumps(result.to_dict(), ensure_ascii=False), str(result.output)]
        assert "***" in result.output["account"]["name"]  # the echoed bearer token was masked
        for capability, properties in [
            ("getAccount", {"accountId": "404"}),
            ("getAudiences", {"accountId": "1003"}),
            ("createAccount", {"displayName": "Ada"}),
            ("uploadEventBatch", {"jsonBody": {"environment": "development", "events": []}}),
            ("getAccount", {"accountId": secret}),
        ]:
            with pytest.raises(ConnectorError) as caught:
                engine.execute(capability, properties, config)
            error = caught.value
            assert error.__cause__ is None and error.__context__ is None
            seen += [str(error), repr(error), json.dumps(error.to_dict(), ensure_ascii=False), "".join(traceback.format_exception(error))]
        with pytest.raises(InvalidConfig) as caught:
            engine.execute("getAccount", {"accountId": "1"}, dict(config, maxRetries=secret))
        seen.append(json.dumps(caught.value.to_dict(), ensure_ascii=False))
    # ctx.log records carry a finished, redacted message and no traceback to format later.
    ctx_records = [r for r in caplog.records if r.name.startswith("connector_core.")]
    assert any("spy ctx.log.exception" in r.getMessage() for r in ctx_records)
    assert all(r.exc_info is None for r in ctx_records)
    seen += [r.getMessage() for r in ctx_records]
    assert_clean("\n".join(seen), secret, secret[::-1], TOKEN)


def test_short_secrets_are_refused_for_every_connector(echo):
    with Engine() as engine:
        for short in ("s", "ab", "xyz"):
            with pytest.raises(InvalidConfig) as caught:
                engine.execute("getAccount", {"accountId": "1003"}, mp_config(echo, short))
            assert [f.to_dict() for f in caught.value.faults] == [
                {"path": "$.clientSecret", "message": "is too short for a secret: use at least 4 characters"}]
            assert "account***" not in str(caught.value.to_dict())
        assert echo.requests == []
        assert engine.execute("getAccount", {"accountId": "1003"}, mp_config(echo, "abcd")).output["account"]["id"] == 1003


def test_the_redactor_masks_every_spelling_of_every_secret():
    redactor = Redactor(SENTINELS)
    redactor.add_basic(CLIENT_ID, SENTINELS[0])
    for secret in SENTINELS:
        for form in spelled(secret) - {base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()}:
            assert redactor(f"<{form}>") == "<***>", form
    assert redactor("Basic " + base64.b64encode(f"{CLIENT_ID}:{SENTINELS[0]}".encode()).decode()) == "Basic ***"
    assert redactor({SENTINELS[0]: [SENTINELS[1], 3]}) == {"***": ["***", 3]}
    assert Redactor(["abc"])("abc") == "abc"  # too short to be masked without garbling text


def test_untrusted_upstream_bodies_are_trimmed(echo):
    echo.route("GET", "/v1/accounts/7", Answer(502, body="internal service page " + "x" * 5000))
    policy = HostPolicy.untrusted(allow_url_overrides=True, allow_loopback=True)
    with Engine(host_policy=policy) as engine:
        with pytest.raises(ConnectorError) as caught:
            engine.execute("getAccount", {"accountId": "7"}, mp_config(echo, SENTINELS[0]))
    assert caught.value.details["status"] == 502
    assert len(caught.value.details["body"]) <= policy.max_error_body + 3
    assert len(caught.value.message) < 600
