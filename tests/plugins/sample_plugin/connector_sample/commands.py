"""An extension plugin: adds the ``connector sample-hello`` subcommand."""

import json
import sys

from connector_core import hookimpl

TITLE = "Sample CLI commands"


@hookimpl
def register_commands(subparsers):
    parser = subparsers.add_parser("sample-hello", help="say hello from the sample plugin")
    parser.add_argument("--name", default="world", help="who to greet")
    parser.add_argument("--crash", action="store_true", help="fail with a bug (shows how the CLI reports one)")
    parser.add_argument("--exit", metavar="MESSAGE", help="leave with sys.exit(MESSAGE), as a script-style command does")
    parser.set_defaults(handler=hello)


def hello(args, engine):
    if args.exit is not None:
        sys.exit(args.exit)
    if args.crash:
        raise RuntimeError("the sample command has a bug")
    print(json.dumps({"hello": args.name, "capabilities": sorted(engine.capabilities)}))
    return 0
