"""Hosting configs from untrusted users: the host policy and bad input refused before anything happens.

A loopback server stands in for the service and records every request, so each refusal
is also shown to have sent nothing.
"""

from __future__ import annotations

import json

import attrs
import pytest
from httpserver import Answer, TestServer
from test_secrets import mp_config, run_cli

from connector_core import Engine, HostPolicy, InvalidConfig, InvalidInput

# The documented limit (docs/operators.md: "nesting deeper than 32 levels"), written out.
MAX_DEPTH = 32

SECRET = "host-policy-s3cret"


@pytest.fixture
def service(server: TestServer):
    server.route("POST", "/oauth/token", Answer(200, json={"access_token": "tok-policy", "expires_in": 3600}))
    server.route("GET", "/v1/accounts/1003", Answer(200, json={"data": {"id": 1003, "name": "Acme"}}))
    server.route("POST", "/v1/accounts", Answer(201, json={"data": {"id": 5, "name": "x"}}))
    return server


@pytest.fixture
def engine():
    with Engine() as engine:
        yield engine


def untrusted_config(**changes):
    config = {"clientID": "tenant", "clientSecret": SECRET, "pod": "US1", "maxRetries": 0}
    config.update(changes)
    return config


# -- the host policy -----------------------------------------------------------------------------------


def test_untrusted_configs_may_not_read_the_environment_and_the_fault_does_not_tell_whether_it_exists(engine, monkeypatch):
    monkeypatch.setenv("HOST_DB_PASSWORD", "the-host-db-password")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    errors = []
    for name in ("HOST_DB_PASSWORD", "NOT_SET_ANYWHERE"):
        with pytest.raises(InvalidConfig) as caught:
            engine.execute("getAccount", {"accountId": "1003"}, untrusted_config(timeoutSeconds={"$env": name}),
                           host_policy=HostPolicy.untrusted())
        errors.append(caught.value.to_dict())
    assert errors[0]["faults"] == [{"path": "$.timeoutSeconds",
                                    "message": "environment references ($env) are not accepted on this host; put the value itself here"}]
    # Same answer whether the variable exists or not, and never its value.
    assert json.dumps(errors[0]).replace("HOST_DB_PASSWORD", "X") == json.dumps(errors[1]).replace("NOT_SET_ANYWHERE", "X")
    assert "the-host-db-password" not in json.dumps(errors)


def test_untrusted_configs_may_not_override_urls_each_field_named(engine, service):
    config = untrusted_config(authUrl=f"{service.url}/oauth/token", platformUrl=service.url, eventsUrl="")
    with pytest.raises(InvalidConfig) as caught:
        engine.execute("getAccount", {"accountId": "1003"}, config, host_policy=HostPolicy.untrusted())
    assert [f.path for f in caught.value.faults] == ["$.authUrl", "$.eventsUrl", "$.platformUrl"]
    assert all("URL overrides are not accepted" in f.message for f in caught.value.faults)
    assert caught.value.exit_code == 4
    assert service.requests == []


def test_the_policy_judges_the_raw_config_before_the_cache_and_is_part_of_its_key(service, monkeypatch):
    monkeypatch.setenv("TENANT_SECRET", SECRET)
    config = mp_config(service, {"$env": "TENANT_SECRET"})
    with Engine() as engine:
        assert engine.execute("getAccount", {"accountId": "1003"}, config).output["account"]["id"] == 1003
        # The same config was accepted and cached under the default policy; an untrusted
        # call with it is still refused (at both the $env and the overrides).
        with pytest.raises(InvalidConfig) as caught:
            engine.execute("getAccount", {"accountId": "1003"}, config, host_policy=HostPolicy.untrusted())
        assert "$.clientSecret" in [f.path for f in caught.value.faults]
        # A resolved config accepted under a relaxed policy gets its own connection.
        relaxed = HostPolicy.untrusted(allow_url_overrides=True, allow_loopback=True)
        plain = mp_config(service, SECRET)
        engine.execute("getAccount", {"accountId": "1003"}, plain)
        engine.execute("getAccount", {"accountId": "1003"}, plain, host_policy=relaxed)
        policies = [policy for _, policy in engine._connections]
        # ($env resolved, the first config is the plain one: same connection.)
        assert policies.count(relaxed) == 1 and policies.count(HostPolicy()) == 1 and len(policies) == 2


def test_each_field_of_the_policy_relaxes_on_its_own(service, monkeypatch):
    monkeypatch.setenv("TENANT_SECRET", SECRET)
    relaxed = HostPolicy.untrusted(allow_url_overrides=True, allow_loopback=True)
    assert attrs.asdict(relaxed) == dict(attrs.asdict(HostPolicy.untrusted()), allow_url_overrides=True, allow_loopback=True)
    with Engine(host_policy=relaxed) as engine:
        assert engine.execute("getAccount", {"accountId": "1003"}, mp_config(service, SECRET)).output["account"]["id"] == 1003
        with pytest.raises(InvalidConfig) as caught:  # $env is still refused
            engine.execute("getAccount", {"accountId": "1003"}, mp_config(service, {"$env": "TENANT_SECRET"}))
        assert [f.path for f in caught.value.faults] == ["$.clientSecret"]
        # engine.connect takes a policy too, replacing the engine's.
        with engine.connect(mp_config(service, {"$env": "TENANT_SECRET"}), host_policy=HostPolicy()) as connection:
            assert connection.execute("getAccount", {"accountId": "1003"}).output["account"]["id"] == 1003


