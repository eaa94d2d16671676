"""Reference pages written from what is loaded: the capability reference from the manifests
and the CLI reference from the parsers (``connector docs``).

Both are plain functions of an ``Engine`` returning Markdown, so a test can compare the
committed pages with what they would be now and fail when a manifest or an option changed
without its page.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Iterable
from typing import Any

from .engine import Engine
from .errors import EXIT_CODES
from .registry import Capability, _normalise

CAPABILITIES_PAGE = "capabilities.md"
CLI_PAGE = "cli.md"
HELP_WIDTH = 100  # help text is wrapped at a fixed width, whatever the terminal


def _cell(text: Any) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _type_of(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "const" in schema:
        return f"always `{json.dumps(schema['const'])}`"
    kind = schema.get("type", "any")
    kind = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if kind == "array" and isinstance(schema.get("items"), dict) and "type" in schema["items"]:
        kind += f" of {_type_of(schema['items'])}"
    return kind


def _constraints(schema: dict) -> str:
    parts = []
    for key in ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern", "format", "default"):
        if key in schema:
            parts.append(f"{key} `{json.dumps(schema[key]) if key != 'pattern' else schema[key]}`")
    return "; ".join(parts)


def _properties_table(schema: dict, *, with_required: bool) -> list[str]:
    properties = schema.get("properties") or {}
    if not properties:
        return [f"Any JSON value of type {_type_of(schema)}." if schema else "Any JSON value."]
    required = set(schema.get("required", []))
    head = "| property | type | required | description |" if with_required else "| property | type | description |"
    rows = [head, "|---|---|---|---|" if with_required else "|---|---|---|"]
    for name, spec in properties.items():
        spec = spec if isinstance(spec, dict) else {}
        text = spec.get("description") or spec.get("title") or ""
        extra = _constraints(spec)
        text = f"{text} ({extra})" if text and extra else text or extra
        cells = [f"`{name}`", _type_of(spec)] + (["yes" if name in required else ""] if with_required else []) + [text]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if schema.get("additionalProperties") is False:
        rows += ["", "No other properties are accepted."]
    return rows


def _json_block(value: Any) -> list[str]:
    return ["```json", json.dumps(value, indent=2, ensure_ascii=False), "```"]


def _anchor(text: str) -> str:
    """GitHub's anchor of a heading."""
    kept = "".join(c for c in text.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def _errors(capability: Capability) -> list[str]:
    manifest, connector = capability.manifest, capability.connector
    auth = sorted({connector.endpoints[e].auth for e in manifest.endpoints if e in connector.endpoints} - {None})
    rows = [
        ("invalid_input", "input", "the properties do not fit the input schema above: one fault per problem, each with its JSON path; nothing is sent"),
        ("invalid_config", "config", "the connection config does not fit the connector's config schema or lacks a field listed under config"),
    ]
    if auth:
        rows.append(("authentication_failed, permission_denied", "auth", f"the service refused the credentials (auth {', '.join(f'`{a}`' for a in auth)})"))
    rows += [
        ("rejected_by_service", "input", "the service answered 400"),
        ("not_found, conflict", "not_found, conflict", "the service answered 404 or 409"),
        ("rate_limited", "rate_limited", "the service answered 429 after the retries (`retry_after` says when to try again)"),
        ("server_error, invalid_response", "upstream", "the service failed or answered something unreadable"),
        ("network_error", "network", "the service could not be reached or did not answer in time"),
    ]
    if manifest.effect != "read":
        rows.append(("outcome_unknown", "outcome_unknown",
                     "the write may have taken effect without an answer saying so: check before repeating"
                     + (" (an ambiguous failure is never repeated blindly: `retrySafe` is false)" if not manifest.retry_safe else "")))
    lines = ["| code | category (exit) | when |", "|---|---|---|"]
    for code, category, when in rows:
        exits = ", ".join(f"`{c.strip()}` ({EXIT_CODES[c.strip()]})" for c in category.split(","))
        codes = ", ".join(f"`{c.strip()}`" for c in code.split(","))
        lines.append(f"| {codes} | {exits} | {_cell(when)} |")
    return lines


def _field(name: str, secret: set[str]) -> str:
    return f"`{name}`" + (" (secret)" if name in secret else "")


def _capability_section(capability: Capability, secret_fields: Iterable[str]) -> list[str]:
    manifest = capability.manifest
    config = capability.connector.config_schema
    always = list(config.get("required", []))
    own = [f for f in manifest.required_config if f not in always]
    secret = set(secret_fields)
    retry = "retried after an ambiguous failure" if manifest.retry_safe or manifest.effect == "read" else "never repeated blindly after an ambiguous failure"
    lines = [
        f"### `{capability.id}`: {manifest.title}",
        "",
        manifest.description,
        "",
        f"- effect: `{manifest.effect}`; `retrySafe`: `{str(manifest.retry_safe).lower()}` ({retry})",
        f"- endpoints: {', '.join(f'`{e}`' for e in manifest.endpoints) or 'none declared'}",
        "- config: " + (", ".join(_field(f, secret) for f in always) or "none required by the connector")
        + (f"; this capability also needs {', '.join(_field(f, secret) for f in own)}" if own else ""),
    ]
    if manifest.data.get("documentation"):
        lines.append(f"- documentation: <{manifest.data['documentation']}>")
    lines += ["", "**Inputs**", "", *_properties_table(dict(manifest.input_schema), with_required=True)]
    lines += ["", "**Output**", "", *_properties_table(dict(manifest.output_schema), with_required=False)]
    for i, example in enumerate(manifest.examples, 1):
        title = example.get("title") or (f"Example {i}" if len(manifest.examples) > 1 else "Example")
        lines += ["", f"**{_cell(title)}**: input", "", *_json_block(example["input"]), "", "output", "", *_json_block(example["output"])]
    lines += ["", "**Errors**", "", *_errors(capability)]
    return lines


def _selected(engine: Engine, connectors: Iterable[str] | None, distributions: Iterable[str] | None) -> list[Capability]:
    wanted_connectors = set(connectors or ())
    wanted_distributions = {_normalise(d) for d in distributions or ()}
    out = []
    for capability in engine.registry.capabilities.values():
        if wanted_connectors and capability.connector.id not in wanted_connectors:
            continue
        if wanted_distributions and _normalise(capability.distribution) not in wanted_distributions:
            continue
        out.append(capability)
    return sorted(out, key=lambda c: c.id)


def capability_reference(engine: Engine, *, connectors: Iterable[str] | None = None, distributions: Iterable[str] | None = None) -> str:
    """The capability reference as Markdown: each connector (config, endpoints, auth) and each
    of its capabilities (inputs, output, config, examples, errors), from the loaded manifests.

    ``connectors`` and ``distributions`` restrict it to capabilities of those connectors or
    shipped by those distributions (a package documents what it ships).
    """
    capabilities = _selected(engine, connectors, distributions)
    lines = [
        "# Capability reference",
        "",
        "<!-- Generated by `connector docs` from the manifests; edit the manifests, then run it again. -->",
        "",
        "Every capability with its inputs, output, config, examples and errors, written from its",
        "manifest by `connector docs`. Errors of every capability are typed; the full table of codes,",
        "categories and exit codes is in [hosts](hosts.md#errors).",
    ]
    by_connector: dict[str, list[Capability]] = {}
    for capability in capabilities:
        by_connector.setdefault(capability.connector.id, []).append(capability)
    for connector_id, members in by_connector.items():
        manifest = engine.registry.connector(connector_id)
        lines += ["", f"## {manifest.title} (`{connector_id}`)", ""]
        if manifest.description:
            lines += [manifest.description, ""]
        if manifest.data.get("documentation"):
            lines += [f"Service documentation: <{manifest.data['documentation']}>", ""]
        owners = engine.registry.owners.get(connector_id, ())
        if owners:
            lines += [f"Declared by the `{'`, `'.join(owners)}` distribution.", ""]
        lines += ["**Config**", "", *_config_table(manifest), "", "**Endpoints** (the names `ctx.http` takes)", "",
                  "| endpoint | base URL | override field | auth |", "|---|---|---|---|"]
        for name, endpoint in manifest.endpoints.items():
            if endpoint.base_url:
                where = f"`{endpoint.base_url}`"
            else:
                field, values = endpoint.base_url_by_config
                where = f"by config field `{field}`: " + ", ".join(f"`{v}`" for v in sorted(values))
            lines.append(f"| `{name}` | {where} | {f'`{endpoint.override_field}`' if endpoint.override_field else ''} | {f'`{endpoint.auth}`' if endpoint.auth else 'none'} |")
        lines += ["", "**Auth**", "", "| name | type | settings |", "|---|---|---|"]
        for name, spec in manifest.auth.items():
            settings = ", ".join(f"`{k}` `{json.dumps(v)}`" for k, v in spec.items() if k not in ("type", "description"))
            lines.append(f"| `{name}` | `{spec['type']}` | {_cell(settings)} |")
        lines += ["", "**Capabilities**", ""]
        for capability in members:
            heading = f"`{capability.id}`: {capability.manifest.title}"
            lines.append(f"- [{heading}](#{_anchor(heading)})")
        for capability in members:
            lines += ["", *_capability_section(capability, manifest.secret_fields)]
    return "\n".join(lines) + "\n"


def _config_table(manifest) -> list[str]:
    config = manifest.config_schema
    required = set(config.get("required", []))
    rows = ["| field | type | required | secret | description |", "|---|---|---|---|---|"]
    for name, spec in config.get("properties", {}).items():
        spec = spec if isinstance(spec, dict) else {}
        text = spec.get("description") or spec.get("title") or ""
        extra = _constraints(spec)
        text = f"{text} ({extra})" if text and extra else text or extra
        rows.append(f"| `{name}` | {_cell(_type_of(spec))} | {'yes' if name in required else ''} | "
                    f"{'yes' if name in manifest.secret_fields else ''} | {_cell(text)} |")
    return rows


def cli_reference(engine: Engine, *, distributions: Iterable[str] | None = None) -> str:
    """The ``--help`` of ``connector`` and every subcommand as Markdown, built-in commands and
    those the loaded plugins add (only those of ``distributions`` when given)."""
    from .cli import build_parser

    parser = build_parser(engine, distributions=distributions)
    lines = [
        "# CLI reference",
        "",
        "<!-- Generated by `connector docs` from the parsers; edit the help texts, then run it again. -->",
        "",
        "The `--help` of `connector` and of every command, built-in or added by the project's",
        "plugins, as `connector docs` writes it from the parsers "
        f"(Python {sys.version_info.major}.{sys.version_info.minor}'s argparse, {HELP_WIDTH} columns).",
        "Plugins you install add their own commands; `connector COMMAND --help` shows them.",
    ]
    for name, sub in _commands(parser):
        lines += ["", f"## `{name}`", "", "```text", _help(sub).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _commands(parser: argparse.ArgumentParser, prefix: str = "connector") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name in action.choices:  # in the order the commands were added
                found += _commands(action.choices[name], f"{prefix} {name}")
    return found


def _help(parser: argparse.ArgumentParser) -> str:
    original = parser.formatter_class
    parser.formatter_class = functools.partial(original, width=HELP_WIDTH, max_help_position=32)
    try:
        return parser.format_help()
    finally:
        parser.formatter_class = original
