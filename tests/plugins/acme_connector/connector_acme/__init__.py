"""The ``acme`` connector: a second connector with a capability named like mParticle's."""

from connector_core import hookimpl

CONNECTOR = {
    "manifestVersion": 1,
    "id": "acme",
    "title": "Acme accounts",
    "config": {
        "type": "object",
        "required": ["acmeToken"],
        "additionalProperties": False,
        "properties": {"acmeToken": {"type": "string", "minLength": 1, "secret": True}},
    },
    "endpoints": {"api": {"baseUrl": "https://acme.invalid"}},
}

MANIFEST = {
    "manifestVersion": 1,
    "id": "createAccount",
    "connector": "acme",
    "title": "Create an Acme account",
    "description": "Creates an account (offline: answers with the account it would create).",
    "effect": "write",
    "retrySafe": False,
    "inputSchema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
    "outputSchema": {"type": "object", "required": ["acmeAccount"]},
}


@hookimpl
def execute(ctx, properties):
    return {"acmeAccount": {"name": properties["name"], "by": ctx.connector.id}}
