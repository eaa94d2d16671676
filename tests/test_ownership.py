"""Many connectors, many plugin packages: ownership and install-order independence.

Third-party packages from ``tests/plugins`` are built and installed with pip into separate
``--target`` folders (packages in one folder are listed in directory order, so one
folder would prove nothing about order), and every scenario runs with ``PYTHONPATH`` in
both orders:

* folder A: ``connector-acme`` (a second connector that also has ``createAccount``) and
  ``mparticle-addon`` (attaches ``mparticle.countAudiences`` by naming the connector);
* folder B: ``mparticle-copycat`` (an edited copy of ``mparticle.json`` with a new
  capability) and ``mparticle-impostor`` (claims ``getAudiences`` of mparticle and
  ``createAccount`` of acme);
* folder C: ``mparticle-fork`` (declares connector ``mparticle`` again, differently).
"""

from __future__ import annotations

import json

import pytest
from conftest import PLUGINS
from installs import install

BUILTIN = ["createAccount", "deleteAccount", "getAccount", "getAudiences", "getCalculatedAttributes", "updateAccount", "uploadEventBatch"]


@pytest.fixture(scope="session")
def site_a(tmp_path_factory):
    return install(tmp_path_factory, PLUGINS / "acme_connector", PLUGINS / "mparticle_addon")


@pytest.fixture(scope="session")
def site_b(tmp_path_factory):
    return install(tmp_path_factory, PLUGINS / "mparticle_copycat", PLUGINS / "mparticle_impostor")


@pytest.fixture(scope="session")
def site_c(tmp_path_factory):
    return install(tmp_path_factory, PLUGINS / "mparticle_fork")


@pytest.fixture
def crowd(cli, site_a, site_b):
    """``connector`` with folders A and B on PYTHONPATH (B first: the rejected packages come first)."""

    def run(*args, **kwargs):
        return cli(*args, sites=[site_b, site_a], **kwargs)

    return run


def by_id(reports):
    return {(r["id"] or r["name"], r["distribution"]): r for r in reports}


def test_the_outcome_is_the_same_in_both_install_orders(cli, site_a, site_b):
    forward = cli("plugins", "--json", sites=[site_a, site_b])
    backward = cli("plugins", "--json", sites=[site_b, site_a])
    assert forward.code == backward.code == 0
    assert forward.json() == backward.json()


@pytest.mark.parametrize("order", ["AB", "BA"])
def test_who_loads_and_who_is_rejected(cli, site_a, site_b, order):
    sites = [site_a, site_b] if order == "AB" else [site_b, site_a]
    reports = by_id(cli("plugins", "--json", sites=sites).json())
    loaded = {key for key, r in reports.items() if r["status"] == "loaded" and r["kind"] == "capability"}
    assert loaded == {(f"mparticle.{c}", "connector-framework") for c in BUILTIN} | {
        ("acme.createAccount", "connector-acme"),
        ("mparticle.countAudiences", "mparticle-addon"),
    }
    assert {key for key, r in reports.items() if r["kind"] == "connector"} == {("acme", "connector-acme"), ("mparticle", "connector-framework")}
    copy = reports[("mparticle.listWorkspaces", "mparticle-copycat")]
    assert copy["status"] == "rejected"
    assert "carries its own connector manifest for 'mparticle'" in copy["reason"]
    assert "differs from the one declared by connector-framework" in copy["reason"]
    audiences = reports[("mparticle.getAudiences", "mparticle-impostor")]
    assert audiences["status"] == "rejected"
    assert "'mparticle.getAudiences' is already provided by connector-framework, which owns connector 'mparticle'" in audiences["reason"]
    assert "(mparticle-impostor) cannot replace it" in audiences["reason"]
    acme = reports[("acme.createAccount", "mparticle-impostor")]
    assert "already provided by connector-acme, which owns connector 'acme'" in acme["reason"]


def test_strict_plugins_exits_non_zero_with_rejected_packages(crowd):
    run = crowd("plugins", "--strict")
    assert run.code == 12
    assert "mparticle.getAudiences" in run.stdout and "REJECTED" in run.stdout


