"""The built wheel installs into a fresh virtual environment and works from there.

This proves the packaging: ``capabilities/`` and ``manifests/`` install as
``connector_mparticle`` and ``connector_mparticle.manifests``, manifests load through
``importlib.resources`` (not from the working directory), and the ``connector`` script,
the entry points and the sandbox work without the source tree.

The wheel is installed with ``--no-deps`` (by uv, a test extra, or pip) into a venv
without pip of its own, and the venv finds the dependencies in this test environment's
site-packages (a ``.pth`` line, which runs no ``.pth`` file of that folder, so the
editable install of the source tree stays out). Resolving and installing the dependencies again costs ten seconds and
an index; instead, the wheel's declared requirements are checked against what the code
imports and against the versions the suite runs with.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from installs import installer, session_root

ROOT = Path(__file__).resolve().parents[1]
# The runtime dependencies, written out: a change to setup.cfg must change this too.
REQUIREMENTS = {
    "pluggy": ">=1.3",
    "attrs": ">=22.2",
    "requests": ">=2.28",
    "jsonschema": ">=4.18",
    "orjson": ">=3.9",
    "ijson": ">=3.2",
    "tqdm": ">=4.60",
}


def _run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(work / "dist"), str(ROOT)])
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = (work / "dist").glob("connector_framework-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    work = tmp_path_factory.mktemp("venv")
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    pip = _run([*installer(session_root(tmp_path_factory), python), "--quiet", "--no-deps", "--no-index", str(wheel)])
    assert pip.returncode == 0, pip.stdout + pip.stderr
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "test-dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(deps)), "utf-8")
    # Run from an empty folder so nothing can come from the source tree.
    cwd = work / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CONNECTOR_CORE_LOAD_PLUGINS", "CONNECTOR_CORE_STRICT")}
    return bin_dir, cwd, env


def _requirements(wheel: Path) -> list:
    """The wheel's ``Requires-Dist`` lines, parsed."""
    from packaging.requirements import Requirement  # here, not at every xdist worker's collection

    return [Requirement(line.split(":", 1)[1].strip()) for line in _wheel_metadata(wheel).splitlines() if line.startswith("Requires-Dist:")]


def _wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name).decode("utf-8")


def test_wheel_declares_exactly_the_runtime_dependencies(wheel):
    declared = _requirements(wheel)
    runtime = {r.name: str(r.specifier) for r in declared if not r.marker}
    assert runtime == REQUIREMENTS
    for requirement in declared:
        if not requirement.marker:  # the versions this suite runs with satisfy them
            assert requirement.specifier.contains(metadata.version(requirement.name), prereleases=True), requirement


# Modules of optional extras (module -> extra), declared in setup.cfg as `dask = dask[...]`.
OPTIONAL = {"dask": "dask", "distributed": "dask", "msgspec": "sandbox"}
# `connector serve`'s ASGI stack: the `serve` extra, imported only by connector_core/serve/.
SERVE_EXTRA = {"starlette", "uvicorn", "httptools", "uvloop"}


def test_the_optional_extras_are_declared_with_their_markers(wheel):
    declared = _requirements(wheel)
    dask = [r for r in declared if r.name == "dask" and r.marker and r.marker.evaluate({"extra": "dask"})]
    assert dask and {"distributed", "dataframe"} <= dask[0].extras
    sandbox = [str(r.specifier) for r in declared if r.marker and r.marker.evaluate({"extra": "sandbox"})]
    assert sandbox == [">=0.18"] and [r.name for r in declared if r.marker and r.marker.evaluate({"extra": "sandbox"})] == ["msgspec"]


def _third_party_imports(serve: bool = False) -> set[str]:
    """Top-level modules imported by the installed packages that are not theirs or the standard library.

    ``serve``: those of the service's package (``connector serve``) instead of the rest.
    """
    ours = {"connector_core", "connector_mparticle"}
    found = set()
    service = ROOT / "connector_core" / "serve"
    for folder in ("connector_core", "capabilities"):
        for path in (ROOT / folder).rglob("*.py"):
            if (service in path.parents) != serve:
                continue
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return {name for name in found - ours if name not in sys.stdlib_module_names and name != "pytest"}


