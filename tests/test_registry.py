"""The registry: routing to exactly one plugin, wrappers, rejected plugins, strict mode, selection."""

from __future__ import annotations

import json

import pluggy
import pytest
from toy import TOY_CONNECTOR, Crash, Echo, Shout, capability_manifest, toy_pm, variant

from connector_core import (
    ConnectorError,
    Engine,
    NotFound,
    PluginLoadError,
    PluginRejected,
    UnknownCapability,
    build_registry,
    hookimpl,
    load_entry_points,
)
from connector_core.registry import BUILTIN_AUTH

CONFIG = {"clientId": "c", "clientSecret": "sec-Xy8-value"}


def report(registry, name):
    (found,) = [r for r in registry.reports if r.name == name]
    return found


class Wrapper:
    """An extension plugin that observes every call and marks the output."""

    def __init__(self):
        self.seen = []

    @hookimpl(wrapper=True)
    def execute(self, ctx, properties):
        self.seen.append(ctx.capability.id)
        try:
            output = yield
        except ConnectorError as exc:
            self.seen.append(f"failed: {exc.code}")
            raise
        return {**output, "wrapped": True}


# -- routing ---------------------------------------------------------------------------


def test_only_the_named_capability_runs():
    echo, shout = Echo(), Shout()
    engine = Engine(toy_pm(echo, shout))
    result = engine.execute("toyEcho", {"name": "a"}, CONFIG)
    assert result.output == {"echo": {"name": "a"}}
    assert (len(echo.calls), len(shout.calls)) == (1, 0)
    assert engine.execute("toyShout", {}, CONFIG).output == {"shout": "HEY"}
    assert (len(echo.calls), len(shout.calls)) == (1, 1)


def test_wrapper_plugin_observes_every_call_and_can_change_the_output():
    wrapper = Wrapper()
    engine = Engine(toy_pm(Echo(), Shout(), Crash(), extensions=[("audit", wrapper)]))
    assert engine.execute("toyEcho", {"name": "a"}, CONFIG).output == {"echo": {"name": "a"}, "wrapped": True}
    assert engine.execute("toyShout", {}, CONFIG).output == {"shout": "HEY", "wrapped": True}
    with pytest.raises(ConnectorError):
        engine.execute("toyCrash", {}, CONFIG)
    assert wrapper.seen == ["toyEcho", "toyShout", "toyCrash"]
    audit = report(engine.registry, "audit")
    assert (audit.status, audit.kind) == ("loaded", "extension")
    assert "audit" not in engine.capabilities


def test_wrapper_sees_typed_errors_of_the_capability():
    class Refuses(Echo):
        MANIFEST = capability_manifest("toyRefuses")

        @hookimpl
        def execute(self, ctx, properties):
            raise NotFound("no such thing")

    wrapper = Wrapper()
    engine = Engine(toy_pm(Refuses(), extensions=[("audit", wrapper)]))
    with pytest.raises(ConnectorError) as caught:
        engine.execute("toyRefuses", {}, CONFIG)
    assert caught.value.code == "not_found"
    assert wrapper.seen == ["toyRefuses", "failed: not_found"]


def test_loaded_capabilities_are_reported_with_their_title():
    engine = Engine(toy_pm(Echo()))
    echo = report(engine.registry, "toyEcho")
    assert (echo.status, echo.kind, echo.title, echo.reason) == ("loaded", "capability", "Toy toyEcho", None)
    assert echo.distribution is None  # registered directly, not from an entry point
    assert engine.registry.rejected == ()
    assert set(engine.registry.connectors) == {"toy"}


# -- rejected plugins ------------------------------------------------------------------


def test_misspelled_hook_is_rejected_with_a_suggestion_and_others_keep_working(pm):
    class Misspelled:
        MANIFEST = capability_manifest("toyTypo")
        CONNECTOR_MANIFEST = TOY_CONNECTOR

        @hookimpl
        def executee(self, ctx, properties):
            return {}

    typo = Misspelled()
    pm.register(Echo(), name="toyEcho")
    pm.register(typo, name="toyTypo")
    registry = build_registry(pm)
    rejected = report(registry, "toyTypo")
    assert rejected.status == "rejected"
    assert "'executee'" in rejected.reason and "did you mean 'execute'?" in rejected.reason
    assert not pm.is_registered(typo)
    assert set(registry.capabilities) == {"toy.toyEcho"}
    assert Engine(pm).execute("toyEcho", {"name": "x"}, CONFIG).output == {"echo": {"name": "x"}}