def test_two_connectors_with_create_account_both_run(crowd, write_json):
    acme_config = write_json("acme.json", {"acmeToken": "acme-s3cret"})
    run = crowd("run", "acme.createAccount", "--config", str(acme_config), "--properties", '{"name": "Ada"}')
    assert run.code == 0, run
    assert run.json() == {"acmeAccount": {"name": "Ada", "by": "acme"}}
    with_flag = crowd("run", "createAccount", "--connector", "acme", "--config", str(acme_config), "--properties", '{"name": "Bo"}')
    assert with_flag.json() == {"acmeAccount": {"name": "Bo", "by": "acme"}}
    mp = crowd("run", "mparticle.createAccount", "--sandbox", "--properties", '{"displayName": "Two connectors"}')
    assert mp.code == 0, mp
    assert mp.json()["account"]["name"] == "Two connectors"


def test_a_bare_id_several_connectors_provide_is_ambiguous(crowd, write_json):
    config = write_json("acme.json", {"acmeToken": "acme-s3cret"})
    run = crowd("run", "createAccount", "--config", str(config), "--properties", '{"name": "Ada"}')
    assert run.code == 3
    error = run.error()
    assert (error["code"], error["category"]) == ("ambiguous_capability", "input")
    assert error["candidates"] == ["acme.createAccount", "mparticle.createAccount"]
    assert crowd("describe", "createAccount").error()["code"] == "ambiguous_capability"
    # Bare ids only one connector provides keep working.
    assert crowd("describe", "getAccount").code == 0


def test_an_attached_capability_runs_with_the_owners_connector(crowd):
    run = crowd("run", "countAudiences", "--sandbox", "--properties", '{"accountId": 1001}')
    assert run.code == 0, run
    assert run.json()["count"] >= 1
    listing = crowd("connectors", "mparticle", "--json").json()
    assert "mparticle.countAudiences" in listing["capabilities"]
    assert listing["owner"] == ["connector-framework"]
    assert set(listing["endpoints"]) == {"platform", "events"}


def test_rejected_packages_leave_the_builtins_running(crowd):
    demo = crowd("demo")
    assert demo.code == 0, demo
    assert '"failed": 0' in demo.stdout


@pytest.mark.parametrize("command", [["run", "listWorkspaces", "--sandbox"], ["describe", "mparticle.listWorkspaces"]])
def test_running_or_describing_a_rejected_plugin_says_why(crowd, command):
    run = crowd(*command)
    assert run.code == 12
    error = run.error()
    assert error["code"] == "plugin_rejected"
    assert "is installed (mparticle-copycat) but was rejected" in error["message"]
    assert "carries its own connector manifest" in error["reason"]


@pytest.fixture
def forked(cli, site_a, site_c):
    def run(*args, sites=(site_c, site_a), **kwargs):
        return cli(*args, sites=sites, **kwargs)

    return run


@pytest.mark.parametrize("order", ["CA", "AC"])
def test_two_declarations_of_a_connector_refuse_it_and_name_both(forked, site_a, site_c, order):
    run = forked("plugins", "--json", sites=[site_c, site_a] if order == "CA" else [site_a, site_c])
    assert run.code == 0
    reports = run.json()
    declarations = {r["distribution"]: r for r in reports if r["kind"] == "connector" and r["id"] == "mparticle"}
    assert set(declarations) == {"connector-framework", "mparticle-fork"}
    for report in declarations.values():
        assert report["status"] == "rejected"
        assert "declared with different manifests by connector-framework and mparticle-fork" in report["reason"]
        assert "CONNECTOR_CORE_OWNERS=mparticle=<distribution>" in report["reason"]
    loaded = {r["id"] for r in reports if r["status"] == "loaded" and r["kind"] == "capability"}
    assert loaded == {"acme.createAccount"}  # mparticle's capabilities, built-in or attached, wait for the owner
    assert forked("plugins", "--strict").code == 12


@pytest.mark.parametrize("command", [["demo"], ["run", "getAccount", "--sandbox"], ["connectors", "mparticle"], ["check", "--config", "{cfg}"]])
def test_a_refused_connector_is_a_typed_error_for_every_command(forked, write_json, command):
    config = write_json("mp.json", {"clientID": "id", "clientSecret": "secret-value"})
    run = forked(*[str(config) if part == "{cfg}" else part for part in command])
    error = run.error()
    assert error["code"] != "internal_error"
    assert error["code"] in ("plugin_rejected", "invalid_config"), error
    assert "mparticle" in error["message"]