def test_the_default_policy_keeps_todays_behaviour(engine, service, monkeypatch):
    monkeypatch.setenv("TENANT_SECRET", SECRET)
    assert HostPolicy() == HostPolicy(allow_env=True, allow_url_overrides=True, max_error_body=2000)
    assert engine.execute("getAccount", {"accountId": "1003"}, mp_config(service, {"$env": "TENANT_SECRET"})).output["account"]["id"] == 1003


# -- bad input refused before anything happens -------------------------------------------------------------


def deep(levels: int):
    value: object = "bottom"
    for _ in range(levels):
        value = {"a": [value]} if isinstance(value, str) else [value]
    return value


@pytest.mark.parametrize(
    "properties, path, words",
    [
        ({"displayName": "Ada \ud800 Lovelace"}, "$.displayName", "lone surrogate (U+D800) at character 4"),
        ({"displayName": "Ada", 1: "x"}, "$", "key that is not a string (int 1)"),
        ({"displayName": "Ada", "\udcff": "x"}, "$", "key that contains a lone surrogate"),
        ({"displayName": float("nan")}, "$.displayName", "finite number"),
        ({"displayName": b"Ada"}, "$.displayName", "is a bytes, which is not JSON data"),
        ({"displayName": deep(100_000)}, "$.displayName" + "[0]" * (MAX_DEPTH - 1), f"deeper than {MAX_DEPTH} levels"),
    ],
    ids=["surrogate", "int-key", "surrogate-key", "nan", "bytes", "deep"],
)
def test_bad_input_through_the_python_api_is_refused_with_a_path_and_sends_nothing(engine, service, properties, path, words):
    with pytest.raises(InvalidInput) as caught:
        engine.execute("createAccount", properties, mp_config(service, SECRET))
    faults = [f.to_dict() for f in caught.value.faults]
    assert len(faults) == 1 and faults[0]["path"] == path and words in faults[0]["message"], faults
    assert service.requests == []


def test_nesting_up_to_the_limit_is_accepted(engine):
    from connector_core.validation import data_faults

    # deep(n) is n + 1 containers.
    assert data_faults(deep(MAX_DEPTH - 1)) == [] and data_faults(deep(MAX_DEPTH)) != []


def test_bad_input_through_the_cli_exits_3_or_4_and_sends_nothing(service, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(mp_config(service, SECRET)), "utf-8")
    bad_utf8 = tmp_path / "props.json"
    bad_utf8.write_bytes(b'{"displayName": "Ada \xff"}')
    bad_config = tmp_path / "bad-config.json"
    bad_config.write_bytes(json.dumps(mp_config(service, SECRET)).encode()[:-1] + b', "pod": "\xc3"}')
    cases = [
        (3, ["--config", str(config), "--properties", '{"displayName": "Ada \\ud800"}'], "$.displayName", "lone surrogate"),
        (3, ["--config", str(config), "--properties", "[" * 100_000 + "]" * 100_000], "$", "nests objects and arrays too deeply"),
        (3, ["--config", str(config), "--properties", '{"displayName": ' + "[" * 40 + "]" * 40 + "}"], "$.displayName", "deeper than"),
        (3, ["--config", str(config), "--properties", f"@{bad_utf8}"], "$", "is not valid UTF-8 (byte 0xff at offset 21)"),
        (3, ["--config", str(config), "--properties", '{"displayName": NaN}'], "$.displayName", "finite number"),
        (4, ["--config", str(bad_config), "--properties", '{"displayName": "Ada"}'], "$", "is not valid UTF-8"),
    ]
    for expected, argv, path, words in cases:
        code, out, err = run_cli(capsys, "run", "createAccount", *argv)
        error = json.loads(err)
        assert (code, error["code"]) == (expected, "invalid_input" if expected == 3 else "invalid_config"), err
        assert any(f["path"].startswith(path) and words in f["message"] for f in error["faults"]), err
        assert out == ""
    assert service.requests == []


def test_a_lone_surrogate_in_an_upstream_answer_is_printed_escaped(service, tmp_path, capsys):
    service.route("GET", "/v1/accounts/1003", Answer(200, body='{"data": {"id": 1003, "name": "bad \\ud800 name"}}',
                                                     headers={"Content-Type": "application/json"}))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(mp_config(service, SECRET)), "utf-8")
    code, out, err = run_cli(capsys, "run", "getAccount", "--config", str(config), "--properties", '{"accountId": "1003"}')
    assert code == 0, err
    assert json.loads(out)["account"]["name"] == "bad \ud800 name"
