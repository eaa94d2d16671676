"""Mutation testing of connector_core and the mParticle capabilities with cosmic-ray.

    python -m pip install -e '.[test,mutation]'
    nice -n 19 python tools/mutation.py --sample-size 80   # every module below, a seeded sample of each
    python tools/mutation.py redact http        # some of them, every mutant
    python tools/mutation.py --rerun-survivors  # after new tests: the unexplained survivors again
    python tools/mutation.py --report-only      # the report from the sessions as they stand
    python tools/mutation.py --list             # the modules and the tests each one runs

Each module's mutants run only the tests that exercise the mutated line: a coverage run
of the module's tests (``MODULES``) records which test executed which line and how long
each test took, and each mutant runs those tests, cheapest first, with ``-x`` (a killed
mutant usually costs one or two short tests), without the pytest plugins a run does not
need, under a time limit of 30 s plus three times what the same tests took unmutated (a
mutant that hangs counts as killed). A mutant of a function's signature (a default value,
a decorator) runs the tests that ran the function's body; a line only run at import time,
in a thread other than the test's or in a subprocess runs all of the module's tests.
Results go to ``.mutation/`` (one cosmic-ray session per module, kept, so an interrupted
run resumes with ``--resume``; each mutant's seconds, tests and first failing test in
``MODULE.runs.jsonl``), the summary to ``tools/mutation-report.md`` (score per module, the
commit measured, seconds per mutant, and every surviving mutant with its diff, marked where
``tools/mutation-accepted.json`` explains why it is equivalent or accepted) and the score
table to ``docs/development.md``.

cosmic-ray mutates the source files in place and puts them back after each mutant; run
this in a checkout you are not editing (a clone with its own editable install: the tests
import the installed package), this script refuses to start on a modified module and
restores the original bytes if it is interrupted. It is not part of the default test run.

The operators: every cosmic-ray core operator, with the replacement sets cut to a
sufficient subset (one replacement for ``==``, ``!=``, ``in``, ``is``, ``+``, ``-``,
``*``, ``/``, ``**``: its opposite; two for each ordering comparison: its boundary and its
negation), so ten mutants of one ``+`` that fail the same tests become one. Left out: the
mutants of ``|`` (here it is almost only the ``X | None`` of annotations, never evaluated
under ``from __future__ import annotations``) and the random variable inserter/replacer.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"
REPORT = ROOT / "tools" / "mutation-report.md"
ACCEPTED = ROOT / "tools" / "mutation-accepted.json"
DOCS = ROOT / "docs" / "development.md"  # its score table, between the mutation-scores markers, is written here too

# A mutant's run: stop at the first failure, no cache, and none of the plugins a mutant's
# run does not use (hypothesis's plugin alone costs a second of imports per run; tests that
# use hypothesis import it themselves).
NO_PLUGINS = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:xdist.looponfail",
              "-p", "no:pytest_cov"]
# Tests whose outcome depends on thread timing on a loaded machine (a campaign loads it): a
# flaky test would kill mutants it does not detect, or stop a module's baseline run.
# Tests whose outcome depends on thread timing, left out of every mutant's run (node ids, each
# with why). test_concurrent_requests_report_each_batch_exactly was here until it stopped
# assuming some request is always left unsent (f389d05).
FLAKY: list[str] = []
DESELECT = [f"--deselect={nodeid}" for nodeid in FLAKY]
PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "--no-header", *NO_PLUGINS, *DESELECT]

# module name -> (source file, tests that exercise it (files or node ids), fastest and most direct first)
MODULES: dict[str, tuple[str, list[str]]] = {
    # test_secrets: every spelling of a secret (JSON in JSON, ascii(), reprs) through the CLI and the engine
    "redact": ("connector_core/redact.py", ["tests/test_redact.py", "tests/test_secrets.py", "tests/test_engine.py"]),
    "config": ("connector_core/config.py", ["tests/test_engine.py", "tests/test_cli.py"]),
    "errors": ("connector_core/errors.py", ["tests/test_http.py", "tests/test_engine.py", "tests/test_cli.py"]),
    "validation": ("connector_core/validation.py", ["tests/test_data_faults.py", "tests/test_fast_check.py", "tests/test_schema_lint.py", "tests/test_manifest.py", "tests/test_engine.py"]),
    "common": ("capabilities/common.py", ["tests/test_mparticle_answers.py", "tests/test_mparticle.py"]),
    "upload_event_batch": ("capabilities/upload_event_batch.py", ["tests/test_upload_text.py", "tests/test_mparticle_uploads.py", "tests/test_mparticle.py",
                                                                "tests/test_mparticle_exactly_once.py", "tests/test_upload_data_check.py"]),
    # uploadEventBatch's requests, fates and report (the capability module is the thin part); the
    # backfill's summed reports live there too since the one-report change, hence test_backfill;
    # test_upload_text: the reports of a large text jsonBody sent by the backfill engine
    "upload_report": ("capabilities/upload_report.py", ["tests/test_upload_reports.py", "tests/test_upload_text.py", "tests/test_mparticle_uploads.py",
                                                      "tests/test_mparticle_exactly_once.py", "tests/test_mparticle.py", "tests/test_backfill.py",
                                                      "tests/test_mparticle_exactly_once_faults.py"]),
    # test_diagnostics: what loading tells authors (unmarked hooks), the manifest and entry-point caches;
    # test_auth_schemes: a plugin's bogus or taken auth scheme rejects it
    "registry": ("connector_core/registry.py", ["tests/test_registry.py", "tests/test_diagnostics.py", "tests/test_engine.py",
                                                "tests/test_entry_points.py", "tests/test_ownership.py", "tests/test_auth_schemes.py"]),
    "manifest": ("connector_core/manifest.py", ["tests/test_manifest.py", "tests/test_registry.py"]),
    # the two tests of other files that run a cli function: `connector docs` (writing, --check) and
    # connect_from_args (the core's --connection handling, used by the plugin command upload-events)
    "cli": ("connector_core/cli.py", ["tests/test_cli.py", "tests/test_mparticle_cli.py", "tests/test_entry_points.py",
                                      "tests/test_docs.py::test_connector_docs_writes_checks_and_filters",
                                      "tests/test_backfill.py::test_upload_events_with_a_named_connection_needs_upload_allowed",
                                      "tests/test_backfill.py::test_upload_events_in_process_with_text_streams"]),
    # test_secrets' trimming test: how much of an untrusted upstream body an error keeps
    "engine": ("connector_core/engine.py", ["tests/test_engine.py", "tests/test_secrets.py::test_untrusted_upstream_bodies_are_trimmed", "tests/test_http.py", "tests/test_registry.py", "tests/test_mparticle.py"]),
    # test_mparticle: endpoints whose base URL a config field chooses (the pod), which the toy connector has not
    # test_proxies: the environment's proxies, through a loopback proxy; test_calls_end: the call deadline
    "http": ("connector_core/http.py", ["tests/test_http.py", "tests/test_engine.py", "tests/test_mparticle.py", "tests/test_proxies.py",
                                       "tests/test_calls_end.py"]),
    "batches": ("capabilities/batches.py", ["tests/test_batches_fast_pass.py", "tests/test_batches.py", "tests/test_mparticle_uploads.py",
                                          "tests/test_upload_data_check.py"]),
}

# Functions whose work is done once per process and kept (batches compiles each event type's
# check on its first use): coverage credits their lines to whichever test came first, so a
# mutant inside one runs all of the module's tests, as a line run at import does.
RUN_ONCE: dict[str, tuple[str, ...]] = {"batches": ("_event_check_source", "_event_check")}

KEPT_BINARY = "Add_Sub|Sub_Add|Mul_Div|Div_Mul|Pow_Mul|FloorDiv_Div|Mod_FloorDiv"
KEPT_COMPARISON = "Eq_NotEq|NotEq_Eq|In_NotIn|NotIn_In|Is_IsNot|IsNot_Is|Lt_LtE|Lt_GtE|LtE_Lt|LtE_Gt|Gt_GtE|Gt_LtE|GtE_Gt|GtE_Lt"
EXCLUDED_OPERATORS = [
    rf"core/ReplaceBinaryOperator_(?!({KEPT_BINARY})$)",
    rf"core/ReplaceComparisonOperator_(?!({KEPT_COMPARISON})$)",
    r"core/Variable(Inserter|Replacer)$",
]


def _config(name: str, source: str, tests: list[str], timeout: float) -> Path:
    command = " ".join([sys.executable, str(Path(__file__).resolve()), "--run-tests", name, "--timeout", str(timeout)])
    excluded = ", ".join(json.dumps(pattern) for pattern in EXCLUDED_OPERATORS)
    text = f"""[cosmic-ray]
