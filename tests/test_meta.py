"""Meta-tests over the project's data: hooks documented, manifests valid, entry points and manifests paired."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import pytest

from connector_core import (
    CapabilityManifest,
    ConnectorManifest,
    build_registry,
    get_plugin_manager,
    hookspecs,
    load_entry_points,
)

ROOT = Path(__file__).parent.parent
MANIFESTS = ROOT / "manifests"


def hook_names() -> list[str]:
    pm = get_plugin_manager()
    return sorted(name for name in dir(hookspecs) if pm.parse_hookspec_opts(hookspecs, name))


def manifest_files() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text("utf-8")) for path in sorted(MANIFESTS.glob("*.json"))}


def is_capability(data: dict) -> bool:
    return "inputSchema" in data


def setup_cfg_entry_points() -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    lines = parser["options.entry_points"]["connector_core"].strip().splitlines()
    return dict((part.strip() for part in line.split("=", 1)) for line in lines if line.strip())


def test_the_hooks_are_the_documented_ones():
    assert hook_names() == ["execute", "register_auth_schemes", "register_commands", "sandbox"]


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_documented_for_plugin_authors(hook):
    text = (ROOT / "docs" / "plugins.md").read_text("utf-8")
    assert f"`{hook}`" in text or f"{hook}(" in text, f"hook {hook!r} is not documented in docs/plugins.md"


def test_every_hook_has_a_docstring():
    for name in hook_names():
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name


def test_there_are_manifests():
    files = manifest_files()
    assert any(is_capability(d) for d in files.values()) and any(not is_capability(d) for d in files.values())


@pytest.mark.parametrize("name", sorted(manifest_files()))
def test_every_manifest_validates_against_its_meta_schema(name):
    path = MANIFESTS / name
    data = manifest_files()[name]
    if is_capability(data):
        manifest = CapabilityManifest.load(path)
        assert manifest.id == path.stem, "a capability manifest is named after its id"
        connector = ConnectorManifest.load(MANIFESTS / f"{manifest.connector}.json")
        assert manifest.check_connector(connector) == []
    else:
        assert ConnectorManifest.load(path).id == path.stem


@pytest.mark.parametrize("name", sorted(n for n, d in manifest_files().items() if is_capability(d)))
def test_every_manifest_example_passes_its_own_schemas(name):
    manifest = CapabilityManifest.load(MANIFESTS / name)
    assert manifest.examples, f"{name} has no example"
    for example in manifest.examples:
        assert manifest.input_faults(example["input"]) == []
        assert manifest.output_faults(example["output"]) == []
    if manifest.seed_form and "example" in manifest.data["inputSchema"]:
        seed_example = manifest.data["inputSchema"]["example"]
        assert manifest.input_faults(seed_example.get("properties", seed_example)) == []


def test_every_capability_manifest_has_an_entry_point_and_every_capability_entry_point_a_manifest():
    entry_points = setup_cfg_entry_points()
    capability_manifests = {Path(n).stem for n, d in manifest_files().items() if is_capability(d)}
    assert capability_manifests - set(entry_points) == set(), "capability manifests without an entry point in setup.cfg"
    pm = get_plugin_manager()
    rejected = load_entry_points(pm, only=list(entry_points))
    registry = build_registry(pm, rejected)
    assert {c.name for c in registry.capabilities.values()} == capability_manifests, "capability entry points without a manifest in manifests/"
    for capability in registry.capabilities.values():
        assert Path(capability.manifest.source).resolve() == (MANIFESTS / f"{capability.name}.json").resolve()


def test_every_entry_point_of_setup_cfg_loads():
    entry_points = setup_cfg_entry_points()
    pm = get_plugin_manager()
    rejected = load_entry_points(pm, only=list(entry_points))
    registry = build_registry(pm, rejected)
    assert [(r.name, r.reason) for r in registry.rejected] == []
    assert {r.name for r in registry.reports if r.kind != "connector"} == set(entry_points), "setup.cfg and the installed metadata disagree; reinstall"


def test_the_core_knows_nothing_about_mparticle():
    core = Path(__file__).resolve().parents[1] / "connector_core"
    mentions = [
        f"{path.relative_to(core)}:{number}"
        for path in sorted(core.rglob("*"))
        if path.is_file() and path.suffix in (".py", ".json")
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if "mparticle" in line.lower()
    ]
    assert mentions == []
