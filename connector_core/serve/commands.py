"""``connector serve`` and ``connector openapi``.

This module imports no ASGI code: ``connector openapi`` works without the ``serve``
extra, and ``connector serve`` without it fails with a typed error saying how to install
it.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from .. import __version__
from ..config import ConnectionSpec, load_connections
from ..errors import ConnectorError, Fault, InvalidConfig
from .openapi import openapi_document

API_KEYS_ENV = "CONNECTOR_SERVE_API_KEYS"
API_KEYS_FILE_ENV = "CONNECTOR_SERVE_API_KEYS_FILE"
CONNECTIONS_ENV = "CONNECTOR_CONNECTIONS"
MIN_KEY_LENGTH = 16
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class MissingExtra(ConnectorError):
    """An optional feature's dependencies are not installed."""

    code = "missing_extra"
    category = "config"


def register_commands(subparsers: Any) -> None:
    """Add ``serve`` and ``openapi`` to the ``connector`` command."""
    p = subparsers.add_parser(
        "serve",
        help="serve the capabilities over HTTP (JSON API, OpenAPI document, console)",
        description="Serve every loaded capability over HTTP: POST /v1/capabilities/{id}/execute, "
        "GET /openapi.json, a console at /. Prints one JSON line with the URL, then logs JSON lines to "
        "stderr. SIGINT/SIGTERM finish the calls in flight, then stop. Needs the serve extra "
        "(pip install 'connector-framework[serve]').",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1); beyond loopback, API keys are required")
    p.add_argument("--port", type=int, default=8080, help="port to bind (default 8080; 0 picks a free one)")
    _add_document_args(p)
    p.add_argument("--api-keys-file", metavar="PATH",
                   help=f"file with one API key per line (# comments); also ${API_KEYS_FILE_ENV}, or keys in ${API_KEYS_ENV} (comma-separated)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a Host name callers may use besides loopback and --host (repeatable; '*' for any, only with API keys)")
    p.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024, metavar="N", help="largest request body accepted (default 4 MiB)")
    p.add_argument("--threads", type=int, default=32, metavar="N",
                   help="capability calls run at once (default 32, the size of a connection's HTTP pool)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="serving processes sharing the port (default 1); one per CPU core lets calls use every core")
    p.add_argument("--pin-workers", action="store_true",
                   help="bind worker N to CPU N of those the command may use (Linux), as nginx's worker_cpu_affinity: "
                        "a call's hand-offs between the event loop and the call thread stay on one core")
    p.add_argument("--grace-seconds", type=float, default=30.0, metavar="S",
                   help="on SIGTERM/SIGINT, how long calls in flight may take to finish (default 30)")
    p.add_argument("--no-access-log", dest="access_log", action="store_false", help="do not log one line per request")
    p.add_argument("--sandbox", action="store_true",
                   help="also start each connector's local sandbox (where one is installed) as a named connection <connector>-sandbox")
    p.set_defaults(handler=run_serve)

    p = subparsers.add_parser(
        "openapi",
        help="print the service's OpenAPI 3.1 document (offline)",
        description="Print the OpenAPI 3.1 document that `connector serve` serves at /openapi.json, "
        "generated from the loaded manifests. Give the same --connections to get the same document.",
    )
    _add_document_args(p)
    p.set_defaults(handler=run_openapi)


def _add_document_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connections", metavar="PATH",
                   help=f"named connections the service offers (default ${CONNECTIONS_ENV}, or ./connections.json when it exists)")
    p.add_argument("--no-caller-configs", dest="caller_configs", action="store_false",
                   help="run only named connections; refuse configs sent in request bodies (by default they run under "
                        "HostPolicy.untrusted(): no $env, no URL overrides)")


def _connections_path(args: Any) -> str | None:
    path = args.connections or os.environ.get(CONNECTIONS_ENV)
    if path:
        return path
    return "connections.json" if Path("connections.json").is_file() else None


