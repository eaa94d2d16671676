"""The mParticle connector through the ``connector`` command, run in-process (``main(argv)``).

The sandbox runs in this test process (the ``mparticle_sandbox`` fixture) and the command
talks to it over loopback with a config file, as an operator would; ``connector demo`` and
``connector run --sandbox`` start their own sandbox.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from connector_mparticle.sandbox import Sandbox

REPO_ROOT = Path(__file__).resolve().parent.parent
CONNECTOR = Path(sys.executable).parent / "connector"
CAPABILITIES = (
    "createAccount", "getAccount", "updateAccount", "deleteAccount",
    "getAudiences", "getCalculatedAttributes", "uploadEventBatch",
)
SECRETS = ("sandbox-client-secret", "sandbox-api-secret")
# Exit codes by error category, as the table of docs/hosts.md promises them (not read from the code).
EXIT = {"input": 3, "config": 4, "auth": 5, "not_found": 6, "conflict": 7, "upstream": 9}


def output_schema(capability: str) -> dict:
    return json.loads((REPO_ROOT / "manifests" / f"{capability}.json").read_text("utf-8"))["outputSchema"]


def assert_shape(capability: str, output: Any) -> None:
    problems = [e.message for e in jsonschema.Draft202012Validator(output_schema(capability)).iter_errors(output)]
    assert not problems, problems


@pytest.fixture
def connector(cli):
    """``connector(*args, cwd=, env=, stdin=)``: the command in-process (see conftest's ``cli``)."""

    def run(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None):
        return cli(*args, cwd=cwd, env=env, input=stdin)

    return run


@pytest.fixture
def sb(mparticle_sandbox: Sandbox) -> Sandbox:
    return mparticle_sandbox


@pytest.fixture
def config_file(sb: Sandbox, tmp_path: Path):
    def write(**changes: Any) -> str:
        config = {k: v for k, v in {**sb.config, **changes}.items() if v is not None}
        path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(config), "utf-8")
        return str(path)

    return write


def account(sb: Sandbox, account_id: int) -> dict | None:
    return next((a for a in sb.state()["accounts"] if a["id"] == account_id), None)


# (properties, check(sb, output))
CASES = {
    "createAccount": ({"displayName": "CLI Created"}, lambda sb, out: (
        account(sb, out["account"]["id"])["name"] == out["account"]["name"] == "CLI Created")),
    "getAccount": ({"accountId": "1003"}, lambda sb, out: (
        out["account"]["name"] == account(sb, 1003)["name"] == "Acme Sandbox" and out["account"]["id"] == 1003)),
    "updateAccount": ({"accountId": "1003", "updatedName": "Acme Sandbox (CLI)"}, lambda sb, out: (
        account(sb, 1003)["name"] == out["account"]["name"] == "Acme Sandbox (CLI)")),
    "deleteAccount": ({"accountId": "1003"}, lambda sb, out: (
        out == {"deleted": True, "accountId": 1003} and account(sb, 1003) is None)),
    "getAudiences": ({"accountId": "1002"}, lambda sb, out: (
        out["count"] == 1 and out["audiences"][0]["id"] == 7701 and out["audiences"][0]["name"] == "QA testers")),
    "getCalculatedAttributes": ({"workspace": "5001", "nameOptional": "Last seen"}, lambda sb, out: (
        out["count"] == 1 and out["calculatedAttributes"][0]["name"] == "Last seen")),
    "uploadEventBatch": ({"jsonBody": json.dumps({"environment": "development", "user_identities": {"email": "cli@example.com"},
                                                  "events": [{"event_type": "screen_view", "data": {"screen_name": "CLI"}}]})},
                         lambda sb, out: (out["status"] == "accepted" and len(sb.batches) == 1
                                          and sb.batches[0]["source_request_id"] == out["sourceRequestIds"][0]
                                          and sb.batches[0]["events"][0]["data"]["screen_name"] == "CLI")),
}


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_run_every_capability(sb, config_file, tmp_path, capability, connector):
    props, check = CASES[capability]
    run = connector("run", capability, "--config", config_file(), "--properties", json.dumps(props), cwd=tmp_path)
    assert run.code == 0, run
    output = run.json()
    assert_shape(capability, output)
    assert check(sb, output), output


