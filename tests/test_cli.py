"""The ``connector`` command: output on stdout, JSON errors on stderr, exit codes.

Runs go through ``connector_core.cli.main(argv)`` in this process with captured streams
(the ``cli`` fixture); a few run the installed console script as a real process
(``cli_process``), for what only a process shows: the script itself and exit codes as
the shell sees them. Runs that need a capability use the sample plugin package installed
into a temp dir (``sample_site``) or the built-in mParticle capabilities for offline
commands. Every run is checked for a Python traceback.
"""

from __future__ import annotations

import base64
import io
import json
import sys

import pytest
from conftest import PLUGINS, TESTS
from httpserver import Answer, closed_port
from toy import SECRET

from connector_core.cli import main

TOKEN = "sample-T0ken!secret"
SAMPLE_MANIFESTS = PLUGINS / "sample_plugin" / "connector_sample" / "manifests"


@pytest.fixture
def sample(cli, sample_site):
    """``connector`` with the sample plugin package installed."""

    def run(*args, **kwargs):
        return cli(*args, sites=[sample_site], **kwargs)

    return run


@pytest.fixture
def sample_config(server, write_json):
    server.route("GET", "/status", Answer(200, json={"ok": True}))
    return write_json("config.json", {"apiUrl": server.url, "user": "ada", "token": TOKEN, "maxRetries": 0})


# -- plugins and describe --------------------------------------------------------------


def test_plugins_json_lists_every_plugin_with_its_origin(cli):
    run = cli("plugins", "--json")
    assert run.code == 0
    reports = run.json()
    by_name = {r["name"]: r for r in reports}
    assert {"getAccount", "createAccount"} <= set(by_name)
    for report in reports:
        assert set(report) >= {"name", "status", "kind", "title", "distribution", "version", "entry_point", "reason"}
        assert report["status"] in ("loaded", "rejected")
        assert (report["reason"] is None) == (report["status"] == "loaded")
    get = by_name["getAccount"]
    assert (get["status"], get["kind"], get["distribution"], get["version"]) == ("loaded", "capability", "connector-framework", "0.1.0")
    assert get["title"]


def test_plugins_text_lists_one_line_per_plugin(sample):
    run = sample("plugins")
    assert run.code == 0
    line = next(line for line in run.stdout.splitlines() if line.startswith("sample.sampleGreet "))
    assert "capability" in line and "Greet someone" in line and "[connector-sample-plugin 1.4.0]" in line and line.endswith("loaded")


def test_describe_shows_title_inputs_config_and_example(sample):
    run = sample("describe", "sampleFetch")
    assert run.code == 0
    out = run.stdout
    assert out.startswith("sampleFetch: Fetch a path  (connector sample, read, safe to retry)")
    assert "Inputs:\n  path (string, required)  Path on the API, such as /status." in out
    assert "Config needed: token (secret), user" in out
    assert 'Example input:\n  {\n    "path": "/status"\n  }' in out
    assert "Example output:" in out


def test_describe_json_prints_the_manifest(sample):
    run = sample("describe", "sampleGreet", "--json")
    assert run.code == 0
    assert run.json() == json.loads((SAMPLE_MANIFESTS / "sampleGreet.json").read_text("utf-8"))


def test_describe_a_builtin_capability_offline(cli):
    run = cli("describe", "getAccount")
    assert run.code == 0
    assert run.stdout.startswith("getAccount: ")
    assert "Inputs:" in run.stdout and "clientSecret (secret)" in run.stdout
    assert "Output:\n  account (object)" in run.stdout


def test_describe_shows_enumerated_and_constant_outputs(cli):
    upload = cli("describe", "uploadEventBatch").stdout
    assert '  status (one of "accepted", "partial", "unknown")' in upload
    assert "  deleted (always true)" in cli("describe", "deleteAccount").stdout


def test_unknown_capability_exits_3_with_a_suggestion(sample):
    run = sample("describe", "sampleGret")
    assert run.code == 3
    error = run.error()
    assert error["code"] == "unknown_capability" and error["category"] == "input"
    assert "did you mean 'sampleGreet'?" in error["message"]
    assert run.stdout == ""


# -- run -------------------------------------------------------------------------------


def test_run_prints_the_output_json(sample, sample_config, server):
    run = sample("run", "sampleFetch", "--config", str(sample_config), "--properties", '{"path": "/status"}')
    assert run.code == 0, run
    assert run.json() == {"status": 200, "body": {"ok": True}}
    (request,) = server.requests_to("GET", "/status")
    assert request.headers["Authorization"].startswith("Basic ")


