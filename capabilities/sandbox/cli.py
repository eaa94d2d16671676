"""Command line: run the sandbox in the foreground (``connector sandbox``, ``python -m ...``).

stdout gets exactly one line, the connector config as JSON, so a caller can do
``connector sandbox > sandbox.json`` and pass that file to ``connector run --config``.
Everything else goes to stderr. SIGINT and SIGTERM stop it with exit code 0; a refused
host or a bad option exits 2, a port that cannot be bound exits 1.
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import threading
from typing import Any

from . import bulk
from . import seed as seeded
from .app import DEFAULT_TOKEN_LIFETIME
from .faults import GROUPS
from .handle import Sandbox


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox's options to ``parser`` (a sub-command parser of the host CLI)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; loopback only unless --allow-remote)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: a free port)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random faults (default 0)")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    parser.add_argument("--token-lifetime", type=int, default=DEFAULT_TOKEN_LIFETIME, metavar="SECONDS",
                        help=f"OAuth token lifetime (default {DEFAULT_TOKEN_LIFETIME})")
    parser.add_argument("--no-client-credentials-for-events", dest="client_credentials_for_events", action="store_false",
                        help="accept only the input API key/secret on the Events API, not the OAuth client id/secret")
    parser.add_argument("--client-id", default=seeded.DEMO_CLIENT_ID, help="demo OAuth client id")
    parser.add_argument("--client-secret", default=seeded.DEMO_CLIENT_SECRET, help="demo OAuth client secret")
    parser.add_argument("--api-key", default=seeded.DEMO_API_KEY, help="demo Events API key")
    parser.add_argument("--api-secret", default=seeded.DEMO_API_SECRET, help="demo Events API secret")
    parser.add_argument("--rate-limit", action="append", default=[], metavar="TARGET=LIMIT[/SECONDS]",
                        help=f"rate limit a group ({', '.join(GROUPS)}, all) or one endpoint (e.g. getAccount), "
                             "e.g. events=270/1; repeatable")
    parser.add_argument("--latency", default="0", metavar="MS[-MAX_MS]",
                        help="delay every API request by MS milliseconds, or a random time between MS and MAX_MS "
                             "(e.g. 20 or 10-40), as a far-away mParticle would")
    parser.add_argument("--max-batches", type=int, default=10_000, metavar="N",
                        help="accepted batches kept for inspection (default 10000; 0 keeps all); counters count all")
    parser.add_argument("--fault", action="append", default=[], metavar="TARGET=JSON",
                        help='random faults for a group or one endpoint, e.g. events=\'{"error_rate": 0.1, "statuses": [503]}\'; repeatable')


def _split(spec: str, option: str) -> tuple[str, str]:
    group, sep, value = spec.partition("=")
    if not sep or not value:
        raise ValueError(f"{option} expects TARGET=VALUE, got {spec!r}")
    return group.strip(), value.strip()


def _apply_switches(sandbox: Sandbox, args: argparse.Namespace) -> None:
    low, _, high = str(args.latency).partition("-")
    try:
        sandbox.set_latency(float(low), float(high) if high else None)
    except ValueError as exc:
        raise ValueError(f"--latency {args.latency!r}: {exc}") from None
    for spec in args.rate_limit:
        group, value = _split(spec, "--rate-limit")
        limit, _, window = value.partition("/")
        try:
            sandbox.set_rate_limit(group, int(limit), float(window) if window else 1.0)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--rate-limit {spec!r}: {exc}") from None
    for spec in args.fault:
        group, value = _split(spec, "--fault")
        try:
            fields: Any = json.loads(value)
            if not isinstance(fields, dict):
                raise ValueError("the value must be a JSON object")
            sandbox.set_faults(group, **fields)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--fault {spec!r}: {exc}") from None


def _error(code: str, category: str, message: str) -> None:
    """Errors go to stderr as one JSON object, as every ``connector`` command prints them."""
    print(json.dumps({"code": code, "category": category, "message": message}, indent=2), file=sys.stderr, flush=True)


def run_command(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; print the connector config as one JSON line first."""
    try:
        sandbox = Sandbox(
            args.host, args.port, seed=args.seed, allow_remote=args.allow_remote,
            token_lifetime=args.token_lifetime, client_credentials_for_events=args.client_credentials_for_events,
            client_id=args.client_id, client_secret=args.client_secret, api_key=args.api_key, api_secret=args.api_secret,
            max_batches=args.max_batches or None,
        )
        _apply_switches(sandbox, args)
    except ValueError as exc:
        _error("invalid_option", "usage", f"sandbox: {exc}")
        return 2
    stop = threading.Event()
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
        except ValueError:  # not the main thread: Ctrl-C arrives as KeyboardInterrupt instead
            pass
    try:
        try:
            sandbox.start()
        except OSError as exc:
            _error("cannot_listen", "network", f"sandbox: cannot listen on {args.host}:{args.port}: {exc}")
            return 1
        bulk.prepare()  # before the config line, so the first bulk request of a benchmark does not pay it
        print(json.dumps(sandbox.config), flush=True)
        print(f"mParticle sandbox at {sandbox.url} (state: {sandbox.admin_url}/state); stop with Ctrl-C",
              file=sys.stderr, flush=True)
        # The server parses and drops thousands of objects per bulk request, none in a reference
        # cycle: keep the cyclic collector out of the way while it serves (about 20% less CPU).
        collector, ours = gc.get_threshold(), gc.get_freeze_count() == 0  # a host's own freeze stays
        if ours:
            gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            gc.set_threshold(*collector)
            if ours:
                gc.unfreeze()
        return 0
    finally:
        sandbox.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
