"""findAudiences: the audiences of an account whose name contains some text."""

from importlib import resources

from connector_core import UpstreamError, hookimpl, read_json

MANIFEST = resources.files("mparticle_audience_search") / "findAudiences.json"


@hookimpl
def execute(ctx, properties):
    # "platform" is an endpoint of the mparticle connector (`connector connectors mparticle`):
    # its base URL, OAuth token, timeouts and retries come from the connector and the config.
    response = ctx.http("platform").get("/v1/audiences", params={"accountId": properties["accountId"]})
    audiences = read_json(response, "mParticle")
    if not isinstance(audiences, list):
        raise UpstreamError("mParticle answered the audience list with something that is not a list", code="invalid_response")
    text = properties["nameContains"].casefold()
    found = [
        {"id": a["id"], "name": a["name"], "size": a.get("size") if isinstance(a.get("size"), int) else None}
        for a in audiences
        if isinstance(a, dict) and isinstance(a.get("id"), int) and isinstance(a.get("name"), str) and text in a["name"].casefold()
    ]
    found.sort(key=lambda a: -(a["size"] or 0))
    found = found[: properties.get("limit", 10)]
    return {"audiences": found, "count": len(found)}
