"""The packages in ``examples/`` install into a fresh virtual environment from their folder,
as ``examples/README.md`` says, and pass ``connector validate`` and their own test suites there.

The fresh venv is made the cheap way (see :mod:`fresh_venv`): no pip of its own and a folder
of links to exactly the distributions a user's venv holds after ``pip install -e .`` in
this checkout (connector-framework, installed from source, and its requirements) plus
pytest, pip, setuptools and wheel. Nothing else of the test environment is visible, so
the example's pytest loads the plugins a user's would (the framework's ``pytest11`` ones).
Then the README's commands run in it, with ``--no-index --no-build-isolation`` added so pip
stays offline; pip still resolves ``install_requires = connector-framework`` against what
is installed, the step a fresh clone could not get past before.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fresh_venv import ROOT, Venv

EXAMPLES = ROOT / "examples"
# Each example: its folder and the manifests `connector validate` checks.
PACKAGES = {
    "tinydesk": ["tinydesk_connector/manifests/tinydesk.json", "tinydesk_connector/manifests/createTicket.json", "tinydesk_connector/manifests/listTickets.json"],
    "mparticle_audience_search": ["mparticle_audience_search/findAudiences.json"],
}


def _install_and_run(name: str, work: Path) -> dict:
    """The README's steps for one example in its own fresh venv: install, validate, test."""
    source = work / name
    shutil.copytree(EXAMPLES / name, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"))
    venv = Venv.create(work / f"{name}-venv")
    return {
        "install": venv.pip_install("-e", ".[test]", cwd=source),
        "validate": venv.connector("validate", *PACKAGES[name], cwd=source),
        "tests": venv.run("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=source),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    work = tmp_path_factory.mktemp("examples")
    with ThreadPoolExecutor(len(PACKAGES)) as pool:
        futures = {name: pool.submit(_install_and_run, name, work) for name in PACKAGES}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_the_example_installs_from_its_folder(runs, name):
    install = runs[name]["install"]
    assert install.returncode == 0, install.output


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_its_manifests_pass_connector_validate(runs, name):
    validate = runs[name]["validate"]
    assert validate.returncode == 0, validate.output
    assert '"valid": true' in validate.stdout


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_its_own_test_suite_passes(runs, name):
    tests = runs[name]["tests"]
    assert tests.returncode == 0, tests.output
    assert " passed" in tests.stdout and "skipped" not in tests.stdout, tests.output


def test_the_examples_are_listed_in_the_readme():
    readme = (EXAMPLES / "README.md").read_text("utf-8")
    for name in PACKAGES:
        assert f"examples/{name}" in readme
