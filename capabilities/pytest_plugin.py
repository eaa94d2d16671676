"""pytest fixtures for the mParticle sandbox (registered through the ``pytest11`` entry point).

``mparticle_sandbox`` gives each test a sandbox in its seeded state: one server runs for
the whole session and is reset before every test, which is as isolated as a fresh server
and far faster. Tests that need other constructor arguments (a clock, credentials) build
their own ``Sandbox``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from connector_mparticle.sandbox import Sandbox


@pytest.fixture(scope="session")
def mparticle_sandbox_server() -> Iterator[Sandbox]:
    """The session's sandbox server (seed 0), not reset between tests."""
    with Sandbox(seed=0) as sandbox:
        yield sandbox


@pytest.fixture
def mparticle_sandbox(mparticle_sandbox_server: Sandbox) -> Sandbox:
    """A running sandbox in its seeded state: data, counters, faults and limits reset."""
    mparticle_sandbox_server.reset()
    return mparticle_sandbox_server