module-path = {json.dumps(source)}
timeout = {timeout + 60}
excluded-modules = []
test-command = {json.dumps(command)}

[cosmic-ray.distributor]
name = "local"

[cosmic-ray.filters.operators-filter]
exclude-operators = [{excluded}]
"""
    path = WORK / f"{name}.toml"
    path.write_text(text, "utf-8")
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def _commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return head or "unknown"


def _modified(source: str) -> bool:
    status = subprocess.run(["git", "status", "--porcelain", "--", source], cwd=ROOT, capture_output=True, text=True).stdout
    return bool(status.strip())


def _coverage_map(name: str) -> None:
    """Run the module's tests once under coverage; keep which tests ran each line of it."""
    source, tests = MODULES[name]
    data = WORK / f"{name}.coverage"
    folder = str(Path(source).parent)
    junit = WORK / f"{name}.junit.xml"
    done = subprocess.run(
        PYTEST[:3] + ["-q", *NO_PLUGINS[:-2], *DESELECT, "-p", "pytest_cov", f"--cov={folder}", "--cov-context=test", "--cov-report=",
                      f"--junitxml={junit}", *tests],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COVERAGE_FILE": str(data)},
    )
    if done.returncode != 0:
        raise SystemExit(f"the tests of {name} fail without any mutation:\n{done.stdout[-3000:]}")
    (WORK / f"{name}.durations.json").write_text(json.dumps(_durations(junit, tests)), "utf-8")
    report = WORK / f"{name}.coverage.json"
    _run(sys.executable, "-m", "coverage", "json", f"--data-file={data}", "--show-contexts", "-o", str(report))
    files = json.loads(report.read_text("utf-8"))["files"]
    (contexts,) = [f["contexts"] for path, f in files.items() if Path(path).resolve() == (ROOT / source).resolve()]
    durations = json.loads((WORK / f"{name}.durations.json").read_text("utf-8"))
    lines = {}
    for line, names in contexts.items():
        if not names or "" in names:
            lines[line] = None  # run outside any test (import time): all of the module's tests
            continue
        nodeids = {n.rsplit("|", 1)[0] for n in names}
        for n in names:
            if n.endswith("|setup"):
                # A fixture's code is recorded under the first test that needed it; a module- or
                # class-scoped fixture serves the other tests of its file too.
                file = n.split("::", 1)[0] + "::"
                nodeids.update(t for t in durations if t.startswith(file))
        lines[line] = sorted(nodeids)
    (WORK / f"{name}.lines.json").write_text(json.dumps(lines), "utf-8")


