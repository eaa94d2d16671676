"""The built wheel installs into a fresh virtual environment and works from there.

This proves the packaging: ``capabilities/`` and ``manifests/`` install as
``connector_mparticle`` and ``connector_mparticle.manifests``, manifests load through
``importlib.resources`` (not from the working directory), and the ``connector`` script,
the entry points and the sandbox work without the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(work / "dist"), str(ROOT)])
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (work / "dist").glob("connector_framework-*.whl")
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    pip = _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)])
    assert pip.returncode == 0, pip.stdout + pip.stderr
    # Run from an empty folder so nothing can come from the source tree.
    cwd = work / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CONNECTOR_CORE_LOAD_PLUGINS", "CONNECTOR_CORE_STRICT")}
    return bin_dir, cwd, env


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
