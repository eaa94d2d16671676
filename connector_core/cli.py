"""The ``connector`` command: list, describe, run and check capabilities from a shell.

Results are JSON on stdout. Errors are one JSON object on stderr (``code``, ``category``,
``message``, ``faults``...) and the exit code says the category (``EXIT_CODES``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import textwrap
import traceback
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import __version__
from .config import decode_json, load_connections, read_json_file
from .engine import Connection, Engine
from .errors import (
    EXIT_CODES,
    ConnectorError,
    Fault,
    InvalidConfig,
    InvalidInput,
    ManifestError,
    PluginLoadError,
    PluginRejected,
    UnknownCapability,
)
from .manifest import CapabilityManifest, ConnectorManifest, read_manifest
from .redact import RedactingFormatter, Redactor
from .registry import LOAD_PLUGINS_ENV, STRICT_ENV, _normalise

CONNECTIONS_ENV = "CONNECTOR_CONNECTIONS"


class UsageError(ConnectorError):
    code = "usage"
    category = "usage"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would print text and exit 2
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _dump(data: Any, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    stream.flush()


class _RedactingStream:
    """stdout or stderr of the CLI: every write goes through the redactor first.

    Text the stream cannot encode (a lone surrogate from an upstream answer) is written
    with backslash escapes instead of failing after the work was done.
    """

    def __init__(self, stream: Any, redactor: Redactor) -> None:
        self._stream = stream
        self._redactor = redactor

    def write(self, text: str) -> int:
        text = self._redactor.text(text)
        try:
            return self._stream.write(text)
        except UnicodeEncodeError:
            encoding = getattr(self._stream, "encoding", None) or "utf-8"
            return self._stream.write(text.encode(encoding, "backslashreplace").decode(encoding))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _read_properties(value: str | None) -> Any:
    if value is None:
        return {}
    source = "--properties"
    try:
        if value == "-":
            data, source = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read(), "standard input"
        elif value.startswith("@"):
            source = value[1:]
            data = Path(source).read_bytes()
        else:
            data = value
    except OSError as exc:
        raise InvalidInput(f"cannot read properties file {source}: {exc.strerror or exc}") from None
    return decode_json(data, source, InvalidInput)


def _connection_spec(args) -> tuple[dict, str | None, tuple[str, ...] | None]:
    """Config, connector and allowed capabilities from --config or --connection."""
    if getattr(args, "connection", None):
        path = args.connections or os.environ.get(CONNECTIONS_ENV) or "connections.json"
        connections = load_connections(path)
        if args.connection not in connections:
            raise InvalidConfig(
                f"no connection named {args.connection!r} in {path}; known: {', '.join(sorted(connections)) or 'none'}"
            )
        spec = connections[args.connection]
        return dict(spec.config), spec.connector, spec.capabilities
    if getattr(args, "config", None):
        config = read_json_file(args.config, "config file")
        if not isinstance(config, dict):
            raise InvalidConfig(f"config file {args.config} must hold a JSON object", faults=[Fault("$", "must be an object")])
        return config, None, None
    raise InvalidConfig("no connection config given; pass --config PATH or --connection NAME")


def add_connection_options(parser: argparse.ArgumentParser, *, sandbox: bool = True) -> None:
    """Add ``--config PATH | --connection NAME [| --sandbox]`` and ``--connections PATH`` to a
    command's parser, for :func:`connect_from_args` (commands added through
    ``register_commands`` take a connection the way built-in ones do)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--config", metavar="PATH", help="connection config JSON file ({\"$env\": NAME} values read the environment)")
    group.add_argument("--connection", metavar="NAME", help="a named connection from the connections file")
    if sandbox:
        group.add_argument("--sandbox", action="store_true", help="use the connector's local sandbox, started in-process")
    parser.add_argument("--connections", metavar="PATH", help=f"connections file (default ${CONNECTIONS_ENV} or ./connections.json)")


@contextlib.contextmanager
def connect_from_args(engine: Engine, args: argparse.Namespace, connector: str, *,
                      capability: str | None = None) -> Iterator[Connection]:
    """The open connection that a command's options name (see :func:`add_connection_options`).

    ``--sandbox`` starts the sandbox a plugin provides for ``connector`` (stopped on exit);
    ``--connection NAME`` reads the connections file, and refuses a connection made for
    another connector or one that does not allow ``capability`` (bare or qualified id);
    ``--config PATH`` reads a config file. Raises ``InvalidConfig`` when none is given or
    the named one cannot be used. The connection is closed on exit.
    """
    if getattr(args, "sandbox", False):
        factory = engine.pm.hook.sandbox(connector=connector)
        if factory is None:
            hint = " (CONNECTOR_CORE_LOAD_PLUGINS is set: add the sandbox extension's entry-point name)" if os.environ.get(LOAD_PLUGINS_ENV) else ""
            raise InvalidConfig(f"no installed plugin provides a sandbox for connector {connector!r}{hint}")
        with factory as config, engine.connect(config, connector=connector) as connection:
            yield connection
        return
    config, named_for, allow = _connection_spec(args)
    if named_for is not None and named_for != connector:
        raise InvalidConfig(f"connection {args.connection!r} is for connector {named_for!r}, not {connector!r}")
    if capability is not None and allow is not None and not {capability, f"{connector}.{capability}"} & set(allow):
        raise InvalidConfig(f"connection {args.connection!r} does not allow {capability}", code="capability_not_allowed")
    with engine.connect(config, connector=connector, allow=allow) as connection:
        yield connection


# -- commands --------------------------------------------------------------------------


def cmd_plugins(args, engine: Engine) -> int:
    reports = [r.to_dict() for r in engine.registry.reports]
    if args.json:
        _dump(reports)
    else:
        width = max([len(r["id"] or r["name"]) for r in reports] + [4])
        for r in reports:
            origin = f"{r['distribution']} {r['version']}" if r["distribution"] else "registered directly"
            # One line per plugin: multi-line reasons (pluggy's, manifest faults) are folded.
            status = r["status"] if r["status"] == "loaded" else "REJECTED: " + " ".join(str(r["reason"]).split())
            print(f"{r['id'] or r['name']:<{width}}  {r['kind']:<10}  {r['title'] or '-'}  [{origin}]  {status}")
    return EXIT_CODES["plugin"] if args.strict and engine.registry.rejected else 0


def _connector_info(engine: Engine, connector_id: str) -> dict[str, Any]:
    manifest = engine.registry.connector(connector_id)
    config = manifest.config_schema
    required = set(config.get("required", []))
    return {
        "id": manifest.id,
        "title": manifest.title,
        "description": manifest.description,
        "owner": list(engine.registry.owners.get(manifest.id, ())),
        "source": manifest.source,
        "config": {
            name: {
                "type": _type_of(spec),
                "required": name in required,
                "secret": name in manifest.secret_fields,
                "description": spec.get("description") or spec.get("title") or "",
            }
            for name, spec in config.get("properties", {}).items()
        },
        "endpoints": {
            name: {
                "baseUrl": endpoint.base_url,
                "baseUrlByConfig": {"field": endpoint.base_url_by_config[0], "values": sorted(endpoint.base_url_by_config[1])}
                if endpoint.base_url_by_config
                else None,
                "overrideField": endpoint.override_field,
                "auth": endpoint.auth,
                "description": manifest.data["endpoints"][name].get("description", ""),
            }
            for name, endpoint in manifest.endpoints.items()
        },
        "auth": {name: dict(spec) for name, spec in manifest.auth.items()},
        "capabilities": [c.id for c in engine.registry.of_connector(manifest.id)],
    }


def _print_connector(info: dict[str, Any]) -> None:
    lines = [f"{info['id']}: {info['title']}  (owned by {', '.join(info['owner']) or '-'})", ""]
    lines += [*textwrap.wrap(info["description"], 88), "", "Config fields:"] if info["description"] else ["Config fields:"]
    for name, field in info["config"].items():
        flags = ", ".join(f for f in ("required" if field["required"] else "optional", "secret" if field["secret"] else "") if f)
        lines.append(f"  {name} ({field['type']}, {flags})  {field['description']}".rstrip())
    lines += ["", "Endpoints (ctx.http(NAME)):"]
    for name, endpoint in info["endpoints"].items():
        if endpoint["baseUrl"]:
            where = endpoint["baseUrl"]
        else:
            by = endpoint["baseUrlByConfig"]
            where = f"by config field {by['field']} ({', '.join(v.upper() for v in by['values'])})"
        override = f", overridden by config field {endpoint['overrideField']}" if endpoint["overrideField"] else ""
        lines.append(f"  {name}: {where}{override}; auth {endpoint['auth'] or 'none'}")
    lines += ["", "Auth:"]
    for name, spec in info["auth"].items():
        fields = ", ".join(f"{k}={json.dumps(v)}" for k, v in spec.items() if k not in ("type", "description"))
        lines.append(f"  {name} ({spec['type']}): {fields}")
    lines += ["", "Capabilities: " + (", ".join(info["capabilities"]) or "none")]
    print("\n".join(lines))


def cmd_connectors(args, engine: Engine) -> int:
    ids = [args.connector] if args.connector else list(engine.registry.connectors)
    infos = [_connector_info(engine, connector_id) for connector_id in ids]
    if args.json:
        _dump(infos[0] if args.connector else infos)
    else:
        for i, info in enumerate(infos):
            if i:
                print()
            _print_connector(info)
    return 0


def _type_of(schema: dict) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return "always " + json.dumps(schema["const"])
    kind = schema.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def cmd_describe(args, engine: Engine) -> int:
    if args.capability in engine.registry.connectors and args.capability not in engine.registry.capabilities:
        args.connector = args.capability
        return cmd_connectors(args, engine)
    capability = engine.registry.get(args.capability, connector=args.connector)
    manifest = capability.manifest
    if args.json:
        _dump(manifest.data)
        return 0
    config = capability.connector.config_schema
    required = sorted(set(config.get("required", [])) | set(manifest.required_config))
    schema = manifest.input_schema
    lines = [
        f"{manifest.id}: {manifest.title}  (connector {manifest.connector}, {manifest.effect}, "
        f"{'safe' if manifest.retry_safe else 'not safe'} to retry)",
        "",
        *textwrap.wrap(manifest.description, 88),
        "",
        "Inputs:",
    ]
    for name, spec in schema.get("properties", {}).items():
        flag = "required" if name in schema.get("required", []) else "optional"
        desc = spec.get("description") or spec.get("title") or ""
        lines.append(f"  {name} ({_type_of(spec)}, {flag})  {desc}".rstrip())
    output = manifest.output_schema
    if output.get("properties"):
        lines += ["", "Output:"]
        for name, spec in output["properties"].items():
            desc = spec.get("description") or ""
            lines.append(f"  {name} ({_type_of(spec)})  {desc}".rstrip())
    lines += ["", "Config needed: " + ", ".join(f"{f}{' (secret)' if f in capability.connector.secret_fields else ''}" for f in required)]
    for example in manifest.examples[:1]:
        lines += ["", "Example input:", textwrap.indent(json.dumps(example["input"], indent=2), "  ")]
        lines += ["Example output:", textwrap.indent(json.dumps(example["output"], indent=2), "  ")]
    print("\n".join(lines))
    return 0


def cmd_run(args, engine: Engine) -> int:
    if args.sandbox:
        capability = engine.registry.get(args.capability, connector=args.connector)
        properties = _read_properties(args.properties)
        factory = engine.pm.hook.sandbox(connector=capability.connector.id)
        if factory is None:
            hint = " (CONNECTOR_CORE_LOAD_PLUGINS is set: add the sandbox extension's entry-point name)" if os.environ.get(LOAD_PLUGINS_ENV) else ""
            raise InvalidConfig(f"no installed plugin provides a sandbox for connector {capability.connector.id!r}{hint}")
        with factory as config, engine.connect(config, connector=capability.connector.id) as connection:
            result = connection.execute(capability.id, properties)
    else:
        config, connector, allow = _connection_spec(args)
        if connector is not None and args.connector is not None and connector != args.connector:
            raise InvalidConfig(f"connection {args.connection!r} is for connector {connector!r}, not {args.connector!r}")
        wanted = connector or args.connector
        try:
            capability = engine.registry.get(args.capability, connector=wanted)
        except UnknownCapability as exc:
            if wanted is None or isinstance(exc, PluginRejected):
                raise
            other = engine.registry.get(args.capability)  # raises when no connector provides it
            raise InvalidConfig(f"connection {args.connection or '--config'!r} is for connector {wanted!r}, not {other.connector.id!r}") from None
        properties = _read_properties(args.properties)
        with engine.connect(config, connector=capability.connector.id, allow=allow) as connection:
            result = connection.execute(capability.id, properties)
    _dump(result.to_dict() if args.meta else result.output)
    return 0


def cmd_check(args, engine: Engine) -> int:
    config, connector_id, allow = _connection_spec(args)
    connector_id = connector_id or args.connector or engine._connector_for(config, engine.host_policy)
    with engine.connect(config, connector=connector_id, allow=allow) as connection:
        report, exit_code = connection_report(engine, connection, args.offline)
    _dump(report)
    if not any(c["ready"] for c in report["capabilities"].values()):
        return exit_code or EXIT_CODES["config"]
    return exit_code


def connection_report(engine: Engine, connection: Connection, offline: bool) -> tuple[dict[str, Any], int]:
    """Which capabilities of ``connection`` are ready and whether its credentials work.

    Returns the report and the exit code of the first credential that failed (else 0).
    """
    connector_id = connection.connector.id
    connector = connection.connector
    allow = connection.allow
    report: dict[str, Any] = {"connector": connector_id, "config": "valid", "capabilities": {}, "credentials": {}}
    # A token endpoint that echoes the request would put the secret in the report.
    redact = connection.redact
    auths = set()
    for capability in engine.registry.of_connector(connector_id):
        cap_id = capability.name
        missing = [f for f in capability.manifest.required_config if connection.config.get(f) in (None, "")]
        entry: dict[str, Any] = {"ready": not missing}
        if missing:
            entry["missing"] = missing
        if allow is not None and cap_id not in allow and capability.id not in allow:
            entry = {"ready": False, "reason": "not allowed by this connection"}
        report["capabilities"][cap_id] = entry
        if entry["ready"]:
            for name in capability.manifest.endpoints:
                auths.add((name, connector.endpoints[name].auth))
    exit_code = 0
    for endpoint, auth_name in sorted(auths, key=str):
        status: dict[str, Any]
        try:
            client = connection.client(endpoint, retry_safe=True)
            auth = connection.auth(auth_name)
            if offline:
                status = {"ok": None, "message": "not checked"}
            elif auth is None:
                status = {"ok": None, "message": "the endpoint needs no credentials"}
            else:
                status = auth.check(client)  # each scheme knows how its credentials are tested
        except ConnectorError as exc:
            status = {"ok": False, "code": exc.code, "message": connection.http.redactor(exc.message)}
            exit_code = exit_code or exc.exit_code
        report["credentials"][endpoint] = redact(status)
    return report, exit_code


def cmd_validate(args, engine: Engine) -> int:
    results = []
    loaded: dict[str, ConnectorManifest] = {}
    capabilities: list[tuple[dict, CapabilityManifest]] = []
    for path in args.paths:
        entry: dict[str, Any] = {"file": path}
        try:
            data, _ = read_manifest(Path(path))
            manifest: CapabilityManifest | ConnectorManifest
            if "inputSchema" in data or "effect" in data:
                entry["kind"] = "capability"
                manifest = CapabilityManifest.from_dict(data, path)
                capabilities.append((entry, manifest))
            elif "endpoints" in data or "config" in data:
                entry["kind"] = "connector"
                manifest = ConnectorManifest.from_dict(data, path, engine.registry.auth_schemes)
                loaded[manifest.id] = manifest
            else:
                raise ManifestError(f"{path}: neither a capability manifest (inputSchema) nor a connector manifest (endpoints)")
            # Valid JSON Schema that does not do what its author meant: typos, leaky `$`.
            if found := manifest.lint():
                entry.update(valid=False, message=f"{path}: {len(found)} problem(s) in its schemas", faults=[f.to_dict() for f in found])
            else:
                entry["valid"] = True
        except ManifestError as exc:
            entry.update(valid=False, message=exc.message, faults=[f.to_dict() for f in exc.faults])
        results.append(entry)
    # Cross-check capabilities against their connector, given on the command line or installed.
    for entry, capability in capabilities:
        connector = loaded.get(capability.connector) or engine.registry.connectors.get(capability.connector)
        if connector is None:
            entry["warning"] = f"connector {capability.connector!r} not given or installed; cross-checks skipped"
        elif problems := capability.check_connector(connector):
            entry.update(valid=False, message="does not fit its connector", faults=entry.get("faults", []) + [f.to_dict() for f in problems])
    _dump({"valid": all(r["valid"] for r in results), "files": results})
    return 0 if all(r["valid"] for r in results) else EXIT_CODES["plugin"]


def cmd_docs(args, engine: Engine) -> int:
    from . import docgen

    pages = {
        docgen.CAPABILITIES_PAGE: docgen.capability_reference(engine, connectors=args.connector, distributions=args.distribution),
        docgen.CLI_PAGE: docgen.cli_reference(engine, distributions=args.distribution),
    }
    folder = Path(args.output)
    if args.check:
        stale = [str(folder / name) for name, text in pages.items()
                 if not (folder / name).is_file() or (folder / name).read_text("utf-8") != text]
        _dump({"stale": stale, "checked": [str(folder / name) for name in pages]})
        return 1 if stale else 0
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in pages.items():
            (folder / name).write_text(text, "utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write the pages into {folder}: {exc.strerror or exc}; pass --output DIR",
                           faults=[Fault("--output", str(exc.strerror or exc))]) from None
    _dump({"written": [str(folder / name) for name in pages]})
    return 0


# -- parser and main -------------------------------------------------------------------


BUILTIN_COMMANDS = frozenset({"plugins", "describe", "connectors", "run", "check", "validate", "docs", "new", "serve", "openapi"})


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (global flags take no values)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(
    engine: Engine, *, plugin_commands: bool = True, distributions: Iterable[str] | None = None, command: str | None = None
) -> argparse.ArgumentParser:
    """The ``connector`` parser; ``plugin_commands=False`` leaves out the commands plugins add
    (importing them can cost more than the rest of a start, and a built-in command needs none);
    ``distributions`` keeps only the plugin commands of those distributions (``connector docs``).
    ``command`` (a built-in command) builds only that command's parser: what a start that
    runs it needs, since every parser argparse builds costs start-up time."""

    def builds(name: str) -> bool:
        return command is None or command == name

    parser = _Parser(prog="connector", description="Run connector capabilities (JSON in, JSON out).")
    parser.add_argument("--version", action="version", version=f"connector-framework {__version__}")
    # The global flags work before or after the command; SUPPRESS keeps a subcommand's
    # default from overwriting a flag given before it.
    for target, default in ((parser, False), (common := _Parser(add_help=False), argparse.SUPPRESS)):
        target.add_argument("-v", "--verbose", action="store_true", default=default, help="log each HTTP request to stderr (secrets redacted)")
        target.add_argument("--strict", action="store_true", default=default, help="fail when any plugin could not be loaded (also CONNECTOR_CORE_STRICT=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    if builds("plugins"):
        p = sub.add_parser("plugins", parents=[common], help="list every plugin and whether it loaded")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=cmd_plugins)

    if builds("describe"):
        p = sub.add_parser("describe", parents=[common], help="show a capability's inputs, config and example (or a connector's)")
        p.add_argument("capability", metavar="ID", help="capability id (qualified connector.capability or bare) or connector id")
        p.add_argument("--connector", metavar="ID", help="connector of a bare capability id that several connectors provide")
        p.add_argument("--json", action="store_true", help="print the manifest as JSON")
        p.set_defaults(handler=cmd_describe)

    if builds("connectors"):
        p = sub.add_parser("connectors", parents=[common], help="list connectors: config fields, endpoints, auth, capabilities")
        p.add_argument("connector", metavar="ID", nargs="?", help="show only this connector")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=cmd_connectors)

    if builds("run"):
        p = sub.add_parser("run", parents=[common], help="run one capability and print its output")
        p.add_argument("capability", metavar="ID", help="capability id: qualified (connector.capability) or bare")
        p.add_argument("--connector", metavar="ID", help="connector of a bare capability id that several connectors provide")
        p.add_argument("--properties", metavar="JSON", help="input properties: JSON text, @file or - for stdin (default {})")
        add_connection_options(p, sandbox=False)
        p.add_argument("--sandbox", action="store_true", help="run against the connector's local sandbox started in-process")
        p.add_argument("--meta", action="store_true", help="print output with duration and request counts")
        p.set_defaults(handler=cmd_run)

    if builds("check"):
        p = sub.add_parser("check", parents=[common], help="check a config: which capabilities are ready, whether credentials work")
        add_connection_options(p, sandbox=False)
        p.add_argument("--connector", metavar="ID", help="connector of the config when several are installed")
        p.add_argument("--offline", action="store_true", help="do not contact the service")
        p.set_defaults(handler=cmd_check)

    if builds("validate"):
        p = sub.add_parser("validate", parents=[common], help="validate manifest files you are writing")
        p.add_argument("paths", nargs="+", metavar="PATH")
        p.set_defaults(handler=cmd_validate)

    if builds("docs"):
        p = sub.add_parser(
            "docs", parents=[common], help="write the capability and CLI reference pages (Markdown)",
            description="Write capabilities.md (every loaded capability's inputs, output, config, examples "
            "and errors, from its manifest) and cli.md (the --help of every command) into a folder.",
        )
        p.add_argument("--output", metavar="DIR", default="docs", help="folder to write the pages into (default: docs)")
        p.add_argument("--connector", metavar="ID", action="append", help="only the capabilities of this connector (repeatable)")
        p.add_argument("--distribution", metavar="NAME", action="append",
                       help="only the capabilities and plugin commands this distribution ships (repeatable)")
        p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a page differs from what would be written")
        p.set_defaults(handler=cmd_docs)

    if builds("new"):
        from . import scaffold

        scaffold.register_commands(subparsers=sub)
    if builds("serve") or builds("openapi"):
        from .serve import commands as serve_commands  # the ASGI stack is imported only to serve

        serve_commands.register_commands(subparsers=sub)
    wanted = None if distributions is None else {_normalise(d) for d in distributions}
    for impl in engine.pm.hook.register_commands.get_hookimpls() if plugin_commands else ():
        if wanted is not None and _normalise(impl.plugin_name.split(":", 1)[0]) not in wanted:
            continue  # plugin names are "<distribution>:<entry point>"
        try:
            impl.function(subparsers=sub)
        except Exception as exc:  # one broken plugin must not take the CLI down
            logging.getLogger("connector_core.cli").warning("plugin %s could not add commands: %s", impl.plugin_name, exc)
    for subparser in sub.choices.values():  # plugin commands get the global flags too
        if not any(a.dest == "verbose" for a in subparser._actions):
            subparser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log to stderr")
            subparser.add_argument("--strict", action="store_true", default=argparse.SUPPRESS, help="fail when any plugin could not be loaded")
    return parser


