"""A third-party connector_core plugin package, installed by the core's tests.

It adds the ``sample`` connector with two capabilities (``sampleGreet`` needs no network,
``sampleFetch`` calls the configured API), an audit wrapper around every call, a CLI
subcommand and a sandbox, all through the ``connector_core`` entry-point group, without
any change to connector_core.
"""

from importlib import resources

MANIFESTS = resources.files("connector_sample") / "manifests"
CONNECTOR_MANIFEST = MANIFESTS / "sample.json"


def manifest(capability_id: str):
    """The packaged manifest of one capability (an ``importlib.resources`` traversable)."""
    return MANIFESTS / f"{capability_id}.json"