def test_every_third_party_import_is_a_declared_dependency():
    # pytest is imported only by the pytest11 fixture modules, which pytest itself loads.
    providers = metadata.packages_distributions()
    imported = _third_party_imports()
    assert imported >= {"pluggy", "requests", "jsonschema"}
    undeclared = {module: providers.get(module) for module in imported if not set(providers.get(module, ())) & set(REQUIREMENTS)}
    # urllib3 comes with requests, which the HTTP layer builds on (its exception types);
    # dask and distributed only with the dask extra, imported only by backfill_dask; msgspec
    # only with the sandbox extra, imported only by the sandbox's fast bulk check (which the
    # sandbox does without when it is missing).
    assert undeclared == {"urllib3": ["urllib3"], **{m: providers.get(m) for m in OPTIONAL if m in imported}}
    assert set(OPTIONAL) <= imported


def test_the_service_imports_only_the_serve_extra_and_runtime_dependencies(wheel):
    declared = _requirements(wheel)
    extra = {r.name for r in declared if r.marker and r.marker.evaluate({"extra": "serve"})}
    assert extra == SERVE_EXTRA
    assert _third_party_imports(serve=True) <= SERVE_EXTRA | set(REQUIREMENTS)


def test_wheel_contains_packages_and_manifests(installed):
    bin_dir, cwd, env = installed
    probe = _run(
        [
            str(bin_dir / "python"),
            "-c",
            "import json, connector_core, connector_mparticle, connector_mparticle.manifests as m;"
            "from importlib import resources;"
            "print(json.dumps({'core': connector_core.__file__, 'manifests': m.__file__,"
            " 'files': sorted(p.name for p in resources.files(m).iterdir() if p.name.endswith('.json'))}))",
        ],
        cwd=cwd,
        env=env,
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert str(ROOT) not in found["core"] and str(ROOT) not in found["manifests"]
    assert found["files"] == sorted(
        f"{name}.json"
        for name in (
            "mparticle",
            "createAccount",
            "getAccount",
            "updateAccount",
            "deleteAccount",
            "getAudiences",
            "getCalculatedAttributes",
            "uploadEventBatch",
        )
    )


def test_installed_connector_lists_every_plugin(installed):
    bin_dir, cwd, env = installed
    listed = _run([str(bin_dir / "connector"), "--strict", "plugins", "--json"], cwd=cwd, env=env)
    assert listed.returncode == 0, listed.stderr
    reports = {r["name"]: r for r in json.loads(listed.stdout)}
    assert all(r["status"] == "loaded" for r in reports.values()), reports
    assert {r["distribution"] for r in reports.values()} == {"connector-framework"}
    assert len([r for r in reports.values() if r["kind"] == "capability"]) == 7


def test_installed_connector_runs_a_capability_against_the_sandbox(installed):
    bin_dir, cwd, env = installed
    ran = _run(
        [str(bin_dir / "connector"), "run", "getAccount", "--sandbox", "--properties", '{"accountId": "1002"}'],
        cwd=cwd,
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["account"]["id"] == 1002


def test_installed_demo_runs_all_seven_capabilities(installed):
    bin_dir, cwd, env = installed
    demo = _run([str(bin_dir / "connector"), "demo"], cwd=cwd, env=env)
    assert demo.returncode == 0, demo.stderr
    assert '"demo": "done"' in demo.stdout and '"failed": 0' in demo.stdout
    for capability in ("createAccount", "getAccount", "updateAccount", "deleteAccount", "getAudiences", "getCalculatedAttributes", "uploadEventBatch"):
        assert f'"capability": "{capability}"' in demo.stdout
