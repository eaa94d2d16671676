"""Ships a capability manifest that does not match the meta-schema."""

from importlib import resources

from connector_core import hookimpl

from . import BROKEN_CONNECTOR

MANIFEST = resources.files("connector_broken") / "manifests" / "brokenManifest.json"
CONNECTOR_MANIFEST = BROKEN_CONNECTOR


@hookimpl
def execute(ctx, properties):
    return {}
