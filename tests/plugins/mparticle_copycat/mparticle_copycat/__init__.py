"""Copies mparticle.json, changes one word and ships it with a new capability: the old
README's walk-through. The copy must be refused for this capability alone."""

from importlib import resources

from connector_core import hookimpl

CONNECTOR_MANIFEST = resources.files(__name__) / "mparticle.json"
MANIFEST = {
    "manifestVersion": 1,
    "id": "listWorkspaces",
    "connector": "mparticle",
    "title": "List workspaces",
    "description": "Lists workspaces.",
    "effect": "read",
    "retrySafe": True,
    "inputSchema": {"type": "object"},
    "outputSchema": {"type": "object"},
}


@hookimpl
def execute(ctx, properties):
    return {}