def test_unknown_hook_far_from_any_name_lists_the_known_hooks(pm):
    class Odd:
        @hookimpl
        def frobnicate(self, thing):
            pass

    pm.register(Odd(), name="odd")
    reason = report(build_registry(pm), "odd").reason
    assert "'frobnicate'" in reason and "known hooks: execute, register_auth_schemes, register_commands, sandbox" in reason


def _toy_module(cls_source: str) -> str:
    return "from connector_core import hookimpl\nfrom toy import TOY_CONNECTOR, capability_manifest\n" + cls_source


def test_entry_points_failing_to_import_or_validate_are_rejected_with_their_origin(pm, fake_distribution):
    fake_distribution(
        "toy-extras",
        "2.3.4",
        entry_points={"toyGood": "toy_good_mod", "toyImport": "toy_import_mod", "toyArgs": "toy_args_mod"},
        modules={
            "toy_good_mod": _toy_module(
                "MANIFEST = capability_manifest('toyGood')\nCONNECTOR_MANIFEST = TOY_CONNECTOR\n"
                "@hookimpl\ndef execute(ctx, properties):\n    return {'good': True}\n"
            ),
            "toy_import_mod": "import toy_dependency_that_is_not_installed\n",
            "toy_args_mod": _toy_module(
                "MANIFEST = capability_manifest('toyArgs')\nCONNECTOR_MANIFEST = TOY_CONNECTOR\n"
                "@hookimpl\ndef execute(context, props):\n    return {}\n"
            ),
        },
    )
    rejected = load_entry_points(pm, only=["toyGood", "toyImport", "toyArgs"])
    by_name = {r.name: r for r in rejected}
    assert set(by_name) == {"toyImport", "toyArgs"}
    imp = by_name["toyImport"]
    assert "failed to import: ModuleNotFoundError" in imp.reason and "toy_dependency_that_is_not_installed" in imp.reason
    assert (imp.entry_point, imp.distribution, imp.version) == ("toyImport = toy_import_mod", "toy-extras", "2.3.4")
    args = by_name["toyArgs"]
    assert args.reason.startswith("invalid hook implementation")
    assert "context" in args.reason
    assert pm.get_plugin("toyArgs") is None  # not left half-registered
    registry = build_registry(pm, rejected)
    assert set(registry.capabilities) == {"toy.toyGood"}
    good = report(registry, "toyGood")
    assert (good.status, good.distribution, good.version, good.entry_point) == ("loaded", "toy-extras", "2.3.4", "toyGood = toy_good_mod")
    assert {r.name for r in registry.rejected} == {"toyImport", "toyArgs"}


def test_pluggy_validation_failure_on_direct_registration_raises(pm):
    class WrongArgs:
        @hookimpl
        def execute(self, context, props):
            return {}

    with pytest.raises(pluggy.PluginValidationError):
        pm.register(WrongArgs(), name="wrong")
    assert pm.get_plugin("wrong") is None


def test_an_id_the_owner_provides_is_rejected_for_the_newcomer_whatever_the_order(pm, fake_distribution):
    fake_distribution(
        "toy-copycat",
        entry_points={"toyEcho": "toy_copycat_mod"},
        modules={
            "toy_copycat_mod": _toy_module(
                "MANIFEST = capability_manifest('toyEcho')\n"
                "@hookimpl\ndef execute(ctx, properties):\n    return {'copy': True}\n"
            )
        },
    )
    original = Echo()
    pm.register(original, name="toyEcho")  # registered directly with the connector: the owner
    assert load_entry_points(pm, only=["toyEcho"]) == []
    registry = build_registry(pm)
    (copy,) = registry.rejected
    assert copy.distribution == "toy-copycat" and copy.id == "toy.toyEcho"
    assert "already provided by registered directly, which owns connector 'toy'" in copy.reason
    assert registry.get("toyEcho").plugin is original


