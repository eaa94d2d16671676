"""Shared fixtures of the test suite (generic: servers, clocks, plugin managers, installs, the CLI).

Connector-specific fixtures live in the test files that need them.
"""

from __future__ import annotations

import gc
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from httpserver import TestServer
from installs import install
from shared_folder import pytest_runtest_makereport  # noqa: F401  (the ../shared skip rule)

from connector_core import get_plugin_manager
from connector_core.cli import main

TESTS = Path(__file__).parent

# The suite starts many Python processes that import this project (the CLI, the sandbox,
# servers, builds, the xdist workers themselves). A default Python caches their bytecode; an
# environment with PYTHONDONTWRITEBYTECODE set (some CI machines have it) makes each of them
# compile the project again, about 0.15 s of CPU apiece (two runs of the subprocess-heavy
# files: 25.5 and 23.1 s of CPU with it set, 21.6 and 21.8 s without). The suite lets them
# cache, as Python does by default; what is tested does not change.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False
PLUGINS = TESTS / "plugins"
CONNECTOR = Path(sys.executable).parent / "connector"


# The files that take longest, slowest first (CPU seconds, child processes included, measured
# with `--durations`). Under `--dist loadfile` a worker takes the next file when it is done
# with one, in collection order (see pytest_configure): starting with these keeps a slow
# file from starting last and leaving the other worker idle at the end. A file missing here
# only runs later; the order decides no outcome.
SLOWEST_FIRST = (
    "test_examples.py",
    "test_backfill_dask.py",
    "test_mparticle_exactly_once_faults.py",
    "test_fast_check.py",
    "test_wheel.py",
    "test_ownership.py",
    "test_cli.py",
    "test_serve_openapi.py",
    "test_serve_console.py",
    "test_mparticle_truth.py",
    "test_sandbox.py",
    "test_serve.py",
    "test_backfill_workers.py",
    "test_mparticle_exactly_once.py",
    "test_fuzz.py",
    "test_docs.py",
    "test_data_faults.py",
    "test_backfill.py",
    "test_sandbox_bulk.py",
)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: two workers per core (xdist's own count otherwise).

    Many tests mostly wait: for a sandbox or server process to start, for a subprocess (the
    CLI, pip, a build), for a browser, for a server that answers late on purpose. With one
    worker per core those waits leave a core idle; other workers run tests in them. On two
    cores, back to back: 81 to 85 s with two workers, 65 s with three, 60 s with four, for
    the same CPU. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") or config.option.numprocesses != "auto":
        return None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return 2 * cores


def pytest_configure(config):
    # pytest-xdist (>= 3.8) would hand the files out by their number of tests, which starts
    # the slowest (few tests, each slow) last. Set here rather than in addopts, so that a
    # run with `-p no:xdist` (tools/mutation.py) has no unknown option.
    if getattr(config.option, "loadscopereorder", None) is not None:
        config.option.loadscopereorder = False


@pytest.hookimpl(wrapper=True)
def pytest_collection(session):
    """Collect without the cyclic garbage collector, then move what collection left (modules,
    test items: alive until the end) out of its reach.

    Collection allocates millions of objects (each worker imports every test module), which
    set off hundreds of collections that each walk the growing heap, and every full
    collection later in the run (pytest runs one at the end) walked it all again. Objects
    the tests create are collected as before.
    """
    gc.disable()
    try:
        return (yield)
    finally:
        gc.enable()
        gc.freeze()


def pytest_collection_modifyitems(config, items):
    """Run the slowest files first, each file's tests in their own order (in xdist workers,
    whose collection order the scheduler follows; one process keeps the order it was given,
    which tools/mutation.py makes cheapest first)."""
    # xdist sets a worker's `numprocesses` to None: `workerinput` is what marks a worker.
    if not hasattr(config, "workerinput"):
        return
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session", autouse=True)
def _manifest_cache(tmp_path_factory):
    """The content-keyed manifest cache lives in a temp dir, never in the user's home."""
    os.environ["CONNECTOR_CORE_CACHE_DIR"] = str(tmp_path_factory.mktemp("manifest-cache"))
    yield
    os.environ.pop("CONNECTOR_CORE_CACHE_DIR", None)


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch):
    """Tests start without the plugin-selection variables an operator may have set."""
    for name in ("CONNECTOR_CORE_LOAD_PLUGINS", "CONNECTOR_CORE_STRICT", "CONNECTOR_CONNECTIONS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pm():
    """A bare plugin manager that knows the framework's hooks."""
    return get_plugin_manager()


@pytest.fixture
def server():
    """A scripted HTTP server on 127.0.0.1 (see tests/httpserver.py)."""
    with TestServer() as srv:
        yield srv


class Sleeps(list):
    """A ``sleep`` to inject: records each wait instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


class FakeClock:
    """A monotonic clock to inject; only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """Factory: put a distribution with ``connector_core`` entry points on ``sys.path``.

    ``make(name, version, entry_points={ep_name: "module:attr"}, modules={module: source})``
    writes the modules and a ``.dist-info`` directory, as an installed package would have.
    """
    modules_made: list[str] = []

    def make(name: str, version: str = "1.0", *, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
        root = tmp_path / f"site-{name}"
        root.mkdir()
        for module, source in modules.items():
            (root / f"{module}.py").write_text(textwrap.dedent(source), "utf-8")
            modules_made.append(module)
        info = root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", "utf-8")
        lines = "".join(f"{ep} = {target}\n" for ep, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[connector_core]\n{lines}", "utf-8")
        monkeypatch.syspath_prepend(str(root))
        return root

    yield make
    for module in modules_made:
        sys.modules.pop(module, None)


# -- installed plugin packages (built and pip-installed once per run, shared by xdist workers) --


@pytest.fixture(scope="session")
def sample_site(tmp_path_factory) -> Path:
    """A directory where tests/plugins/sample_plugin is installed (put it on PYTHONPATH)."""
    return install(tmp_path_factory, PLUGINS / "sample_plugin")


@pytest.fixture(scope="session")
def broken_site(tmp_path_factory) -> Path:
    """A directory where tests/plugins/broken_plugins is installed."""
    return install(tmp_path_factory, PLUGINS / "broken_plugins")


# -- the `connector` command ----------------------------------------------------------


class CliRun:
    """The outcome of one ``connector`` run: exit code, stdout and stderr."""

    def __init__(self, args: list[str], code: int, stdout: str, stderr: str) -> None:
        self.args = args
        self.code = code
        self.stdout = stdout
        self.stderr = stderr

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.stdout)

    def error(self) -> dict:
        """The JSON error object the CLI printed last on stderr (after any log lines)."""
        lines = self.stderr.splitlines()
        starts = [i for i, line in enumerate(lines) if line == "{"]
        assert starts, f"no JSON error on stderr:\n{self.stderr}"
        return json.loads("\n".join(lines[starts[-1]:]))

    def __repr__(self) -> str:
        return f"CliRun({self.args}, code={self.code}, stdout={self.stdout[:2000]!r}, stderr={self.stderr[:2000]!r})"


def _check_traceback(result: CliRun, allow_traceback: bool) -> CliRun:
    if not allow_traceback:
        assert "Traceback" not in result.stderr, result
    return result


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run ``connector ARGS`` in this process: ``cli(*args, sites=[dir], env={}, input=text, cwd=dir)``.

    ``connector_core.cli.main(argv, stdin=, stdout=, stderr=)`` runs with the ``sites``
    prepended to ``sys.path`` (their entry points are discovered as in a fresh process),
    the ``CONNECTOR_*`` variables of the calling environment dropped, ``env`` set and the
    working directory ``cwd`` (default: the test's temp dir); all of it is undone after
    the run. Every run is checked for a Python traceback unless ``allow_traceback``
    (``--verbose`` prints a plugin's own traceback on purpose). ``cli_process`` runs the
    installed script instead, for what only a real process shows.
    """

    def run(
        *args: str,
        sites=(),
        env: dict[str, str] | None = None,
        input: str | None = None,
        cwd=None,
        allow_traceback: bool = False,
    ) -> CliRun:
        stdout, stderr = io.StringIO(), io.StringIO()
        with monkeypatch.context() as patch:
            for name in os.environ:
                if name.startswith("CONNECTOR_"):
                    patch.delenv(name)
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            for site in reversed(list(sites)):
                patch.syspath_prepend(str(site))
            patch.chdir(cwd or tmp_path)
            code = main(list(args), stdin=io.StringIO(input or ""), stdout=stdout, stderr=stderr)
        return _check_traceback(CliRun(list(args), code, stdout.getvalue(), stderr.getvalue()), allow_traceback)

    return run


@pytest.fixture
def cli_process(tmp_path):
    """Run the installed ``connector`` script as a subprocess (same call as ``cli``).

    Only the ``sites`` given are on PYTHONPATH; the ``CONNECTOR_*`` variables of the
    calling environment are dropped. For what only a real process shows: the console
    script itself, exit codes as the shell sees them, signals.
    """
    assert CONNECTOR.exists(), f"the connector script is not installed next to {sys.executable}"

    def run(
        *args: str,
        sites=(),
        env: dict[str, str] | None = None,
        input: str | None = None,
        cwd=None,
        allow_traceback: bool = False,
    ) -> CliRun:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_") and k != "PYTHONPATH"}
        environ["CONNECTOR_CORE_CACHE_DIR"] = os.environ.get("CONNECTOR_CORE_CACHE_DIR", "off")
        environ["PYTHONPATH"] = os.pathsep.join(str(s) for s in sites)
        environ["PYTHONIOENCODING"] = "utf-8"
        environ.update(env or {})
        done = subprocess.run(
            [str(CONNECTOR), *args],
            capture_output=True,
            text=True,
            input=input,
            env=environ,
            cwd=cwd or tmp_path,
            timeout=60,
        )
        return _check_traceback(CliRun(list(args), done.returncode, done.stdout, done.stderr), allow_traceback)

    return run


@pytest.fixture
def write_json(tmp_path):
    """Factory: write data as a JSON file in the test's temp dir and return its path."""

    def write(name: str, data: Any) -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else json.dumps(data), "utf-8")
        return path

    return write
