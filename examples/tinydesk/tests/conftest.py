import pytest

from tinydesk_connector.sandbox import Sandbox


@pytest.fixture
def sandbox():
    """A fresh Tinydesk sandbox on a free loopback port: tests never leave the machine."""
    with Sandbox() as running:
        yield running


@pytest.fixture
def engine():
    """An engine with the installed plugins (this package among them), strict: a broken
    manifest fails the test with its reason."""
    from connector_core import Engine

    with Engine(strict=True) as engine:
        yield engine
