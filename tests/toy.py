"""A toy connector and tiny capability plugins for the core's tests.

The toy connector has an ``api`` endpoint (OAuth2 client credentials) and a ``basic``
endpoint (HTTP Basic, falling back from ``apiKey``/``apiSecret`` to
``clientId``/``clientSecret``). Both base URLs and the token URL come from config
override fields, so :func:`toy_config` points everything at a :class:`TestServer`.
"""

from __future__ import annotations

import copy
import itertools
import threading
from typing import Any, Callable, Iterable

from httpserver import Answer, Recorded

from connector_core import get_plugin_manager, hookimpl, read_json

SECRET = "Sup3r-S3cret!value"  # the client secret; must never show up in errors or logs
API_SECRET = "Ev3nts-S3cret!value"
TOKEN_PREFIX = "tok-7f3a9c"

TOY_CONNECTOR: dict[str, Any] = {
    "manifestVersion": 1,
    "id": "toy",
    "title": "Toy service",
    "description": "A connector that exists only in tests.",
    "config": {
        "type": "object",
        "required": ["clientId", "clientSecret"],
        "additionalProperties": False,
        "properties": {
            "clientId": {"type": "string", "minLength": 1},
            "clientSecret": {
                "type": "string",
                "secret": True,
                "minLength": 1,
                "maxLength": 40,
            },
            "apiKey": {"type": "string", "minLength": 1},
            "apiSecret": {"type": "string", "secret": True},
            "accountId": {"type": "integer", "minimum": 1},
            "region": {"type": "string", "pattern": "^[a-z]{2}$", "errorMessage": "must be a two-letter region such as eu"},
            "apiUrl": {"type": "string"},
            "basicUrl": {"type": "string"},
            "tokenUrl": {"type": "string"},
            "timeoutSeconds": {"type": "number", "exclusiveMinimum": 0},
            "connectTimeoutSeconds": {"type": "number", "exclusiveMinimum": 0},
            "maxRetries": {"type": "integer", "minimum": 0},
            "maxRetryWaitSeconds": {"type": "number", "minimum": 0},
            "deadlineSeconds": {"type": "number", "exclusiveMinimum": 0},
        },
    },
    "endpoints": {
        "api": {"baseUrl": "https://api.toy.example", "overrideField": "apiUrl", "auth": "oauth"},
        "basic": {"baseUrl": "https://basic.toy.example", "overrideField": "basicUrl", "auth": "basic"},
    },
    "auth": {
        "oauth": {
            "type": "oauth2_client_credentials",
            "tokenUrl": "https://auth.toy.example/oauth/token",
            "tokenUrlField": "tokenUrl",
            "clientIdField": "clientId",
            "clientSecretField": "clientSecret",
            "audience": "https://api.toy.example",
        },
        "basic": {"type": "basic", "usernameFields": ["apiKey", "clientId"], "passwordFields": ["apiSecret", "clientSecret"]},
    },
}

OBJECT = {"type": "object"}


