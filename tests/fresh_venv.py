"""Fresh virtual environments for installing packages the way their READMEs say, cheaply.

A user's venv after ``pip install -e .`` in this checkout holds connector-framework and
its requirements. :class:`Venv` makes one without copying or downloading anything: a venv
without pip, whose one ``.pth`` file adds a folder of links to exactly those
distributions (found from the installed metadata, requirements followed), plus pytest,
pip, setuptools and wheel. The framework's own install (editable or not) is linked as it
is installed here, so it is the checkout's code. Other packages of the test environment
(hypothesis, schemathesis, their pytest plugins) are not visible.
"""

from __future__ import annotations

import os
import re
import subprocess
import sysconfig
import threading
import venv
from importlib import metadata
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[1]
BASE = ("connector-framework", "pytest", "pip", "setuptools", "wheel")
_LOCK = threading.Lock()
_LINKED: dict[str, Path] = {}


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names=BASE) -> list[metadata.Distribution]:
    """The installed distributions ``names`` and everything they require (no extras).

    Looked up in this environment's site-packages only: the checkout's own
    ``*.egg-info`` (next to the sources, on ``sys.path`` in a test run) is no install.
    """
    from packaging.requirements import Requirement  # here: every xdist worker imports this module to collect

    paths = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    found: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = _name(todo.pop())
        if name in found:
            continue
        dist = next(iter(metadata.distributions(name=name, path=paths)), None)
        if dist is None:
            continue  # a requirement for another Python version or platform
        found[name] = dist
        for text in dist.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(found.values())


def linked_site(folder: Path) -> Path:
    """A folder of links to the files of :func:`closure` (made once per process)."""
    with _LOCK:
        if "site" in _LINKED:
            return _LINKED["site"]
        folder.mkdir(parents=True, exist_ok=True)
        for dist in closure():
            base = Path(dist.locate_file(""))
            tops = {f.parts[0] for f in dist.files or () if f.parts and f.parts[0] not in ("..", "__pycache__")}
            for top in tops:
                if (base / top).exists() and not (folder / top).exists():
                    (folder / top).symlink_to(base / top)
        _LINKED["site"] = folder
        return folder


@attrs.frozen
class Done:
    """A finished command: exit code and output."""

    args: list
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return f"$ {' '.join(map(str, self.args))}\n{self.stdout}\n{self.stderr}"


@attrs.frozen
class Venv:
    """A fresh venv that sees the framework, pytest and the build tools, and nothing else."""

    path: Path
    home: Path

    @classmethod
    def create(cls, path: Path) -> Venv:
        venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(path)
        site = linked_site(path.parent / "linked-site")
        purelib = Path(sysconfig.get_path("purelib", vars={"base": str(path), "platbase": str(path)}))
        # `import` lines of a .pth run: addsitedir also runs the .pth files among the links
        # (an editable install's path hook).
        (purelib / "framework.pth").write_text(f"import site; site.addsitedir({str(site)!r})\n", "utf-8")
        home = path.parent / f"{path.name}-home"
        home.mkdir()
        return cls(path, home)

    @property
    def python(self) -> Path:
        return self.path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    def env(self) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "PIP_", "PYTEST_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        environ.update(
            PIP_CONFIG_FILE=os.devnull,  # the machine's pip settings (indexes) play no part
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            CONNECTOR_CORE_CACHE_DIR=str(self.home / "cache"),
            HOME=str(self.home),
            PYTHONDONTWRITEBYTECODE="1",
        )
        return environ

    def run(self, *args: str, cwd: Path, timeout: float = 300) -> Done:
        command = [str(self.python), *args]
        done = subprocess.run(command, cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout)
        return Done(command, done.returncode, done.stdout, done.stderr)

    def pip_install(self, *args: str, cwd: Path) -> Done:
        """``pip install ARGS``, offline: requirements must be met by what is installed."""
        return self.run("-m", "pip", "install", "--quiet", "--no-index", "--no-build-isolation", *args, cwd=cwd)

    def connector(self, *args: str, cwd: Path) -> Done:
        """The ``connector`` command (what its console script runs: ``connector_core.cli:main``)."""
        return self.run("-c", "import sys; from connector_core.cli import main; sys.exit(main())", *args, cwd=cwd)
