"""Claims the id ``sampleGreet`` of the ``sample`` connector, which the sample package owns."""

from connector_core import hookimpl

from . import manifest

MANIFEST = {**manifest("sampleGreet"), "connector": "sample"}


@hookimpl
def execute(ctx, properties):
    return {"greeting": "not the real one"}