def test_invalid_manifest_is_rejected_with_file_and_path(pm, write_json):
    bad = capability_manifest("toyBroken", effect="mutate")
    path = write_json("toyBroken.json", bad)

    class Broken(Echo):
        MANIFEST = str(path)

    pm.register(Broken(), name="toyBroken")
    pm.register(Shout(), name="toyShout")
    registry = build_registry(pm)
    reason = report(registry, "toyBroken").reason
    assert str(path) in reason and "$.effect" in reason
    assert set(registry.capabilities) == {"toy.toyShout"}


def test_missing_manifest_attribute_is_rejected(pm):
    class NoManifest:
        CONNECTOR_MANIFEST = TOY_CONNECTOR

        @hookimpl
        def execute(self, ctx, properties):
            return {}

    pm.register(NoManifest(), name="toyNone")
    rejected = report(build_registry(pm), "toyNone")
    assert (rejected.status, rejected.kind) == ("rejected", "capability")
    assert "no MANIFEST attribute" in rejected.reason


def test_manifest_id_must_match_the_plugin_name(pm):
    pm.register(Echo(), name="toyEcho2")
    reason = report(build_registry(pm), "toyEcho2").reason
    assert reason == "manifest id 'toyEcho' does not match the plugin name 'toyEcho2' (use 'toyEcho' or 'toy.toyEcho')"


def test_manifest_must_name_the_connector_it_ships(pm):
    class Mismatch(Echo):
        MANIFEST = capability_manifest("toyMismatch", connector="other")

    pm.register(Mismatch(), name="toyMismatch")
    assert "names connector 'other'" in report(build_registry(pm), "toyMismatch").reason


def test_required_config_unknown_to_the_connector_is_rejected(pm):
    class NeedsGhost(Echo):
        MANIFEST = capability_manifest("toyGhost", requiredConfig=["ghostField"])

    pm.register(NeedsGhost(), name="toyGhost")
    reason = report(build_registry(pm), "toyGhost").reason
    assert "$.requiredConfig[0]" in reason and "'ghostField'" in reason


def test_conflicting_connector_manifests_refuse_the_connector_whatever_the_order(pm):
    class Rival(Shout):
        CONNECTOR_MANIFEST = variant(TOY_CONNECTOR, title="Another toy")

    pm.register(Rival(), name="toyShout")
    pm.register(Echo(), name="toyEcho")
    registry = build_registry(pm)
    assert dict(registry.capabilities) == {} and dict(registry.connectors) == {}
    for name in ("toyEcho", "toyShout"):
        assert "its connector 'toy' is refused: declared with different manifests" in report(registry, name).reason


def test_identical_connector_manifests_are_shared(pm):
    pm.register(Echo(), name="toyEcho")
    pm.register(Shout(), name="toyShout")
    registry = build_registry(pm)
    assert registry.capabilities["toyEcho"].connector is registry.capabilities["toyShout"].connector


# -- strict mode -----------------------------------------------------------------------


def _pm_with_a_broken_plugin():
    pm = toy_pm(Echo())
    pm.register(Shout(), name="toyWrongName")
    return pm


def test_strict_engine_raises_listing_every_rejected_plugin():
    with pytest.raises(PluginLoadError) as caught:
        Engine(_pm_with_a_broken_plugin(), strict=True)
    error = caught.value
    assert error.code == "plugin_load_failed" and error.exit_code == 12
    (plugin,) = error.details["plugins"]
    assert plugin["name"] == "toyWrongName" and "does not match" in plugin["reason"]
    json.dumps(error.to_dict())  # JSON-serialisable for hosts


@pytest.mark.parametrize("value, raises", [("1", True), ("true", True), ("0", False), ("", False)])
def test_strict_mode_from_the_environment(monkeypatch, value, raises):
    monkeypatch.setenv("CONNECTOR_CORE_STRICT", value)
    if raises:
        with pytest.raises(PluginLoadError):
            Engine(_pm_with_a_broken_plugin())
    else:
        assert set(Engine(_pm_with_a_broken_plugin()).capabilities) == {"toy.toyEcho"}


def test_explicit_strict_false_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("CONNECTOR_CORE_STRICT", "1")
    assert set(Engine(_pm_with_a_broken_plugin(), strict=False).capabilities) == {"toy.toyEcho"}