def test_run_meta_adds_counts(sample, sample_config):
    run = sample("run", "sampleFetch", "--config", str(sample_config), "--properties", '{"path": "/status"}', "--meta")
    assert run.code == 0
    result = run.json()
    assert result["capability"] == "sampleFetch"
    assert result["output"] == {"status": 200, "body": {"ok": True}}
    assert (result["meta"]["http_requests"], result["meta"]["retries"]) == (1, 0)


def test_run_reads_properties_from_a_file_and_from_stdin(sample, sample_config, write_json):
    props = write_json("props.json", {"name": "Ada", "punctuation": "."})
    assert sample("run", "sampleGreet", "--config", str(sample_config), "--properties", f"@{props}").json() == {"greeting": "Hello, Ada."}
    run = sample("run", "sampleGreet", "--config", str(sample_config), "--properties", "-", input='{"name": "Bob"}')
    assert run.json() == {"greeting": "Hello, Bob!"}


def test_invalid_json_properties_exit_3_with_line_and_column(sample, sample_config):
    run = sample("run", "sampleGreet", "--config", str(sample_config), "--properties", '{"name": "Ada",\n "x": }')
    assert run.code == 3
    error = run.error()
    assert error["code"] == "invalid_input"
    assert "line 2, column 7" in error["message"]
    assert error["faults"][0]["path"] == "$"


def test_unreadable_properties_file_exits_3(sample, sample_config, tmp_path):
    run = sample("run", "sampleGreet", "--config", str(sample_config), "--properties", f"@{tmp_path / 'nope.json'}")
    assert run.code == 3 and "cannot read properties file" in run.error()["message"]


def test_input_faults_exit_3_with_every_path(sample, sample_config):
    run = sample("run", "sampleGreet", "--config", str(sample_config), "--properties", '{"name": "", "punctuation": "?", "nmae": 1}')
    assert run.code == 3
    assert [f["path"] for f in run.error()["faults"]] == ["$.name", "$.nmae", "$.punctuation"]


def test_unknown_capability_in_run_exits_3(sample, sample_config):
    assert sample("run", "noSuchThing", "--config", str(sample_config)).code == 3


def test_missing_config_file_exits_4(sample, tmp_path):
    run = sample("run", "sampleGreet", "--config", str(tmp_path / "missing.json"), "--properties", '{"name": "x"}')
    assert run.code == 4
    error = run.error()
    assert error["code"] == "invalid_config" and "cannot read config file" in error["message"]


def test_no_config_given_exits_4(sample):
    run = sample("run", "sampleGreet", "--properties", '{"name": "x"}')
    assert run.code == 4 and "--config PATH or --connection NAME" in run.error()["message"]


def test_invalid_config_exits_4_with_every_fault(sample, write_json):
    config = write_json("bad.json", {"apiUrl": 5, "token": TOKEN * 2, "maxRetries": 99, "usr": "ada"})
    run = sample("run", "sampleGreet", "--config", str(config), "--properties", '{"name": "x"}')
    assert run.code == 4
    error = run.error()
    assert [f["path"] for f in error["faults"]] == ["$.apiUrl", "$.maxRetries", "$.usr"]
    assert TOKEN not in run.stderr


def test_invalid_json_config_exits_4_with_line_and_column(sample, write_json):
    config = write_json("bad.json", '{"user": "ada",,}')
    run = sample("run", "sampleGreet", "--config", str(config), "--properties", '{"name": "x"}')
    assert run.code == 4 and "line 1, column 16" in run.error()["message"]


def test_config_reads_env_references(sample, server, write_json):
    server.route("GET", "/status", Answer(200, json={}))
    config = write_json("env.json", {"apiUrl": server.url, "user": "ada", "token": {"$env": "SAMPLE_TOKEN"}})
    run = sample("run", "sampleFetch", "--config", str(config), "--properties", '{"path": "/status"}', env={"SAMPLE_TOKEN": TOKEN})
    assert run.code == 0, run
    sent = server.requests_to("GET", "/status")[0].headers["Authorization"]
    assert base64.b64decode(sent.split()[1]).decode() == f"ada:{TOKEN}"
    missing = sample("run", "sampleFetch", "--config", str(config), "--properties", '{"path": "/status"}')
    assert missing.code == 4
    assert missing.error()["faults"][0]["path"] == "$.token"


