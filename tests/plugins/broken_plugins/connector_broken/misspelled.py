"""Implements ``executee`` (a typo) instead of ``execute``."""

from connector_core import hookimpl

from . import BROKEN_CONNECTOR, manifest

MANIFEST = manifest("brokenHook")
CONNECTOR_MANIFEST = BROKEN_CONNECTOR


@hookimpl
def executee(ctx, properties):
    return {}
