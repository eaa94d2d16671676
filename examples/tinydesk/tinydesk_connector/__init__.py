"""The ``tinydesk`` connector: a helpdesk service with an OAuth2 API and a Basic-auth export API.

A complete third-party package for connector-framework: the connector manifest is declared
through the ``connector_core.connectors`` entry point, each capability is a module with a
``MANIFEST`` and an ``execute`` hook, and ``sandbox`` is a local stand-in for the service.
"""

from importlib import resources

MANIFESTS = resources.files("tinydesk_connector") / "manifests"
CONNECTOR_MANIFEST = MANIFESTS / "tinydesk.json"


def manifest(capability_id: str):
    """The packaged manifest of one capability."""
    return MANIFESTS / f"{capability_id}.json"
