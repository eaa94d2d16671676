"""``connector new``: scaffold a plugin package, or a capability inside one.

``connector new connector NAME`` writes a package declaring connector ``NAME`` (OAuth2
client credentials, one endpoint), one capability, a loopback sandbox and tests;
``connector new capability CONNECTOR ID`` adds a capability to the package in ``--output``
that declares ``CONNECTOR``, or writes a package attaching it to ``CONNECTOR``, an
installed connector owned by another distribution. What is written installs, passes its
own tests (the contract check among them) and ``connector validate`` as generated.
Templates are generic: they know connector manifests, not any particular service.
"""

from __future__ import annotations

import configparser
import json
import keyword
import re
from pathlib import Path
from typing import Any

from .errors import Conflict, Fault, InvalidInput, PluginRejected, UnknownCapability
from .manifest import read_manifest

ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*\Z")
FRAMEWORK = "connector-framework"


# -- names -------------------------------------------------------------------------------


def _check_id(value: str, what: str, path: str) -> str:
    if not ID_PATTERN.match(value):
        raise InvalidInput(
            f"{what} {value!r} is not an id: use letters, digits, _ and -, starting with a letter (no dots)",
            faults=[Fault(path, "must match ^[A-Za-z][A-Za-z0-9_-]*$")],
        )
    return value


def _snake(name: str) -> str:
    """``getItem`` -> ``get_item``; a Python identifier that is not a keyword."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).replace("-", "_").lower()
    return snake + "_capability" if keyword.iskeyword(snake) else snake


def _slug(name: str) -> str:
    """``get_Item`` -> ``get-item`` (distribution names)."""
    return _snake(name).replace("_", "-")


def _words(name: str) -> str:
    """``getItem`` -> ``Get item`` (titles)."""
    words = _snake(name).replace("_capability", "").split("_")
    return " ".join(words).capitalize()


def _write(root: Path, files: dict[str, str]) -> list[str]:
    for relative, text in files.items():
        target = root / relative
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, "utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot write {target}: {exc.strerror or exc}; pick a folder you can write with --output", faults=[Fault("$.output", "cannot be written")]) from None
    return sorted(files)


def _fill(template: str, **values: str) -> str:
    """Replace each ``{{name}}`` (templates hold JSON and code, whose braces stay as they are)."""
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", value)
    leftover = re.search(r"\{\{\w+\}\}", template)
    assert leftover is None, f"template placeholder {leftover.group()} not filled"
    return template


def _new_folder(path: Path) -> Path:
    if path.exists():
        raise Conflict(
            f"{path} already exists; choose another --output folder or remove it",
            code="already_exists",
            faults=[Fault("$.output", "already exists")],
        )
    return path


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# -- manifests ---------------------------------------------------------------------------


def connector_manifest(connector_id: str) -> dict[str, Any]:
    """A connector with one endpoint ``api`` authenticated by OAuth2 client credentials;
    ``apiUrl`` and ``tokenUrl`` config fields replace its URLs (sandbox and tests)."""
    host = _slug(connector_id)
    return {
        "manifestVersion": 1,
        "id": connector_id,
        "title": _words(connector_id),
        "description": f"The {connector_id} service: describe what it is and what the capabilities reach.",
        "config": {
            "type": "object",
            "required": ["clientId", "clientSecret"],
            "additionalProperties": False,
            "properties": {
                "clientId": {"type": "string", "minLength": 1, "description": "OAuth client ID."},
                "clientSecret": {"type": "string", "minLength": 1, "secret": True, "description": "OAuth client secret."},
                "apiUrl": {"type": "string", "description": "Replaces the API base URL (sandbox, proxies, tests)."},
                "tokenUrl": {"type": "string", "description": "Replaces the OAuth token URL (sandbox, proxies, tests)."},
                "timeoutSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 300, "default": 30, "description": "Seconds to wait for an answer."},
                "maxRetries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3, "description": "Repeats after 429, 5xx or a network failure, where repeating is safe."},
            },
        },
        "endpoints": {
            "api": {"description": "The service's API.", "baseUrl": f"https://api.{host}.example", "overrideField": "apiUrl", "auth": "oauth"},
        },
        "auth": {
            "oauth": {
                "type": "oauth2_client_credentials",
                "tokenUrl": f"https://auth.{host}.example/oauth/token",
                "tokenUrlField": "tokenUrl",
                "clientIdField": "clientId",
                "clientSecretField": "clientSecret",
            }
        },
    }


def capability_manifest(connector_id: str, capability_id: str, endpoint: str) -> dict[str, Any]:
    """A read capability: ``GET /items/{id}`` on ``endpoint``, with an example."""
    return {
        "manifestVersion": 1,
        "id": capability_id,
        "connector": connector_id,
        "title": _words(capability_id),
        "description": "Reads one item by its id (GET /items/{id}). Describe what this capability does and which request it makes.",
        "effect": "read",
        "retrySafe": True,
        "endpoints": [endpoint],
        "inputSchema": {
            "type": "object",
            "required": ["id"],
            "additionalProperties": False,
            "properties": {
                "id": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 64,
                    "pattern": "^[A-Za-z0-9_-]+$(?!\\n)",
                    "description": "Id of the item.",
                    "errorMessage": "must be an item id such as item-1 (letters, digits, _ and -)",
                }
            },
        },
        "outputSchema": {
            "type": "object",
            "required": ["item"],
            "additionalProperties": False,
            "properties": {"item": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}},
        },
        "examples": [{"title": "The first item", "input": {"id": "item-1"}, "output": {"item": {"id": "item-1", "name": "First item"}}}],
    }


# -- templates ---------------------------------------------------------------------------

PYPROJECT = """[build-system]
requires = ["setuptools>=64", "wheel"]
build-backend = "setuptools.build_meta"
"""

CONNECTOR_SETUP_CFG = """[metadata]
name = {{dist}}
version = 0.1.0
description = The {{id}} connector for connector-framework
license = Apache-2.0

