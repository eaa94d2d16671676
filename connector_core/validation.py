"""JSON-schema validation that reports every fault with its JSON path.

Validators are compiled once (``compile_schema``) and wrapped, not subclassed. A schema
node may carry an ``errorMessage`` string: when that node fails, its message replaces
jsonschema's (plugin authors use it to say how to fix a value).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators

from .errors import Fault

_MAX_MESSAGE = 300


def compile_schema(schema: dict) -> jsonschema.protocols.Validator:
    """Check ``schema`` against its meta-schema and return a reusable validator.

    Raises ``jsonschema.exceptions.SchemaError`` when the schema itself is invalid.
    """
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_faults(schema: Any, root: str = "$") -> list[Fault]:
    """Every way ``schema`` breaks its meta-schema (``check_schema`` reports only one)."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return faults(cls(cls.META_SCHEMA), schema, root)


def json_path(parts: Iterable[Any], root: str = "$") -> str:
    """Render path parts as a JSON path: ``$.events[0].data['odd key']``."""
    out = [root]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif isinstance(part, str) and part.isidentifier():
            out.append(f".{part}")
        else:
            out.append(f"[{part!r}]")
    return "".join(out)


def _sort_key(parts: tuple) -> tuple:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in parts)


def faults(validator, instance: Any, root: str = "$") -> list[Fault]:
    """Every fault of ``instance``, sorted by path, one per problem."""
    found: dict[tuple, set[str]] = {}
    for error in validator.iter_errors(instance):
        for parts, message in _describe(error):
            found.setdefault(parts, set()).add(message)
    return [
        Fault(json_path(parts, root), message)
        for parts in sorted(found, key=_sort_key)
        for message in sorted(found[parts])
    ]


def _describe(error: jsonschema.exceptions.ValidationError):
    parts = tuple(error.absolute_path)
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if error.validator == "required" and isinstance(error.instance, dict):
        for name in error.validator_value:
            if name not in error.instance:
                yield parts + (name,), custom or "is required"
        return
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        for name in error.instance:
            if name not in known and not any(re.search(p, name) for p in patterns):
                hint = _close_match(name, known)
                yield parts + (name,), custom or f"is not an allowed property{hint}"
        return
    if custom:
        yield parts, custom
        return
    if error.validator in ("oneOf", "anyOf") and error.context:
        # Report the branch that got furthest, as jsonschema's best_match does.
        yield from _describe(jsonschema.exceptions.best_match(error.context))
        return
    yield parts, _shorten(error.message)


def _close_match(name: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _shorten(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."