def _durations(junit: Path, tests: list[str]) -> dict[str, float]:
    """Seconds per test (node id) of the coverage run, from its JUnit XML."""
    import xml.etree.ElementTree as ElementTree

    files = {Path(t.split("::")[0]).stem: t.split("::")[0] for t in tests}
    durations = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        module = case.get("classname", "")
        # classname is "tests.test_x" or "tests.test_x.TestClass"; name is the function (with parameters)
        parts = module.split(".")
        stem = next((p for p in parts if p in files), None)
        if stem is None:
            continue
        inner = parts[parts.index(stem) + 1:]
        durations["::".join([files[stem], *inner, case.get("name", "")])] = float(case.get("time", 0) or 0)
    return durations


def _signature_lines(source: str) -> dict[int, tuple[int, int]]:
    """Each line of a function's signature (decorators, ``def``, defaults) -> the lines of its body.

    Such lines run when the module is imported, but a mutant of them (a default value, a
    decorator's argument) only changes what calls of the function do: the tests that ran
    its body are the ones that can see it.
    """
    import ast

    tree = ast.parse((ROOT / source).read_text("utf-8"))
    spans: dict[int, tuple[int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            body = node.body[0].lineno
            if isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant) and len(node.body) > 1:
                body = node.body[1].lineno  # past the docstring
            for line in range(first, body):
                spans.setdefault(line, (body, node.end_lineno or body))
    return spans


def _run_once_lines(name: str, source: str) -> set[int]:
    """The lines of the module's ``RUN_ONCE`` functions."""
    import ast

    names = RUN_ONCE.get(name, ())
    tree = ast.parse((ROOT / source).read_text("utf-8"))
    return {line for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1)}