@pytest.mark.parametrize("owner, runs", [("connector-framework", True), ("mparticle-fork", False)])
def test_the_host_pins_the_owner(forked, owner, runs):
    env = {"CONNECTOR_CORE_OWNERS": f"mparticle={owner}"}
    reports = forked("plugins", "--json", env=env).json()
    mine = {r["distribution"]: r["status"] for r in reports if r["kind"] == "connector" and r["id"] == "mparticle"}
    other = "mparticle-fork" if owner == "connector-framework" else "connector-framework"
    assert mine == {owner: "loaded", other: "rejected"}
    builtins = {r["id"]: r for r in reports if r["kind"] == "capability" and r["distribution"] == "connector-framework"}
    if runs:
        assert all(r["status"] == "loaded" for r in builtins.values()) and len(builtins) == 7
        demo = forked("demo", env=env)
        assert demo.code == 0, demo
    else:
        # The fork owns the connector now: the built-ins were written for connector-framework's
        # own declaration (they carry no copy of it) and step aside.
        assert len(builtins) == 7 and all(r["status"] == "rejected" for r in builtins.values())
        assert all(
            "connector-framework declares connector 'mparticle' with a manifest that differs from the one declared by mparticle-fork"
            in r["reason"]
            for r in builtins.values()
        )


def test_the_mparticle_connector_is_declared_by_its_entry_point_alone(cli):
    """Issue 7: a connector is declared explicitly by one distribution, not implied by whichever
    capability module happens to carry a copy of its manifest."""
    from importlib import import_module, metadata

    from connector_mparticle.common import CONNECTOR_MANIFEST

    (declaration,) = [ep for ep in metadata.entry_points(group="connector_core.connectors") if ep.name == "mparticle"]
    assert declaration.value == "connector_mparticle.common:CONNECTOR_MANIFEST"
    capabilities = [ep for ep in metadata.entry_points(group="connector_core") if ep.dist.name == "connector-framework"]
    modules = {ep.name: import_module(ep.value) for ep in capabilities}
    assert set(BUILTIN) <= set(modules)
    assert [name for name, module in modules.items() if hasattr(module, "CONNECTOR_MANIFEST")] == []
    for name in BUILTIN:  # each names its connector in its manifest instead
        assert json.loads(modules[name].MANIFEST.read_text("utf-8"))["connector"] == "mparticle"
    reports = cli("plugins", "--json").json()
    (connector,) = [r for r in reports if r["kind"] == "connector" and r["id"] == "mparticle"]
    assert (connector["id"], connector["status"], connector["distribution"]) == ("mparticle", "loaded", "connector-framework")
    assert connector["entry_point"] == "mparticle = connector_mparticle.common:CONNECTOR_MANIFEST"
    assert str(CONNECTOR_MANIFEST).endswith("mparticle.json")


@pytest.fixture(scope="session")
def site_rival(tmp_path_factory):
    """``mparticle-rival``: a second non-owner attaching ``mparticle.countAudiences``, like ``mparticle-addon``."""
    source = tmp_path_factory.mktemp("rival") / "mparticle_rival"
    (source / "mparticle_rival").mkdir(parents=True)
    addon = PLUGINS / "mparticle_addon"
    (source / "pyproject.toml").write_text((addon / "pyproject.toml").read_text("utf-8"), "utf-8")
    (source / "mparticle_rival" / "__init__.py").write_text((addon / "mparticle_addon" / "__init__.py").read_text("utf-8"), "utf-8")
    setup = (addon / "setup.cfg").read_text("utf-8")
    setup = setup.replace("name = mparticle-addon", "name = mparticle-rival").replace("mparticle_addon", "mparticle_rival")
    (source / "setup.cfg").write_text(setup, "utf-8")
    return install(tmp_path_factory, source)


@pytest.mark.parametrize("order", ["AR", "RA"])
def test_two_non_owners_claiming_one_capability_are_both_rejected_naming_both(cli, site_a, site_rival, order):
    sites = [site_a, site_rival] if order == "AR" else [site_rival, site_a]
    run = cli("plugins", "--json", sites=sites)
    assert run.code == 0
    reports = by_id(run.json())
    for dist in ("mparticle-addon", "mparticle-rival"):
        report = reports[("mparticle.countAudiences", dist)]
        assert report["status"] == "rejected"
        assert "capability 'mparticle.countAudiences' is claimed by mparticle-addon" in report["reason"]
        assert "and mparticle-rival" in report["reason"]
        assert "none is the connector's owner, so neither loads" in report["reason"]
    # Nothing else changes: the owner's capabilities and the other connector still load.
    loaded = {key for key, r in reports.items() if r["status"] == "loaded" and r["kind"] == "capability"}
    assert loaded == {(f"mparticle.{c}", "connector-framework") for c in BUILTIN} | {("acme.createAccount", "connector-acme")}
    assert cli("plugins", "--strict", sites=sites).code != 0