# -- selecting which entry points load -------------------------------------------------


def test_only_restricts_loading_to_the_named_entry_points(pm):
    assert load_entry_points(pm, only=["getAccount"]) == []
    # The selected capability, and the extensions of its distribution (sandbox, CLI commands).
    assert [name for name, _ in pm.list_name_plugin() if name != BUILTIN_AUTH] == [
        "connector-framework:getAccount",
        "connector-framework:mparticle-tools",
    ]
    registry = build_registry(pm, strict=True)
    assert set(registry.capabilities) == {"mparticle.getAccount"}
    loaded = report(registry, "getAccount")
    assert loaded.distribution == "connector-framework"
    assert loaded.entry_point == "getAccount = connector_mparticle.get_account"


def test_load_plugins_environment_variable_restricts_loading(pm, monkeypatch):
    monkeypatch.setenv("CONNECTOR_CORE_LOAD_PLUGINS", " getAccount , getAudiences,")
    assert load_entry_points(pm) == []
    names = sorted(name for name, _ in pm.list_name_plugin() if name != BUILTIN_AUTH)
    assert names == ["connector-framework:getAccount", "connector-framework:getAudiences", "connector-framework:mparticle-tools"]


def test_load_plugins_takes_qualified_ids(monkeypatch):
    monkeypatch.setenv("CONNECTOR_CORE_LOAD_PLUGINS", "mparticle.getAccount,mparticle.getAudiences")
    engine = Engine(strict=True)
    assert set(engine.capabilities) == {"mparticle.getAccount", "mparticle.getAudiences"}
    assert engine.registry.get("getAccount").id == "mparticle.getAccount"  # the bare id still works


def test_empty_load_plugins_loads_nothing(monkeypatch):
    monkeypatch.setenv("CONNECTOR_CORE_LOAD_PLUGINS", "")
    engine = Engine()
    assert dict(engine.capabilities) == {}
    assert [(r.kind, r.name) for r in engine.registry.reports] == [("connector", "mparticle")]  # connectors always load


def test_engine_only_argument():
    engine = Engine(only=["mparticle.getAccount"], strict=True)
    assert set(engine.capabilities) == {"mparticle.getAccount"}


# -- lookups ---------------------------------------------------------------------------


def test_unknown_capability_suggests_a_close_id_and_is_a_key_error():
    registry = Engine(toy_pm(Echo(), Shout())).registry
    with pytest.raises(KeyError) as caught:
        registry.get("toyEho")
    error = caught.value
    assert isinstance(error, UnknownCapability)
    assert error.code == "unknown_capability" and error.category == "input"
    assert str(error) == "no loaded plugin provides capability 'toyEho'; did you mean 'toyEcho'? (see `connector plugins`)"
    assert error.details == {"capability": "toyEho"}
    with pytest.raises(UnknownCapability, match="provides connector 'nope'"):
        registry.connector("nope")


def test_make_engine_fixture_registers_plugins_by_manifest_id_and_is_strict(make_engine):
    engine = make_engine(Echo(), {"toyShout": Shout()})
    assert set(engine.capabilities) == {"toy.toyEcho", "toy.toyShout"}
    with pytest.raises(PluginLoadError):
        make_engine({"wrongName": Echo()})


def test_malformed_owner_pins_in_the_environment_are_ignored(monkeypatch):
    # CONNECTOR_CORE_OWNERS holds CONNECTOR=DISTRIBUTION pairs; a pair missing either side pins nothing.
    monkeypatch.setenv("CONNECTOR_CORE_OWNERS", "mparticle=, =connector-framework,mparticle")
    with Engine() as engine:
        assert "mparticle" in engine.registry.connectors
        assert not [r for r in engine.registry.rejected if r.id and r.id.startswith("mparticle")]


def test_an_unknown_connector_among_installed_ones_is_unknown_not_refused():
    with Engine() as engine:
        with pytest.raises(UnknownCapability) as caught:
            engine.registry.connector("nope")
    assert str(caught.value).startswith("no loaded plugin provides connector 'nope' (loaded: ")
    assert "mparticle" in str(caught.value)


