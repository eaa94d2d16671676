"""The hooks a plugin can implement, with their contracts.

Plugins are found through the ``connector_core`` entry-point group; connectors are declared
through the ``connector_core.connectors`` group (see :mod:`connector_core.registry`). A
*capability* plugin implements :func:`execute` and carries a ``MANIFEST`` (its capability
manifest, whose ``"connector"`` names the connector it belongs to). Any other plugin is an
*extension*: it may wrap every call (``execute`` with ``wrapper=True``), add CLI
subcommands, add auth schemes or provide a local sandbox for a connector. Always call hooks
with keywords.
"""

from __future__ import annotations

import pluggy

PROJECT = "connector_core"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def execute(ctx, properties):
    """Run one capability and return its JSON-serialisable output.

    The engine calls exactly one capability plugin's implementation, after validating
    ``ctx.config`` against the connector manifest and ``properties`` against the
    capability's input schema, and validates the return value against its output schema.
    Raise a :class:`connector_core.errors.ConnectorError` subclass for expected failures;
    any other exception is reported to the host as a ``plugin_error``.

    Extension plugins may implement this hook with ``@hookimpl(wrapper=True)`` to observe
    or wrap every call (audit, tracing, dry-run): ``output = yield`` gives the
    capability's output (or raises its error); ``ctx.capability.id`` says which one runs.
    """


@hookspec
def register_commands(subparsers):
    """Add subcommands to the ``connector`` CLI.

    ``subparsers`` is the :mod:`argparse` sub-parser action. Each added parser must set a
    ``handler`` default: a callable ``handler(args, engine) -> int`` returning the exit
    code. Raise ``ConnectorError`` for failures; the CLI prints them as JSON.
    """


@hookspec(firstresult=True)
def sandbox(connector):
    """Return a context manager that starts a local emulator of ``connector``.

    Entering it yields a config dict accepted by that connector's config schema (base
    URLs pointing at the emulator plus demo credentials). Return ``None`` for connectors
    this plugin does not emulate. Used by ``connector run --sandbox``.
    """


@hookspec
def register_auth_schemes(register):
    """Add auth schemes: call ``register(scheme)`` with an instance of each.

    A scheme is a :class:`connector_core.auth.AuthScheme` whose ``type`` connector
    manifests name in their ``auth`` section. It validates its manifest fragment, says
    which config fields it reads (and which are secrets), and builds the per-connection
    :class:`connector_core.auth.Auth` that signs requests, handles 401, names its
    credential by a digest, registers derived secrets for redaction and answers
    ``connector check``. The built-in ``oauth2_client_credentials`` and ``basic`` schemes
    are registered through this hook too; a type already registered is refused and the
    plugin reported as rejected. Example::

        @hookimpl
        def register_auth_schemes(register):
            register(ApiKeyHeaderScheme())
    """
