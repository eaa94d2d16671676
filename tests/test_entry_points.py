"""Real entry points: third-party packages installed with pip add capabilities and extensions.

``tests/plugins/sample_plugin`` (a connector with two capabilities, an audit wrapper, a
CLI command and a sandbox) and ``tests/plugins/broken_plugins`` (one plugin broken per
way a plugin can be broken) are pip-installed once per session into temp dirs; the
``connector`` command runs with those dirs on ``sys.path`` (in-process, through
``main(argv)``), and once as a fresh process with them on PYTHONPATH. Nothing in
connector_core names them.
"""

from __future__ import annotations

import json

import pytest
from httpserver import Answer, closed_port

BUILTIN = {"createAccount", "getAccount", "updateAccount", "deleteAccount", "getAudiences", "getCalculatedAttributes", "uploadEventBatch"}


@pytest.fixture
def both(cli, sample_site, broken_site):
    """``connector`` with the sample package first on the path, then the broken one."""

    def run(*args, **kwargs):
        return cli(*args, sites=[sample_site, broken_site], **kwargs)

    return run


@pytest.fixture
def sample(cli, sample_site):
    def run(*args, **kwargs):
        return cli(*args, sites=[sample_site], **kwargs)

    return run


@pytest.fixture
def empty_config(write_json):
    return str(write_json("empty.json", {}))


def by_entry_point(reports):
    return {r["entry_point"]: r for r in reports}


def test_plugins_lists_the_installed_sample_package(cli_process, sample_site, broken_site):
    # A fresh process finds the installed packages through PYTHONPATH alone.
    run = cli_process("plugins", "--json", sites=[sample_site, broken_site])
    assert run.code == 0
    reports = by_entry_point(run.json())
    greet = reports["sampleGreet = connector_sample.greet"]
    assert greet == {
        "name": "sampleGreet",
        "status": "loaded",
        "kind": "capability",
        "reason": None,
        "entry_point": "sampleGreet = connector_sample.greet",
        "distribution": "connector-sample-plugin",
        "version": "1.4.0",
        "title": "Greet someone",
        "id": "sample.sampleGreet",
        "connector": "sample",
    }
    assert reports["sampleFetch = connector_sample.fetch"]["status"] == "loaded"
    for name, title in [("sample-audit", "Sample audit trail"), ("sample-commands", "Sample CLI commands"), ("sample-sandbox", "Sample sandbox")]:
        (report,) = [r for r in reports.values() if r["name"] == name]
        assert (report["status"], report["kind"], report["title"], report["version"]) == ("loaded", "extension", title, "1.4.0")


def test_every_broken_plugin_is_rejected_with_its_origin_and_reason(both):
    reports = by_entry_point(both("plugins", "--json").json())
    expected = {
        "brokenImport = connector_broken.import_fails": ["failed to import: ModuleNotFoundError", "connector_broken_missing_dependency"],
        "brokenHook = connector_broken.misspelled": ["unknown hook 'executee'", "did you mean 'execute'?"],
        "brokenManifest = connector_broken.bad_manifest": ["brokenManifest.json", "$.effect", "$.description: is required"],
        "brokenArgs = connector_broken.wrong_args": ["invalid hook implementation", "context", "props"],
        "sampleGreet = connector_broken.dupe": [
            "capability 'sample.sampleGreet' is already provided by connector-sample-plugin, which owns connector 'sample'",
            "(connector-broken-plugins) cannot replace it",
        ],
    }
    for entry_point, words in expected.items():
        report = reports[entry_point]
        assert report["status"] == "rejected", report
        assert (report["distribution"], report["version"]) == ("connector-broken-plugins", "0.0.1")
        for word in words:
            assert word in report["reason"], report
    rejected = [r for r in reports.values() if r["status"] == "rejected"]
    assert {r["entry_point"] for r in rejected} == set(expected)


def test_builtin_capabilities_still_load_next_to_broken_plugins(both):
    reports = both("plugins", "--json").json()
    loaded = {r["id"] for r in reports if r["status"] == "loaded" and r["kind"] == "capability"}
    assert {f"mparticle.{name}" for name in BUILTIN} | {"sample.sampleGreet", "sample.sampleFetch"} == loaded


def test_plugins_text_shows_the_reasons(both):
    run = both("plugins")
    assert run.code == 0
    assert "REJECTED: implements unknown hook 'executee'; did you mean 'execute'?" in run.stdout
    # One line per plugin, even where the reason (pluggy's own message) has several.
    lines = run.stdout.splitlines()
    assert len(lines) == len(json.loads(both("plugins", "--json").stdout))
    assert all(line.split()[0] for line in lines)


def test_installed_capability_runs_and_the_wrapper_observes_it(both, empty_config):
    run = both("run", "sampleGreet", "--config", empty_config, "--properties", '{"name": "Ada"}')
    assert run.code == 0, run
    assert run.json() == {"greeting": "Hello, Ada!"}  # the sample's own, not the rejected duplicate
    assert "sample-audit: sampleGreet ok" in run.stderr.splitlines()


