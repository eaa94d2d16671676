"""Auth schemes are plugins: a third-party distribution adds two, with zero core edits.

``tests/plugins/auth_plugin`` (an API-key-header scheme, a static-bearer scheme and a
connector using each) is pip-installed once per session; the ``connector`` command runs
its capabilities against a loopback server, checks their credentials and redacts their
secrets, exactly as for the built-in schemes. In-process tests cover the manifest checks
(paths, did-you-mean), conflicting registrations and credential keys.
"""

from __future__ import annotations

import copy
import json

import pytest
from conftest import PLUGINS
from httpserver import Answer
from installs import install
from toy import SECRET, TOY_CONNECTOR, token_issuer, toy_config, toy_pm

from connector_core import ConnectorManifest, Engine, ManifestError, get_plugin_manager, hookimpl
from connector_core.auth import AuthScheme, BasicScheme, credential_key

KEY = "k3y-Th1s-Is-Secret"
BEARER = "b3arer-Th1s-Is-Secret"


@pytest.fixture(scope="session")
def auth_site(tmp_path_factory):
    return install(tmp_path_factory, PLUGINS / "auth_plugin")


@pytest.fixture
def keyauth(cli, auth_site):
    def run(*args, **kwargs):
        return cli(*args, sites=[auth_site], **kwargs)

    return run


def whoami(request):
    """The server's view of the credentials: 200 for the right ones, else 401 echoing what came."""
    sent = request.headers.get("X-Api-Key") or request.headers.get("Authorization")
    if sent in (KEY, f"Bearer {BEARER}"):
        return Answer(200, json={"user": "ada"})
    return Answer(401, json={"message": f"unknown credential {sent}"})


CASES = {
    "keyed": ("keyedWhoami", {"apiKey": KEY}, ("X-Api-Key", KEY)),
    "bearer": ("bearerWhoami", {"bearerToken": BEARER}, ("Authorization", f"Bearer {BEARER}")),
}


@pytest.mark.parametrize("connector", sorted(CASES))
def test_a_plugin_scheme_signs_the_requests_of_its_connector(keyauth, server, write_json, connector):
    capability, secrets, (header, value) = CASES[connector]
    server.route("GET", "/whoami", whoami)
    config = write_json("config.json", {**secrets, "apiUrl": server.url})
    run = keyauth("run", capability, "--config", str(config))
    assert run.code == 0, run
    assert run.json() == {"status": 200, "body": {"user": "ada"}}
    (request,) = server.requests_to("GET", "/whoami")
    assert request.headers[header] == value


@pytest.mark.parametrize("connector", sorted(CASES))
def test_connector_check_tests_a_plugin_schemes_credentials(keyauth, server, write_json, connector):
    capability, secrets, _ = CASES[connector]
    server.route("GET", "/whoami", whoami)
    good = keyauth("check", "--connector", connector, "--config", str(write_json("good.json", {**secrets, "apiUrl": server.url})))
    assert good.code == 0, good
    assert good.json()["credentials"] == {"api": {"ok": True, "message": "GET /whoami accepted the credentials"}}

    wrong = {k: v[::-1] for k, v in secrets.items()}
    bad = keyauth("check", "--connector", connector, "--config", str(write_json("bad.json", {**wrong, "apiUrl": server.url})))
    assert bad.code != 0
    status = bad.json()["credentials"]["api"]
    assert (status["ok"], status["code"]) == (False, "authentication_failed")
    # The server echoed the wrong credential: the scheme's secret field is masked though the
    # connector manifest does not mark it secret.
    (wrong_value,) = wrong.values()
    assert wrong_value not in bad.stdout + bad.stderr and "***" in status["message"]


@pytest.mark.parametrize("connector", sorted(CASES))
def test_a_plugin_schemes_secrets_are_redacted_in_errors_and_logs(keyauth, server, write_json, connector):
    capability, secrets, _ = CASES[connector]
    (secret,) = secrets.values()
    server.route("GET", "/whoami", Answer(400, json={"message": f"you sent {secret}, and Bearer {secret}"}))
    config = write_json("config.json", {**secrets, "apiUrl": server.url})
    run = keyauth("run", capability, "--config", str(config), "--verbose")
    assert run.code != 0
    assert run.error()["code"] == "rejected_by_service"
    assert secret not in run.stdout + run.stderr
    assert "you sent ***" in run.error()["message"]


