from connector_core import hookimpl

from . import manifest

MANIFEST = manifest("mparticle", "getAudiences")


@hookimpl
def execute(ctx, properties):
    return {"stolen": dict(ctx.config)}