def test_required_config_of_the_capability_exits_4(sample, write_json):
    config = write_json("partial.json", {"user": "ada"})
    assert sample("run", "sampleGreet", "--config", str(config), "--properties", '{"name": "x"}').code == 0
    run = sample("run", "sampleFetch", "--config", str(config), "--properties", '{"path": "/status"}')
    assert run.code == 4
    assert [f["path"] for f in run.error()["faults"]] == ["$.token"]


def test_upstream_error_exits_with_its_category_and_no_secret(sample, server, write_json):
    server.route("GET", "/boom", Answer(500, json={"message": f"cannot use {TOKEN}"}))
    config = write_json("c.json", {"apiUrl": server.url, "user": "ada", "token": TOKEN, "maxRetries": 0})
    run = sample("run", "sampleFetch", "--config", str(config), "--properties", '{"path": "/boom"}')
    assert run.code == 9
    error = run.error()
    assert error["code"] == "server_error" and error["status"] == 500
    assert "cannot use ***" in error["message"]
    assert TOKEN not in run.stderr and run.stdout == ""


def test_refused_connection_exits_10(sample, write_json):
    config = write_json("c.json", {"apiUrl": f"http://127.0.0.1:{closed_port()}", "user": "ada", "token": TOKEN, "maxRetries": 0})
    run = sample("run", "sampleFetch", "--config", str(config), "--properties", '{"path": "/"}')
    assert run.code == 10
    assert run.error()["code"] == "network_error"


def test_plugin_bug_exits_12_with_its_traceback_only_when_verbose(cli, fake_distribution, write_json):
    site = fake_distribution(
        "toy-crashy",
        entry_points={"toyCrash": "toy_crashy_mod:plugin"},
        modules={"toy_crashy_mod": "from toy import Crash\nplugin = Crash()\n"},
    )
    config = write_json("toy.json", {"clientId": "c", "clientSecret": SECRET})
    args = ["run", "toyCrash", "--config", str(config), "--properties", "{}"]
    quiet = cli(*args, sites=[site, TESTS])
    assert quiet.code == 12
    error = quiet.error()
    assert (error["code"], error["capability"], error["exception"]) == ("plugin_error", "toyCrash", "ValueError")
    assert "could not parse ***" in error["message"]
    verbose = cli(*args, "-v", sites=[site, TESTS], allow_traceback=True)
    assert verbose.code == 12
    assert "Traceback (most recent call last)" in verbose.stderr
    assert "ValueError: could not parse ***" in verbose.stderr
    assert SECRET not in quiet.stderr + verbose.stderr


# -- named connections -----------------------------------------------------------------


@pytest.fixture
def connections(server, write_json):
    server.route("GET", "/status", Answer(200, json={"ok": True}))
    return write_json(
        "connections.json",
        {
            "connections": {
                "limited": {
                    "connector": "sample",
                    "config": {"apiUrl": server.url, "user": "ada", "token": {"$env": "SAMPLE_TOKEN"}},
                    "capabilities": ["sampleGreet"],
                },
                "full": {"connector": "sample", "config": {"apiUrl": server.url, "user": "ada", "token": TOKEN}},
            }
        },
    )


def test_connection_restricting_capabilities(sample, connections):
    env = {"SAMPLE_TOKEN": TOKEN}
    ok = sample("run", "sampleGreet", "--connection", "limited", "--connections", str(connections), "--properties", '{"name": "x"}', env=env)
    assert ok.code == 0 and ok.json() == {"greeting": "Hello, x!"}
    refused = sample("run", "sampleFetch", "--connection", "limited", "--connections", str(connections), "--properties", '{"path": "/status"}', env=env)
    assert refused.code == 4
    assert refused.error()["code"] == "capability_not_allowed"
    full = sample("run", "sampleFetch", "--connection", "full", "--properties", '{"path": "/status"}', env={"CONNECTOR_CONNECTIONS": str(connections)})
    assert full.code == 0 and full.json()["status"] == 200


def test_unknown_connection_name_exits_4(sample, connections):
    run = sample("run", "sampleGreet", "--connection", "prod", "--connections", str(connections))
    assert run.code == 4
    assert "no connection named 'prod'" in run.error()["message"] and "full, limited" in run.error()["message"]


def test_connection_of_another_connector_exits_4(sample, write_json):
    path = write_json("c.json", {"connections": {"mp": {"connector": "mparticle", "config": {}}}})
    run = sample("run", "sampleGreet", "--connection", "mp", "--connections", str(path), "--properties", '{"name": "x"}')
    assert run.code == 4 and "is for connector 'mparticle'" in run.error()["message"]


