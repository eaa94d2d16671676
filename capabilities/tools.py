"""mParticle extras for the ``connector`` CLI: ``connector sandbox``, ``connector demo``, and
the sandbox behind ``connector run --sandbox``.

An extension plugin (no ``execute``), declared in the ``connector_core`` entry-point group
like the capabilities.
"""

from __future__ import annotations

import contextlib
import json
import sys
import uuid

from connector_core import ConnectorError, hookimpl

from .common import manifest

TITLE = "mParticle sandbox and demo commands"
CONNECTOR = "mparticle"

# Seeded in the sandbox (see sandbox/seed.py): an account with audiences and a workspace
# with calculated attributes.
DEMO_ACCOUNT = 1001
DEMO_WORKSPACE = 5001


@hookimpl
def sandbox(connector):
    if connector != CONNECTOR:
        return None
    from .sandbox import Sandbox

    return _config_of(Sandbox(seed=0))


@contextlib.contextmanager
def _config_of(sandbox):
    """Start ``sandbox``, yield its connector config, stop it."""
    with sandbox:
        yield sandbox.config


@hookimpl
def register_commands(subparsers):
    from .sandbox import add_arguments, run_command

    parser = subparsers.add_parser(
        "sandbox",
        help="run the local mParticle sandbox in the foreground",
        description="Run the local mParticle sandbox. Prints one JSON line: a config that "
        "`connector run --config` accepts. Stops on Ctrl-C or SIGTERM.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=lambda args, engine: run_command(args))

    parser = subparsers.add_parser(
        "demo",
        help="run all seven mParticle capabilities against a sandbox started in-process",
        description="Start the mParticle sandbox in-process, run each capability once and print "
        "each call with its result as JSON.",
    )
    parser.add_argument("--seed", type=int, default=0, help="sandbox seed (default 0)")
    parser.set_defaults(handler=run_demo)

    from .backfill_cli import add_command

    add_command(subparsers)


def _example_batch() -> dict:
    from connector_core import CapabilityManifest

    # No source_request_id: the connector assigns one, as it should for every demo run.
    return CapabilityManifest.load(manifest("uploadEventBatch")).examples[0]["input"]["jsonBody"]


def run_demo(args, engine) -> int:
    from .sandbox import Sandbox

    with Sandbox(seed=args.seed) as sb, engine.connect(sb.config, connector=CONNECTOR) as connection:
        steps = [("createAccount", lambda out: {"displayName": f"Demo account {uuid.uuid4().hex[:8]}"})]
        steps += [
            ("getAccount", lambda out: {"accountId": str(out["createAccount"]["account"]["id"])}),
            ("updateAccount", lambda out: {"accountId": str(out["createAccount"]["account"]["id"]), "updatedName": "Demo account (renamed)"}),
            ("getAudiences", lambda out: {"accountId": str(DEMO_ACCOUNT)}),
            ("getCalculatedAttributes", lambda out: {"workspace": str(DEMO_WORKSPACE)}),
            ("uploadEventBatch", lambda out: {"jsonBody": json.dumps(_example_batch())}),
            ("deleteAccount", lambda out: {"accountId": str(out["createAccount"]["account"]["id"])}),
        ]
        outputs: dict = {}
        failed = 0
        for capability, make in steps:
            properties = make(outputs)
            try:
                result = connection.execute(capability, properties)
            except ConnectorError as exc:
                failed += 1
                print(json.dumps({"capability": capability, "properties": properties, "error": exc.to_dict()}, indent=2))
                continue
            outputs[capability] = result.output
            meta = result.to_dict()["meta"]
            print(json.dumps({"capability": capability, "properties": properties, "output": result.output, "meta": meta}, indent=2))
        sys.stdout.flush()
        state = sb.state()
    summary = {k: state[k] for k in ("requests_total", "token_requests", "batches_accepted", "events_accepted")}
    print(json.dumps({"demo": "done", "calls": len(steps), "failed": failed, "sandbox": summary}, indent=2))
    return 1 if failed else 0
