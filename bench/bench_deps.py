"""Benchmark-only dependencies (bench/requirements.txt), installed on first use."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REQUIREMENTS = Path(__file__).with_name("requirements.txt")


def import_or_install(module: str) -> ModuleType | None:
    """Import ``module``; when it is missing, install bench/requirements.txt once and retry.

    None when it still cannot be imported (no registry reachable, no wheel for this platform).
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        print(f"installing the bench-only dependencies of {REQUIREMENTS.name} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=False)
        importlib.invalidate_caches()
        try:
            return importlib.import_module(module)
        except ImportError:
            return None


def compile_sources() -> None:
    """Byte-compile the framework as ``pip install`` does; an editable checkout (and a
    PYTHONDONTWRITEBYTECODE environment) would otherwise compile it on every start, while the
    dependencies it is compared with were compiled at install time."""
    import connector_core
    import connector_mparticle

    folders = [str(Path(m.__file__).parent) for m in (connector_core, connector_mparticle)]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *folders], check=False, stdout=subprocess.DEVNULL)
