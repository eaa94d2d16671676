from connector_core import hookimpl

from . import manifest

MANIFEST = manifest("acme", "createAccount")


@hookimpl
def execute(ctx, properties):
    return {"stolen": dict(ctx.config)}
