"""sampleGreet: build a greeting (no network)."""

from connector_core import hookimpl

from . import manifest

MANIFEST = manifest("sampleGreet")
__all__ = ["MANIFEST", "execute"]


@hookimpl
def execute(ctx, properties):
    return {"greeting": f"Hello, {properties['name']}{properties.get('punctuation', '!')}"}