def test_run_with_meta_and_properties_from_a_file_and_stdin(sb, config_file, tmp_path, connector):
    (tmp_path / "props.json").write_text('{"accountId": 1001}', "utf-8")
    run = connector("run", "getAccount", "--config", config_file(), "--properties", "@props.json", "--meta", cwd=tmp_path)
    assert run.code == 0, run
    result = run.json()
    assert result["capability"] == "getAccount" and result["output"]["account"]["id"] == 1001
    assert result["meta"]["http_requests"] == 2 and result["meta"]["retries"] == 0  # the token, then the account
    run = connector("run", "getAudiences", "--config", config_file(), "--properties", "-", cwd=tmp_path, stdin='{"accountId": "1001"}')
    assert run.code == 0, run
    assert run.json()["count"] == 3


def test_secret_from_the_environment(sb, tmp_path, connector):
    config = {**sb.config, "clientSecret": {"$env": "MP_TEST_SECRET"}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), "utf-8")
    run = connector("run", "getAccount", "--config", str(path), "--properties", '{"accountId": "1001"}', cwd=tmp_path,
                    env={"MP_TEST_SECRET": sb.config["clientSecret"]})
    assert run.code == 0, run
    run = connector("run", "getAccount", "--config", str(path), "--properties", '{"accountId": "1001"}', cwd=tmp_path)
    assert run.code == EXIT["config"], run
    assert "MP_TEST_SECRET" in run.error()["message"]


@pytest.mark.parametrize("capability, props, changes, category, code", [
    ("getAccount", {"accountId": "1001"}, {"clientSecret": "wrong-client-secret"}, "auth", "authentication_failed"),
    ("uploadEventBatch", {"jsonBody": {"events": []}}, {"apiSecret": "wrong-api-secret"}, "auth", "permission_denied"),
    ("getAccount", {"accountId": "9999"}, {}, "not_found", "not_found"),
    ("getAudiences", {"accountId": "2001"}, {}, "not_found", "not_found"),
    ("createAccount", {"displayName": "Acme Production"}, {}, "conflict", "conflict"),
    ("deleteAccount", {"accountId": "1001"}, {}, "conflict", "conflict"),
    ("getAccount", {"accountId": "12/../3"}, {}, "input", "invalid_input"),
    ("uploadEventBatch", {"jsonBody": "{\n  \"events\": [}"}, {}, "input", "invalid_input"),
    ("uploadEventBatch", {"jsonBody": {"events": []}}, {"pod": "us1.evil.com"}, "config", "invalid_config"),
    ("getAccount", {"accountId": "1001"}, {"platformUrl": "http://api.example.com"}, "config", "invalid_config"),
])
def test_errors_have_their_exit_code_and_json(sb, config_file, tmp_path, capability, props, changes, category, code, connector):
    run = connector("run", capability, "--config", config_file(**changes), "--properties", json.dumps(props), cwd=tmp_path)
    assert run.code == EXIT[category], run
    error = run.error()
    assert (error["category"], error["code"]) == (category, code)
    assert run.stdout == ""
    text = run.stdout + run.stderr
    for value in (*SECRETS, *changes.values()):
        if "secret" in str(value):
            assert value not in text


def test_invalid_input_sends_nothing(sb, config_file, tmp_path, connector):
    run = connector("run", "getAccount", "--config", config_file(), "--properties", '{"accountId": "0"}', cwd=tmp_path)
    assert run.code == EXIT["input"]
    assert run.error()["faults"][0]["path"] == "$.accountId"
    assert sb.requests == []


def test_properties_that_are_not_json(sb, config_file, tmp_path, connector):
    run = connector("run", "getAccount", "--config", config_file(), "--properties", '{"accountId": ', cwd=tmp_path)
    assert run.code == EXIT["input"]
    assert "line 1" in run.error()["message"]