def test_a_refused_capability_asked_for_by_its_bare_id_is_reported_as_refused():
    from connector_core import PluginRejected

    registry = Engine(_pm_with_a_broken_plugin(), strict=False).registry
    with pytest.raises(PluginRejected) as caught:
        registry.get("toyShout")
    assert "does not match" in str(caught.value)


# -- what loading reports about installed distributions --------------------------------


def _rewrite(site, name, version, file, text):
    """Replace one file of a fake distribution's ``.dist-info``, as another installer could have written it."""
    (site / f"{name.replace('-', '_')}-{version}.dist-info" / file).write_text(text, "utf-8")


def test_a_distribution_whose_metadata_spells_its_headers_in_lower_case_is_reported_with_its_name_and_version(pm, fake_distribution):
    # Core metadata is e-mail headers, whose names are case-insensitive.
    site = fake_distribution(
        "toy-lower",
        "3.1",
        entry_points={"toyLower": "toy_lower_mod"},
        modules={
            "toy_lower_mod": _toy_module(
                "MANIFEST = capability_manifest('toyLower')\nCONNECTOR_MANIFEST = TOY_CONNECTOR\n"
                "@hookimpl\ndef execute(ctx, properties):\n    return {}\n"
            )
        },
    )
    _rewrite(site, "toy-lower", "3.1", "METADATA", "metadata-version: 2.1\nname: toy-lower\nversion: 3.1\n\nA README.\n")
    assert load_entry_points(pm, only=["toyLower"]) == []
    loaded = report(build_registry(pm, strict=True), "toyLower")
    assert (loaded.status, loaded.distribution, loaded.version) == ("loaded", "toy-lower", "3.1")


@pytest.fixture
def broken_connectors(fake_distribution):
    """A distribution (sorted before connector-framework) declaring three connectors that cannot load:
    one whose module is missing, one whose manifest has another id, one whose manifest is invalid,
    one whose attribute is neither a path nor a mapping."""
    site = fake_distribution(
        "a-toy-connectors",
        entry_points={},
        modules={"a_toy_connectors": "from toy import TOY_CONNECTOR, variant\n"
                                     "MISNAMED = variant(TOY_CONNECTOR, id='beta')\n"
                                     "INVALID = variant(TOY_CONNECTOR, id='gamma', effect='sometimes')\n"
                                     "NUMBER = 42\n"},
    )
    _rewrite(site, "a-toy-connectors", "1.0", "entry_points.txt",
             "[connector_core.connectors]\n"
             "alpha = a_toy_connectors:MISNAMED\n"
             "delta = a_toy_connectors_missing:MANIFEST\n"
             "gamma = a_toy_connectors:INVALID\n"
             "epsilon = a_toy_connectors:NUMBER\n")


def test_connector_declarations_that_cannot_load_are_refused_one_by_one_and_the_others_load(pm, broken_connectors):
    rejected = load_entry_points(pm, only=[])
    registry = build_registry(pm, rejected)
    assert list(registry.connectors) == ["mparticle"]
    refused = {r.id: (r.kind, r.distribution, r.reason) for r in registry.rejected}
    assert refused == {
        "alpha": ("connector", "a-toy-connectors", "the entry point declares connector 'alpha' but its manifest's id is 'beta'"),
        "delta": ("connector", "a-toy-connectors", "failed to import: ModuleNotFoundError: No module named 'a_toy_connectors_missing'"),
        "gamma": ("connector", "a-toy-connectors", "<dict>: invalid connector manifest (1 problem(s))\n  $.effect: is not an allowed property"),
        "epsilon": ("connector", "a-toy-connectors", "cannot load manifest 42: TypeError: expected str, bytes or os.PathLike object, not int"),
    }
    with pytest.raises(PluginRejected) as caught:
        registry.connector("delta")
    assert str(caught.value) == (
        "connector 'delta' is installed but was refused: failed to import: ModuleNotFoundError: "
        "No module named 'a_toy_connectors_missing'"
    )