@contextlib.contextmanager
def _logging(verbose: bool, redactor: Redactor) -> Iterator[None]:
    """One stderr handler on the root logger whose output is redacted, whichever logger wrote.

    ``--verbose``: the framework's INFO records (one per HTTP attempt) and every plugin's
    warnings, with time and logger name; otherwise warnings only, as bare messages. The
    handler writes to the ``sys.stderr`` of this call and is removed afterwards, so
    ``main`` can run many times in one process (tests, hosts embedding the CLI).
    """
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"
    handler.setFormatter(RedactingFormatter(redactor, fmt))
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    root, framework = logging.getLogger(), logging.getLogger("connector_core")
    level = framework.level
    root.addHandler(handler)
    if verbose:
        framework.setLevel(logging.INFO)
    try:
        yield
    finally:
        framework.setLevel(level)
        root.removeHandler(handler)


def _strict(args) -> bool:
    return bool(args.strict) or os.environ.get(STRICT_ENV, "").lower() in ("1", "true", "yes", "on")


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the ``connector`` command; return its exit code.

    ``stdin``, ``stdout`` and ``stderr`` stand in for the process streams during the call
    (``sys.stdin``/``sys.stdout``/``sys.stderr`` are swapped, so plugin commands and log
    lines follow them too): a host or a test can run the command in-process and read what
    it printed. Not for concurrent calls from several threads.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    with contextlib.ExitStack() as streams:
        if stdout is not None:
            streams.enter_context(contextlib.redirect_stdout(stdout))
        if stderr is not None:
            streams.enter_context(contextlib.redirect_stderr(stderr))
        if stdin is not None:
            streams.enter_context(_redirect_stdin(stdin))
        return _main(argv)