def capability_manifest(
    id: str,
    *,
    connector: str = "toy",
    effect: str = "read",
    retry_safe: bool = True,
    input_schema: dict | None = None,
    output_schema: dict | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A valid capability manifest dict for the toy connector."""
    return {
        "manifestVersion": 1,
        "id": id,
        "connector": connector,
        "title": f"Toy {id}",
        "description": f"The {id} capability of the toy connector.",
        "effect": effect,
        "retrySafe": retry_safe,
        "inputSchema": input_schema if input_schema is not None else {"type": "object"},
        "outputSchema": output_schema if output_schema is not None else OBJECT,
        **extra,
    }


ECHO_INPUT = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "count": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}
ID_INPUT = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
ITEM_OUTPUT = {"type": "object", "required": ["item"], "properties": {"item": {"type": "object"}}}


class Capability:
    """Base of the toy capability plugins: manifests as dicts, calls counted."""

    MANIFEST: dict
    CONNECTOR_MANIFEST = TOY_CONNECTOR

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.MANIFEST["id"]

    def record(self, properties: dict) -> None:
        with self._lock:
            self.calls.append(properties)


class Echo(Capability):
    """No network: returns its input."""

    MANIFEST = capability_manifest(
        "toyEcho",
        input_schema=ECHO_INPUT,
        output_schema={"type": "object", "required": ["echo"], "properties": {"echo": {"type": "object"}}},
        examples=[{"input": {"name": "x"}, "output": {"echo": {"name": "x"}}}],
    )

    @hookimpl
    def execute(self, ctx, properties):
        self.record(properties)
        return {"echo": properties}


class Shout(Capability):
    """A second no-network capability of the same connector."""

    MANIFEST = capability_manifest("toyShout", output_schema={"type": "object", "required": ["shout"]})

    @hookimpl
    def execute(self, ctx, properties):
        self.record(properties)
        return {"shout": "HEY"}


class NeedsAccount(Capability):
    """Needs ``accountId`` on top of what the connector always requires."""

    MANIFEST = capability_manifest("toyNeedsAccount", requiredConfig=["accountId"])

    @hookimpl
    def execute(self, ctx, properties):
        return {"accountId": ctx.config["accountId"]}


class Get(Capability):
    """GET /items/{id} on the OAuth2 endpoint."""

    MANIFEST = capability_manifest("toyGet", input_schema=ID_INPUT, output_schema=ITEM_OUTPUT, endpoints=["api"])

    @hookimpl
    def execute(self, ctx, properties):
        self.record(properties)
        response = ctx.http("api").get("/items/{id}", path_params={"id": properties["id"]})
        return {"item": read_json(response)}


class Create(Capability):
    """POST /items on the OAuth2 endpoint: a write that is not safe to repeat."""

    MANIFEST = capability_manifest("toyCreate", effect="write", retry_safe=False, output_schema=ITEM_OUTPUT, endpoints=["api"])

    @hookimpl
    def execute(self, ctx, properties):
        response = ctx.http("api").post("/items", json=properties)
        return {"item": read_json(response)}


class Put(Capability):
    """PUT /items/{id}: a write that is safe to repeat."""

    MANIFEST = capability_manifest(
        "toyPut", effect="write", retry_safe=True, input_schema=ID_INPUT, output_schema=ITEM_OUTPUT, endpoints=["api"]
    )

    @hookimpl
    def execute(self, ctx, properties):
        response = ctx.http("api").put("/items/{id}", path_params={"id": properties["id"]}, json=properties)
        return {"item": read_json(response)}


class BasicPing(Capability):
    """GET /ping on the Basic-auth endpoint."""

    MANIFEST = capability_manifest("toyBasicPing", endpoints=["basic"])

    @hookimpl
    def execute(self, ctx, properties):
        response = ctx.http("basic").get("/ping")
        return {"status": response.status_code}


class Crash(Capability):
    """A buggy plugin: raises ValueError with the client secret in its message."""

    MANIFEST = capability_manifest("toyCrash")

    @hookimpl
    def execute(self, ctx, properties):
        ctx.log.info("about to fail with secret %s", ctx.config["clientSecret"])
        raise ValueError(f"could not parse {ctx.config['clientSecret']}")


class BadOutput(Capability):
    """A buggy plugin: returns output that breaks its own output schema."""

    MANIFEST = capability_manifest(
        "toyBadOutput", output_schema={"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}}
    )

    @hookimpl
    def execute(self, ctx, properties):
        return {"count": "three"}


class Fetch(Capability):
    """GETs the path given in its input (used to try to leave the endpoint's host)."""

    MANIFEST = capability_manifest("toyFetch", input_schema={"type": "object", "required": ["path"]}, endpoints=["api"])

    @hookimpl
    def execute(self, ctx, properties):
        return {"status": ctx.http("api").get(properties["path"]).status_code}


ALL = (Echo, Shout, NeedsAccount, Get, Create, Put, BasicPing, Crash, BadOutput, Fetch)


def toy_pm(*plugins: Any, extensions: Iterable[tuple[str, Any]] = ()):
    """A plugin manager with ``plugins`` registered under their manifest ids (all toys by default)."""
    pm = get_plugin_manager()
    for plugin in plugins or [cls() for cls in ALL]:
        pm.register(plugin, name=plugin.MANIFEST["id"])
    for name, plugin in extensions:
        pm.register(plugin, name=name)
    return pm


def toy_config(server_url: str, **extra: Any) -> dict[str, Any]:
    """A valid toy config with every URL on the test server."""
    config = {
        "clientId": "toy-client",
        "clientSecret": SECRET,
        "apiUrl": server_url + "/api",
        "basicUrl": server_url + "/basic",
        "tokenUrl": server_url + "/oauth/token",
        "timeoutSeconds": 5,
        "connectTimeoutSeconds": 5,
    }
    config.update(extra)
    return {k: v for k, v in config.items() if v is not None}


def token_issuer(expires_in: int = 3600, delay: float = 0.0) -> Callable[[Recorded], Answer]:
    """A token endpoint answer issuing ``tok-...-1``, ``tok-...-2``, ... one per request."""
    counter = itertools.count(1)
    lock = threading.Lock()

    def issue(request: Recorded) -> Answer:
        with lock:
            n = next(counter)
        return Answer(200, json={"access_token": f"{TOKEN_PREFIX}-{n}", "token_type": "Bearer", "expires_in": expires_in}, delay=delay)

    return issue


def token(n: int) -> str:
    return f"{TOKEN_PREFIX}-{n}"


def variant(manifest: dict, **changes: Any) -> dict:
    """A deep copy of ``manifest`` with top-level keys changed."""
    data = copy.deepcopy(manifest)
    data.update(changes)
    return data
