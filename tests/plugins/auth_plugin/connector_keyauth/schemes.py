"""Two auth schemes: an API key in a header of the manifest's choosing, and a static bearer token."""

from __future__ import annotations

from connector_core import hookimpl
from connector_core.auth import Auth, AuthField, AuthScheme, credential_key

TITLE = "API-key and static-bearer auth schemes"
CHECK_PATH = {"type": "string", "pattern": "^/"}


def _check(client, path):
    """`connector check`: one authenticated GET of the manifest's checkPath, when it names one."""
    if not path:
        return {"ok": None, "message": "no checkPath in the manifest; cannot be checked without sending data"}
    client.get(path)  # a refused credential raises authentication_failed
    return {"ok": True, "message": f"GET {path} accepted the credentials"}


class ApiKeyHeader(Auth):
    def __init__(self, header: str, key: str, check_path: str | None) -> None:
        self._header, self._key, self._check_path = header, key, check_path

    def __call__(self, request):
        request.headers[self._header] = self._key
        return request

    @property
    def credential_key(self) -> str:
        return credential_key("api_key_header", self._header, self._key)

    def check(self, client):
        return _check(client, self._check_path)


class ApiKeyHeaderScheme(AuthScheme):
    type = "api_key_header"
    manifest_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["header", "keyField"],
        "properties": {"header": {"type": "string", "minLength": 1}, "keyField": {"type": "string"}, "checkPath": CHECK_PATH},
    }

    def fields(self, spec):
        return [AuthField("keyField", spec["keyField"], secret=True)]

    def build(self, spec, env):
        return ApiKeyHeader(spec["header"], env.required(spec["keyField"]), spec.get("checkPath"))


class StaticBearer(Auth):
    def __init__(self, token: str, check_path: str | None, secret) -> None:
        self._value = f"Bearer {token}"
        self._token, self._check_path = token, check_path
        secret(self._value)

    def __call__(self, request):
        request.headers["Authorization"] = self._value
        return request

    @property
    def credential_key(self) -> str:
        return credential_key("static_bearer", self._token)

    def check(self, client):
        return _check(client, self._check_path)


class StaticBearerScheme(AuthScheme):
    type = "static_bearer"
    manifest_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["tokenField"],
        "properties": {"tokenField": {"type": "string"}, "checkPath": CHECK_PATH},
    }

    def fields(self, spec):
        return [AuthField("tokenField", spec["tokenField"], secret=True)]

    def build(self, spec, env):
        return StaticBearer(env.required(spec["tokenField"]), spec.get("checkPath"), env.secret)


@hookimpl
def register_auth_schemes(register):
    register(ApiKeyHeaderScheme())
    register(StaticBearerScheme())