def _connections(args: Any) -> dict[str, ConnectionSpec]:
    path = _connections_path(args)
    return load_connections(path) if path else {}


def document(engine: Any, connections: dict[str, ConnectionSpec], caller_configs: bool = True) -> dict[str, Any]:
    """The document both ``connector openapi`` and ``GET /openapi.json`` give."""
    return openapi_document(engine.registry, connection_names=list(connections), caller_configs=caller_configs, version=__version__)


def run_openapi(args: Any, engine: Any) -> int:
    text = json.dumps(document(engine, _connections(args), args.caller_configs), indent=2, ensure_ascii=False)
    sys.stdout.write(text + "\n")
    return 0


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_api_keys(path: str | None, environ: Any = os.environ) -> list[str]:
    """API keys from ``path`` (one per line) and from ``$CONNECTOR_SERVE_API_KEYS``."""
    keys: list[tuple[str, str]] = []
    path = path or environ.get(API_KEYS_FILE_ENV)
    if path:
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidConfig(f"cannot read API keys file {path}: {getattr(exc, 'strerror', None) or exc}", file=str(path)) from None
        keys += [(f"{path}:{n}", line.strip()) for n, line in enumerate(text.splitlines(), 1)
                 if line.strip() and not line.lstrip().startswith("#")]
    keys += [(f"${API_KEYS_ENV}[{i}]", k.strip()) for i, k in enumerate(environ.get(API_KEYS_ENV, "").split(",")) if k.strip()]
    short = [where for where, key in keys if len(key) < MIN_KEY_LENGTH or any(c.isspace() for c in key)]
    if short:
        raise InvalidConfig(
            f"API keys must be at least {MIN_KEY_LENGTH} characters without spaces (e.g. `python -c \"import secrets; "
            f"print(secrets.token_urlsafe(32))\"`)",
            faults=[Fault(where, f"shorter than {MIN_KEY_LENGTH} characters or contains spaces") for where in short],
        )
    return [key for _, key in keys]


