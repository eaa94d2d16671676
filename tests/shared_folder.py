"""The rule for tests that read ``../shared``, the reference folder next to a checkout.

``../shared`` is not part of a clone: nothing may need it to install, run or pass. A test
that reads it takes its paths from :func:`shared_path` (or is marked :func:`needs_shared`)
and skips, saying what it needs, when the path is absent. Where ``../shared`` exists
(on the project's machines and in its CI), such a skip fails the run instead: a reference
that moved or was renamed must not switch its tests off silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
REASON = "needs ../shared/"


def _reason(relative: str) -> str:
    return f"{REASON}{relative}, which is absent (../shared is the reference folder next to a checkout, not part of a clone)"


def shared_path(relative: str) -> Path:
    """``../shared/<relative>``; skips the calling test, saying so, when it is absent."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(_reason(relative))
    return path


def needs_shared(relative: str) -> pytest.MarkDecorator:
    """A mark that skips the test, saying so, when ``../shared/<relative>`` is absent."""
    return pytest.mark.skipif(not (SHARED / relative).exists(), reason=_reason(relative))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Turn a skip for want of ``../shared`` into a failure when ``../shared`` exists."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or not SHARED.is_dir():
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if REASON in reason:
        report.outcome = "failed"
        report.longrepr = f"skipped although {SHARED} exists: {reason}"