def _changed_lines(source: str) -> list[int]:
    """Lines of the committed file that the mutant on disk changed (from ``git diff``)."""
    diff = subprocess.run(["git", "diff", "-U0", "--", source], cwd=ROOT, capture_output=True, text=True).stdout
    lines = []
    for match in re.finditer(r"^@@ -(\d+)(?:,(\d+))? ", diff, re.MULTILINE):
        start, count = int(match.group(1)), int(match.group(2) or 1)
        lines += range(start, start + max(count, 1))
    return lines


def _test_env(source: str) -> dict[str, str]:
    """The environment of a mutant's test run: bytecode (and pytest's rewritten modules) cached
    under ``.mutation/pycache`` even where PYTHONDONTWRITEBYTECODE is set, which halves the
    start-up of each run; the mutated module's cached files are removed first, so no run can
    load the bytecode of another mutant of the same size written in the same second."""
    prefix = WORK / "pycache"
    stale = prefix / Path(ROOT / source).resolve().parent.relative_to("/")
    for cached in stale.glob(Path(source).stem + ".*.pyc"):
        cached.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(prefix)
    return env


def _select(name: str, source: str, tests: list[str], lines: list[int]) -> list[str] | None:
    """The tests that ran the mutated ``lines``; None when one of them ran outside any test."""
    covered = json.loads((WORK / f"{name}.lines.json").read_text("utf-8"))
    signatures = _signature_lines(source)
    if any(line in _run_once_lines(name, source) for line in lines):
        return None
    selected: set[str] = set()
    for line in lines:
        nodeids = covered.get(str(line))
        if nodeids is None and line in signatures:
            # A signature line runs at import; the tests that ran the body see its mutant.
            first, last = signatures[line]
            body = [covered.get(str(n), ()) for n in range(first, last + 1) if str(n) in covered]
            nodeids = None if not body or any(b is None for b in body) else sorted({t for b in body for t in b})
        if nodeids is None:
            # Not recorded inside a test: run at import (before coverage started), in a
            # thread, in a subprocess, or by no test at all. Run all the module's tests.
            return None
        selected.update(nodeids)
    return sorted(selected)


def _order(name: str, tests: list[str], nodeids: list[str]) -> list[str]:
    """Cheapest first, so a killed mutant costs little: by the seconds each test took in the
    coverage run, then by the module's file order (most direct first)."""
    durations = json.loads((WORK / f"{name}.durations.json").read_text("utf-8")) if (WORK / f"{name}.durations.json").exists() else {}
    rank = {t: i for i, t in enumerate(tests)}
    return sorted(nodeids, key=lambda n: (durations.get(n, 60.0), rank.get(n.split("::")[0], len(tests)), n))