[options]
python_requires = >=3.10
packages = {{package}}
# connector-framework is not on a package index: install it from its source checkout first.
install_requires =
    connector-framework

[options.package_data]
{{package}} = manifests/*.json

[options.extras_require]
test =
    pytest>=7.4

[options.entry_points]
connector_core.connectors =
    {{id}} = {{package}}:CONNECTOR_MANIFEST
connector_core =
    {{capability}} = {{package}}.{{module}}
    {{id}}-sandbox = {{package}}.sandbox

[tool:pytest]
testpaths = tests
"""

ATTACH_SETUP_CFG = """[metadata]
name = {{dist}}
version = 0.1.0
description = Attaches {{capability}} to the {{connector}} connector of connector-framework
license = Apache-2.0

[options]
python_requires = >=3.10
packages = {{package}}
# connector-framework is not on a package index: install it from its source checkout first.
# The {{connector}} connector is declared by the distribution that owns it; install that too.
install_requires =
    connector-framework

[options.package_data]
{{package}} = *.json

[options.extras_require]
test =
    pytest>=7.4

[options.entry_points]
connector_core =
    {{connector}}.{{capability}} = {{package}}.{{module}}

[tool:pytest]
testpaths = tests
"""

README = """# {{dist}}

{{what}}

## Install and test

connector-framework is not on a package index: install it from its source checkout first.

```sh
pip install -e path/to/connector-framework
pip install -e '.[test]'
python -m pytest
connector validate {{manifests}}
```

Add a capability with `connector new capability {{connector}} ID --output .`, then
`pip install -e '.[test]'` again (it adds an entry point).
"""

CONNECTOR_INIT = '''"""The ``{{id}}`` connector: its manifest and its capabilities' manifests."""

from importlib import resources

MANIFESTS = resources.files("{{package}}") / "manifests"
CONNECTOR_MANIFEST = MANIFESTS / "{{id}}.json"


def manifest(capability_id: str):
    """The packaged manifest of one capability."""
    return MANIFESTS / f"{capability_id}.json"
'''

ATTACH_INIT = '''"""``{{connector}}.{{capability}}``: a capability attached to the {{connector}} connector.

Its manifest names ``"connector": "{{connector}}"``; the package ships no copy of that
connector's manifest, so the capability runs with the connector's own config, endpoints
and credentials.
"""
'''

CAPABILITY = '''"""{{capability}}: {{title}}."""

{{imports}}from connector_core import hookimpl, read_json
{{local_import}}
MANIFEST = {{manifest}}


@hookimpl
def execute(ctx, properties):
    # ctx.http(ENDPOINT) knows the base URL, credentials, timeouts and retries; error
    # answers raise typed errors (404: NotFound).
    response = ctx.http("{{endpoint}}").get("/items/{id}", path_params={"id": properties["id"]})
    return {"item": read_json(response, "{{connector}}")}
'''

SANDBOX = '''"""A local stand-in for the {{id}} service: its token endpoint and API on one loopback port.

``with Sandbox() as sandbox:`` serves on ``127.0.0.1`` (a free port); ``sandbox.config``
points every URL of the connector at it and ``sandbox.requests`` lists what it was sent.
The ``sandbox`` hook serves ``connector run {{id}}.CAPABILITY --sandbox``.

Served: ``POST /oauth/token`` (JSON or form: grant_type, client_id, client_secret) and
``GET /items/{id}`` with the bearer token (404 for an unknown item, 401 without a token).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connector_core import hookimpl

TITLE = "{{id}} sandbox"
CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-client-secret"
ITEMS = {
    "item-1": {"id": "item-1", "name": "First item"},
    "item-2": {"id": "item-2", "name": "Second item"},
}


class Sandbox:
    """The stand-in service (thread-safe)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the sandbox is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def config(self) -> dict[str, str]:
        return {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "apiUrl": self.url, "tokenUrl": f"{self.url}/oauth/token"}

    def start(self) -> Sandbox:
        owner = self

        class Handler(_Handler):
            sandbox = owner

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        with self._lock:
            self.requests.append({"method": method, "path": path})
            if (method, path) == ("POST", "/oauth/token"):
                if headers.get("content-type", "").startswith("application/json"):
                    form = json.loads(body or b"{}")
                else:
                    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
                if form.get("grant_type") != "client_credentials":
                    return 400, {"error": "unsupported_grant_type"}
                if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
                    return 401, {"error": "invalid_client"}
                token = secrets.token_urlsafe(16)
                self._tokens.add(token)
                return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
            if method == "GET" and path.startswith("/items/"):
                scheme, _, token = headers.get("authorization", "").partition(" ")
                if scheme != "Bearer" or token not in self._tokens:
                    return 401, {"error": "unauthorized"}
                item = ITEMS.get(path[len("/items/"):])
                return (200, item) if item else (404, {"error": "not_found", "message": "no such item"})
            return 404, {"error": "not_found", "message": f"no route {method} {path}"}


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload = self.sandbox.handle(self.command, urlsplit(self.path).path, headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _serve


@contextlib.contextmanager
def _running():
    with Sandbox() as sandbox:
        yield sandbox.config


@hookimpl
def sandbox(connector):
    return _running() if connector == "{{id}}" else None
'''

CONNECTOR_CONFTEST = '''import pytest

from connector_core import Engine
from {{package}}.sandbox import Sandbox


@pytest.fixture
def sandbox():
    """The {{id}} sandbox on a free loopback port: tests never leave the machine."""
    with Sandbox() as running:
        yield running


@pytest.fixture
def engine():
    """An engine with the installed plugins, strict: a broken manifest fails with its reason."""
    with Engine(strict=True) as engine:
        yield engine
'''

CONNECTOR_TESTS = '''"""Tests of the {{id}} connector, against its sandbox (nothing leaves the machine)."""

import io
import json

import pytest

from connector_core import NotFound
from connector_core.cli import main
from {{package}} import MANIFESTS

CONNECTOR = "{{id}}"
# Every capability manifest of the package, those `connector new capability` adds included.
CAPABILITIES = sorted(p.name[: -len(".json")] for p in MANIFESTS.iterdir() if p.name.endswith(".json") and p.name != f"{CONNECTOR}.json")


def test_the_manifests_pass_connector_validate():
    paths = [str(MANIFESTS / f"{name}.json") for name in [CONNECTOR, *CAPABILITIES]]
    out, err = io.StringIO(), io.StringIO()
    assert main(["validate", *paths], stdout=out, stderr=err) == 0, out.getvalue() + err.getvalue()


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_contract(check_contract, capability):
    # From the manifest alone: examples valid, near misses refused before any request.
    check_contract(f"{CONNECTOR}.{capability}")


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_contract_against_the_sandbox(check_contract, sandbox, capability):
    report = check_contract(f"{CONNECTOR}.{capability}", config=sandbox.config)
    assert len(sandbox.requests) == report.example_requests  # none for the near misses


def test_{{module}}(engine, sandbox):
    result = engine.execute("{{id}}.{{capability}}", {"id": "item-2"}, sandbox.config)
    assert result.output == {"item": {"id": "item-2", "name": "Second item"}}
    assert [r["path"] for r in sandbox.requests] == ["/oauth/token", "/items/item-2"]


def test_an_unknown_item_is_not_found(engine, sandbox):
    with pytest.raises(NotFound):
        engine.execute("{{id}}.{{capability}}", {"id": "item-9"}, sandbox.config)


def test_the_cli_runs_it_against_the_sandbox():
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", "{{id}}.{{capability}}", "--sandbox", "--properties", '{"id": "item-1"}'], stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert json.loads(out.getvalue()) == {"item": {"id": "item-1", "name": "First item"}}
'''

ATTACH_TESTS = '''"""Tests of {{connector}}.{{capability}}, attached to the {{connector}} connector."""

import io
from importlib import resources

import pytest

from connector_core import Engine
from connector_core.cli import main

CONNECTOR = "{{connector}}"
CAPABILITY = "{{connector}}.{{capability}}"
MANIFEST = resources.files("{{package}}") / "{{capability}}.json"


def test_the_manifest_passes_connector_validate():
    out, err = io.StringIO(), io.StringIO()
    assert main(["validate", str(MANIFEST)], stdout=out, stderr=err) == 0, out.getvalue() + err.getvalue()


def test_contract(check_contract):
    # From the manifest alone: examples valid, near misses refused before any request.
    check_contract(CAPABILITY)


def test_it_runs_with_the_connector_its_owner_declares():
    with Engine(strict=True) as engine:
        assert CAPABILITY in [c.id for c in engine.registry.of_connector(CONNECTOR)]


def test_contract_against_the_connectors_sandbox(check_contract):
    with Engine() as engine:
        factory = engine.pm.hook.sandbox(connector=CONNECTOR)
        if factory is None:
            pytest.skip(f"no installed plugin provides a sandbox for {CONNECTOR}")
        with factory as config:
            check_contract(CAPABILITY, engine=engine, config=config)
'''


# -- commands ----------------------------------------------------------------------------


def new_connector(name: str, output: Path) -> dict[str, Any]:
    """Write a package declaring connector ``name`` into ``output/<name>-connector``."""
    _check_id(name, "connector name", "$.name")
    dist = f"{_slug(name)}-connector"
    package = f"{_snake(name)}_connector"
    root = _new_folder(output / dist)
    capability, module = "getItem", "get_item"
    values = {"id": name, "dist": dist, "package": package, "capability": capability, "module": module, "connector": name}
    manifests = f"{package}/manifests/{name}.json {package}/manifests/{capability}.json"
    files = {
        "pyproject.toml": PYPROJECT,
        "setup.cfg": _fill(CONNECTOR_SETUP_CFG, **values),
        "README.md": _fill(README, what=f"The `{name}` connector for connector-framework, with a local sandbox and tests.", manifests=manifests, **values),
        f"{package}/__init__.py": _fill(CONNECTOR_INIT, **values),
        f"{package}/manifests/{name}.json": _json(connector_manifest(name)),
        f"{package}/manifests/{capability}.json": _json(capability_manifest(name, capability, "api")),
        f"{package}/{module}.py": _capability_module(name, capability, "api", package, attached=False),
        f"{package}/sandbox.py": _fill(SANDBOX, **values),
        "tests/conftest.py": _fill(CONNECTOR_CONFTEST, **values),
        f"tests/test_{_snake(name)}.py": _fill(CONNECTOR_TESTS, **values),
    }
    return {"created": str(root), "files": _write(root, files), "next": _next(root, manifests)}


def _capability_module(connector: str, capability: str, endpoint: str, package: str, *, attached: bool) -> str:
    """The capability's module: its manifest (packaged JSON) and its ``execute`` hook."""
    if attached:
        where = {"imports": "from importlib import resources\n\n", "local_import": "", "manifest": f'resources.files("{package}") / "{capability}.json"'}
    else:
        where = {"imports": "", "local_import": "\nfrom . import manifest\n", "manifest": f'manifest("{capability}")'}
    return _fill(CAPABILITY, capability=capability, title=_words(capability), connector=connector, endpoint=endpoint, **where)


def _next(root: Path, manifests: str) -> list[str]:
    return [f"cd {root}", "pip install -e '.[test]'", "python -m pytest", f"connector validate {manifests}"]


def _package_declaring(folder: Path, connector: str) -> tuple[str, configparser.ConfigParser] | None:
    """The package of the distribution in ``folder`` whose setup.cfg declares ``connector``."""
    setup = folder / "setup.cfg"
    if not setup.is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(setup, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {setup}: {exc}", faults=[Fault("$.output", "holds a setup.cfg that cannot be read")]) from None
    declared = parser.get("options.entry_points", "connector_core.connectors", fallback="")
    for line in declared.splitlines():
        name, _, target = line.partition("=")
        if name.strip() == connector and target.strip():
            return target.strip().split(":")[0].split(".")[0], parser
    return None


def _add_entry_point(setup: Path, line: str) -> None:
    """Add ``line`` to the ``connector_core =`` entry points of ``setup`` (comments kept)."""
    lines = setup.read_text("utf-8").splitlines()
    section = None
    for i, text in enumerate(lines):
        if text.strip().startswith("[") and text.strip().endswith("]"):
            section = text.strip()[1:-1]
        elif section == "options.entry_points" and re.match(r"^connector_core\s*=", text):
            end = i + 1
            while end < len(lines) and lines[end][:1].isspace() and lines[end].strip():
                end += 1
            lines.insert(end, f"    {line}")
            setup.write_text("\n".join(lines) + "\n", "utf-8")
            return
    raise InvalidInput(f"{setup} has no `connector_core =` entry points under [options.entry_points]; add the line `{line}` there yourself")


def new_capability(connector: str, capability: str, output: Path, registry: Any) -> dict[str, Any]:
    """Add capability ``capability`` of ``connector`` to the package in ``output`` that
    declares the connector, or write a package attaching it to the installed ``connector``."""
    _check_id(connector, "connector", "$.connector")
    _check_id(capability, "capability id", "$.id")
    module = _snake(capability)
    found = _package_declaring(output, connector)
    if found is not None:
        package = found[0]
        manifests = output / package / "manifests"
        own = manifests / f"{connector}.json"
        if not own.is_file():
            raise InvalidInput(f"{own} is missing; `connector new capability` adds to packages laid out like `connector new connector` writes them")
        for path in (manifests / f"{capability}.json", output / package / f"{module}.py"):
            if path.exists():
                raise Conflict(f"{path} already exists; pick another capability id", code="already_exists", faults=[Fault("$.id", "already exists")])
        data, _ = read_manifest(own)  # its auth may need a plugin's scheme: read, do not load
        endpoints = data.get("endpoints")
        if not isinstance(endpoints, dict) or not endpoints:
            raise InvalidInput(f"{own} declares no endpoints; run `connector validate {own}`")
        endpoint = next(iter(endpoints))
        files = {
            f"{package}/manifests/{capability}.json": _json(capability_manifest(connector, capability, endpoint)),
            f"{package}/{module}.py": _capability_module(connector, capability, endpoint, package, attached=False),
        }
        written = _write(output, files)
        _add_entry_point(output / "setup.cfg", f"{capability} = {package}.{module}")
        return {
            "created": str(output),
            "files": written,
            "changed": ["setup.cfg"],
            "next": ["pip install -e '.[test]'  # registers the new entry point", "python -m pytest", f"connector validate {package}/manifests/{capability}.json"],
        }
    try:
        owner = registry.connector(connector)
    except PluginRejected:
        raise
    except UnknownCapability as exc:
        raise InvalidInput(
            f"connector {connector!r} is not installed and {output} holds no package declaring it; install the "
            f"connector's package first, or run `connector new capability` with --output pointing at the package "
            f"that declares it ({exc.message})",
            faults=[Fault("$.connector", "not installed")],
        ) from None
    endpoint = next(iter(owner.endpoints))
    dist = f"{_slug(connector)}-{_slug(capability)}"
    package = f"{_snake(connector)}_{module}"
    root = _new_folder(output / dist)
    values = {"dist": dist, "package": package, "capability": capability, "module": module, "connector": connector}
    manifest_path = f"{package}/{capability}.json"
    files = {
        "pyproject.toml": PYPROJECT,
        "setup.cfg": _fill(ATTACH_SETUP_CFG, **values),
        "README.md": _fill(README, what=f"Attaches `{capability}` to the `{connector}` connector.", manifests=manifest_path, **values),
        f"{package}/__init__.py": _fill(ATTACH_INIT, **values),
        manifest_path: _json(capability_manifest(connector, capability, endpoint)),
        f"{package}/{module}.py": _capability_module(connector, capability, endpoint, package, attached=True),
        f"tests/test_{module}.py": _fill(ATTACH_TESTS, **values),
    }
    return {"created": str(root), "files": _write(root, files), "next": _next(root, manifest_path)}


def register_commands(subparsers: Any) -> None:
    """Add ``new connector`` and ``new capability`` to the ``connector`` command."""
    new = subparsers.add_parser(
        "new",
        help="scaffold a plugin package (connector new connector NAME) or a capability (connector new capability CONNECTOR ID)",
        description="Write a plugin package that installs, passes its own tests and `connector validate` as generated.",
    )
    kinds = new.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    p = kinds.add_parser(
        "connector",
        help="a package declaring a new connector: manifest, one capability, a sandbox, tests",
        description="Write NAME-connector/ in --output: a package declaring connector NAME (OAuth2 client credentials), "
        "the capability getItem, a loopback sandbox and tests (the contract check among them).",
    )
    p.add_argument("name", metavar="NAME", help="connector id: letters, digits, _ and -, starting with a letter")
    p.add_argument("--output", metavar="DIR", default=".", help="folder to write the package folder into (default: .)")
    p.set_defaults(handler=_run_new_connector)
    p = kinds.add_parser(
        "capability",
        help="a capability in the package that declares CONNECTOR, or a package attaching it to an installed CONNECTOR",
        description="When --output holds the package declaring CONNECTOR (its setup.cfg), add capability ID to it "
        "(manifest, module, entry point); otherwise write CONNECTOR-ID/ in --output, a package attaching ID to the "
        "installed CONNECTOR, with tests.",
    )
    p.add_argument("connector", metavar="CONNECTOR", help="id of the connector the capability belongs to")
    p.add_argument("id", metavar="ID", help="capability id, such as getInvoice")
    p.add_argument("--output", metavar="DIR", default=".", help="the package folder, or where to write a new package (default: .)")
    p.set_defaults(handler=_run_new_capability)


def _print(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2))


def _run_new_connector(args, engine) -> int:
    _print(new_connector(args.name, Path(args.output)))
    return 0


def _run_new_capability(args, engine) -> int:
    _print(new_capability(args.connector, args.id, Path(args.output), engine.registry))
    return 0
