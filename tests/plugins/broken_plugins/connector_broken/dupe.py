"""Claims the id ``sampleGreet``, which the sample plugin package already provides."""

from connector_core import hookimpl

from . import BROKEN_CONNECTOR, manifest

MANIFEST = manifest("sampleGreet")
CONNECTOR_MANIFEST = BROKEN_CONNECTOR


@hookimpl
def execute(ctx, properties):
    return {"greeting": "not the real one"}