def test_validate_knows_the_installed_schemes_and_suggests_the_closest(keyauth, write_json):
    data = json.loads((PLUGINS / "auth_plugin/connector_keyauth/manifests/keyed.json").read_text("utf-8"))
    data["auth"]["main"]["type"] = "api_key_headr"
    run = keyauth("validate", str(write_json("typo.json", data)))
    (entry,) = run.json()["files"]
    assert entry["valid"] is False
    (fault,) = entry["faults"]
    assert fault["path"] == "$.auth.main.type"
    assert "did you mean 'api_key_header'?" in fault["message"]

    data["auth"]["main"] = {"type": "api_key_header", "header": "X-Api-Key", "keyFeld": "apiKey"}
    run = keyauth("validate", str(write_json("fragment.json", data)))
    faults = {f["path"]: f["message"] for f in run.json()["files"][0]["faults"]}
    assert faults == {
        "$.auth.main.keyField": "is required",
        "$.auth.main.keyFeld": "is not an allowed property (did you mean 'keyField'?)",
    }


# -- in process ---------------------------------------------------------------------------


def toy_with_auth(**entries):
    data = copy.deepcopy(TOY_CONNECTOR)
    data["auth"].update(entries)
    return data


def faults_of(data, schemes=None):
    with pytest.raises(ManifestError) as info:
        ConnectorManifest.from_dict(data, "toy.json", schemes)
    return {f.path: f.message for f in info.value.faults}


def test_an_unknown_scheme_is_a_fault_at_its_type_with_a_suggestion():
    assert faults_of(toy_with_auth(oauth={"type": "oauth2_client_credential"})) == {
        "$.auth.oauth.type": "unknown auth scheme 'oauth2_client_credential'; did you mean 'oauth2_client_credentials'? "
        "(installed: basic, oauth2_client_credentials)"
    }


def test_a_built_in_schemes_fragment_is_checked_with_paths():
    found = faults_of(toy_with_auth(basic={"type": "basic", "usernameFields": ["apiKey", "nope"], "passwordFields": ["apiSecret"]}))
    assert found == {
        "$.auth.basic": "usernameFields and passwordFields must pair up (same length)",
        "$.auth.basic.usernameFields[1]": "names config field 'nope', which $.config does not declare",
    }
    found = faults_of(toy_with_auth(oauth={"type": "oauth2_client_credentials", "tokenUrl": "ftp://x", "clientIdField": "clientId"}))
    assert set(found) == {"$.auth.oauth.clientSecretField", "$.auth.oauth.tokenUrl"}


def test_fields_a_scheme_calls_secret_are_secret_fields():
    data = copy.deepcopy(TOY_CONNECTOR)
    data["config"]["properties"]["clientSecret"].pop("secret")
    assert "clientSecret" in ConnectorManifest.from_dict(data).secret_fields


class Rogue:
    """Tries to take over the built-in ``basic`` scheme."""

    @hookimpl
    def register_auth_schemes(self, register):
        register(BasicScheme())


class NotAScheme:
    @hookimpl
    def register_auth_schemes(self, register):
        register(object())


@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        (Rogue(), "auth scheme 'basic' is already registered by connector_core.auth"),
        (NotAScheme(), "which is not an AuthScheme with a type"),
    ],
)
def test_a_plugin_registering_a_taken_or_bogus_scheme_is_rejected_and_the_rest_works(plugin, reason):
    pm = toy_pm(extensions=[("rogue", plugin)])
    engine = Engine(pm)
    (report,) = [r for r in engine.registry.reports if r.name == "rogue"]
    assert report.status == "rejected" and reason in report.reason
    assert engine.registry.auth_schemes["basic"] is not None and "toyGet" in engine.capabilities


def test_the_built_in_schemes_come_through_the_hook():
    pm = get_plugin_manager()
    offered = []
    for impl in pm.hook.register_auth_schemes.get_hookimpls():
        impl.function(register=offered.append)
    assert sorted(s.type for s in offered) == ["basic", "oauth2_client_credentials"]
    assert all(isinstance(s, AuthScheme) for s in offered)


def test_credential_keys_name_a_credential_without_its_secret(server):
    server.route("POST", "/oauth/token", token_issuer())
    with Engine(toy_pm()) as engine:
        keys = {}
        for secret in (SECRET, SECRET + "2"):
            connection = engine.connect(toy_config(server.url, clientSecret=secret, apiKey="key", apiSecret=secret))
            keys[secret] = (connection.auth("oauth").credential_key, connection.auth("basic").credential_key)
            again = engine.connect(toy_config(server.url, clientSecret=secret, apiKey="key", apiSecret=secret))
            assert (again.auth("oauth").credential_key, again.auth("basic").credential_key) == keys[secret]
    first, second = keys.values()
    assert first[0] != second[0] and first[1] != second[1] and first[0] != first[1]
    for key in first + second:
        assert key.split(":")[0] in ("oauth2_client_credentials", "basic")
        assert SECRET not in key and "key" not in key.split(":")[1]
    assert credential_key("x", "a") == credential_key("x", "a") != credential_key("x", "b")
