"""What authors and hosts are told, and what loading does once: qualified ids, ambiguity,
rejected plugins, validate's lint, the content-keyed cache, routing."""

from __future__ import annotations

import json
import os
import sys
import time
from importlib import resources
from pathlib import Path

import jsonschema.exceptions
import pytest
from toy import TOY_CONNECTOR, Echo, capability_manifest, toy_pm, variant

from connector_core import (
    AmbiguousCapability,
    CapabilityManifest,
    ConnectorManifest,
    Engine,
    ManifestError,
    PluginRejected,
    build_registry,
    hookimpl,
    load_entry_points,
)
from connector_core import cache as manifest_cache
from connector_core import declare_connector
from connector_core.registry import installed_entry_points
from connector_core.validation import compile_schema, leaky_end_anchor, lint_schema

CONFIG = {"clientId": "c", "clientSecret": "sec-Xy8-value"}
ROOT = Path(__file__).resolve().parents[1]


class OtherEcho(Echo):
    """``toyEcho`` of a second connector, ``other``."""

    MANIFEST = {**Echo.MANIFEST, "connector": "other"}
    CONNECTOR_MANIFEST = variant(TOY_CONNECTOR, id="other", title="Other service")


# -- qualified ids and ambiguity -------------------------------------------------------


def test_two_connectors_with_the_same_capability_both_load_and_run():
    toy, other = Echo(), OtherEcho()
    pm = toy_pm(toy)
    pm.register(other, name="other.toyEcho")
    with Engine(pm, strict=True) as engine:
        assert set(engine.capabilities) == {"other.toyEcho", "toy.toyEcho"}
        assert engine.execute("toy.toyEcho", {"name": "a"}, CONFIG).output == {"echo": {"name": "a"}}
        assert engine.execute("other.toyEcho", {"name": "b"}, CONFIG).connector == "other"
        assert (len(toy.calls), len(other.calls)) == (1, 1)
        with pytest.raises(AmbiguousCapability) as caught:
            engine.execute("toyEcho", {"name": "c"}, CONFIG)
        error = caught.value
        assert (error.code, error.category, error.exit_code) == ("ambiguous_capability", "input", 3)
        assert error.details["candidates"] == ["other.toyEcho", "toy.toyEcho"]
        assert "toyEcho" not in engine.capabilities and "toy.toyEcho" in engine.capabilities
        # On a connection, a bare id is looked up among the connection's connector.
        with engine.connect(CONFIG, connector="other") as connection:
            assert connection.execute("toyEcho", {"name": "d"}).connector == "other"
        assert (len(toy.calls), len(other.calls)) == (1, 2)


def test_a_dotted_id_is_refused_by_the_meta_schema():
    with pytest.raises(ManifestError) as caught:
        CapabilityManifest.from_dict(capability_manifest("toy.echo"))
    assert [f.path for f in caught.value.faults] == ["$.id"]
    with pytest.raises(ManifestError):  # `$` must not let a trailing newline through
        CapabilityManifest.from_dict(capability_manifest("toyEcho\n"))
    with pytest.raises(ManifestError) as caught:
        ConnectorManifest.from_dict(variant(TOY_CONNECTOR, id="acme.crm"))
    assert "$.id" in [f.path for f in caught.value.faults]


# -- rejected plugins are named ---------------------------------------------------------


def test_running_a_rejected_capability_says_it_was_rejected_and_why(pm):
    pm.register(Echo(), name="toyEcho")

    class Renamed(Echo):
        MANIFEST = capability_manifest("toyRenamed", requiredConfig=["clientID"])

    pm.register(Renamed(), name="toyRenamed")
    engine = Engine(pm)
    with pytest.raises(PluginRejected) as caught:
        engine.execute("toyRenamed", {}, CONFIG)
    error = caught.value
    assert (error.code, error.category) == ("plugin_rejected", "plugin")
    assert "is installed (registered directly) but was rejected" in error.message
    assert "config field 'clientID' is not declared by connector 'toy'; did you mean 'clientId'?" in error.details["reason"]


def test_an_entry_point_module_without_hookimpl_is_rejected_with_a_hint(pm, fake_distribution):
    fake_distribution(
        "toy-forgetful",
        entry_points={"toyForgot": "toy_forgot_mod"},
        modules={
            "toy_forgot_mod": "from toy import capability_manifest\nMANIFEST = capability_manifest('toyForgot')\n"
            "def execute(ctx, properties):\n    return {}\n"
        },
    )
    rejected = load_entry_points(pm, only=["toyForgot"])
    registry = build_registry(pm, rejected)
    (report,) = [r for r in registry.rejected if r.name == "toyForgot"]
    assert "defines execute without @hookimpl" in report.reason and "from connector_core import hookimpl" in report.reason
    assert report.distribution == "toy-forgetful"


