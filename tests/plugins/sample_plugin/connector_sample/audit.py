"""An extension plugin: writes one audit line to stderr per capability call."""

import sys

from connector_core import ConnectorError, hookimpl

TITLE = "Sample audit trail"


@hookimpl(wrapper=True)
def execute(ctx, properties):
    try:
        output = yield
    except ConnectorError as exc:
        print(f"sample-audit: {ctx.capability.id} failed: {exc.code}", file=sys.stderr)
        raise
    except Exception as exc:
        print(f"sample-audit: {ctx.capability.id} failed: {type(exc).__name__}", file=sys.stderr)
        raise
    print(f"sample-audit: {ctx.capability.id} ok", file=sys.stderr)
    return output
