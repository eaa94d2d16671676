"""``connector serve``: the HTTP API against the mParticle sandbox, its guards and its errors.

The service runs in-process (uvicorn in a thread, ``tests/serving.py``) over the real
entry-point engine; commands that must be seen from outside (refusals to start, graceful
shutdown, logs) run ``connector serve`` as a process.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from serving import ServedApp, needs_serve_extra

from connector_core import ConnectorError, Engine, HostPolicy
from connector_core.cli import main
from connector_core.config import ConnectionSpec
from connector_core.serve import STATUS_BY_CATEGORY, status_for

needs_serve_extra()

CONNECTOR = Path(sys.executable).parent / "connector"
KEY = "test-key-0123456789abcdef"
CAPABILITIES = ["createAccount", "deleteAccount", "getAccount", "getAudiences", "getCalculatedAttributes",
                "updateAccount", "uploadEventBatch"]


@pytest.fixture(scope="module")
def engine():
    with Engine() as engine:
        yield engine


def connections(config: dict) -> dict[str, ConnectionSpec]:
    fast = {**config, "maxRetries": 0}
    return {
        "sandbox": ConnectionSpec("sandbox", fast, "mparticle"),
        "readonly": ConnectionSpec("readonly", fast, "mparticle", ("getAccount",)),
        "wrongsecret": ConnectionSpec("wrongsecret", {**fast, "clientSecret": "not-the-secret-at-all"}, "mparticle"),
    }


@pytest.fixture(scope="module")
def served(engine, mparticle_sandbox_server):
    with ServedApp(engine, connections(mparticle_sandbox_server.config), api_keys=[KEY], max_body_bytes=65536,
                   caller_policy=HostPolicy.untrusted()) as app:
        yield app


@pytest.fixture(scope="module")
def relaxed(engine):
    """Caller configs under the untrusted policy with URL overrides and loopback allowed, explicitly, to reach the sandbox."""
    with ServedApp(engine, caller_policy=HostPolicy.untrusted(allow_url_overrides=True, allow_loopback=True)) as app:
        yield app


@pytest.fixture(scope="module")
def named_only(engine):
    with ServedApp(engine) as app:
        yield app


@pytest.fixture
def api(served, mparticle_sandbox):
    """A keep-alive client of the served app with the API key; the sandbox reset."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {KEY}"
        session.base = served.url
        yield session


def post(api, path, body, **headers):
    return api.post(api.base + path, data=json.dumps(body), headers={"Content-Type": "application/json", **headers}, timeout=30)


def execute(api, capability, properties, connection="sandbox", **headers):
    return post(api, f"/v1/capabilities/mparticle.{capability}/execute", {"properties": properties, "connection": connection}, **headers)


# -- descriptions ---------------------------------------------------------------------


def test_connectors_capabilities_and_descriptions_come_from_the_manifests(api, engine):
    connectors = api.get(api.base + "/v1/connectors").json()
    assert [c["id"] for c in connectors] == ["mparticle"]
    assert connectors[0]["secretFields"] == ["apiSecret", "clientSecret"]
    assert connectors[0]["configSchema"]["properties"]["clientSecret"]["writeOnly"] is True
    assert connectors[0]["capabilities"] == [f"mparticle.{c}" for c in CAPABILITIES]

    listed = api.get(api.base + "/v1/capabilities").json()
    assert [c["id"] for c in listed] == [f"mparticle.{c}" for c in CAPABILITIES]
    assert {c["effect"] for c in listed} == {"read", "write", "delete"}

    described = api.get(api.base + "/v1/capabilities/mparticle.getAccount").json()
    manifest = engine.registry.get("getAccount").manifest
    assert described["inputSchema"] == manifest.input_schema
    assert described["outputSchema"] == manifest.output_schema
    assert described["examples"] == list(manifest.examples)
    # A bare id works while one connector provides it.
    assert api.get(api.base + "/v1/capabilities/getAccount").json()["id"] == "mparticle.getAccount"