def test_verbose_output_never_shows_secrets(sb, config_file, tmp_path, connector):
    runs = [
        connector("run", "getAccount", "--verbose", "--config", config_file(), "--properties", '{"accountId": "1001"}', cwd=tmp_path),
        connector("run", "uploadEventBatch", "-v", "--config", config_file(), "--properties",
                  json.dumps({"jsonBody": CASES["uploadEventBatch"][0]["jsonBody"]}), cwd=tmp_path),
        connector("run", "uploadEventBatch", "-v", "--config", config_file(apiKey=None, apiSecret=None), "--properties",
                  json.dumps({"jsonBody": CASES["uploadEventBatch"][0]["jsonBody"]}), cwd=tmp_path),
        connector("run", "getAudiences", "-v", "--meta", "--config", config_file(clientSecret="wrong-secret-123"),
                  "--properties", '{"accountId": "1001"}', cwd=tmp_path),
    ]
    sb.fail_next("getAccount", 4, status=503)
    runs.append(connector("run", "getAccount", "-v", "--config", config_file(maxRetries=1, maxRetryWaitSeconds=1),
                          "--properties", '{"accountId": "1001"}', cwd=tmp_path))
    assert [r.code for r in runs] == [0, 0, 0, EXIT["auth"], EXIT["upstream"]], runs
    assert all("HTTP" in r.stderr or "http://" in r.stderr for r in runs)  # verbose really logged requests
    tokens = list(sb.emulator.state.tokens)
    assert tokens  # the runs obtained tokens, which must not be shown
    basics = [base64.b64encode(f"{user}:{secret}".encode()).decode() for user, secret in
              [("us1-sandbox-api-key", "sandbox-api-secret"), ("sandbox-client-id", "sandbox-client-secret")]]
    for run in runs:
        text = run.stdout + run.stderr
        for value in (*SECRETS, "wrong-secret-123", *tokens, *basics):
            assert value not in text, (value, run)


def test_run_with_the_builtin_sandbox(tmp_path, connector):
    run = connector("run", "getAccount", "--sandbox", "--properties", '{"accountId": "1001"}', cwd=tmp_path)
    assert run.code == 0, run
    output = run.json()
    assert_shape("getAccount", output)
    assert output["account"]["id"] == 1001 and output["account"]["name"] == "Acme Production"
    run = connector("run", "getAccount", "--sandbox", "--verbose", "--properties", '{"accountId": "2001"}', cwd=tmp_path)
    assert run.code == EXIT["not_found"], run
    for value in SECRETS:
        assert value not in run.stdout + run.stderr


def test_demo_runs_all_seven(tmp_path, connector):
    run = connector("demo", cwd=tmp_path)
    assert run.code == 0, run
    decoder, text, documents = json.JSONDecoder(), run.stdout, []
    position = 0
    while text[position:].strip():
        while text[position].isspace():
            position += 1
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
    steps, summary = documents[:-1], documents[-1]
    assert [s["capability"] for s in steps] == [
        "createAccount", "getAccount", "updateAccount", "getAudiences", "getCalculatedAttributes", "uploadEventBatch", "deleteAccount",
    ]
    for step in steps:
        assert "error" not in step, step
        assert_shape(step["capability"], step["output"])
    assert summary["demo"] == "done" and summary["calls"] == 7 and summary["failed"] == 0
    assert summary["sandbox"]["token_requests"] == 1 and summary["sandbox"]["batches_accepted"] == 1
    for value in SECRETS:
        assert value not in run.stdout + run.stderr


def test_connector_sandbox_serves_until_sigterm(tmp_path, connector):
    process = subprocess.Popen([str(CONNECTOR), "sandbox", "--seed", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        (tmp_path / "sandbox.json").write_text(line, "utf-8")
        run = connector("run", "getAccount", "--config", "sandbox.json", "--properties", '{"accountId": "1002"}', cwd=tmp_path)
        assert run.code == 0, run
        assert run.json()["account"]["name"] == "Acme Staging"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0 and out == ""


def test_connector_sandbox_refuses_a_remote_bind_as_a_json_error(tmp_path, connector):
    run = connector("sandbox", "--host", "0.0.0.0", cwd=tmp_path)
    assert run.code == 2 and run.stdout == ""
    error = run.error()
    assert error["code"] == "invalid_option" and "loopback" in error["message"]


def test_check_obtains_a_token_and_reports_readiness(sb, config_file, tmp_path, connector):
    run = connector("check", "--config", config_file(pod=None), cwd=tmp_path)
    assert run.code == 0, run
    report = run.json()
    assert report["credentials"] == {"platform": {"ok": True, "message": "token obtained"}}
    assert report["capabilities"]["uploadEventBatch"] == {"ready": False, "missing": ["pod"]}
    assert all(report["capabilities"][c]["ready"] for c in CAPABILITIES if c != "uploadEventBatch")
    assert sb.state()["token_requests"] == 1

    run = connector("check", "--config", config_file(pod=None, clientSecret="not-the-secret"), cwd=tmp_path)
    assert run.code == EXIT["auth"]
    assert run.json()["credentials"]["platform"]["code"] == "authentication_failed"
    assert "not-the-secret" not in run.stdout + run.stderr