def _expected_seconds(name: str, nodeids: list[str] | None, tests: list[str]) -> float:
    durations = json.loads((WORK / f"{name}.durations.json").read_text("utf-8")) if (WORK / f"{name}.durations.json").exists() else {}
    if nodeids is None:
        return sum(durations.values()) or 600.0
    return sum(durations.get(n, 30.0) for n in nodeids)


def run_tests(name: str, cap: float) -> int:
    """cosmic-ray's test command: the tests that ran the mutated line, cheapest first, with
    ``-x`` (all of the module's tests when a line ran outside any test function, such as at
    import time), under a timeout scaled to what those tests took without the mutant.

    Each run appends a line to ``.mutation/NAME.runs.jsonl`` (lines changed, tests run,
    seconds, exit code, timed out), which the report sums into seconds per mutant.
    """
    import signal

    source, tests = MODULES[name]
    lines = _changed_lines(source)
    nodeids = _select(name, source, tests, lines)
    args = _order(name, tests, nodeids) if nodeids is not None else tests
    # A mutant that hangs (an endless retry loop) is killed by the timeout: a generous
    # multiple of the seconds the same tests took unmutated, plus the start-up.
    limit = min(cap, 30.0 + 3 * _expected_seconds(name, nodeids, tests))
    started = time.monotonic()
    process = subprocess.Popen(PYTEST + args, cwd=ROOT, env=_test_env(source), start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timed_out = False
    try:
        output, _ = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, signal.SIGKILL)  # the tests' servers and subprocesses too
        output, _ = process.communicate()
    code = 1 if timed_out else process.returncode
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output or "", re.MULTILINE)
    record = {"lines": lines, "tests": len(args) if nodeids is not None else None, "seconds": round(time.monotonic() - started, 2),
              "code": code, "timed_out": timed_out, "limit": round(limit), "killer": failed[0] if failed else None}
    with open(WORK / f"{name}.runs.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")
    sys.stdout.write((output or "")[-4000:])
    return code


def _accepted() -> list[dict]:
    return json.loads(ACCEPTED.read_text("utf-8")) if ACCEPTED.exists() else []


def _line(source: str, mutation: dict, commit: str | None = None) -> str:
    """The mutated line as it was at ``commit`` (the commit measured), else as it is now."""
    shown = subprocess.run(["git", "show", f"{commit}:{source}"], cwd=ROOT, capture_output=True, text=True) if commit else None
    text = shown.stdout if shown is not None and shown.returncode == 0 else (ROOT / source).read_text("utf-8")
    lines = text.splitlines()
    return lines[mutation["start_pos"][0] - 1].strip()


def _mutant(diff: str | None) -> str | None:
    """The mutated line as the mutant has it (the first added line of its diff), stripped."""
    added = [line[1:].strip() for line in (diff or "").splitlines() if line.startswith("+") and not line.startswith("+++")]
    return added[0] if added else None


def _why(name: str, operator: str, line: str, accepted: list[dict], mutant: str | None = None) -> str | None:
    """The reason an entry of mutation-accepted.json gives for this survivor: same module, line
    and operator (``*``: any), and, where the entry names one, the same ``mutant`` line."""
    for entry in accepted:
        if entry["module"] == name and entry["line"] == line and entry["operator"] in (operator, "*"):
            if entry.get("mutant") in (None, mutant):
                return entry["why"]
    return None


def _sample(session: Path, name: str, fraction: float, size: int | None = None) -> int:
    """Leave a seeded random ``fraction`` (or ``size``) of the pending mutants to run; skip the others.

    The seed is the module's name: the same commit and options give the same sample.
    """
    import random

    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session)) as db:
        pending = sorted(item.job_id for item in db.pending_work_items)
        count = min(len(pending), size) if size else round(len(pending) * fraction)
        keep = set(random.Random(name).sample(pending, count))
        for job_id in pending:
            if job_id not in keep:
                db.set_result(job_id, WorkResult(output="not in the sample", worker_outcome=WorkerOutcome.SKIPPED))
    return len(pending)


