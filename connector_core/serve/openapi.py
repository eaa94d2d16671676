"""The service's HTTP contract, generated from the loaded manifests.

Nothing here imports the ASGI stack: ``connector openapi`` writes the same document
offline that ``GET /openapi.json`` serves, and the status table is shared by both.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConnectorError
from ..registry import Capability, Registry

# HTTP status of an execute/check answer per error category (documented in docs/serve.md).
STATUS_BY_CATEGORY = {
    "input": 422,
    "config": 422,
    "auth": 424,
    "not_found": 404,
    "conflict": 409,
    "rate_limited": 429,
    "upstream": 502,
    "network": 504,
    "outcome_unknown": 502,
    "plugin": 500,
    "internal": 500,
    # The service's own refusals of a request (the HTTP layer, not a capability).
    "request": 400,
    "unavailable": 503,
}
# Codes whose status is more precise than their category's.
STATUS_BY_CODE = {
    "unknown_capability": 404,
    "unknown_connection": 404,
    "capability_not_allowed": 403,
    "unauthorized": 401,
    "origin_refused": 403,
    "no_route": 404,
    "method_not_allowed": 405,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "misdirected_host": 421,
}

STATUS_TABLE = [
    (200, "-", "the call succeeded: the `Result` JSON (`capability`, `output`, `meta`)"),
    (400, "request", "the body is not JSON, or not an object of the documented shape (`invalid_json`, `invalid_request`)"),
    (401, "request", "no or wrong API key (`unauthorized`)"),
    (403, "request / config", "a cross-site request (`origin_refused`), or the connection does not allow the capability (`capability_not_allowed`)"),
    (404, "not_found / input / config", "the service found no such resource (`not_found`), or no such capability or connection"),
    (409, "conflict", "the service refused a conflicting write (a name already taken)"),
    (413, "request", "the body is larger than the service accepts (`body_too_large`)"),
    (415, "request", "the body is not `application/json` (`unsupported_media_type`)"),
    (421, "request", "the Host header names no host this service answers for (`misdirected_host`)"),
    (422, "input / config", "the properties or the config do not fit their schema; `faults` name every field"),
    (424, "auth", "the connector's service refused the connection's credentials: fix the config, do not retry"),
    (429, "rate_limited", "the connector's service is throttling; `Retry-After` and `retry_after` say when to retry"),
    (500, "plugin / internal", "a bug in a plugin or in the service: report it"),
    (502, "upstream / outcome_unknown", "the connector's service failed; for `outcome_unknown` a write may have happened: check before repeating"),
    (503, "unavailable", "the service is starting or shutting down (`not_ready`)"),
    (504, "network", "the connector's service could not be reached or did not answer in time"),
]


def status_for(error: ConnectorError) -> int:
    """The HTTP status of ``error``: by its code when listed, else by its category."""
    return STATUS_BY_CODE.get(error.code) or STATUS_BY_CATEGORY.get(error.category, 500)


def capabilities_by_qualified_id(registry: Registry) -> dict[str, Capability]:
    return {c.id: c for c in sorted(registry.capabilities.values(), key=lambda c: c.id)}


def _public_config_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The connector's config schema with secret fields marked for clients (password inputs)."""
    out = copy.deepcopy(dict(schema))
    for spec in out.get("properties", {}).values():
        if isinstance(spec, dict) and spec.get("secret"):
            spec.setdefault("writeOnly", True)
            spec.setdefault("format", "password")
    return out


def describe_connector(registry: Registry, connector_id: str) -> dict[str, Any]:
    connector = registry.connectors[connector_id]
    return {
        "id": connector.id,
        "title": connector.title,
        "description": connector.description,
        "configSchema": _public_config_schema(connector.config_schema),
        "secretFields": sorted(connector.secret_fields),
        "capabilities": [q for q, c in capabilities_by_qualified_id(registry).items() if c.connector.id == connector_id],
    }