def test_a_connector_declared_alike_by_two_distributions_is_read_from_the_first_in_processing_order(pm, fake_distribution):
    sites = []
    for name in ("b-toy-copy", "a-toy-original"):  # made in the reverse of the documented order
        module = name.replace("-", "_")
        site = fake_distribution(name, entry_points={}, modules={module: "from pathlib import Path\nMANIFEST = Path(__file__).with_name('toy.json')\n"})
        (site / "toy.json").write_text(json.dumps(TOY_CONNECTOR), "utf-8")
        _rewrite(site, name, "1.0", "entry_points.txt", f"[connector_core.connectors]\ntoy = {module}:MANIFEST\n")
        sites.append(site)
    registry = build_registry(pm, load_entry_points(pm, only=[]))
    assert registry.owners["toy"] == ("a-toy-original", "b-toy-copy")
    assert registry.connector("toy").source == str(sites[1] / "toy.json")


def test_an_unknown_connector_is_unknown_even_when_other_connectors_were_refused(pm, broken_connectors):
    registry = build_registry(pm, load_entry_points(pm, only=[]))
    with pytest.raises(UnknownCapability) as caught:
        registry.connector("nope")
    assert str(caught.value) == "no loaded plugin provides connector 'nope' (loaded: mparticle)"


def test_a_capability_imported_for_its_bare_name_is_unregistered_when_its_qualified_id_is_not_selected(pm, fake_distribution):
    other = "CONNECTOR_MANIFEST = variant(TOY_CONNECTOR, id='other', title='Other service')\n"
    fake_distribution(
        "two-echoes",
        entry_points={"toyEcho": "two_echoes_toy", "other.toyEcho": "two_echoes_other"},
        modules={
            "two_echoes_toy": _toy_module(
                "MANIFEST = capability_manifest('toyEcho')\nCONNECTOR_MANIFEST = TOY_CONNECTOR\n"
                "@hookimpl\ndef execute(ctx, properties):\n    return {'from': 'toy'}\n"
            ),
            "two_echoes_other": _toy_module(
                "from toy import variant\nMANIFEST = capability_manifest('toyEcho', connector='other')\n" + other +
                "@hookimpl\ndef execute(ctx, properties):\n    return {'from': 'other'}\n"
            ),
        },
    )
    assert load_entry_points(pm, only=["other.toyEcho"]) == []
    registry = build_registry(pm, strict=True)
    assert list(registry.capabilities) == ["other.toyEcho"]
    # The plugin manager keeps only what loaded: no hook of the unselected plugin runs.
    assert [name for name, _ in pm.list_name_plugin() if name != BUILTIN_AUTH] == ["two-echoes:other.toyEcho"]


def test_a_selected_capability_that_fails_to_import_brings_no_extension_of_its_distribution_along(pm, fake_distribution):
    fake_distribution(
        "toy-half-broken",
        entry_points={"toyBroken": "toy_half_broken_missing", "toy-tools": "toy_half_broken_tools"},
        modules={"toy_half_broken_tools": "from connector_core import hookimpl\n"
                                          "@hookimpl\ndef register_commands(subparsers):\n    pass\n"},
    )
    (broken,) = load_entry_points(pm, only=["toyBroken"])
    assert (broken.name, broken.reason) == ("toyBroken", "failed to import: ModuleNotFoundError: No module named 'toy_half_broken_missing'")
    assert [name for name, _ in pm.list_name_plugin() if name != BUILTIN_AUTH] == []


def test_capabilities_loaded_twice_from_the_same_manifests_are_equal():
    # Equality is the manifests and the distribution, not the plugin objects: a host can compare
    # what two loadings (before and after a reload) provide.
    first, second = Engine(toy_pm(Echo(), Shout())).registry, Engine(toy_pm(Echo(), Shout())).registry
    assert first.get("toyEcho") == second.get("toyEcho")
    assert first.get("toyEcho") != second.get("toyShout")
    assert list(first.capabilities.values()) == list(second.capabilities.values())


def test_a_selected_capability_attached_to_another_distributions_connector_brings_the_owners_extensions(pm, fake_distribution):
    fake_distribution(
        "toy-mp-addon",
        entry_points={"mpAddonCount": "toy_mp_addon_mod"},
        modules={
            "toy_mp_addon_mod": _toy_module(
                "MANIFEST = capability_manifest('mpAddonCount', connector='mparticle')\n"
                "@hookimpl\ndef execute(ctx, properties):\n    return {'count': 0}\n"
            )
        },
    )
    assert load_entry_points(pm, only=["mpAddonCount"]) == []
    # connector-framework owns the mparticle connector: its sandbox and commands come along.
    expected = ["toy-mp-addon:mpAddonCount", "connector-framework:mparticle-tools"]
    assert [name for name, _ in pm.list_name_plugin() if name != BUILTIN_AUTH] == expected
    registry = build_registry(pm, strict=True)
    assert list(registry.capabilities) == ["mparticle.mpAddonCount"]
    assert [name for name, _ in pm.list_name_plugin() if name != BUILTIN_AUTH] == expected