def test_invalid_connections_file_exits_4(sample, write_json):
    path = write_json("c.json", {"connections": {"x": {"confg": {}}}})
    run = sample("run", "sampleGreet", "--connection", "x", "--connections", str(path))
    assert run.code == 4
    assert {f["path"] for f in run.error()["faults"]} == {"$.connections.x.config", "$.connections.x.confg"}


# -- verbose ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_logs_http_lines_to_stderr_without_secrets(sample, sample_config, server, where):
    args = ["run", "sampleFetch", "--config", str(sample_config), "--properties", '{"path": "/status"}']
    run = sample(*(["-v", *args] if where == "before" else [*args, "--verbose"]))
    assert run.code == 0, run
    assert run.json() == {"status": 200, "body": {"ok": True}}
    assert f"GET {server.url}/status -> 200" in run.stderr
    assert "fetching /status as ada with token ***" in run.stderr
    assert TOKEN not in run.stderr


def test_quiet_by_default(sample, sample_config):
    run = sample("run", "sampleFetch", "--config", str(sample_config), "--properties", '{"path": "/status"}')
    assert "GET " not in run.stderr and "fetching" not in run.stderr


# -- sandbox ---------------------------------------------------------------------------


def test_run_against_a_plugin_sandbox(sample):
    run = sample("run", "sampleFetch", "--sandbox", "--properties", '{"path": "/status"}')
    assert run.code == 0, run
    assert run.json() == {"status": 200, "body": {"ok": True, "sandbox": True}}


# -- check -----------------------------------------------------------------------------


def test_check_offline_reports_ready_and_missing_per_capability(cli, write_json):
    config = write_json("mp.json", {"clientID": "id", "clientSecret": "secret-value"})
    run = cli("check", "--config", str(config), "--offline")
    assert run.code == 0, run
    report = run.json()
    assert report["connector"] == "mparticle" and report["config"] == "valid"
    assert report["capabilities"]["getAccount"] == {"ready": True}
    assert report["capabilities"]["uploadEventBatch"] == {"ready": False, "missing": ["pod"]}
    assert report["credentials"]["platform"] == {"ok": None, "message": "not checked"}
    assert "events" not in report["credentials"]  # no ready capability uses it


@pytest.mark.parametrize("allowed", [["uploadEventBatch"], []])
def test_check_with_no_capability_ready_exits_4(cli, write_json, allowed):
    # uploadEventBatch needs a pod this config lacks; every other capability is not allowed.
    path = write_json("c.json", {"connections": {"events-only": {
        "connector": "mparticle", "config": {"clientID": "id", "clientSecret": "secret-value"}, "capabilities": allowed}}})
    run = cli("check", "--connection", "events-only", "--connections", str(path), "--offline")
    assert run.code == 4, run
    report = run.json()
    assert not any(entry["ready"] for entry in report["capabilities"].values())
    assert report["capabilities"]["getAccount"] == {"ready": False, "reason": "not allowed by this connection"}
    assert report["credentials"] == {}


def test_check_with_rejected_credentials_exits_5(cli, server, write_json):
    server.route("POST", "/oauth/token", Answer(401, json={"error": "invalid_client"}))
    config = write_json("mp.json", {"clientID": "id", "clientSecret": "secret-value", "authUrl": f"{server.url}/oauth/token"})
    run = cli("check", "--config", str(config))
    assert run.code == 5, run
    assert run.json()["credentials"]["platform"]["code"] == "authentication_failed"


def test_check_invalid_config_exits_4(cli, write_json):
    run = cli("check", "--config", str(write_json("mp.json", {"clientID": "id"})), "--offline")
    assert run.code == 4
    assert [f["path"] for f in run.error()["faults"]] == ["$.clientSecret"]


def test_check_with_several_connectors_picks_the_one_the_config_fits(sample, write_json):
    config = write_json("s.json", {"user": "ada"})  # fits the sample connector's config only
    for extra in ([], ["--connector", "sample"]):
        run = sample("check", "--config", str(config), "--offline", *extra)
        assert run.code == 0, run
        report = run.json()
        assert report["connector"] == "sample"
        assert report["capabilities"] == {"sampleFetch": {"ready": False, "missing": ["token"]}, "sampleGreet": {"ready": True}}
    # A connector named on the command line is the one checked, even when the config fits another.
    named = sample("check", "--config", str(config), "--offline", "--connector", "mparticle")
    assert named.code == 4, named
    assert named.error()["code"] == "invalid_config"
    assert sorted(f["path"] for f in named.error()["faults"]) == ["$.clientID", "$.clientSecret", "$.user"]
    neither = write_json("n.json", {"nobody": "knows"})
    error = sample("check", "--config", str(neither), "--offline").error()
    assert error["code"] == "invalid_config" and "fits none of their config schemas" in error["message"] and "--connector" in error["message"]