class JsonLines(logging.Formatter):
    """One JSON object per log record, with the request's correlation id.

    Cheap enough for an access line per request: orjson, and the time string made once a second.
    """

    FIELDS = ("http_method", "http_path", "http_status", "api_key")

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._time = ""

    def time_text(self, created: float) -> str:
        """``created`` as the lines print it; call under the handler's lock (it caches)."""
        second = int(created)
        if second != self._second:
            self._second, self._time = second, time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(created))
        return self._time

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.time_text(record.created),  # handlers format under their lock: no race on the cache
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", "-"),
        }
        for key in self.FIELDS:
            if key in record.__dict__:
                entry[key] = record.__dict__[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # e.g. an integer beyond 64 bits in a field
            return json.dumps(entry, ensure_ascii=False, default=str)


class AccessLines:
    """Writes ``connector serve``'s access line straight to the command's log handler.

    The line is the one :class:`JsonLines` makes of the access logger's record, written under
    the handler's lock like every other record, without making the record: the logging
    machinery (record, logger walk, filters, formatter) costs the event loop about 0.2 ms per
    request on a busy 2-core machine. The service uses it only when the command configured
    the logging itself (``_configure_logging``), so nobody else's handlers miss the line.
    """

    def __init__(self, handler: logging.StreamHandler, formatter: JsonLines) -> None:
        self.handler = handler
        self.formatter = formatter

    def __call__(self, method: str, path: str, status: int, milliseconds: float, key: str, correlation_id: str) -> None:
        entry = {"time": "", "level": "INFO", "logger": "connector_core.serve.access",
                 "message": "%s %s %d %.1fms key=%s" % (method, path, status, milliseconds, key),
                 "correlation_id": correlation_id, "http_method": method, "http_path": path, "http_status": status,
                 "api_key": key}
        created = time.time()
        with self.handler.lock:  # type: ignore[union-attr]
            entry["time"] = self.formatter.time_text(created)
            try:
                line = orjson.dumps(entry).decode()
            except TypeError:  # a path orjson refuses (lone surrogates): the standard library copes
                line = json.dumps(entry, ensure_ascii=False)
            self.handler.stream.write(line + "\n")
            self.handler.flush()


def _configure_logging(verbose: bool, access_log: bool) -> AccessLines | None:
    """JSON lines on stderr; the access line writer when ``access_log``."""
    from .app import CorrelationFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    handler.addFilter(CorrelationFilter())
    # The JSON lines name no thread or process: spare every record (one per request) looking them up.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)
    logging.getLogger("connector_core").setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("connector_core.serve").setLevel(logging.INFO)
    logging.getLogger("connector_core.serve.access").setLevel(logging.INFO if access_log else logging.WARNING)
    return AccessLines(handler, handler.formatter) if access_log else None  # type: ignore[arg-type]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidConfig(f"cannot listen on {host}:{port}: {exc.strerror or exc}", faults=[Fault("--port", str(exc))]) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_serve(args: Any, engine: Any) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MissingExtra(
            f"connector serve needs the serve extra ({exc.name} is missing): pip install 'connector-framework[serve]'",
            missing=exc.name,
        ) from None

    keys = load_api_keys(args.api_keys_file)
    loopback = is_loopback(args.host)
    if not keys and not loopback:
        raise InvalidConfig(
            f"refusing to serve on {args.host} without API keys: anyone who can reach it could run every connection. "
            f"Set ${API_KEYS_ENV} or --api-keys-file, or bind to 127.0.0.1",
            faults=[Fault("--host", "is not a loopback address and no API key is configured")],
        )
    if "*" in args.allow_host and not keys:
        raise InvalidConfig("--allow-host '*' needs API keys", faults=[Fault("--allow-host", "'*' without API keys")])
    if "*" in args.allow_host or (not loopback and not args.allow_host):
        allowed: set[str] | None = None
    else:
        allowed = {*LOOPBACK_NAMES, args.host.strip("[]").lower(), *(h.lower() for h in args.allow_host)}
    if args.threads < 1 or args.max_body_bytes < 1 or args.workers < 1:
        raise InvalidConfig("--threads, --workers and --max-body-bytes must be positive")
    if getattr(args, "pin_workers", False) and not hasattr(os, "sched_setaffinity"):
        raise InvalidConfig("--pin-workers needs os.sched_setaffinity (Linux)", faults=[Fault("--pin-workers", "needs Linux")])
    if args.workers > 1 and not hasattr(os, "fork"):
        raise InvalidConfig("--workers above 1 needs os.fork (Linux or macOS); run one service per port elsewhere",
                            faults=[Fault("--workers", "needs os.fork")])
    access_lines = _configure_logging(bool(getattr(args, "verbose", False)), args.access_log)
    with contextlib.ExitStack() as sandboxes:
        connections = _connections(args)
        if args.sandbox:
            connections.update(_start_sandboxes(engine, sandboxes))
        return _serve(args, engine, connections, keys, allowed, access_lines)


def _start_sandboxes(engine: Any, stack: contextlib.ExitStack) -> dict[str, ConnectionSpec]:
    """A named connection to each connector's sandbox, started for as long as ``stack`` lives."""
    found = {}
    for connector in sorted(engine.registry.connectors):
        factory = engine.pm.hook.sandbox(connector=connector)
        if factory is not None:
            name = f"{connector}-sandbox"
            title = engine.registry.connectors[connector].title
            found[name] = ConnectionSpec(name, stack.enter_context(factory), connector, description=f"the local {title} sandbox")
    if not found:
        raise InvalidConfig("--sandbox: no installed plugin provides a sandbox for the loaded connectors")
    return found


