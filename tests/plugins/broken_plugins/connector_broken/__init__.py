"""connector_core plugins that are broken on purpose, one way each.

The core must reject every one of them with its entry point, distribution and reason,
and keep every other plugin working.
"""

BROKEN_CONNECTOR = {
    "manifestVersion": 1,
    "id": "broken",
    "title": "Broken service",
    "config": {"type": "object", "properties": {}},
    "endpoints": {"api": {"baseUrl": "https://broken.invalid"}},
}


def manifest(capability_id: str) -> dict:
    return {
        "manifestVersion": 1,
        "id": capability_id,
        "connector": "broken",
        "title": capability_id,
        "description": "Broken on purpose.",
        "effect": "read",
        "retrySafe": True,
        "inputSchema": {"type": "object"},
        "outputSchema": {"type": "object"},
    }