# -- validate --------------------------------------------------------------------------


def test_validate_good_manifests(cli):
    files = [str(SAMPLE_MANIFESTS / name) for name in ("sample.json", "sampleGreet.json", "sampleFetch.json")]
    run = cli("validate", *files)
    assert run.code == 0, run
    result = run.json()
    assert result["valid"] is True
    assert [(f["kind"], f["valid"]) for f in result["files"]] == [("connector", True), ("capability", True), ("capability", True)]


def test_validate_bad_manifests_exit_12_with_every_fault(cli, write_json):
    good_connector = str(SAMPLE_MANIFESTS / "sample.json")
    greet = json.loads((SAMPLE_MANIFESTS / "sampleGreet.json").read_text("utf-8"))
    bad = write_json("bad.json", dict(greet, effect="mutate", retrySafe="no"))
    misfit = write_json("misfit.json", dict(greet, requiredConfig=["password"]))
    broken = write_json("broken.json", '{"id": \n}')
    orphan = write_json("orphan.json", dict(greet, connector="nowhere"))
    run = cli("validate", good_connector, str(bad), str(misfit), str(broken), str(orphan))
    assert run.code == 12
    files = {f["file"]: f for f in run.json()["files"]}
    assert files[good_connector]["valid"] is True
    assert [f["path"] for f in files[str(bad)]["faults"]] == ["$.effect", "$.retrySafe"]
    assert files[str(misfit)]["valid"] is False
    assert files[str(misfit)]["faults"] == [{"path": "$.requiredConfig[0]", "message": "config field 'password' is not declared by connector 'sample'"}]
    assert "line 2, column 1" in files[str(broken)]["message"]
    assert files[str(orphan)]["valid"] is True and "cross-checks skipped" in files[str(orphan)]["warning"]


def test_validate_a_file_that_is_neither_kind(cli, write_json):
    run = cli("validate", str(write_json("other.json", {"hello": 1})))
    assert run.code == 12
    assert "neither a capability manifest" in run.json()["files"][0]["message"]


# -- usage and help --------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["plugins"], ["describe"], ["run"], ["check"], ["validate"]])
def test_help_works_for_every_command(cli, command):
    run = cli(*command, "--help")
    assert run.code == 0
    assert run.stdout.startswith(f"usage: connector {' '.join(command)}".rstrip())


def test_version(cli):
    run = cli("--version")
    assert run.code == 0 and run.stdout.startswith("connector-framework ")


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "required"),
        (["frobnicate"], "invalid choice"),
        (["run"], "ID"),
        (["describe", "getAccount", "--bogus"], "unrecognized arguments"),
        (["run", "getAccount", "--config", "a.json", "--connection", "b"], "not allowed with"),
    ],
)
def test_usage_errors_exit_2_with_json(cli, args, words):
    run = cli(*args)
    assert run.code == 2
    error = run.error()
    assert error["code"] == "usage" and error["category"] == "usage"
    assert words in error["message"] and "(see --help)" in error["message"]


# -- the real process ------------------------------------------------------------------


def test_the_console_script_runs_and_its_exit_codes_reach_the_shell(cli_process):
    version = cli_process("--version")
    assert (version.code, version.stdout, version.stderr) == (0, "connector-framework 0.1.0\n", "")
    unknown = cli_process("describe", "getAcount")
    assert (unknown.code, unknown.stdout) == (3, "")
    assert unknown.error()["code"] == "unknown_capability"
    usage = cli_process("frobnicate")
    assert (usage.code, usage.stdout) == (2, "")
    assert usage.error()["code"] == "usage"