def test_an_unknown_capability_is_a_404_with_a_suggestion(api):
    answer = api.get(api.base + "/v1/capabilities/mparticle.getAcount")
    assert answer.status_code == 404
    body = answer.json()
    assert body["code"] == "unknown_capability" and "getAccount" in body["message"]


def test_connections_are_listed_without_their_configs(api, mparticle_sandbox):
    answer = api.get(api.base + "/v1/connections")
    assert answer.json() == [
        {"name": "readonly", "connector": "mparticle", "description": "", "capabilities": ["getAccount"]},
        {"name": "sandbox", "connector": "mparticle", "description": "", "capabilities": None},
        {"name": "wrongsecret", "connector": "mparticle", "description": "", "capabilities": None},
    ]
    assert mparticle_sandbox.config["clientSecret"] not in answer.text


# -- execute --------------------------------------------------------------------------


def test_execute_answers_the_result_of_the_python_api(api, engine, mparticle_sandbox):
    answer = execute(api, "getAccount", {"accountId": "1001"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    with engine.connect(mparticle_sandbox.config) as connection:
        expected = connection.execute("getAccount", {"accountId": "1001"}).to_dict()
    assert body["capability"] == "getAccount"
    assert body["output"] == expected["output"]
    assert set(body["meta"]) == {"duration_ms", "http_requests", "retries"}


def test_execute_errors_are_the_python_api_errors_with_the_correlation_id(api, engine, mparticle_sandbox):
    answer = execute(api, "updateAccount", {"accountId": "12/../3"}, **{"X-Correlation-ID": "flow-42.step:7"})
    assert answer.status_code == 422
    with engine.connect(mparticle_sandbox.config) as connection, pytest.raises(ConnectorError) as raised:
        connection.execute("updateAccount", {"accountId": "12/../3"})
    assert answer.json() == {**raised.value.to_dict(), "correlation_id": "flow-42.step:7"}
    assert [f["path"] for f in answer.json()["faults"]] == ["$.accountId", "$.updatedName"]
    assert answer.headers["X-Correlation-ID"] == "flow-42.step:7"


def test_every_error_category_has_a_status():
    categories = {"internal", "input", "config", "auth", "not_found", "conflict", "rate_limited", "upstream", "network",
                  "outcome_unknown", "plugin"}
    assert categories <= set(STATUS_BY_CATEGORY)
    assert status_for(ConnectorError("x", code="capability_not_allowed")) == 403


@pytest.mark.parametrize(
    "case, status, code",
    [
        ("not_found", 404, "not_found"),
        ("conflict", 409, "conflict"),
        ("rate_limited", 429, "rate_limited"),
        ("upstream", 502, "server_error"),
        ("network", 504, "network_error"),
        ("auth", 424, "authentication_failed"),
        ("outcome_unknown", 502, "outcome_unknown"),
        ("not_allowed", 403, "capability_not_allowed"),
        ("unknown_connection", 404, "unknown_connection"),
        ("caller_config", 422, "invalid_config"),
    ],
)
def test_statuses_follow_the_error_categories(api, mparticle_sandbox, case, status, code):
    sandbox = mparticle_sandbox
    body = {"properties": {"accountId": "1001"}, "connection": "sandbox"}
    capability = "getAccount"
    if case == "not_found":
        body["properties"] = {"accountId": "999999"}
    elif case == "conflict":
        capability, body["properties"] = "createAccount", {"displayName": "Acme Production"}
    elif case == "rate_limited":
        sandbox.fail_next("getAccount", status=429, retry_after=7)
    elif case == "upstream":
        sandbox.fail_next("getAccount", status=500)
    elif case == "network":
        sandbox.fail_next("getAccount", effect="drop")
    elif case == "auth":
        body["connection"] = "wrongsecret"
    elif case == "outcome_unknown":
        capability, body["properties"] = "createAccount", {"displayName": "Made twice?"}
        execute(api, "getAccount", {"accountId": "1001"})  # a fresh token, so the dropped request creates the account
        sandbox.fail_next("createAccount", effect="drop", after=True)
    elif case == "not_allowed":
        capability, body["connection"] = "getAudiences", "readonly"
    elif case == "unknown_connection":
        body["connection"] = "prod"
    elif case == "caller_config":  # URL overrides are refused under the untrusted policy
        del body["connection"]
        body["config"] = sandbox.config
    answer = post(api, f"/v1/capabilities/mparticle.{capability}/execute", body)
    assert (answer.status_code, answer.json().get("code")) == (status, code), answer.text
    if case == "rate_limited":
        assert answer.headers["Retry-After"] == "7" and answer.json()["retry_after"] == 7
    if case == "caller_config":
        assert [f["path"] for f in answer.json()["faults"]] == ["$.authUrl", "$.eventsUrl", "$.platformUrl"]
        assert sandbox.state()["requests_total"] == 0
    for secret in (sandbox.config["clientSecret"], sandbox.config["apiSecret"], "not-the-secret-at-all"):
        assert secret not in answer.text


def test_check_reports_a_named_connection(api, mparticle_sandbox):
    answer = post(api, "/v1/connections/sandbox/check", {})
    assert answer.status_code == 200
    report = answer.json()
    assert report["ready"] is True and report["credentials"]["platform"] == {"ok": True, "message": "token obtained"}
    assert set(report["capabilities"]) == set(CAPABILITIES)
    failed = post(api, "/v1/connections/wrongsecret/check", {}).json()
    assert failed["ready"] is False and failed["credentials"]["platform"]["code"] == "authentication_failed"
    assert "not-the-secret-at-all" not in json.dumps(failed)
    assert post(api, "/v1/connections/prod/check", {}).status_code == 404


# -- the guards -----------------------------------------------------------------------


def test_api_keys_are_required_on_v1_but_not_for_probes(served, mparticle_sandbox):
    url = served.url
    missing = requests.get(url + "/v1/capabilities", timeout=10)
    assert missing.status_code == 401 and missing.json()["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = requests.get(url + "/v1/capabilities", headers={"Authorization": "Bearer " + KEY[:-1] + "X"}, timeout=10)
    assert wrong.status_code == 401
    assert requests.get(url + "/v1/capabilities", headers={"Authorization": "bearer " + KEY}, timeout=10).status_code == 200
    assert requests.get(url + "/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(url + "/readyz", timeout=10).json()
    assert ready["status"] == "ready" and ready["connections"] == 3


@pytest.mark.parametrize(
    "headers, body, status, code",
    [
        ({"Host": "attacker.example:8080"}, b"{}", 421, "misdirected_host"),
        ({"Origin": "http://attacker.example"}, b"{}", 403, "origin_refused"),
        ({"Sec-Fetch-Site": "cross-site"}, b"{}", 403, "origin_refused"),
        ({"Content-Type": "text/plain"}, b"{}", 415, "unsupported_media_type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"a=1", 415, "unsupported_media_type"),
        ({}, b'{"properties": ', 400, "invalid_json"),
        ({}, b"[]", 400, "invalid_request"),
        ({}, b'{"properties": {}, "connection": "sandbox", "config": {}}', 400, "invalid_request"),
        ({}, b'{"properties": {}, "conection": "sandbox"}', 400, "invalid_request"),
        ({}, b'{"connection": "sandbox", "config": {}}', 400, "invalid_request"),
        ({}, b'{"properties": {"accountId": "\\ud800"}, "connection": "sandbox"}', 400, "invalid_json"),
        ({}, b"[" * 5000 + b"]" * 5000, 400, "invalid_json"),
        ({"X-Correlation-ID": "bad id\twith tab"}, b"{}", 400, "invalid_request"),
        ({}, b'{"x": "' + b"a" * 70_000 + b'"}', 413, "body_too_large"),
    ],
)
def test_requests_a_web_page_could_send_are_refused(served, headers, body, status, code, mparticle_sandbox):
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}", **headers}
    answer = requests.post(served.url + "/v1/capabilities/mparticle.getAccount/execute", data=body, headers=headers, timeout=10)
    assert (answer.status_code, answer.json().get("code")) == (status, code), answer.text
    assert mparticle_sandbox.state()["requests_total"] == 0


def test_execute_answers_carry_the_service_headers_and_other_methods_get_the_json_error(api):
    answer = execute(api, "getAccount", {"accountId": "1001"}, **{"X-Correlation-ID": "hdr-1"})
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    assert int(answer.headers["Content-Length"]) == len(answer.content)
    assert (answer.headers["X-Correlation-ID"], answer.headers["Cache-Control"], answer.headers["X-Content-Type-Options"]) == (
        "hdr-1", "no-store", "nosniff")
    for method in ("GET", "PUT", "DELETE"):
        wrong = api.request(method, api.base + "/v1/capabilities/mparticle.getAccount/execute", timeout=10)
        assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed"), wrong.text


def test_a_chunked_body_over_the_limit_is_refused(served):
    def chunks():
        for _ in range(10):
            yield b'{"x": "' + b"a" * 10_000

    answer = requests.post(served.url + "/v1/capabilities/mparticle.getAccount/execute", data=chunks(),
                           headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}, timeout=10)
    assert answer.status_code == 413


def test_calls_waiting_on_a_slow_upstream_never_block_the_loop(engine, mparticle_sandbox):
    # Two call threads, three calls that each wait 800 ms on the sandbox: the third waits for a
    # thread; meanwhile health checks and bad requests are answered at once.
    mparticle_sandbox.set_faults("platform", latency_ms=800)
    with ServedApp(engine, connections(mparticle_sandbox.config), threads=2) as app:
        url = app.url + "/v1/capabilities/mparticle.getAccount/execute"
        answers: list[tuple[float, int]] = []
        started = time.monotonic()

        def call() -> None:
            answer = requests.post(url, json={"properties": {"accountId": "1001"}, "connection": "sandbox"}, timeout=30)
            answers.append((time.monotonic() - started, answer.status_code))

        calls = [threading.Thread(target=call) for _ in range(3)]
        for thread in calls:
            thread.start()
        deadline = time.monotonic() + 10
        while sum(r["path"].startswith("/v1/accounts") for r in mparticle_sandbox.requests) < 2:
            assert time.monotonic() < deadline, "the calls never reached the sandbox"
            time.sleep(0.01)
        for _ in range(5):
            probe = time.monotonic()
            assert requests.get(app.url + "/healthz", timeout=5).status_code == 200
            refused = requests.post(url, data="{", headers={"Content-Type": "application/json"}, timeout=5)
            assert refused.status_code == 400 and time.monotonic() - probe < 0.4
        for thread in calls:
            thread.join(30)
        assert app.service.pool.threads == 2
    assert sorted(status for _, status in answers) == [200, 200, 200]
    assert max(seconds for seconds, _ in answers) >= 1.6  # the third call waited for a thread


def test_same_origin_requests_pass(api):
    answer = execute(api, "getAccount", {"accountId": "1001"}, Origin=api.base, **{"Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 200


def test_the_correlation_id_reaches_the_logs(api, served):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    from connector_core.serve.app import CorrelationFilter

    handler.addFilter(CorrelationFilter())
    logger = logging.getLogger("connector_core")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        execute(api, "getAccount", {"accountId": "1001"}, **{"X-Correlation-ID": "run-7"})
        deadline = time.monotonic() + 5  # the access line is written once the answer is sent
        while not any(r.name == "connector_core.serve.access" for r in records) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    by_logger = {r.name: r for r in records if getattr(r, "correlation_id", None) == "run-7"}
    assert {"connector_core.serve.access", "connector_core.engine", "connector_core.http"} <= set(by_logger)
    access = by_logger["connector_core.serve.access"]
    assert access.http_status == 200 and access.api_key != "-" and KEY not in access.getMessage()


@pytest.mark.parametrize("path", ["/v1/capabilities/mparticle.getAccount/execute", "/v1/caf\u00e9", "/lone-\ud800"])
def test_the_commands_access_line_is_the_access_loggers_record_as_a_json_line(path):
    from connector_core.serve.app import correlation_id
    from connector_core.serve.commands import AccessLines, JsonLines

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    from connector_core.serve.app import CorrelationFilter

    handler.addFilter(CorrelationFilter())
    record = logging.LogRecord("connector_core.serve.access", logging.INFO, __file__, 0, "%s %s %d %.1fms key=%s",
                               ("POST", path, 413, 2.25, "ab12cd34"), None)
    record.__dict__.update(http_method="POST", http_path=path, http_status=413, api_key="ab12cd34")
    token = correlation_id.set("run-9")
    try:
        handler.handle(record)
        AccessLines(handler, handler.formatter)("POST", path, 413, 2.25, "ab12cd34", correlation_id.get())
    finally:
        correlation_id.reset(token)
    by_record, written = stream.getvalue().splitlines()
    (by_record_time, written_time) = (json.loads(line)["time"] for line in (by_record, written))
    assert written.replace(written_time, "") == by_record.replace(by_record_time, "")  # the clock may tick between
    assert json.loads(written)["correlation_id"] == "run-9" and json.loads(written)["http_path"] == path


# -- the command ----------------------------------------------------------------------


def test_serve_refuses_to_listen_beyond_loopback_without_keys(capsys, monkeypatch):
    monkeypatch.delenv("CONNECTOR_SERVE_API_KEYS", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 4  # config
    error = json.loads(capsys.readouterr().err)
    assert error["code"] == "invalid_config" and error["faults"][0]["path"] == "--host"


def test_short_api_keys_are_refused(capsys, monkeypatch):
    monkeypatch.setenv("CONNECTOR_SERVE_API_KEYS", "short")
    assert main(["serve", "--port", "0"]) == 4  # config
    assert "at least 16" in json.loads(capsys.readouterr().err)["message"]


def test_pin_workers_is_refused_where_there_is_no_cpu_affinity(capsys, monkeypatch):
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    assert main(["serve", "--port", "0", "--pin-workers"]) == 4  # config
    error = json.loads(capsys.readouterr().err)
    assert error["code"] == "invalid_config" and error["faults"][0]["path"] == "--pin-workers"


def test_serve_without_the_extra_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # what an environment without uvicorn looks like to import
    assert main(["serve", "--port", "0"]) == 4  # config
    error = json.loads(capsys.readouterr().err)
    assert error["code"] == "missing_extra" and "pip install 'connector-framework[serve]'" in error["message"]


def start_serve(tmp_path, sandbox, *args, env=None):
    path = tmp_path / "connections.json"
    path.write_text(json.dumps({"connections": {"sandbox": {"connector": "mparticle", "config": sandbox.config}}}))
    process = subprocess.Popen([str(CONNECTOR), "serve", "--port", "0", "--connections", str(path), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    line = process.stdout.readline()
    if not line:
        process.kill()
        pytest.fail("connector serve did not start: " + process.stderr.read())
    return process, json.loads(line), path


def test_the_command_serves_logs_and_finishes_calls_in_flight_on_sigterm(tmp_path, mparticle_sandbox, capsys):
    mparticle_sandbox.set_faults("platform", latency_ms=1500)
    process, started, path = start_serve(tmp_path, mparticle_sandbox, "-v", "--sandbox")
    assert started["connections"] == ["mparticle-sandbox", "sandbox"]  # --sandbox started the connector's own
    url = started["url"]
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.1)
        own = requests.post(url + "/v1/capabilities/mparticle.getAudiences/execute", timeout=30,
                            json={"properties": {"accountId": "1001"}, "connection": "mparticle-sandbox"})
        assert own.status_code == 200 and own.json()["output"]["count"] >= 1
        # `connector openapi` offline writes the document the service serves (same connections).
        path.write_text(json.dumps({"connections": {name: {"config": {}} for name in started["connections"]}}))
        assert main(["openapi", "--connections", str(path)]) == 0
        assert json.loads(capsys.readouterr().out) == requests.get(url + "/openapi.json", timeout=10).json()

        answers = []
        call = threading.Thread(target=lambda: answers.append(requests.post(
            url + "/v1/capabilities/mparticle.getAccount/execute", timeout=30, headers={"X-Correlation-ID": "in-flight-1"},
            json={"properties": {"accountId": "1001"}, "connection": "sandbox"})))
        call.start()
        while not any(r["path"].startswith("/v1/accounts") for r in mparticle_sandbox.requests):
            assert time.monotonic() < deadline + 10, "the call never reached the sandbox"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        call.join(30)
        assert answers and answers[0].status_code == 200, answers and answers[0].text
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    log = [json.loads(line) for line in process.stderr.read().splitlines()]
    mine = [entry for entry in log if entry["correlation_id"] == "in-flight-1"]
    assert {"connector_core.serve.access", "connector_core.engine"} <= {entry["logger"] for entry in mine}
    assert [e["http_status"] for e in mine if e["logger"] == "connector_core.serve.access"] == [200]
    text = json.dumps(log)
    assert mparticle_sandbox.config["clientSecret"] not in text and mparticle_sandbox.config["apiSecret"] not in text


def _ready(url: str) -> bool:
    try:
        return requests.get(url + "/readyz", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or not hasattr(os, "fork"), reason="needs Linux CPU affinity and os.fork")
@pytest.mark.skipif(hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < 2,
                    reason="on one CPU every thread is on it, pinned or not: nothing to tell apart")
@pytest.mark.parametrize("workers", [1, 2])
def test_pin_workers_binds_each_worker_and_its_call_threads_to_one_cpu(tmp_path, mparticle_sandbox, workers):
    cpus = sorted(os.sched_getaffinity(0))
    process, started, _ = start_serve(tmp_path, mparticle_sandbox, "--workers", str(workers), "--pin-workers")
    url = started["url"]
    try:
        deadline = time.monotonic() + 30
        while (workers > 1 and len(_children(process.pid)) < workers) or not _ready(url):
            assert time.monotonic() < deadline, "the workers never became ready"
            time.sleep(0.1)
        with requests.Session() as session:  # calls start the call threads, which inherit the pinning
            for _ in range(6):
                answer = session.post(url + "/v1/capabilities/mparticle.getAccount/execute", timeout=30,
                                      json={"properties": {"accountId": "1001"}, "connection": "sandbox"})
                assert answer.status_code == 200
        pinned = []
        for pid in sorted(_children(process.pid)) if workers > 1 else [process.pid]:
            threads = {int(tid) for tid in os.listdir(f"/proc/{pid}/task")}
            allowed = {frozenset(os.sched_getaffinity(tid)) for tid in threads}
            assert len(allowed) == 1, allowed  # every thread of a worker on the same CPU
            pinned.append(next(iter(allowed)))
        assert sorted(map(sorted, pinned)) == sorted([cpus[i % len(cpus)]] for i in range(workers))  # worker N on CPU N
        if workers > 1:
            assert os.sched_getaffinity(process.pid) == set(cpus)  # the supervisor stays free
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()


def test_the_docs_show_the_status_table_of_the_code():
    from connector_core.serve.openapi import status_table_markdown

    assert status_table_markdown() in (Path(__file__).parent.parent / "docs" / "serve.md").read_text("utf-8")


def test_the_core_and_connector_openapi_work_without_the_extra(tmp_path):
    code = (
        "import sys\n"
        "for name in ('starlette', 'uvicorn', 'httptools', 'uvloop'): sys.modules[name] = None  # as if not installed\n"
        "from connector_core.cli import main\n"
        "sys.exit(main(['openapi']) or main(['plugins', '--json']))\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout[: ran.stdout.index("\n}\n") + 2])["openapi"] == "3.1.0"


# -- configs sent by callers ------------------------------------------------------------


def test_a_caller_config_runs_under_the_untrusted_policy(relaxed, mparticle_sandbox, engine):
    body = {"properties": {"accountId": "1001"}, "config": mparticle_sandbox.config}
    answer = requests.post(relaxed.url + "/v1/capabilities/mparticle.getAccount/execute", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"] == engine.execute("getAccount", {"accountId": "1001"}, mparticle_sandbox.config).output
    wrong = {**mparticle_sandbox.config, "clientSecret": "a-wrong-secret-value"}
    refused = requests.post(relaxed.url + "/v1/capabilities/mparticle.getAccount/execute", timeout=30,
                            json={"properties": {"accountId": "1001"}, "config": wrong})
    assert (refused.status_code, refused.json()["code"]) == (424, "authentication_failed")
    assert "a-wrong-secret-value" not in refused.text and mparticle_sandbox.config["clientSecret"] not in answer.text


def test_a_caller_config_cannot_read_the_environment(api, monkeypatch, mparticle_sandbox):
    monkeypatch.setenv("HOST_DB_PASSWORD", "hunter2-of-the-host")
    config = {"clientID": "x", "clientSecret": {"$env": "HOST_DB_PASSWORD"}, "timeoutSeconds": {"$env": "HOST_DB_PASSWORD"}}
    answer = post(api, "/v1/capabilities/mparticle.getAccount/execute", {"properties": {"accountId": "1001"}, "config": config})
    assert (answer.status_code, answer.json()["code"]) == (422, "invalid_config")
    assert [f["path"] for f in answer.json()["faults"]] == ["$.clientSecret", "$.timeoutSeconds"]
    assert "hunter2" not in answer.text and mparticle_sandbox.state()["requests_total"] == 0


def test_named_connections_only_refuses_caller_configs(named_only, mparticle_sandbox):
    answer = requests.post(named_only.url + "/v1/capabilities/mparticle.getAccount/execute", timeout=30,
                           json={"properties": {"accountId": "1001"}, "config": mparticle_sandbox.config})
    assert (answer.status_code, answer.json()["code"]) == (422, "caller_config_refused")
    document = requests.get(named_only.url + "/openapi.json", timeout=10).json()
    body = document["paths"]["/v1/capabilities/mparticle.getAccount/execute"]["post"]["requestBody"]["content"]["application/json"]
    assert "config" not in body["schema"]["properties"]


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir() or not hasattr(os, "fork"), reason="needs os.fork and Linux /proc")
def test_workers_share_the_port_finish_calls_on_sigterm_and_never_outlive_the_supervisor(tmp_path, mparticle_sandbox):
    mparticle_sandbox.set_faults("platform", latency_ms=400)
    runs = []
    for stop in (signal.SIGTERM, signal.SIGKILL):
        process, started, _ = start_serve(tmp_path, mparticle_sandbox, "--workers", "2")
        assert started["workers"] == 2
        url = started["url"]
        try:
            deadline = time.monotonic() + 30
            while len(_children(process.pid)) < 2 or requests.get(url + "/readyz", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, "the workers never became ready"
                time.sleep(0.1)
            workers = _children(process.pid)
            answers: list[requests.Response] = []
            calls = [threading.Thread(target=lambda: answers.append(requests.post(
                url + "/v1/capabilities/mparticle.getAccount/execute", timeout=30,
                json={"properties": {"accountId": "1001"}, "connection": "sandbox"}))) for _ in range(4)]
            for call in calls:
                call.start()
            while sum(r["path"].startswith("/v1/accounts") for r in mparticle_sandbox.requests) < 4:
                assert time.monotonic() < deadline, "the calls never reached the sandbox"
                time.sleep(0.02)
            process.send_signal(stop)
            for call in calls:
                call.join(30)
            runs.append((stop, process.wait(30), [a.status_code for a in answers]))
            while any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
                      for pid in workers):
                assert time.monotonic() < deadline, f"workers {workers} outlived the supervisor ({stop.name})"
                time.sleep(0.1)
        finally:
            if process.poll() is None:
                process.kill()
            process.stderr.close()
    # SIGTERM: the supervisor passes it on, calls in flight finish, exit 0. SIGKILL of the
    # supervisor: its workers notice, still finish their calls and stop.
    assert runs[0] == (signal.SIGTERM, 0, [200] * 4)
    assert runs[1][2] == [200] * 4