def test_the_host_pins_the_owner_of_a_connector_two_distributions_declare():
    class Plain(Echo):
        CONNECTOR_MANIFEST = None

    def plugins():
        pm = toy_pm(Plain())
        declare_connector(pm, TOY_CONNECTOR, origin={"distribution": "toy-official"})
        declare_connector(pm, variant(TOY_CONNECTOR, title="Toy fork"), origin={"distribution": "toy-fork"})
        return pm

    refused = build_registry(plugins())
    assert dict(refused.connectors) == {}
    reasons = [r.reason for r in refused.rejected if r.kind == "connector"]
    assert len(reasons) == 2 and all("declared with different manifests by toy-fork and toy-official" in r for r in reasons)
    engine = Engine(plugins(), owners={"toy": "toy-official"})
    assert engine.registry.connectors["toy"].title == "Toy service"
    assert engine.registry.owners["toy"] == ("toy-official",)
    assert engine.execute("toyEcho", {"name": "pinned"}, CONFIG).output == {"echo": {"name": "pinned"}}
    (pinned_out,) = engine.registry.rejected
    assert (pinned_out.distribution, pinned_out.reason) == ("toy-fork", "connector 'toy' is pinned to 'toy-official'")


# -- each manifest read and checked once -----------------------------------------------


class CountingFile:
    """A manifest source that counts its reads (like an ``importlib.resources`` traversable)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reads = 0

    def read_text(self, encoding: str = "utf-8") -> str:
        self.reads += 1
        return self.path.read_text(encoding)

    def __str__(self) -> str:
        return str(self.path)


def test_a_connector_manifest_shared_by_many_plugins_is_read_once(pm, write_json):
    shared = CountingFile(write_json("toy.json", TOY_CONNECTOR))
    plugins = []
    for i in range(50):

        class One(Echo):
            MANIFEST = capability_manifest(f"toyEcho{i}")
            CONNECTOR_MANIFEST = shared

        plugins.append(One())
        pm.register(plugins[-1], name=f"toyEcho{i}")
    registry = build_registry(pm, strict=True)
    assert len(registry.capabilities) == 50
    assert shared.reads == 1


def test_a_connector_manifest_each_plugin_names_with_its_own_path_object_is_read_once(pm, write_json):
    # As when each capability module of a package says `files(__package__) / "connector.json"`.
    path = write_json("toy.json", TOY_CONNECTOR)
    sources = []
    for i in range(5):

        class One(Echo):
            MANIFEST = capability_manifest(f"toyEcho{i}")
            CONNECTOR_MANIFEST = CountingFile(path)

        sources.append(One.CONNECTOR_MANIFEST)
        pm.register(One(), name=f"toyEcho{i}")
    registry = build_registry(pm, strict=True)
    assert len(registry.capabilities) == 5
    assert [source.reads for source in sources] == [1, 0, 0, 0, 0]


def test_passed_checks_are_remembered_by_content_and_failures_never(tmp_path, monkeypatch, write_json):
    monkeypatch.setenv("CONNECTOR_CORE_CACHE_DIR", str(tmp_path / "cache"))
    markers = lambda: sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())  # noqa: E731
    path = write_json("echo.json", capability_manifest("toyEcho"))
    CapabilityManifest.load(path)
    (first,) = markers()
    assert manifest_cache.verified(first)
    CapabilityManifest.load(path)
    assert markers() == [first]  # the same text: found, nothing new written
    broken = write_json("echo.json", capability_manifest("toyEcho", inputSchema={"type": "no-such-type"}))
    for _ in range(2):  # checked and rejected every time, never recorded
        with pytest.raises(ManifestError):
            CapabilityManifest.load(broken)
    assert markers() == [first]
    monkeypatch.setenv("CONNECTOR_CORE_CACHE_DIR", "off")
    assert manifest_cache.cache_dir() is None and not manifest_cache.verified(first)



def test_a_schema_that_passes_its_meta_schema_check_is_remembered_and_a_broken_one_never(tmp_path, monkeypatch):
    monkeypatch.setenv("CONNECTOR_CORE_CACHE_DIR", str(tmp_path / "cache"))
    files = lambda: sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())  # noqa: E731
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}}
    assert not compile_schema(schema).is_valid({"n": 1})
    (marker,) = files()
    assert manifest_cache.verified(marker)
    assert compile_schema(json.loads(json.dumps(schema))).is_valid({"n": 4}) and files() == [marker]
    for _ in range(2):  # refused every time, never recorded
        with pytest.raises(jsonschema.exceptions.SchemaError):
            compile_schema({"type": "no-such-type"})
    assert files() == [marker]


def _age(root: Path, seconds: float = 60) -> None:
    """Date everything under ``root`` back, as an installation made a while ago."""
    stamp = time.time() - seconds
    for path in [root, *root.rglob("*")]:
        os.utime(path, (stamp, stamp))


def test_installed_entry_points_are_kept_by_path_fingerprint_and_rescanned_when_a_distribution_changes(
    tmp_path, monkeypatch, fake_distribution
):
    monkeypatch.setenv("CONNECTOR_CORE_CACHE_DIR", str(tmp_path / "cache"))
    stored = lambda: list((tmp_path / "cache").rglob("*.json"))  # noqa: E731
    names = lambda: sorted(f"{ep.distribution}:{ep.name}={ep.value}" for ep in installed_entry_points() if ep.group == "connector_core" and ep.distribution.startswith("fp-"))  # noqa: E731
    site = fake_distribution("fp-one", entry_points={"fpEcho": "fp_echo"}, modules={"fp_echo": ""})
    # Only these sites and the standard library: site-packages may be changing under other tests
    # (monkeypatch restores sys.path afterwards).
    sys.path[:] = [p for p in sys.path if p == str(site) or (p.startswith(sys.base_prefix) and "site-packages" not in p)]
    # Just written: its times may still move within one clock tick, so nothing is stored.
    assert names() == ["fp-one:fpEcho=fp_echo"] and stored() == []
    _age(site)
    assert names() == ["fp-one:fpEcho=fp_echo"]
    (cached,) = stored()
    # The stored list is what a later start reads (proved by changing it behind our back)...
    rows = json.loads(cached.read_text())
    cached.write_text(json.dumps([r[:2] + ["fp_elsewhere"] + r[3:] if r[1] == "fpEcho" else r for r in rows]))
    assert names() == ["fp-one:fpEcho=fp_elsewhere"]
    # ... until a distribution changes: entry_points.txt rewritten in place,
    (entry_points,) = site.glob("*.dist-info/entry_points.txt")
    entry_points.write_text("[connector_core]\nfpEcho = fp_echo\nfpOther = fp_echo\n")
    assert names() == ["fp-one:fpEcho=fp_echo", "fp-one:fpOther=fp_echo"]
    # or another one installed next to it.
    other = fake_distribution("fp-two", entry_points={"fpTwo": "fp_two"}, modules={"fp_two": ""})
    _age(other)
    assert names() == ["fp-one:fpEcho=fp_echo", "fp-one:fpOther=fp_echo", "fp-two:fpTwo=fp_two"]
    monkeypatch.setenv("CONNECTOR_CORE_CACHE_DIR", "off")
    assert names() == ["fp-one:fpEcho=fp_echo", "fp-one:fpOther=fp_echo", "fp-two:fpTwo=fp_two"]


def test_a_stored_entry_point_list_of_another_shape_is_scanned_again_not_trusted(tmp_path, monkeypatch, fake_distribution):
    # What another version of the framework (or a damaged disk) may have left under the same key.
    monkeypatch.setenv("CONNECTOR_CORE_CACHE_DIR", str(tmp_path / "cache"))
    site = fake_distribution("fp-shape", entry_points={"fpShape": "fp_shape"}, modules={"fp_shape": ""})
    sys.path[:] = [p for p in sys.path if p == str(site) or (p.startswith(sys.base_prefix) and "site-packages" not in p)]
    _age(site)
    mine = lambda: [(ep.distribution, ep.name, ep.value) for ep in installed_entry_points() if ep.group == "connector_core"]  # noqa: E731
    assert mine() == [("fp-shape", "fpShape", "fp_shape")]
    (cached,) = (tmp_path / "cache").rglob("*.json")
    rows = json.loads(cached.read_text())
    for other in ([row[:4] for row in rows], [dict(enumerate(row)) for row in rows], {"rows": rows}):
        cached.write_text(json.dumps(other))
        assert mine() == [("fp-shape", "fpShape", "fp_shape")]


def test_a_finder_that_provides_distributions_from_elsewhere_turns_the_entry_point_list_cache_off(monkeypatch):
    class Elsewhere:
        def find_spec(self, *args):
            return None

        def find_distributions(self, context=None):
            return iter(())

    assert manifest_cache.path_fingerprint() is not None
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Elsewhere()])
    assert manifest_cache.path_fingerprint() is None
    assert any(ep.name == "getAccount" for ep in installed_entry_points())  # scanned every time instead


# -- routing ---------------------------------------------------------------------------


def test_a_wrapper_registered_after_the_engine_still_wraps_every_call():
    pm = toy_pm(Echo())
    engine = Engine(pm)
    assert engine.execute("toyEcho", {"name": "a"}, CONFIG).output == {"echo": {"name": "a"}}

    class Late:
        @hookimpl(wrapper=True)
        def execute(self, ctx, properties):
            output = yield
            return {**output, "late": True}

    late = Late()
    pm.register(late, name="late")
    assert engine.execute("toyEcho", {"name": "b"}, CONFIG).output == {"echo": {"name": "b"}, "late": True}
    pm.unregister(late)
    assert engine.execute("toyEcho", {"name": "c"}, CONFIG).output == {"echo": {"name": "c"}}


# -- validate's lint -------------------------------------------------------------------


def test_lint_finds_unknown_keywords_with_a_suggestion_and_knows_the_framework_annotations():
    schema = {
        "type": "object",
        "requried": ["name"],
        "x-ui": {"order": 1},
        "properties": {
            "name": {"typ": "string", "errorMesage": "x", "errorMessage": "say a name", "secret": True},
            "tags": {"type": "array", "items": {"type": "string", "patern": "^a"}},
        },
        "allOf": [{"minLenght": 1}],
    }
    assert [(f.path, f.message.split(";")[1].strip()) for f in lint_schema(schema, "$.inputSchema")] == [
        ("$.inputSchema.requried", "did you mean 'required'?"),
        ("$.inputSchema.properties.name.typ", "did you mean 'type'?"),
        ("$.inputSchema.properties.name.errorMesage", "did you mean 'errorMessage'?"),
        ("$.inputSchema.properties.tags.items.patern", "did you mean 'pattern'?"),
        ("$.inputSchema.allOf[0].minLenght", "did you mean 'minLength'?"),
    ]


@pytest.mark.parametrize(
    "pattern, leaky",
    [("^a$", True), ("^(a|b)$", True), ("^a$(?!\\n)", False), ("^[$]$(?!\\n)", False), ("^\\$", False), ("\\S", False), ("a$|b$(?!\\n)", True)],
)
def test_leaky_end_anchors(pattern, leaky):
    assert leaky_end_anchor(pattern) is leaky


def test_validate_reports_typos_auth_fields_required_config_and_leaky_patterns(cli, write_json):
    bad_auth = variant(
        TOY_CONNECTOR,
        id="toyBad",
        auth={
            "oauth": TOY_CONNECTOR["auth"]["oauth"],
            "basic": {"type": "basic", "usernameField": ["apiKey"], "passwordFields": ["apiSecret"]},
        },
    )
    leaky = variant(TOY_CONNECTOR)
    leaky["config"]["properties"]["region"]["pattern"] = "^[a-z]{2}$"
    capability = capability_manifest(
        "toyTypo",
        requiredConfig=["clientID"],
        input_schema={"type": "object", "requried": ["name"], "properties": {"name": {"type": "string", "pattern": "^[a-z]+$"}}},
    )
    good = capability_manifest("toyGood", input_schema={"type": "object", "properties": {"name": {"pattern": "^[a-z]+$(?!\\n)"}}})
    names = {"bad.json": bad_auth, "toy.json": leaky, "typo.json": capability, "good.json": good}
    run = cli("validate", *[str(write_json(name, data)) for name, data in names.items()])
    assert run.code == 12
    files = {Path(f["file"]).name: f for f in run.json()["files"]}
    assert files["bad.json"]["faults"] == [
        {"path": "$.auth.basic.usernameField", "message": "is not an allowed property (did you mean 'usernameFields'?)"},
        {"path": "$.auth.basic.usernameFields", "message": "is required"},
    ]
    (region,) = files["toy.json"]["faults"]
    assert region["path"] == "$.config.properties.region.pattern" and "trailing newline" in region["message"]
    typo = {f["path"]: f["message"] for f in files["typo.json"]["faults"]}
    assert set(typo) == {"$.inputSchema.requried", "$.inputSchema.properties.name.pattern", "$.requiredConfig[0]"}
    assert "did you mean 'required'?" in typo["$.inputSchema.requried"]
    assert "$(?!\\n)" in typo["$.inputSchema.properties.name.pattern"]
    assert typo["$.requiredConfig[0]"] == "config field 'clientID' is not declared by connector 'toy'; did you mean 'clientId'?"
    assert files["good.json"]["valid"] is True


def test_the_frameworks_own_schemas_and_manifests_lint_clean():
    for kind in ("connector", "capability"):
        schema = json.loads(resources.files("connector_core.schemas").joinpath(f"{kind}.schema.json").read_text("utf-8"))
        assert lint_schema(schema) == [], kind
    for path in sorted((ROOT / "manifests").glob("*.json")):
        data = json.loads(path.read_text("utf-8"))
        manifest = CapabilityManifest.from_dict(data, str(path)) if "inputSchema" in data else ConnectorManifest.from_dict(data, str(path))
        assert manifest.lint() == [], path.name