def test_main_runs_in_process_with_its_own_streams(tmp_path, monkeypatch):
    """The seam the in-process tests use: ``main(argv, stdin=, stdout=, stderr=)``."""
    monkeypatch.chdir(tmp_path)
    process_streams = (sys.stdin, sys.stdout, sys.stderr)
    stdin, stdout, stderr = io.StringIO('{"accountId": "0"}'), io.StringIO(), io.StringIO()
    code = main(["run", "getAccount", "--config", "missing.json", "--properties", "-"], stdin=stdin, stdout=stdout, stderr=stderr)
    assert code == 4 and stdout.getvalue() == ""
    assert json.loads(stderr.getvalue())["code"] == "invalid_config"
    assert main(["--version"], stdout=stdout) == 0  # argparse's exit becomes a return value
    assert stdout.getvalue() == "connector-framework 0.1.0\n"
    assert (sys.stdin, sys.stdout, sys.stderr) == process_streams  # put back after each call


def test_an_unreadable_properties_file_is_named_with_the_reason_the_system_gave(sample, sample_config, tmp_path):
    missing = tmp_path / "nope.json"
    run = sample("run", "sampleGreet", "--config", str(sample_config), "--properties", f"@{missing}")
    assert run.code == 3
    assert run.error()["message"] == f"cannot read properties file {missing}: No such file or directory"


def test_ctrl_c_during_a_call_exits_130_without_a_traceback(sample, sample_config, server):
    import signal
    import threading
    import time

    server.route("GET", "/slow", Answer(200, json={"late": True}, delay=1.0))

    def press_ctrl_c_once_the_request_waits():
        deadline = time.monotonic() + 10
        while not server.requests_to("GET", "/slow") and time.monotonic() < deadline:
            time.sleep(0.01)
        if server.requests_to("GET", "/slow"):  # else the run is over: no Ctrl-C for pytest itself
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own Ctrl-C
    try:
        presser = threading.Thread(target=press_ctrl_c_once_the_request_waits)
        presser.start()
        run = sample("run", "sampleFetch", "--config", str(sample_config), "--properties", '{"path": "/slow"}')
        presser.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert run.code == 130 and run.stdout == ""


def test_a_plugin_command_leaving_with_a_message_exits_1_and_prints_it(sample):
    run = sample("sample-hello", "--exit", "stopped: nothing to greet")
    assert run.code == 1 and run.stdout == ""
    assert run.stderr.strip() == "stopped: nothing to greet"


def test_a_config_field_without_a_description_is_described_by_its_title(sample):
    config = sample("connectors", "sample", "--json").json()["config"]
    assert config["timeoutSeconds"]["description"] == "Request timeout (seconds)"
    assert config["maxRetries"]["description"] == ""
    assert config["apiUrl"]["description"] == "Base URL of the sample API."


def test_connector_docs_for_one_distribution_documents_only_its_plugin_commands(sample, tmp_path):
    for distribution, kept, left_out in (("connector-framework", "upload-events", "sample-hello"),
                                         ("connector-sample-plugin", "sample-hello", "upload-events")):
        out = tmp_path / distribution
        assert sample("docs", "--output", str(out), "--distribution", distribution).code == 0
        page = (out / "cli.md").read_text("utf-8")
        assert f"connector {kept}" in page and f"connector {left_out}" not in page, distribution


def test_describe_shows_each_output_field_with_its_description(cli):
    out = cli("describe", "uploadEventBatch").stdout
    assert '\nOutput:\n  status (one of "accepted", "partial", "unknown")  accepted: every batch acknowledged; unknown:' in out
    assert "\n  batches (integer)  batches in the input\n" in out


def test_describe_shows_only_the_first_example(sample):
    out = sample("describe", "sampleGreet").stdout
    assert out.count("Example input:") == 1
    assert '"name": "Ada"' in out and '"name": "Bob"' not in out


def test_connectors_text_shows_owner_fields_endpoints_and_auth(cli):
    out = cli("connectors", "mparticle").stdout
    assert out.startswith("mparticle: mParticle  (owned by connector-framework)\n")
    assert "\n  clientSecret (string, required, secret)  OAuth client secret of the Platform API credentials.\n" in out
    assert ("\nEndpoints (ctx.http(NAME)):\n"
            "  platform: https://api.mparticle.com, overridden by config field platformUrl; auth oauth\n"
            "  events: by config field pod (AU1, EU1, US1, US2), overridden by config field eventsUrl; auth basic\n") in out
    assert '\n  basic (basic): usernameFields=["apiKey", "clientID"], passwordFields=["apiSecret", "clientSecret"]\n' in out


def test_connector_docs_creates_the_output_folder_with_its_parents(tmp_path, cli):
    out = tmp_path / "a" / "b"
    assert cli("docs", "--output", str(out), "--distribution", "connector-framework").code == 0
    assert sorted(p.name for p in out.iterdir()) == ["capabilities.md", "cli.md"]