def measure(name: str, timeout: float, resume: bool, fraction: float = 1.0, size: int | None = None) -> dict:
    """Run (or resume) one module's session; return its counts and survivors."""
    source, tests = MODULES[name]
    if _modified(source):
        raise SystemExit(f"{source} has uncommitted changes; commit or stash them first (cosmic-ray edits it in place)")
    WORK.mkdir(exist_ok=True)
    config = _config(name, source, tests, timeout)
    session = WORK / f"{name}.sqlite"
    started = time.monotonic()
    if not (resume and session.exists()):
        session.unlink(missing_ok=True)
        (WORK / f"{name}.runs.jsonl").unlink(missing_ok=True)
        _coverage_map(name)
        _run("cosmic-ray", "init", str(config), str(session))
        _run("cr-filter-operators", str(session), str(config))
        _run("cr-filter-pragma", str(session))
        population = _sample(session, name, fraction, size)
        (WORK / f"{name}.population").write_text(str(population), "utf-8")
        (WORK / f"{name}.commit").write_text(_commit(), "utf-8")
        (WORK / f"{name}.rerun").unlink(missing_ok=True)
    return _exec(name, source, config, session, started)


def _exec(name: str, source: str, config: Path, session: Path, started: float) -> dict:
    original = (ROOT / source).read_bytes()
    try:
        _run("cosmic-ray", "exec", str(config), str(session))
    finally:
        if (ROOT / source).read_bytes() != original:  # interrupted in the middle of a mutant
            (ROOT / source).write_bytes(original)
    return summarise(name, session, round(time.monotonic() - started))


def rerun_survivors(name: str, timeout: float) -> dict:
    """Run again, at the commit checked out, the survivors of a module's session that have no
    reason in ``tools/mutation-accepted.json`` (after new tests): the module itself must be
    as it was when the session was made, or its mutants would not be the same ones."""
    import sqlite3

    source, tests = MODULES[name]
    session = WORK / f"{name}.sqlite"
    if not session.exists():
        raise SystemExit(f"{name} has no session in {WORK} to re-run; run it first")
    if _modified(source):
        raise SystemExit(f"{source} has uncommitted changes; commit or stash them first (cosmic-ray edits it in place)")
    measured = (WORK / f"{name}.commit").read_text("utf-8").strip()
    if subprocess.run(["git", "diff", "--quiet", measured, "HEAD", "--", source], cwd=ROOT).returncode != 0:
        raise SystemExit(f"{source} changed since {measured}, where its mutants were made; run {name} anew")
    config = _config(name, source, tests, timeout)
    started = time.monotonic()
    _coverage_map(name)  # the new tests are among the ones each mutant runs
    accepted = _accepted()
    again = []
    for row in _run("cosmic-ray", "dump", str(session)).stdout.splitlines():
        item, result = json.loads(row)
        if result and result["worker_outcome"] == "normal" and result["test_outcome"] == "survived":
            mutation = item["mutations"][0]
            if not _why(name, mutation["operator_name"], _line(source, mutation, measured), accepted, _mutant(result.get("diff"))):
                again.append(item["job_id"])
    with sqlite3.connect(session) as db:
        db.executemany("DELETE FROM work_results WHERE job_id = ?", [(job,) for job in again])
    (WORK / f"{name}.rerun").write_text(_commit(), "utf-8")
    print(f"{name}: running {len(again)} survivor(s) again", flush=True)
    return _exec(name, source, config, session, started)


