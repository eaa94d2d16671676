"""Loading and routing cost of the plugin registry, side by side in one run.

One command (after ``pip install -e .``)::

    python bench/bench_registry.py                 # about two minutes on a 2-core machine
    python bench/bench_registry.py --rounds 5 --calls 1000

1. Cold start. ``connector plugins --json`` in a fresh interpreter against
   ``python -c "import requests, jsonschema, pluggy, attrs"`` (its dependencies), interleaved,
   ``--starts`` runs each; median wall times and their ratio (target <= 1.2x). Shown with the
   content-keyed manifest cache warm (every start after the first; see
   ``connector_core/cache.py``) and, for information, switched off (every check redone).

2. ``Engine()`` with N synthetic capability plugins of one connector (N = 10, 100, 1000),
   each an entry point of a generated distribution with its own manifest file, in a fresh
   interpreter, cache off (every manifest checked) and warm. Reported: the time of
   ``Engine()`` and the cost per plugin (target: under 1 s at 1000 and flat per plugin).

3. Routing. The time to call one capability's hook through its caller with 10 and 1000
   plugins loaded, against pluggy's ``subset_hook_caller(remove_plugins=others)`` (which
   filters every implementation on every call).

4. Steady-state ``getAccount`` through a reused connection against a hand-written
   ``requests.Session`` GET with the same kind of token (fetched once), the mParticle
   sandbox in a child process. ``--rounds`` interleaved rounds (default 5) of ``--calls``
   calls each (default 1000); per round the ratio of medians; reported: the median of
   the round ratios (target <= 1.0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench_deps import compile_sources

DEPS = "import requests, jsonschema, pluggy, attrs"
CONNECTOR_SCRIPT = str(Path(sys.executable).with_name("connector"))


def _wall(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def bench_cold_start(starts: int) -> dict:
    compile_sources()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_") and k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as cache:
        warm = {**base, "CONNECTOR_CORE_CACHE_DIR": cache}
        off = {**base, "CONNECTOR_CORE_CACHE_DIR": "off"}
        variants = [
            ("deps", [sys.executable, "-c", DEPS], base),
            ("plugins (cache warm)", [CONNECTOR_SCRIPT, "plugins", "--json"], warm),
            ("plugins (cache off)", [CONNECTOR_SCRIPT, "plugins", "--json"], off),
        ]
        for _, command, env in variants:  # warm the OS file cache and the manifest cache
            _wall(command, env)
        times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        for i in range(starts):
            shift = i % len(variants)
            for name, command, env in variants[shift:] + variants[:shift]:
                times[name].append(_wall(command, env))
    medians = {name: statistics.median(v) * 1000 for name, v in times.items()}
    print(f"\n1. Cold start, {starts} runs each, interleaved (median wall time)")
    print(f"   {'python -c ' + repr(DEPS):<58}{medians['deps']:>8.0f} ms")
    for name in ("plugins (cache warm)", "plugins (cache off)"):
        ratio = medians[name] / medians["deps"]
        target = "  target <= 1.2x: " + ("met" if ratio <= 1.2 else "MISSED") if "warm" in name else ""
        print(f"   {'connector ' + name:<58}{medians[name]:>8.0f} ms  {ratio:.2f}x{target}")
    return medians


def make_synthetic(root: Path, n: int) -> Path:
    """A site folder with one distribution: connector ``synth`` and ``n`` capability plugins."""
    site = root / f"site-{n}"
    package = site / "synth_plugins"
    (package / "manifests").mkdir(parents=True)
    connector = {
        "manifestVersion": 1, "id": "synth", "title": "Synthetic",
        "config": {"type": "object", "properties": {"apiUrl": {"type": "string"}, "token": {"type": "string", "secret": True}}},
        "endpoints": {"api": {"baseUrl": "https://synth.invalid", "overrideField": "apiUrl"}},
    }
    (package / "manifests" / "synth.json").write_text(json.dumps(connector))
    (package / "__init__.py").write_text("from importlib import resources\nCONNECTOR = resources.files(__name__) / 'manifests' / 'synth.json'\n")
    lines = []
    for i in range(n):
        cap = f"op{i:04d}"
        manifest = {
            "manifestVersion": 1, "id": cap, "connector": "synth", "title": f"Operation {i}",
            "description": "A synthetic capability.", "effect": "read", "retrySafe": True, "endpoints": ["api"],
            "inputSchema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "pattern": "^[a-z]+$(?!\\n)"}}},
            "outputSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
            "examples": [{"input": {"name": "a"}, "output": {"ok": True}}],
        }
        (package / "manifests" / f"{cap}.json").write_text(json.dumps(manifest))
        (package / f"{cap}.py").write_text(textwrap.dedent(f"""\
            from importlib import resources
            from connector_core import hookimpl
            MANIFEST = resources.files("synth_plugins") / "manifests" / "{cap}.json"
            @hookimpl
            def execute(ctx, properties):
                return {{"ok": True}}
            """))
        lines.append(f"{cap} = synth_plugins.{cap}")
    info = site / "synth_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: synth-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[connector_core.connectors]\nsynth = synth_plugins:CONNECTOR\n[connector_core]\n" + "\n".join(lines) + "\n"
    )
    return site


_TIME_ENGINE = """
import time, connector_core
start = time.perf_counter()
engine = connector_core.Engine(strict=True)
print(time.perf_counter() - start, len(engine.capabilities))
"""


def bench_many_plugins(repeat: int) -> dict:
    out = {}
    compile_sources()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("\n2. Engine() with N synthetic capability plugins of one connector (fresh interpreter, median)")
        print(f"   {'N':>6}{'cache off s':>14}{'per plugin ms':>15}{'cache warm s':>14}{'per plugin ms':>15}")
        for n in (10, 100, 1000):
            site = make_synthetic(root, n)
            cache = root / f"cache-{n}"
            row = {}
            for mode, cache_dir in (("off", "off"), ("warm", str(cache))):
                env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_") and k != "PYTHONDONTWRITEBYTECODE"}
                env.update(PYTHONPATH=str(site), CONNECTOR_CORE_CACHE_DIR=cache_dir)
                samples = []
                for _ in range(repeat + (1 if mode == "warm" else 0)):
                    done = subprocess.run([sys.executable, "-c", _TIME_ENGINE], env=env, capture_output=True, text=True, check=True)
                    seconds, count = done.stdout.split()
                    assert int(count) >= n, done.stdout
                    samples.append(float(seconds))
                if mode == "warm":
                    samples = samples[1:]  # the first run filled the cache
                row[mode] = statistics.median(samples)
            out[n] = row
            print(f"   {n:>6}{row['off']:>14.3f}{row['off'] / n * 1000:>15.3f}{row['warm']:>14.3f}{row['warm'] / n * 1000:>15.3f}")
    slope_small = (out[100]["off"] - out[10]["off"]) / 90 * 1000
    slope_large = (out[1000]["off"] - out[100]["off"]) / 900 * 1000
    warm_small = (out[100]["warm"] - out[10]["warm"]) / 90 * 1000
    warm_large = (out[1000]["warm"] - out[100]["warm"]) / 900 * 1000
    verdict = "met" if out[1000]["warm"] < 1.0 else "MISSED"
    print(f"   marginal cost per plugin, cache off: {slope_small:.3f} ms from 10 to 100, {slope_large:.3f} ms from 100 to 1000")
    print(f"   marginal cost per plugin, cache warm: {warm_small:.3f} ms from 10 to 100, {warm_large:.3f} ms from 100 to 1000")
    print(f"   target Engine() < 1 s with 1000 plugins (cache warm, as after a first start): {verdict}")
    return out


def bench_routing() -> None:
    from connector_core import get_plugin_manager, hookimpl
    from connector_core.registry import build_registry

    class Plugin:
        def __init__(self, i: int) -> None:
            self.MANIFEST = {
                "manifestVersion": 1, "id": f"op{i}", "connector": "synth", "title": "x", "description": "x",
                "effect": "read", "retrySafe": True, "inputSchema": {"type": "object"}, "outputSchema": {"type": "object"},
            }
            self.CONNECTOR_MANIFEST = {"manifestVersion": 1, "id": "synth", "title": "S", "config": {"type": "object", "properties": {}},
                                       "endpoints": {"api": {"baseUrl": "https://synth.invalid"}}}

        @hookimpl
        def execute(self, ctx, properties):
            return properties

    print("\n3. Routing one call to its plugin (median of 20 x 2000 calls, microseconds per call)")
    print(f"   {'plugins':>8}{'CapabilityCaller':>18}{'subset_hook_caller':>20}")
    for n in (10, 1000):
        pm = get_plugin_manager()
        plugins = [Plugin(i) for i in range(n)]
        for i, plugin in enumerate(plugins):
            pm.register(plugin, name=f"op{i}")
        registry = build_registry(pm)
        caller = registry.get("synth.op0").caller
        subset = pm.subset_hook_caller("execute", remove_plugins=plugins[1:])
        results = {}
        for name, fn in (("ours", caller), ("subset", subset)):
            samples = []
            for _ in range(20):
                start = time.perf_counter()
                for _ in range(2000):
                    fn(ctx=None, properties={})
                samples.append((time.perf_counter() - start) / 2000 * 1e6)
            results[name] = statistics.median(samples)
        print(f"   {n:>8}{results['ours']:>18.2f}{results['subset']:>20.2f}")


def bench_get_account(rounds: int, calls: int) -> float:
    import requests
    from connector_mparticle.sandbox import SandboxProcess

    from connector_core import Engine

    account = "1001"
    with SandboxProcess() as sandbox, Engine() as engine:
        config = sandbox.config
        connection = engine.connect(config)
        session = requests.Session()
        token = session.post(config["authUrl"], json={
            "client_id": config["clientID"], "client_secret": config["clientSecret"],
            "audience": "https://api.mparticle.com", "grant_type": "client_credentials"}, timeout=30).json()["access_token"]
        url = f"{config['platformUrl']}/v1/accounts/{account}"
        bearer = {"Authorization": f"Bearer {token}"}

        def plain():
            response = session.get(url, params={"accountId": account}, headers=bearer, timeout=30)
            response.raise_for_status()
            return response.json()["data"][0]

        def connector():
            return connection.execute("getAccount", {"accountId": account}).output["account"]

        assert plain()["id"] == connector()["id"] == int(account)
        for _ in range(200):
            plain()
            connector()
        ratios = []
        print(f"\n4. Steady-state getAccount, {rounds} interleaved rounds of {calls} calls each (sandbox in a child process)")
        print(f"   {'round':>6}{'connector ms':>14}{'requests ms':>13}{'ratio':>8}")
        for r in range(rounds):
            times: dict[str, list[float]] = {"connector": [], "plain": []}
            order = [("connector", connector), ("plain", plain)]
            for block in range(calls // 50):
                for name, fn in (order if (block + r) % 2 == 0 else order[::-1]):
                    bucket = times[name]
                    for _ in range(50):
                        start = time.perf_counter()
                        fn()
                        bucket.append(time.perf_counter() - start)
            ours, theirs = statistics.median(times["connector"]) * 1000, statistics.median(times["plain"]) * 1000
            ratios.append(ours / theirs)
            print(f"   {r + 1:>6}{ours:>14.3f}{theirs:>13.3f}{ours / theirs:>8.3f}")
        connection.close()
    ratio = statistics.median(ratios)
    print(f"   median ratio {ratio:.3f}  target <= 1.0: {'met' if ratio <= 1.0 else 'MISSED'}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=15, help="cold starts per variant (default 15)")
    parser.add_argument("--repeat", type=int, default=3, help="Engine() runs per N (default 3)")
    parser.add_argument("--rounds", type=int, default=5, help="getAccount rounds (default 5)")
    parser.add_argument("--calls", type=int, default=1000, help="getAccount calls per round and variant (default 1000)")
    parser.add_argument("--only", choices=["cold", "many", "routing", "get"], help="run one part")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} CPU(s)")
    if args.only in (None, "cold"):
        bench_cold_start(args.starts)
    if args.only in (None, "many"):
        bench_many_plugins(args.repeat)
    if args.only in (None, "routing"):
        bench_routing()
    if args.only in (None, "get"):
        bench_get_account(args.rounds, args.calls)


if __name__ == "__main__":
    main()
