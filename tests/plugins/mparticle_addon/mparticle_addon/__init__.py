"""``mparticle.countAudiences``: a capability attached to a connector another package owns."""

from connector_core import hookimpl, read_json

MANIFEST = {
    "manifestVersion": 1,
    "id": "countAudiences",
    "connector": "mparticle",
    "title": "Count audiences",
    "description": "Counts the audiences of an account through the connector's platform endpoint.",
    "effect": "read",
    "retrySafe": True,
    "endpoints": ["platform"],
    "inputSchema": {
        "type": "object",
        "required": ["accountId"],
        "additionalProperties": False,
        "properties": {"accountId": {"type": "integer", "minimum": 1}},
    },
    "outputSchema": {"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}},
}


@hookimpl
def execute(ctx, properties):
    response = ctx.http("platform").get("/v1/audiences", params={"accountId": properties["accountId"]})
    return {"count": len(read_json(response, "mParticle"))}