@contextlib.contextmanager
def _redirect_stdin(stream: TextIO) -> Iterator[None]:
    saved, sys.stdin = sys.stdin, stream
    try:
        yield
    finally:
        sys.stdin = saved


def _main(argv: list[str]) -> int:
    verbose = "-v" in argv or "--verbose" in argv
    # Everything the CLI prints or logs passes this redactor, which learns the secrets of
    # every connection the engine opens (tokens and Basic credentials included).
    redactor = Redactor()
    with (
        contextlib.redirect_stdout(_RedactingStream(sys.stdout, redactor)),
        contextlib.redirect_stderr(_RedactingStream(sys.stderr, redactor)),
        _logging(verbose, redactor),
    ):
        try:
            # Strictness is applied after parsing, so `connector plugins` can still list the rejects.
            engine = Engine(strict=False, redactor=redactor)
            command = _command_of(argv)
            builtin = command in BUILTIN_COMMANDS
            # Top-level help lists every command, so it needs them all built.
            only = command if builtin and not {"-h", "--help"} & set(argv[: argv.index(command)]) else None
            args = build_parser(engine, plugin_commands=not builtin, command=only).parse_args(argv)
            args.strict = _strict(args)
            if args.strict and engine.registry.rejected and args.handler is not cmd_plugins:
                raise PluginLoadError(
                    f"{len(engine.registry.rejected)} plugin(s) could not be loaded (strict mode); see `connector plugins`",
                    plugins=[r.to_dict() for r in engine.registry.rejected],
                )
            with engine:
                return args.handler(args, engine)
        except ConnectorError as exc:
            _dump(exc.to_dict(), sys.stderr)
            trace = getattr(exc, "plugin_traceback", None)
            if verbose and trace:
                sys.stderr.write(trace)
            return exc.exit_code
        except KeyboardInterrupt:
            return 130
        except SystemExit as exc:  # --help, --version, or a plugin command calling sys.exit
            if exc.code is None or isinstance(exc.code, int):
                return exc.code or 0
            print(exc.code, file=sys.stderr)
            return 1
        except Exception as exc:  # a bug, ours or a plugin command's: still one JSON error, no traceback
            _dump({"code": "internal_error", "category": "internal", "message": f"{type(exc).__name__}: {exc}"}, sys.stderr)
            if verbose:
                traceback.print_exc()
            return EXIT_CODES["internal"]
