"""keyedWhoami and bearerWhoami: GET /whoami of a connector authenticated by a plugin's scheme."""

from importlib import resources

from connector_core import hookimpl, read_json

_MANIFESTS = resources.files("connector_keyauth") / "manifests"
KEYED_CONNECTOR = _MANIFESTS / "keyed.json"
BEARER_CONNECTOR = _MANIFESTS / "bearer.json"


class Whoami:
    def __init__(self, capability: str, connector: str) -> None:
        self.MANIFEST = _MANIFESTS / f"{capability}.json"
        self.CONNECTOR_MANIFEST = _MANIFESTS / f"{connector}.json"

    @hookimpl
    def execute(self, ctx, properties):
        response = ctx.http("api").get("/whoami")
        return {"status": response.status_code, "body": read_json(response, "the API", allow_empty=True)}


KEYED = Whoami("keyedWhoami", "keyed")
BEARER = Whoami("bearerWhoami", "bearer")
