"""Remember which manifest contents passed their checks, so start-up need not redo them.

Checking a manifest's schemas against the JSON Schema meta-schema costs milliseconds per
schema, most of a cold ``connector`` start (and so do the auth schemes' own schemas, which
``validation.compile_schema`` records here the same way). The checks are a pure function of the
manifest's text, the framework's version and checks, and the jsonschema version, so after
a manifest passes, a marker named by the SHA-256 of all of those is written to the cache
directory; a later process that finds the marker skips those checks. Only passes are
recorded: a manifest that fails is checked (and fails) every time, and any change to its
text, to the framework or to jsonschema gives a new key.

The directory is ``$CONNECTOR_CORE_CACHE_DIR``, else ``$XDG_CACHE_HOME/connector-core``,
else ``~/.cache/connector-core``. ``CONNECTOR_CORE_CACHE_DIR=off`` (or empty) disables the
cache. A cache that cannot be read or written is ignored.

The same directory keeps the list of installed entry points (see
:func:`connector_core.registry.installed_entry_points`), keyed by :func:`path_fingerprint`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from functools import cache
from importlib.machinery import PathFinder
from importlib import resources
from pathlib import Path

CACHE_ENV = "CONNECTOR_CORE_CACHE_DIR"
# Bump whenever the checks a marker stands for change without a version change.
CHECKS_REVISION = "3"


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
    """The marker name for ``text`` of ``kind``: a "connector" or "capability" manifest, or a
    "schema" (canonical JSON) that passed its meta-schema check."""
    return hashlib.sha256(f"{_salt()}\0{kind}\0{text}".encode()).hexdigest()


def verified(key: str) -> bool:
    """Whether a manifest with this key passed every check before."""
    directory = cache_dir()
    return directory is not None and (directory / key[:2] / key).is_file()


def remember(key: str) -> None:
    """Record that the manifest with this key passed every check (best effort)."""
    _write(key, key, b"")


def _write(key: str, name: str, content: bytes) -> None:
    """Write ``content`` as file ``name`` in the key's folder (best effort). Written then
    renamed, so a reader never sees a file that is being written."""
    directory = cache_dir()
    if directory is None:
        return
    folder = directory / key[:2]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.replace(temp, folder / name)
    except OSError:
        pass


def load_json(key: str):
    """The JSON data stored under ``key``, or ``None`` (no cache, no entry, unreadable)."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        return json.loads((directory / key[:2] / f"{key}.json").read_bytes())
    except (OSError, ValueError):
        return None


def store_json(key: str, data) -> None:
    """Store JSON ``data`` under ``key`` (best effort, atomically)."""
    try:
        content = json.dumps(data).encode("utf-8")
    except (TypeError, ValueError):
        return
    _write(key, f"{key}.json", content)


# A file changed within this many nanoseconds of a fingerprint may change again without its
# times moving (timestamps are coarse), so such a fingerprint is not stored.
_SETTLE_NS = 2_000_000_000


def path_fingerprint() -> tuple[str, bool] | None:
    """What ``importlib.metadata`` would find on ``sys.path``, summarised without reading it.

    Returns the fingerprint and whether it is settled (nothing in it was modified during the
    last two seconds; only a settled fingerprint may be stored). It holds the Python
    version, every ``sys.path`` entry (a zip file by its size and times), and for every
    ``*.dist-info``/``*.egg-info`` on it the times of the folder and the times and size of its
    ``entry_points.txt``: installers write a new folder for every install, and tools that
    rewrite ``entry_points.txt`` in place change its times. ``None`` when a finder other than
    the standard path finder can provide distributions, or ``sys.path`` holds something
    that is not a string: then there is nothing safe to key by.
    """
    for finder in sys.meta_path:
        if getattr(finder, "find_distributions", None) is not None and not _reads_sys_path(finder):
            return None
    parts = [sys.version]
    newest = 0
    for entry in sys.path:
        if not isinstance(entry, str):
            return None
        parts.append(f"\0{entry}")
        root = entry or "."
        if entry.lower().endswith(".egg"):  # an egg keeps its metadata in EGG-INFO
            root = os.path.join(root, "EGG-INFO")
        try:
            with os.scandir(root) as listing:
                found = sorted((e.name, e) for e in listing if e.name.lower().endswith((".dist-info", ".egg-info", "egg-info")))
        except NotADirectoryError:  # a zip file: its size and times stand for its contents
            found = [("", None)]
        except OSError:
            continue
        for name, item in found:
            paths = [root] if item is None else [item.path, os.path.join(item.path, "entry_points.txt")]
            for path in paths:
                try:
                    stat = item.stat() if item is not None and path == item.path else os.stat(path)
                except OSError:
                    continue
                newest = max(newest, stat.st_mtime_ns)
                parts.append(f"\0{path}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_size}")
    return "".join(parts), time.time_ns() - newest > _SETTLE_NS


def _reads_sys_path(finder) -> bool:
    """Whether ``finder`` finds distributions only on ``sys.path``: the standard path finder, or
    the ``importlib_metadata`` backport's, which some packages add to ``sys.meta_path``."""
    kind = finder if isinstance(finder, type) else type(finder)
    return finder is PathFinder or (kind.__name__ == "MetadataPathFinder" and kind.__module__.split(".")[0] in ("importlib", "importlib_metadata"))
