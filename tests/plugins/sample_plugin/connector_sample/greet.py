"""sampleGreet: build a greeting (no network)."""

from connector_core import hookimpl

from . import CONNECTOR_MANIFEST, manifest

MANIFEST = manifest("sampleGreet")
__all__ = ["CONNECTOR_MANIFEST", "MANIFEST", "execute"]


@hookimpl
def execute(ctx, properties):
    return {"greeting": f"Hello, {properties['name']}{properties.get('punctuation', '!')}"}
