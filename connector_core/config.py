"""Operator-facing configuration: environment references and the connections file.

A config value ``{"$env": "NAME"}`` is replaced by the environment variable ``NAME`` (or
by ``"default"`` when given and the variable is unset), so secrets stay out of files.

A connections file names connections an operator prepared::

    {"connections": {"prod": {"connector": "acme",
                              "config": {"clientId": {"$env": "ACME_CLIENT_ID"}, ...},
                              "capabilities": ["lookupUser"]}}}

``capabilities`` (optional) restricts what the connection may run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .errors import ConnectorError, Fault, InvalidConfig
from .validation import MAX_DEPTH, faults, validator_for

_CONNECTIONS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["connections"],
    "additionalProperties": False,
    "properties": {
        "connections": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["config"],
                "additionalProperties": False,
                "properties": {
                    "connector": {"type": "string"},
                    "description": {"type": "string"},
                    "config": {"type": "object"},
                    "capabilities": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                },
            },
        }
    },
}


def resolve_env(config: Any, environ: Mapping[str, str] | None = None) -> Any:
    """A copy of ``config`` with every ``{"$env": NAME}`` replaced from the environment.

    Every unset variable (without ``default``) and every malformed reference is reported at
    once, one fault each at its JSON path, in one ``InvalidConfig``.
    """
    environ = os.environ if environ is None else environ
    unset: list[tuple[str, str]] = []  # (path, variable name)
    malformed: list[str] = []  # paths
    resolved = _resolve(config, environ, "$", unset, malformed)
    if unset or malformed:
        found = [Fault(path, "$env must be a non-empty string naming an environment variable") for path in malformed]
        found += [Fault(path, f"environment variable {name} is not set; export it or put a value here") for path, name in unset]
        names = ", ".join(name for _, name in unset)
        if len(found) == 1 and unset:
            message = f"environment variable {names} is not set (referenced by {unset[0][0]})"
        elif not malformed:
            message = f"environment variables {names} are not set"
        else:
            message = f"{len(found)} environment reference(s) cannot be resolved"
        raise InvalidConfig(message, faults=sorted(found, key=lambda f: f.path))
    return resolved


def _resolve(config: Any, environ: Mapping[str, str], path: str, unset: list, malformed: list) -> Any:
    if isinstance(config, dict):
        if "$env" in config and set(config) <= {"$env", "default"}:
            name = config["$env"]
            if not isinstance(name, str) or not name:
                malformed.append(path)
            elif name in environ:
                return environ[name]
            elif "default" in config:
                return config["default"]
            else:
                unset.append((path, name))
            return None
        return {k: _resolve(v, environ, f"{path}.{k}", unset, malformed) for k, v in config.items()}
    if isinstance(config, list):
        return [_resolve(v, environ, f"{path}[{i}]", unset, malformed) for i, v in enumerate(config)]
    return config


def decode_json(data: bytes | str, source: str, error: type[ConnectorError] = InvalidConfig) -> Any:
    """Parse JSON text or UTF-8 bytes from ``source``; every failure is an ``error`` at ``$``.

    Invalid UTF-8 and nesting too deep for the parser are refused like a syntax error,
    never as a crash. (Lone surrogates and over-deep data that parse are caught later, by
    :func:`~connector_core.validation.data_faults`.)
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            message = f"{source} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
            raise error(message, faults=[Fault("$", message)]) from None
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON in {source} at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    except RecursionError:
        message = f"{source} nests objects and arrays too deeply (at most {MAX_DEPTH} levels are accepted)"
    raise error(message, faults=[Fault("$", message)])


def read_json_file(path: str | Path, what: str) -> Any:
    """Parse a JSON file, turning every failure into ``InvalidConfig`` naming the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidConfig(f"cannot read {what} {path}: {exc.strerror or exc}", file=str(path)) from None
    try:
        return decode_json(data, f"{what} {path}")
    except InvalidConfig as exc:
        raise exc.copy(file=str(path)) from None


@attrs.frozen
class ConnectionSpec:
    """A named connection from a connections file."""

    name: str
    config: Mapping[str, Any] = attrs.field(repr=False)
    connector: str | None = None
    capabilities: tuple[str, ...] | None = None
    description: str = ""


def load_connections(path: str | Path) -> dict[str, ConnectionSpec]:
    """Read and validate a connections file."""
    data = read_json_file(path, "connections file")
    found = faults(validator_for(_CONNECTIONS_SCHEMA), data)
    if found:
        raise InvalidConfig(f"connections file {path} is invalid", faults=found, file=str(path))
    return {
        name: ConnectionSpec(
            name=name,
            config=spec["config"],
            connector=spec.get("connector"),
            capabilities=tuple(spec["capabilities"]) if "capabilities" in spec else None,
            description=spec.get("description", ""),
        )
        for name, spec in data["connections"].items()
    }