def test_the_wrapper_observes_failures_too(sample, server, write_json):
    server.route("GET", "/missing", Answer(404, json={"message": "no such path"}))
    config = write_json("c.json", {"apiUrl": server.url, "user": "ada", "token": "t0ken-value"})
    run = sample("run", "sampleFetch", "--config", str(config), "--properties", '{"path": "/missing"}')
    assert run.code == 6
    assert run.error()["code"] == "not_found"
    assert "sample-audit: sampleFetch failed: not_found" in run.stderr


def test_the_wrapper_also_wraps_builtin_capabilities(sample, write_json):
    # An offline failure inside mParticle's plugin: the platform URL points at a closed port.
    port = closed_port()
    config = write_json(
        "mp.json",
        {"clientID": "id", "clientSecret": "secret-value", "authUrl": f"http://127.0.0.1:{port}/t", "platformUrl": f"http://127.0.0.1:{port}", "maxRetries": 0},
    )
    run = sample("run", "getAccount", "--config", str(config), "--properties", '{"accountId": 1}')
    assert run.code == 10, run
    assert "sample-audit: getAccount failed: network_error" in run.stderr


def test_plugin_subcommand_runs(sample):
    run = sample("sample-hello", "--name", "tests")
    assert run.code == 0, run
    result = run.json()
    assert result["hello"] == "tests"
    assert {"sample.sampleGreet", "sample.sampleFetch"} | {f"mparticle.{name}" for name in BUILTIN} <= set(result["capabilities"])
    helped = sample("sample-hello", "--help")
    assert helped.code == 0 and "--name" in helped.stdout
    assert "sample-hello" in sample("--help").stdout


def test_a_crashing_plugin_command_is_one_json_error_without_traceback(sample):
    run = sample("sample-hello", "--crash")
    assert run.code == 1 and run.stdout == ""
    assert run.error() == {"code": "internal_error", "category": "internal", "message": "RuntimeError: the sample command has a bug"}


def test_plugin_subcommand_gets_the_global_flags(sample):
    assert sample("sample-hello", "-v").code == 0
    assert sample("--strict", "sample-hello").code == 0  # the sample package alone loads cleanly
    bad = sample("sample-hello", "--nmae", "x")
    assert bad.code == 2 and bad.error()["code"] == "usage"


@pytest.mark.parametrize("args", [["--strict", "plugins"], ["plugins", "--strict"], ["plugins", "--json", "--strict"]])
def test_strict_plugins_lists_then_exits_12(both, args):
    run = both(*args)
    assert run.code == 12
    if "--json" in args:
        assert any(r["status"] == "rejected" for r in run.json())
    else:
        assert "REJECTED" in run.stdout


@pytest.mark.parametrize("how", ["flag-before", "flag-after", "env"])
def test_strict_run_refuses_to_start_with_broken_plugins(both, empty_config, how):
    args = ["run", "sampleGreet", "--config", empty_config, "--properties", '{"name": "x"}']
    env = {}
    if how == "flag-before":
        args.insert(0, "--strict")
    elif how == "flag-after":
        args.append("--strict")
    else:
        env["CONNECTOR_CORE_STRICT"] = "1"
    run = both(*args, env=env)
    assert run.code == 12
    error = run.error()
    assert error["code"] == "plugin_load_failed"
    assert {p["entry_point"] for p in error["plugins"]} >= {
        "brokenImport = connector_broken.import_fails",
        "brokenArgs = connector_broken.wrong_args",
    }
    assert run.stdout == ""


def test_load_plugins_selects_entry_points_by_name(both, empty_config):
    env = {"CONNECTOR_CORE_LOAD_PLUGINS": "sampleGreet"}
    reports = both("plugins", "--json", env=env).json()
    capabilities = [(r["name"], r["status"], r["distribution"]) for r in reports if r["kind"] == "capability"]
    # The copycat has the same entry-point name: it loads too, and is rejected for the owner's id.
    assert capabilities == [("sampleGreet", "loaded", "connector-sample-plugin"), ("sampleGreet", "rejected", "connector-broken-plugins")]
    # The sample distribution's extensions stay: its sandbox and commands serve the selected capability.
    extensions = {r["name"] for r in reports if r["kind"] == "extension"}
    assert extensions == {"sample-audit", "sample-commands", "sample-sandbox"}


def test_load_plugins_leaves_out_broken_plugins_for_strict_runs(sample, empty_config):
    env = {"CONNECTOR_CORE_LOAD_PLUGINS": "sampleGreet,sample-audit", "CONNECTOR_CORE_STRICT": "1"}
    reports = sample("plugins", "--json", env=env).json()
    assert sorted(r["name"] for r in reports if r["kind"] != "connector") == ["sample-audit", "sample-commands", "sample-sandbox", "sampleGreet"]
    run = sample("run", "sampleGreet", "--config", empty_config, "--properties", '{"name": "x"}', env=env)
    assert run.code == 0, run
    assert "sample-audit: sampleGreet ok" in run.stderr
    assert sample("describe", "getAccount", env=env).code == 3  # not loaded


def test_load_plugins_keeps_the_sandbox_of_a_selected_capability(sample):
    env = {"CONNECTOR_CORE_LOAD_PLUGINS": "sample.sampleFetch"}
    run = sample("run", "sampleFetch", "--sandbox", "--properties", '{"path": "/status"}', env=env)
    assert run.code == 0, run
    assert run.json() == {"status": 200, "body": {"ok": True, "sandbox": True}}