def summarise(name: str, session: Path, seconds: int | None = None) -> dict:
    """The counts and survivors of one module's session as it stands (mutants not run yet are ``pending``)."""
    source, tests = MODULES[name]
    dump = _run("cosmic-ray", "dump", str(session)).stdout
    commit_file = WORK / f"{name}.commit"
    measured = commit_file.read_text("utf-8").strip() if commit_file.exists() else None
    rerun_file = WORK / f"{name}.rerun"
    accepted = _accepted()
    counts = {"mutants": 0, "killed": 0, "timeout": 0, "survived": 0, "accepted": 0, "skipped": 0, "incompetent": 0, "pending": 0}
    survivors = []
    for row in dump.splitlines():
        item, result = json.loads(row)
        if result is None:
            counts["pending"] += 1
            continue
        if result["worker_outcome"] == "skipped":
            counts["skipped"] += 1
            continue
        counts["mutants"] += 1
        if result["worker_outcome"] == "abnormal":
            counts["incompetent"] += 1  # the mutant does not even import
        elif result["test_outcome"] == "killed":
            counts["killed"] += 1
            if result["worker_outcome"] == "timeout":
                counts["timeout"] += 1
        elif result["worker_outcome"] == "timeout":
            counts["killed"] += 1
            counts["timeout"] += 1
        else:
            mutation = item["mutations"][0]
            line = _line(source, mutation, measured)
            why = _why(name, mutation["operator_name"], line, accepted, _mutant(result.get("diff")))
            counts["accepted" if why else "survived"] += 1
            survivors.append({
                "line_number": mutation["start_pos"][0],
                "line": line,
                "operator": mutation["operator_name"],
                "diff": result.get("diff", ""),
                "why": why,
            })
    runs_file = WORK / f"{name}.runs.jsonl"
    runs = [json.loads(line) for line in runs_file.read_text("utf-8").splitlines()] if runs_file.exists() else []
    counts["seconds_per_mutant"] = round(sum(r["seconds"] for r in runs) / len(runs), 1) if runs else None
    counts["timed_out"] = sum(r["timed_out"] for r in runs)
    population_file = WORK / f"{name}.population"
    counts["population"] = int(population_file.read_text()) if population_file.exists() else counts["mutants"]
    decided = counts["mutants"] - counts["incompetent"]
    counts["score"] = round(100.0 * counts["killed"] / max(1, decided - counts["accepted"]), 1)
    return {
        "module": name,
        "source": source,
        "tests": tests,
        "commit": (measured or _commit()) + (f", survivors re-run at {rerun_file.read_text('utf-8').strip()}" if rerun_file.exists() else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": seconds,
        **counts,
        "survivors": sorted(survivors, key=lambda s: s["line_number"]),
    }


def write_report(results: dict[str, dict]) -> None:
    lines = [
        "# Mutation score",
        "",
        "Written by `python tools/mutation.py` (cosmic-ray). Score = killed / (mutants - accepted - incompetent):",
        "a mutant counts as killed when a test fails or times out; *accepted* mutants are equivalent or",
        "deliberately left alive, each with its reason in `tools/mutation-accepted.json`; *incompetent* ones",
        "do not import. Survivors without a reason are listed last: each is a test to write.",
        "",
        "*mutants run (of)*: the mutants run, and in brackets the mutants of the module (after the operator",
        "filter) or of the seeded sample (`--sample-size`); *pending*: sampled mutants not run when the report",
        "was written. *s/mutant*: mean seconds of a mutant's test run (`.mutation/MODULE.runs.jsonl`), under",
        "whatever else the machine was doing; *timed out*: killed by the per-mutant time limit (counted as killed).",
        "",
        "| module | commit | mutants run (of) | pending | killed | accepted | survived | score | s/mutant | timed out | tests run per mutant |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in MODULES:
        if name in results:
            r = results[name]
            lines.append(
                f"| `{r['source']}` | {r['commit']} ({r['date']}) | {r['mutants']} ({r['population']}) | {r['pending']} | {r['killed']} | {r['accepted']} | "
                f"{r['survived']} | {r['score']}% | {r.get('seconds_per_mutant') or '-'} | {r.get('timed_out', '-')} | {', '.join(t.removeprefix('tests/') for t in r['tests'])} |"
            )
    for name in MODULES:
        r = results.get(name)
        if not r or not r["survivors"]:
            continue
        lines += ["", f"## `{r['source']}` survivors", ""]
        for s in r["survivors"]:
            status = f"accepted: {s['why']}" if s["why"] else "**not killed yet**"
            lines.append(f"- line {s['line_number']} `{s['operator']}`: {status}")
            lines.append(f"  `{s['line']}`")
    REPORT.write_text("\n".join(lines) + "\n", "utf-8")
    _write_docs(results)
    (WORK / "results.json").write_text(json.dumps(results, indent=2), "utf-8")


def _write_docs(results: dict[str, dict]) -> None:
    """The score table of docs/development.md: one row per module measured."""
    start, end = "<!-- mutation-scores (tools/mutation.py; details in tools/mutation-report.md) -->", "<!-- /mutation-scores -->"
    text = DOCS.read_text("utf-8") if DOCS.exists() else ""
    if start not in text or end not in text:
        return
    rows = ["| module | score | sample | killed | accepted | survived | s/mutant | commit measured |",
            "|---|---:|---|---:|---:|---:|---:|---|"]
    for name in MODULES:
        r = results.get(name)
        if not r:
            continue
        sampled = r["mutants"] + r["pending"]
        sample = f"all {r['population']}" if sampled >= r["population"] else f"{sampled} of {r['population']}"
        if r["pending"]:
            sample += f" ({r['pending']} not run yet)"
        rows.append(f"| `{r['source']}` | {r['score']}% | {sample} | {r['killed']} | {r['accepted']} | {r['survived']} | "
                    f"{r.get('seconds_per_mutant') or '-'} | {r['commit']} |")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    DOCS.write_text(before + start + "\n" + "\n".join(rows) + "\n" + end + after, "utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--list", action="store_true", help="list the modules and their tests")
    parser.add_argument("--resume", action="store_true", help="continue the sessions in .mutation/ instead of starting anew")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="the most seconds a mutant's test run may take before it counts as hung (killed); each run's own "
                             "limit is 30 s plus three times what its tests took without a mutant")
    parser.add_argument("--sample", type=float, default=1.0, metavar="FRACTION",
                        help="run a seeded random fraction of each module's mutants (default 1: all of them)")
    parser.add_argument("--sample-size", type=int, metavar="N",
                        help="run a seeded random N of each module's mutants (all when it has fewer)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the report from the sessions in .mutation/ as they stand, running nothing")
    parser.add_argument("--rerun-survivors", action="store_true",
                        help="run the unexplained survivors of the sessions in .mutation/ again at the commit checked out "
                             "(after new tests; the module itself must be unchanged)")
    parser.add_argument("--run-tests", metavar="MODULE", help=argparse.SUPPRESS)  # cosmic-ray's test command
    args = parser.parse_args(argv)
    if args.run_tests:
        return run_tests(args.run_tests, args.timeout)
    if args.list:
        for name, (source, tests) in MODULES.items():
            print(f"{name:20} {source:40} {' '.join(tests)}")
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; see --list")
    WORK.mkdir(exist_ok=True)
    previous = WORK / "results.json"
    results = json.loads(previous.read_text("utf-8")) if previous.exists() else {}
    for name in args.modules or list(MODULES):
        if args.report_only:
            if (WORK / f"{name}.sqlite").exists():
                results[name] = {**results.get(name, {}), **summarise(name, WORK / f"{name}.sqlite", results.get(name, {}).get("seconds"))}
            continue
        if args.rerun_survivors:
            results[name] = rerun_survivors(name, args.timeout)
        else:
            print(f"{name}: mutating {MODULES[name][0]} ...", flush=True)
            results[name] = measure(name, args.timeout, args.resume, args.sample, args.sample_size)
        r = results[name]
        print(f"{name}: {r['killed']}/{r['mutants']} (of {r['population']}) killed, {r['accepted']} accepted, {r['survived']} survived: "
              f"{r['score']}% ({r['seconds']} s)", flush=True)
        write_report(results)
    write_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