def test_the_extensions_a_rejected_selected_capability_brought_along_are_unregistered(pm, fake_distribution):
    fake_distribution(
        "toy-half",
        entry_points={"toyHalf": "toy_half_mod", "toy-half-tools": "toy_half_tools"},
        modules={
            "toy_half_mod": _toy_module(
                "MANIFEST = capability_manifest('toyOther')\nCONNECTOR_MANIFEST = TOY_CONNECTOR\n"
                "@hookimpl\ndef execute(ctx, properties):\n    return {}\n"
            ),
            "toy_half_tools": "from connector_core import hookimpl\n@hookimpl\ndef register_commands(subparsers):\n    pass\n",
        },
    )
    assert load_entry_points(pm, only=["toyHalf"]) == []
    assert [name for name, _ in pm.list_name_plugin() if name != BUILTIN_AUTH] == ["toy-half:toyHalf", "toy-half:toy-half-tools"]
    registry = build_registry(pm)
    assert [(r.name, r.status, r.reason) for r in registry.reports if r.distribution == "toy-half"] == [
        ("toyHalf", "rejected", "manifest id 'toyOther' does not match the entry point name 'toyHalf' (use 'toyOther' or 'toy.toyOther')")]
    # Its commands must not show up: nothing of the distribution is left on the plugin manager.
    assert [name for name, _ in pm.list_name_plugin() if name != BUILTIN_AUTH] == []


def test_a_rejected_capability_asked_for_by_its_qualified_id_within_its_connector_is_reported_as_refused():
    registry = Engine(_pm_with_a_broken_plugin(), strict=False).registry
    with pytest.raises(PluginRejected) as caught:
        registry.get("toy.toyShout", connector="toy")
    assert str(caught.value) == (
        "capability 'toy.toyShout' is installed (registered directly) but was rejected: "
        "manifest id 'toyShout' does not match the plugin name 'toyWrongName' (use 'toyShout' or 'toy.toyShout')"
    )


def test_a_distribution_is_named_by_its_headers_even_when_its_description_shows_other_ones(pm, fake_distribution):
    site = fake_distribution(
        "toy-documented",
        "2.0",
        entry_points={"toyDocumented": "toy_documented_mod"},
        modules={
            "toy_documented_mod": _toy_module(
                "MANIFEST = capability_manifest('toyDocumented')\nCONNECTOR_MANIFEST = TOY_CONNECTOR\n"
                "@hookimpl\ndef execute(ctx, properties):\n    return {}\n"
            )
        },
    )
    description = "A README that shows a METADATA file:\n\nName: example-package\nVersion: 0.0.1\n"
    _rewrite(site, "toy-documented", "2.0", "METADATA", f"Metadata-Version: 2.1\nName: toy-documented\nVersion: 2.0\n\n{description}")
    assert load_entry_points(pm, only=["toyDocumented"]) == []
    loaded = report(build_registry(pm, strict=True), "toyDocumented")
    assert (loaded.distribution, loaded.version) == ("toy-documented", "2.0")


class OldStyleWrapper(Wrapper):
    """An extension written for pluggy's older ``hookwrapper=True`` protocol."""

    @hookimpl(hookwrapper=True)
    def execute(self, ctx, properties):
        self.seen.append(ctx.capability.id)
        yield


def test_an_old_style_hookwrapper_extension_also_observes_every_call():
    old = OldStyleWrapper()
    engine = Engine(toy_pm(Echo(), Shout(), extensions=[("old-audit", old)]))
    assert engine.execute("toyEcho", {"name": "a"}, CONFIG).output == {"echo": {"name": "a"}}
    assert engine.execute("toyShout", {}, CONFIG).output == {"shout": "HEY"}
    assert old.seen == ["toyEcho", "toyShout"]
