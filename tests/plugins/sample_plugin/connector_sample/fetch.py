"""sampleFetch: GET a path of the configured API and return its status and JSON body."""

from connector_core import hookimpl, read_json

from . import manifest

MANIFEST = manifest("sampleFetch")
__all__ = ["MANIFEST", "execute"]


@hookimpl
def execute(ctx, properties):
    # Careless on purpose: the core must redact the secret token from this log line.
    ctx.log.info("fetching %s as %s with token %s", properties["path"], ctx.config["user"], ctx.config["token"])
    response = ctx.http("api").get(properties["path"])
    return {"status": response.status_code, "body": read_json(response, "the sample API", allow_empty=True)}