def summarize_capability(capability: Capability) -> dict[str, Any]:
    manifest = capability.manifest
    return {
        "id": capability.id,
        "name": capability.name,
        "connector": manifest.connector,
        "title": manifest.title,
        "description": manifest.description,
        "effect": manifest.effect,
        "retrySafe": manifest.retry_safe,
    }


def describe_capability(capability: Capability) -> dict[str, Any]:
    manifest = capability.manifest
    return {
        **summarize_capability(capability),
        "requiredConfig": list(manifest.required_config),
        "inputSchema": copy.deepcopy(dict(manifest.input_schema)),
        "outputSchema": copy.deepcopy(dict(manifest.output_schema)),
        "examples": [copy.deepcopy(dict(e)) for e in manifest.examples],
        "documentation": manifest.data.get("documentation"),
    }


# -- the document ------------------------------------------------------------------

_ERROR = {
    "type": "object",
    "description": "Every failure: the same JSON as `ConnectorError.to_dict()` in Python and the CLI's stderr.",
    "required": ["code", "category", "message"],
    "properties": {
        "code": {"type": "string", "description": "stable, precise condition"},
        "category": {"type": "string", "description": "what the caller can act on (see the status table)"},
        "message": {"type": "string", "description": "what went wrong and how to fix it"},
        "faults": {"type": "array", "items": {"$ref": "#/components/schemas/Fault"}},
        "correlation_id": {"type": "string", "description": "the caller's X-Correlation-ID, or one the service made"},
    },
    "additionalProperties": True,
}
_FAULT = {
    "type": "object",
    "required": ["path", "message"],
    "properties": {"path": {"type": "string", "description": "JSON path of the faulty value, e.g. `$.accountId`"}, "message": {"type": "string"}},
    "additionalProperties": False,
}
_META = {
    "type": "object",
    "required": ["duration_ms", "http_requests", "retries"],
    "properties": {
        "duration_ms": {"type": "number", "minimum": 0},
        "http_requests": {"type": "integer", "minimum": 0},
        "retries": {"type": "integer", "minimum": 0},
    },
}
_SUMMARY = {
    "type": "object",
    "required": ["id", "name", "connector", "title", "description", "effect", "retrySafe"],
    "properties": {
        "id": {"type": "string", "description": "qualified id `<connector>.<capability>`"},
        "name": {"type": "string"},
        "connector": {"type": "string"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "effect": {"enum": ["read", "write", "delete"]},
        "retrySafe": {"type": "boolean"},
    },
}
_DESCRIPTION = {
    "allOf": [{"$ref": "#/components/schemas/CapabilitySummary"}],
    "type": "object",
    "required": ["requiredConfig", "inputSchema", "outputSchema", "examples"],
    "properties": {
        "requiredConfig": {"type": "array", "items": {"type": "string"}},
        "inputSchema": {"type": "object"},
        "outputSchema": {"type": "object"},
        "examples": {"type": "array", "items": {"type": "object"}},
        "documentation": {"type": ["string", "null"]},
    },
}
_CONNECTOR = {
    "type": "object",
    "required": ["id", "title", "description", "configSchema", "secretFields", "capabilities"],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "configSchema": {"type": "object"},
        "secretFields": {"type": "array", "items": {"type": "string"}},
        "capabilities": {"type": "array", "items": {"type": "string"}},
    },
}
_CONNECTION = {
    "type": "object",
    "required": ["name", "connector", "description", "capabilities"],
    "properties": {
        "name": {"type": "string"},
        "connector": {"type": "string"},
        "description": {"type": "string"},
        "capabilities": {"type": ["array", "null"], "items": {"type": "string"}, "description": "allowed capabilities; null: all of its connector's"},
    },
}
_CHECK = {
    "type": "object",
    "required": ["connection", "connector", "config", "capabilities", "credentials", "ready"],
    "properties": {
        "connection": {"type": "string"},
        "connector": {"type": "string"},
        "config": {"const": "valid"},
        "ready": {"type": "boolean", "description": "at least one capability is ready and every credential checked works"},
        "capabilities": {"type": "object", "additionalProperties": {"type": "object", "required": ["ready"]}},
        "credentials": {"type": "object", "additionalProperties": {"type": "object", "required": ["ok"]}},
    },
}
_HEALTH = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}

