"""Every package a plugin author starts from installs into a fresh virtual environment and
passes ``connector validate`` and its own test suite there: the packages in ``examples/``,
installed from their folders as ``examples/README.md`` says, and the packages ``connector
new`` writes (a connector package with a second capability added, and a package attaching
a capability to the installed mparticle connector), as generated.

The fresh venv is made the cheap way (see :mod:`fresh_venv`): no pip of its own and a
folder of links to exactly the distributions a user's venv holds after ``pip install -e .``
in this checkout (connector-framework, installed from source, and its requirements) plus
pytest, pip, setuptools and wheel. Nothing else of the test environment is visible, so each
package's pytest loads the plugins a user's would (the framework's ``pytest11`` ones). The
README's commands run in it with ``--no-index --no-build-isolation`` added so pip stays
offline; pip still resolves ``install_requires = connector-framework`` (and the ``test``
extra) against what is installed, the step a fresh clone could not get past before. All
four packages share one venv and one pip call (one resolution, a user trying them all);
each runs its own suite from its own folder.
"""

from __future__ import annotations

import io
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from fresh_venv import ROOT, Venv

from connector_core.cli import main

EXAMPLES = ROOT / "examples"
# Each package's folder, the manifests `connector validate` checks and how many of its own
# tests must pass.
PACKAGES = {
    "tinydesk": (["tinydesk_connector/manifests/tinydesk.json", "tinydesk_connector/manifests/createTicket.json", "tinydesk_connector/manifests/listTickets.json"], 10),
    "mparticle_audience_search": (["mparticle_audience_search/findAudiences.json"], 7),
    "acme-shop-connector": (["acme_shop_connector/manifests/Acme_Shop.json", "acme_shop_connector/manifests/getItem.json", "acme_shop_connector/manifests/listOrders.json"], 8),
    "mparticle-count-things": (["mparticle_count_things/countThings.json"], 4),
}


def _new(*args: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["new", *args], stdout=out, stderr=err) == 0, err.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("kit")
    for name in ("tinydesk", "mparticle_audience_search"):
        shutil.copytree(EXAMPLES / name, work / name, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    _new("connector", "Acme_Shop", "--output", str(work))
    _new("capability", "Acme_Shop", "listOrders", "--output", str(work / "acme-shop-connector"))
    _new("capability", "mparticle", "countThings", "--output", str(work))
    venv = Venv.create(work / "venv")
    install = venv.pip_install(*[arg for name in PACKAGES for arg in ("-e", f"{name}[test]")], cwd=work)
    if install.returncode != 0:
        return {"install": install}
    paths = [f"{name}/{path}" for name, (manifests, _) in PACKAGES.items() for path in manifests]
    with ThreadPoolExecutor(len(PACKAGES) + 1) as pool:
        validate = pool.submit(venv.connector, "validate", *paths, cwd=work)
        tests = {name: pool.submit(venv.run, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", cwd=work / name) for name in PACKAGES}
        return {"install": install, "validate": validate.result(), **{name: future.result() for name, future in tests.items()}}


def test_every_package_installs_from_its_folder(runs):
    assert runs["install"].returncode == 0, runs["install"].output


def test_their_manifests_pass_connector_validate(runs):
    validate = runs["validate"]
    assert validate.returncode == 0, validate.output
    report = json.loads(validate.stdout)
    assert report["valid"] is True and len(report["files"]) == sum(len(m) for m, _ in PACKAGES.values())


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_its_own_test_suite_passes(runs, name):
    tests = runs[name]
    assert tests.returncode == 0, tests.output
    # Generated packages contract-check an added capability too, and the attached one runs
    # its check against the connector's sandbox: nothing skipped.
    assert f"{PACKAGES[name][1]} passed" in tests.stdout and "skipped" not in tests.stdout, tests.output


def test_the_examples_are_listed_in_their_readme():
    readme = (EXAMPLES / "README.md").read_text("utf-8")
    for name in ("tinydesk", "mparticle_audience_search"):
        assert f"examples/{name}" in readme
