"""The ../shared rule itself: a test that needs it skips, saying why, only where it is absent."""

from __future__ import annotations

import pytest
import shared_folder

pytest_plugins = ["pytester"]

USES_SHARED = """
from shared_folder import needs_shared, shared_path

def test_reads_a_reference():
    assert shared_path("reference/specs/sample.json").read_text() == "{}"

@needs_shared("reference/specs")
def test_marked():
    pass

def test_unrelated():
    pass
"""


@pytest.fixture
def run(pytester, monkeypatch):
    def run(shared):
        monkeypatch.setattr(shared_folder, "SHARED", shared)
        # The rule's plugin alone: loading every installed plugin would triple the run's cost.
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        pytester.makepyfile(test_uses_shared=USES_SHARED)
        return pytester.runpytest_inprocess("-p", "shared_folder", "-rs", "-p", "no:cacheprovider")

    return run


def test_without_shared_the_tests_skip_saying_what_they_need(run, tmp_path):
    result = run(tmp_path / "absent")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*needs ../shared/reference/specs/sample.json, which is absent*",
                                 "*needs ../shared/reference/specs, which is absent*"])


def test_with_shared_present_a_skip_for_want_of_it_fails_the_run(run, tmp_path):
    (tmp_path / "shared").mkdir()  # present, but without the files the tests need
    result = run(tmp_path / "shared")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*skipped although * exists: *needs ../shared/reference/specs/sample.json*"])


def test_with_shared_complete_the_tests_run(run, tmp_path):
    specs = tmp_path / "shared" / "reference" / "specs"
    specs.mkdir(parents=True)
    (specs / "sample.json").write_text("{}")
    run(tmp_path / "shared").assert_outcomes(passed=3)