def _serve(args: Any, engine: Any, connections: dict[str, ConnectionSpec], keys: list[str], allowed: set[str] | None,
           access_lines: AccessLines | None) -> int:
    from ..policy import HostPolicy
    from .app import Service

    def service() -> Service:
        return Service(engine, connections, api_keys=keys, allowed_hosts=allowed, max_body_bytes=args.max_body_bytes,
                       threads=args.threads, caller_policy=HostPolicy.untrusted() if args.caller_configs else None,
                       access_lines=access_lines)

    first = service()  # opens the named connections: an operator's mistake stops the start here, once
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    print(json.dumps({"url": url, "openapi": f"{url}/openapi.json", "console": f"{url}/", "api_keys": len(keys),
                      "connections": sorted(first.connections), "workers": args.workers}), flush=True)
    cpus = sorted(os.sched_getaffinity(0)) if getattr(args, "pin_workers", False) else []
    if args.workers == 1:
        if cpus:
            pin_to_cpu(cpus[0])
        return _run_worker(first, sock, args)
    first.close()
    try:
        return _supervise(service, sock, args, cpus)
    finally:
        sock.close()


def _run_worker(service: Any, sock: socket.socket, args: Any) -> int:
    """Serve ``service`` on ``sock`` with uvicorn until SIGINT/SIGTERM; calls in flight finish first."""
    import uvicorn

    from .app import create_app

    config = uvicorn.Config(
        create_app(service),
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(args.grace_seconds + 0.999)),
        timeout_keep_alive=30,
        proxy_headers=False,  # the service never reads the client address, so it trusts no X-Forwarded-* header
    )
    # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again under the
    # handlers it found; with these the command then exits 0, as `connector sandbox` does.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        service.close()
    return 0


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def pin_to_cpu(cpu: int) -> None:
    """Run every thread of this process, and the threads it starts from now on, on CPU ``cpu`` only (Linux)."""
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for tid in threads:
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(tid, {cpu})


def _supervise(make_service: Any, sock: socket.socket, args: Any, cpus: list[int]) -> int:
    """Fork ``args.workers`` processes serving ``sock``, pass SIGINT/SIGTERM on to them, wait for all.

    Each worker opens its own connections (HTTP pools are not shared across a fork) and
    the kernel spreads accepted connections over them. A worker that exits unexpectedly
    stops the others and the command exits 1: the process supervisor running the service
    restarts it whole, rather than it running short of a worker unnoticed.
    """
    log = logging.getLogger("connector_core.serve")
    workers: set[int] = set()
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in _STOP_SIGNALS}
    try:
        for index in range(args.workers):
            # Signals wait until the child has its own handlers, so none reaches it under ours.
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _worker_process(make_service, sock, args, previous, cpus[index % len(cpus)] if cpus else None)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            workers.add(pid)
        code = 0
        while workers:
            pid, status = os.wait()
            workers.discard(pid)
            exit_code = os.waitstatus_to_exitcode(status)
            if exit_code != 0:
                code = 1
            if not stopping:
                log.error("worker %d exited with code %d; stopping the service", pid, exit_code)
                code = 1
                stop()
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _worker_process(make_service: Any, sock: socket.socket, args: Any, handlers: dict, cpu: int | None) -> None:
    """The body of a forked worker: serve, then leave without running the parent's clean-ups."""
    code = 1
    try:
        if cpu is not None:
            pin_to_cpu(cpu)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        _stop_when_orphaned(os.getppid())
        code = _run_worker(make_service(), sock, args)
    except BaseException:  # noqa: BLE001 - a worker must never return into the supervisor's code
        logging.getLogger("connector_core.serve").exception("worker %d failed", os.getpid())
    finally:
        logging.shutdown()
        os._exit(code)


def _stop_when_orphaned(parent: int) -> None:
    """SIGTERM this worker (a graceful stop) once its supervisor is gone, e.g. killed with SIGKILL."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="connector-serve-orphan-watch", daemon=True).start()
