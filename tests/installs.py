"""Third-party packages built and installed once per test session, shared by xdist workers.

Each package of ``tests/plugins`` (or any source tree a test names) is built into a wheel
by its own PEP 517 backend, and each set of packages a test needs is installed with
``uv pip install --no-deps --no-index --target`` (``pip install`` where uv is missing)
into a folder of its own. Both are keyed by the content of the sources, kept in the
session's temp root (shared by all xdist workers of one run, gone with it) and made under
a file lock: the first worker that needs a package builds it and the others reuse it.
Nothing is cached across runs: every run builds and installs what it tests.

The wheels are built by one Python process calling each package's declared build backend
(``build_wheel``), as pip and ``build`` do one hook process at a time, for the packages
asked for and the package trees beside them (``tests/plugins/*`` at once); the installer
then installs the wheels, offline and without resolving dependencies. That keeps what the
tests prove (real wheels, real ``.dist-info`` entry points found by ``importlib.metadata``)
at a fraction of the cost of one ``pip install`` of a source tree per package and per worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

_SKIP = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "*.pyc")

# Runs in a fresh process: builds each source tree given with the backend it declares.
_BUILD = r"""
import contextlib, importlib, os, sys
out = sys.argv[1]
for backend, source in zip(sys.argv[2::2], sys.argv[3::2]):
    os.chdir(source)
    module, _, obj = backend.partition(":")
    hooks = importlib.import_module(module)
    for attr in filter(None, obj.split(".")):
        hooks = getattr(hooks, attr)
    with contextlib.redirect_stdout(sys.stderr):  # the backend's chatter
        name = hooks.build_wheel(out)
    print(name, flush=True)
"""


def content_key(sources: Sequence[Path]) -> str:
    """A short hash of the files of ``sources`` (paths and bytes; build output ignored)."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.name.encode() + b"\0")
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            relative = path.relative_to(source)
            if {"build", "dist", "__pycache__"} & set(relative.parts) or any(part.endswith(".egg-info") for part in relative.parts):
                continue
            digest.update(str(relative.as_posix()).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temp folder all xdist workers of this run share (the base temp without xdist)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    shared = root / "shared-installs"
    shared.mkdir(exist_ok=True)
    return shared


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes, held for the ``with`` block."""
    with open(path, "a+b") as handle:
        if os.name == "nt":  # pragma: no cover - the suite runs on POSIX in CI
            import msvcrt

            handle.seek(0)
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], what: str, **kwargs) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{what} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _can_build_without_isolation() -> bool:
    """Whether setuptools here can build a wheel by itself (bdist_wheel: setuptools>=70.1 or `wheel`)."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(p) if p.isdigit() else 0 for p in (setuptools.__version__.split(".") + ["0"])[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _backend(source: Path) -> str:
    found = re.search(r'^build-backend\s*=\s*"([^"]+)"', (source / "pyproject.toml").read_text("utf-8"), re.MULTILINE)
    assert found, f"{source}/pyproject.toml names no build-backend"
    return found.group(1)


def _siblings(sources: Sequence[Path]) -> list[Path]:
    """``sources`` and the other package trees beside them, which tests of the same run are likely to want."""
    found = list(sources)
    for parent in dict.fromkeys(source.parent for source in sources):
        found += sorted(p for p in parent.iterdir() if (p / "pyproject.toml").is_file() and p not in found)
    return found


def _wheels(sources: Sequence[Path], root: Path) -> list[Path]:
    """One wheel per source tree, built at most once per run (under the caller's lock).

    The trees beside ``sources`` are built in the same process: one backend start-up for all.
    """
    wheels: dict[Path, Path] = {}
    missing = []
    for source in _siblings(sources):
        folder = root / "wheels" / f"{source.name}-{content_key([source])}"
        built = list(folder.glob("*.whl"))
        if built:
            wheels[source] = built[0]
        else:
            missing.append((source, folder))
    if missing:
        copies = []
        for source, folder in missing:
            copy = folder / "src"
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(source, copy, ignore=_SKIP)
            copies.append(copy)
        out = root / "wheels" / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        if _can_build_without_isolation():
            # Every backend in one process: each package's own build backend, no isolation.
            args = [arg for copy in copies for arg in (_backend(copy), str(copy))]
            names = _run([sys.executable, "-c", _BUILD, str(out), *args], "building wheels of " + ", ".join(map(str, copies))).split()
        else:
            _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
                  "--wheel-dir", str(out), *map(str, copies)], "pip wheel")
            names = [p.name for p in sorted(out.glob("*.whl"), key=lambda p: p.stat().st_mtime)]
        assert len(names) == len(copies), names
        for (source, folder), name in zip(missing, names):
            wheels[source] = Path(shutil.move(str(out / name), str(folder / name)))
    return [wheels[source] for source in sources]


def install(tmp_path_factory: pytest.TempPathFactory, *packages: Path) -> Path:
    """A folder where ``packages`` (source trees) are pip-installed; put it on ``sys.path``.

    The same packages give the same folder for every worker of the run: built and
    installed by the first that asks, reused by the others.
    """
    root = session_root(tmp_path_factory)
    target = root / "sites" / ("+".join(p.name for p in packages) + "-" + content_key(packages))
    with file_lock(root / ".lock"):
        if not (target / ".complete").exists():
            wheels = _wheels(packages, root)
            shutil.rmtree(target, ignore_errors=True)
            _run([*installer(root), "--quiet", "--no-deps", "--no-index", "--target", str(target), *map(str, wheels)],
                 f"installing {[w.name for w in wheels]}")
            (target / ".complete").write_text("", "utf-8")
    return target


def installer(root: Path, python: Path | str = sys.executable) -> list[str]:
    """``uv pip install`` into ``python``'s environment where uv is installed (a test extra), else ``pip``.

    Both install a wheel the same way (files, ``.dist-info`` with its entry points and
    RECORD, console scripts); uv starts in a tenth of pip's time, and these installs run
    under the lock that every test needing a package waits for. uv's cache is a folder of
    ``root`` (the run's shared temp folder, see :func:`session_root`), so nothing outlives
    the run; within it, each uv after the first finds what it learnt of the interpreter there
    instead of starting it again to ask. The examples (tests/test_examples.py) are installed
    with pip, as their README says; the project's wheel (tests/test_wheel.py) with uv too.
    """
    try:
        import uv
    except ImportError:
        return [sys.executable, "-m", "pip", "--python", str(python), "install", "--disable-pip-version-check"]
    return [uv.find_uv_bin(), "pip", "install", "--cache-dir", str(root / "uv-cache"), "--python", str(python)]
