"""Remember which manifest contents passed their checks, so start-up need not redo them.

Checking a manifest's schemas against the JSON Schema meta-schema costs milliseconds per
schema, most of a cold ``connector`` start. The checks are a pure function of the
manifest's text, the framework's version and checks, and the jsonschema version, so after
a manifest passes, a marker named by the SHA-256 of all of those is written to the cache
directory; a later process that finds the marker skips those checks. Only passes are
recorded: a manifest that fails is checked (and fails) every time, and any change to its
text, to the framework or to jsonschema gives a new key.

The directory is ``$CONNECTOR_CORE_CACHE_DIR``, else ``$XDG_CACHE_HOME/connector-core``,
else ``~/.cache/connector-core``. ``CONNECTOR_CORE_CACHE_DIR=off`` (or empty) disables the
cache. A cache that cannot be read or written is ignored.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path

CACHE_ENV = "CONNECTOR_CORE_CACHE_DIR"
# Bump whenever the checks a marker stands for change without a version change.
CHECKS_REVISION = "2"


def cache_dir() -> Path | None:
    """The marker directory, or ``None`` when caching is off."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "off", "0", "false", "no") else Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "connector-core"


@cache
def _salt() -> str:
    """What the meaning of a marker depends on besides the manifest text."""
    import jsonschema

    from . import __version__

    # jsonschema's own files stand for its version (asking importlib.metadata scans every
    # installed distribution, a noticeable part of a start).
    package = Path(jsonschema.__file__).parent
    stamps = [f"{(s := (package / name).stat()).st_size}:{s.st_mtime_ns}" for name in ("__init__.py", "validators.py", "_keywords.py")]
    schemas = resources.files("connector_core.schemas")
    digest = hashlib.sha256(f"{CHECKS_REVISION}:{__version__}:{':'.join(stamps)}".encode())
    for kind in ("connector", "capability"):
        digest.update(schemas.joinpath(f"{kind}.schema.json").read_bytes())
    return digest.hexdigest()


def content_key(kind: str, text: str) -> str:
    """The marker name for manifest ``text`` of ``kind`` ("connector" or "capability")."""
    return hashlib.sha256(f"{_salt()}\0{kind}\0{text}".encode()).hexdigest()


def verified(key: str) -> bool:
    """Whether a manifest with this key passed every check before."""
    directory = cache_dir()
    return directory is not None and (directory / key[:2] / key).is_file()


def remember(key: str) -> None:
    """Record that the manifest with this key passed every check (best effort)."""
    directory = cache_dir()
    if directory is None:
        return
    folder = directory / key[:2]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees a marker that is being written.
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        os.close(fd)
        os.replace(temp, folder / key)
    except OSError:
        pass
