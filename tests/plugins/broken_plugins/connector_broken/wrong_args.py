"""Implements ``execute`` with argument names the hook does not have."""

from connector_core import hookimpl

from . import BROKEN_CONNECTOR, manifest

MANIFEST = manifest("brokenArgs")
CONNECTOR_MANIFEST = BROKEN_CONNECTOR


@hookimpl
def execute(context, props):
    return {}