_CORRELATION = {
    "name": "X-Correlation-ID",
    "in": "header",
    "required": False,
    "description": "your id for this call (1-128 of `A-Z a-z 0-9 . _ : -`); it is logged, echoed in the response header "
    "and put in error details. One is made when absent.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
}


def _error_responses(statuses: Iterable[int]) -> dict[str, Any]:
    reasons = {status: text for status, _, text in STATUS_TABLE}
    return {
        str(status): {
            "description": reasons[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in sorted(statuses)
    }


# Statuses every /v1 operation may answer before it runs (authentication, request checks).
_GUARD_STATUSES = (401, 403, 421, 503)
_BODY_STATUSES = (400, 413, 415)
_EXECUTE_STATUSES = (403, 404, 409, 422, 424, 429, 500, 502, 504)


def status_table_markdown() -> str:
    lines = ["| status | category | meaning |", "|---|---|---|"]
    lines += [f"| {status} | {category} | {text} |" for status, category, text in STATUS_TABLE]
    return "\n".join(lines)


def _ok(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _execute_operation(capability: Capability, connection_names: list[str] | None, caller_configs: bool) -> dict[str, Any]:
    manifest = capability.manifest
    qid = capability.id
    schema_name = qid.replace(".", "_")
    connection: dict[str, Any] = {"type": "string", "description": "a named connection of the operator's connections file"}
    if connection_names:
        connection["enum"] = connection_names
    variants: list[dict[str, Any]] = [
        {
            "type": "object",
            "title": "with a named connection",
            "required": ["properties", "connection"],
            "additionalProperties": False,
            "properties": {"properties": {"$ref": f"#/components/schemas/{schema_name}.input"}, "connection": connection},
        }
    ]
    if caller_configs:
        variants.append(
            {
                "type": "object",
                "title": "with a config you supply (run under the untrusted host policy)",
                "required": ["properties", "config"],
                "additionalProperties": False,
                "properties": {
                    "properties": {"$ref": f"#/components/schemas/{schema_name}.input"},
                    "config": {"$ref": f"#/components/schemas/{capability.connector.id}.config"},
                },
            }
        )
    body = variants[0] if len(variants) == 1 else {"oneOf": variants}
    example = manifest.examples[0]["input"] if manifest.examples else None
    media: dict[str, Any] = {"schema": body}
    if example is not None and connection_names:
        media["example"] = {"properties": example, "connection": connection_names[0]}
    return {
        "operationId": qid,
        "summary": manifest.title,
        "description": f"{manifest.description}\n\nEffect: {manifest.effect}; "
        f"{'safe' if manifest.retry_safe else 'not safe'} to repeat after an ambiguous failure.\n\n" + status_table_markdown(),
        "tags": [capability.connector.id],
        "parameters": [_CORRELATION],
        "requestBody": {"required": True, "content": {"application/json": media}},
        "responses": {
            "200": _ok(
                {
                    "type": "object",
                    "required": ["capability", "output", "meta"],
                    "properties": {
                        "capability": {"type": "string"},
                        "output": {"$ref": f"#/components/schemas/{schema_name}.output"},
                        "meta": {"$ref": "#/components/schemas/Meta"},
                    },
                },
                "the capability's output (`Result.to_dict()`)",
            ),
            **_error_responses({*_GUARD_STATUSES, *_BODY_STATUSES, *_EXECUTE_STATUSES}),
        },
    }


def openapi_document(
    registry: Registry,
    *,
    connection_names: Iterable[str] | None = None,
    caller_configs: bool = True,
    version: str = "0",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service for ``registry``'s capabilities.

    ``connection_names``: the operator's named connections (an enum in the document), or
    None when unknown (``connector openapi`` without ``--connections``). ``caller_configs``:
    whether execute accepts a config in the body. Every /v1 operation declares the bearer
    API key; a service on loopback without keys simply does not ask for it.
    """
    names = sorted(connection_names) if connection_names is not None else None
    capabilities = capabilities_by_qualified_id(registry)
    schemas: dict[str, Any] = {
        "Error": _ERROR,
        "Fault": _FAULT,
        "Meta": _META,
        "CapabilitySummary": _SUMMARY,
        "CapabilityDescription": _DESCRIPTION,
        "Connector": _CONNECTOR,
        "Connection": _CONNECTION,
        "CheckReport": _CHECK,
        "Health": _HEALTH,
    }
    for connector_id, connector in sorted(registry.connectors.items()):
        schemas[f"{connector_id}.config"] = _public_config_schema(connector.config_schema)
    paths: dict[str, Any] = {}
    guard = _error_responses(_GUARD_STATUSES)
    paths["/v1/connectors"] = {
        "get": {
            "operationId": "listConnectors",
            "summary": "Loaded connectors with their config schemas",
            "parameters": [_CORRELATION],
            "responses": {"200": _ok({"type": "array", "items": {"$ref": "#/components/schemas/Connector"}}, "connectors"), **guard},
        }
    }
    paths["/v1/capabilities"] = {
        "get": {
            "operationId": "listCapabilities",
            "summary": "Loaded capabilities",
            "parameters": [_CORRELATION],
            "responses": {"200": _ok({"type": "array", "items": {"$ref": "#/components/schemas/CapabilitySummary"}}, "capabilities"), **guard},
        }
    }
    paths["/v1/capabilities/{id}"] = {
        "get": {
            "operationId": "describeCapability",
            "summary": "A capability's description: input and output schemas, required config, examples",
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "enum": list(capabilities)}},
                _CORRELATION,
            ],
            "responses": {
                "200": _ok({"$ref": "#/components/schemas/CapabilityDescription"}, "the capability"),
                **_error_responses({*_GUARD_STATUSES, 404}),
            },
        }
    }
    paths["/v1/connections"] = {
        "get": {
            "operationId": "listConnections",
            "summary": "The operator's named connections (never their configs)",
            "parameters": [_CORRELATION],
            "responses": {"200": _ok({"type": "array", "items": {"$ref": "#/components/schemas/Connection"}}, "connections"), **guard},
        }
    }
    name_schema: dict[str, Any] = {"type": "string"}
    if names:
        name_schema["enum"] = names
    paths["/v1/connections/{name}/check"] = {
        "post": {
            "operationId": "checkConnection",
            "summary": "Which capabilities of a named connection are ready and whether its credentials work",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": name_schema}, _CORRELATION],
            "responses": {
                "200": _ok({"$ref": "#/components/schemas/CheckReport"}, "the report (also when a credential fails)"),
                **_error_responses({*_GUARD_STATUSES, *_BODY_STATUSES, 404, 422}),
            },
        }
    }
    for qid, capability in capabilities.items():
        schema_name = qid.replace(".", "_")
        schemas[f"{schema_name}.input"] = copy.deepcopy(dict(capability.manifest.input_schema))
        schemas[f"{schema_name}.output"] = copy.deepcopy(dict(capability.manifest.output_schema))
        paths[f"/v1/capabilities/{qid}/execute"] = {"post": _execute_operation(capability, names, caller_configs)}
    health = {"200": _ok({"$ref": "#/components/schemas/Health"}, "status")}
    paths["/healthz"] = {"get": {"operationId": "healthz", "summary": "Liveness: the process answers", "security": [], "responses": health}}
    paths["/readyz"] = {
        "get": {
            "operationId": "readyz",
            "summary": "Readiness: connections opened, not shutting down",
            "security": [],
            "responses": {**health, **_error_responses([503])},
        }
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Connector service",
            "version": version,
            "description": "Capabilities of the loaded connectors over HTTP (`connector serve`). Generated from the "
            "manifests: one operation per capability.\n\nStatus of an error answer by category:\n\n" + status_table_markdown(),
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    document["components"]["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer", "description": "an API key the operator configured"}}
    document["security"] = [{"apiKey": []}]
    return document
