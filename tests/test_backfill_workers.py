"""Backfills with worker processes (``connector_mparticle.backfill_workers``): NDJSON lines
parsed, checked, identified and encoded in other processes give exactly the records, requests,
ids and report of the in-process path, and an upload stopped by Ctrl-C or killed resumes
exactly once and leaves no worker behind.
"""

from __future__ import annotations

import gc
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from connector_mparticle.backfill import Settings, prepared
from connector_mparticle.backfill_workers import WorkerFailed, prepared_by_workers
from connector_mparticle.batch_files import iter_batches
from connector_mparticle.sandbox import SandboxProcess

from connector_core import InvalidInput
from test_backfill import DAY_MS, config_file, make_batch, run_cli  # noqa: F401  (config_file: a fixture)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="worker processes are used on POSIX systems only")


@pytest.fixture
def sb(mparticle_sandbox):
    return mparticle_sandbox


def _lines(path: Path, batches: list, blank_after: int = 5) -> Path:
    text = [json.dumps(b) for b in batches]
    text.insert(blank_after, "   ")  # a blank line is not a batch and shifts the line numbers
    path.write_text("\n".join(text) + "\n")
    return path


def test_workers_prepare_exactly_the_records_of_the_in_process_path(tmp_path):
    now = int(time.time() * 1000)
    batches = [make_batch(i, 2) for i in range(450)]
    batches[7] = {"events": "not a list"}  # refused, with its batch for the dead letter
    batches[9] = {**make_batch(9), "source_request_id": "given-9"}
    batches[11] = make_batch(11, 2, stamp=now - 40 * DAY_MS)  # old: historical when auto
    batches[12] = {**make_batch(12), "user_attributes": {"blob": "x" * 300_000}}  # too large for one request
    path = _lines(tmp_path / "in.ndjson", batches)
    settings = Settings("key", "auto", now, 256 * 1024)
    done = {3, 4, 300}.__contains__

    here = list(prepared(iter_batches([str(path)]), settings, done))
    # New interpreters (the settings cross the pipe) and forks of this process (they have them).
    there = list(prepared_by_workers(iter_batches([str(path)], raw=True), settings, done, 2, wait=True, fork=False))
    forked = list(prepared_by_workers(iter_batches([str(path)], raw=True), settings, done, 2, wait=True, fork=True))
    # Workers send a batch back parsed only when it was refused (for the dead letter).
    assert there == forked == [r if r[6] else r[:2] + (None,) + r[3:] for r in here]
    assert [r[0] for r in there] == list(range(450))
    assert [r[3] for r in there[3:5]] == [None, None] and there[11][3].endswith("historical")
    assert [r[0] for r in there if r[6]] == [7, 12] and there[7][2] == {"events": "not a list"}


def test_workers_name_the_bad_line_after_yielding_every_batch_before_it(tmp_path):
    path = tmp_path / "bad.ndjson"
    lines = [json.dumps(make_batch(i)) for i in range(260)]
    lines[230] = '{"events": [}'
    path.write_text("\n".join(lines[:3] + [""] + lines[3:]) + "\n")
    settings = Settings("", "never", 0, 256 * 1024)
    seen = []
    with pytest.raises(InvalidInput) as there:
        for found in prepared_by_workers(iter_batches([str(path)], raw=True), settings, None, 1, wait=True, fork=True):
            seen.append(found[0])
    with pytest.raises(InvalidInput) as here:
        list(iter_batches([str(path)]))
    assert seen == list(range(230))
    assert there.value.message == here.value.message and "line 232" in there.value.message
    assert there.value.faults == here.value.faults


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker process in /proc")
@pytest.mark.parametrize("fork", [False, True], ids=["new interpreter", "fork"])
def test_a_worker_that_dies_is_a_typed_error(tmp_path, fork):
    path = tmp_path / "in.ndjson"
    path.write_text("".join(json.dumps(make_batch(i)) + "\n" for i in range(1000)))
    before = _children(os.getpid())
    records = prepared_by_workers(iter_batches([str(path)], raw=True), Settings("", "never", 0, 256 * 1024), None, 1,
                                  wait=True, fork=fork)
    assert next(records)[0] == 0
    (worker,) = _children(os.getpid()) - before
    assert _is_fork(worker) is fork
    os.kill(worker, signal.SIGKILL)
    with pytest.raises(WorkerFailed) as err:
        list(records)
    assert err.value.exit_code == 1 and err.value.details["worker_exit"] == -signal.SIGKILL
    assert "rerun the same upload to resume" in err.value.message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="looks for worker processes in /proc")
def test_parsed_batches_start_no_worker(tmp_path):
    before = _children(os.getpid())
    records = prepared_by_workers(iter([make_batch(0), make_batch(1)]), Settings("", "never", 0, 256 * 1024), None, 2)
    assert next(records)[0] == 0
    assert _children(os.getpid()) == before
    assert [r[0] for r in records] == [1]


def test_upload_events_with_workers_sends_what_it_sends_without(sb, config_file, tmp_path, capsys):  # noqa: F811
    sb.configure(marker_attribute="marker")
    (tmp_path / "a.json").write_text(json.dumps([make_batch(i) for i in range(40)]))  # parsed here: an array
    batches = [make_batch(i) for i in range(40, 700)]
    batches[100] = {"events": [], "mpid": "12"}
    _lines(tmp_path / "b.ndjson", batches)
    with gzip.open(tmp_path / "c.ndjson.gz", "wt") as f:
        f.write("".join(json.dumps(make_batch(i)) + "\n" for i in range(700, 900)))
    files = [str(tmp_path / name) for name in ("a.json", "b.ndjson", "c.ndjson.gz")]
    collector, frozen = gc.get_threshold(), gc.get_freeze_count()
    runs = {}
    for workers in ("0", "2"):
        sb.reset()
        sb.configure(marker_attribute="marker")
        dead = tmp_path / f"dead-{workers}.ndjson"
        code, summary, _ = run_cli(["upload-events", *files, "--config", str(config_file), "--workers", workers,
                                    "--dead-letter", str(dead), "--rate", "1e6"], capsys)
        assert code == 3, summary
        for timing in ("durationSeconds", "eventsPerSecond", "batchesPerSecond", "deadLetter"):
            summary.pop(timing)
        runs[workers] = (summary, dead.read_text(), sorted(b["source_request_id"] for b in sb.batches))
        assert sb.event_markers()["doubled"] == 0 and sb.event_markers()["events"] == 3 * 899
    assert runs["0"] == runs["2"]
    # The command tunes the garbage collector for the upload (lean_gc) and puts it back. Objects
    # this process froze itself (conftest) stay frozen: their count only falls as the upload
    # frees some of them (entries it pushes out of a module's cache), it never grows or empties.
    assert gc.get_threshold() == collector
    assert gc.get_freeze_count() == 0 if frozen == 0 else 0 < gc.get_freeze_count() <= frozen
    code, _, err = run_cli(["upload-events", files[0], "--config", str(config_file), "--workers", "-1"], capsys)
    assert code == 2


def test_forked_workers_end_cleanly_in_a_host_that_ignores_sigchld(tmp_path):
    """Such a host's children are reaped as they end, so waiting for one finds none."""
    path = _lines(tmp_path / "in.ndjson", [make_batch(i) for i in range(250)])
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        records = list(prepared_by_workers(iter_batches([str(path)], raw=True), Settings("", "never", 0, 256 * 1024),
                                           None, 2, wait=True, fork=True))
    finally:
        signal.signal(signal.SIGCHLD, previous)
    assert [r[0] for r in records] == list(range(250))


def test_workers_auto_is_one_per_cpu_for_large_files_only(tmp_path):
    from connector_mparticle.backfill_cli import AUTO_WORKERS_BYTES, AUTO_WORKERS_MAX, workers_for

    small, large = tmp_path / "small.ndjson", tmp_path / "large.ndjson"
    small.write_bytes(b"{}\n")
    with open(large, "wb") as f:
        f.truncate(AUTO_WORKERS_BYTES - 2)  # sparse: its size is what counts; with small's 3 bytes, over
    expected = min(AUTO_WORKERS_MAX, os.cpu_count() or 1)
    assert workers_for([str(small), str(large)], "auto") == expected >= 1
    assert workers_for([str(large)], "auto") == 0 and workers_for([str(small)], "auto") == 0
    assert workers_for([str(large), "-"], "auto") == 0  # standard input: nothing to size up front
    assert workers_for([str(large)], 0) == 0 and workers_for([str(small)], 3) == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pseudo-terminal as Linux closes it")
def test_a_terminal_gets_a_progress_bar(sb, config_file, tmp_path):  # noqa: F811
    """The bar is made at the first progress (after the workers are forked): it still shows."""
    import fcntl
    import pty
    import struct
    import termios

    source = tmp_path / "in.ndjson"
    source.write_text("".join(json.dumps(make_batch(i)) + "\n" for i in range(300)))
    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new one is 0 columns wide
    child = subprocess.Popen([str(Path(sys.executable).parent / "connector"), "upload-events", str(source), "--config",
                              str(config_file), "--workers", "1", "--rate", "1e6"], stdout=subprocess.PIPE,
                             stderr=terminal)
    os.close(terminal)
    shown = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the command closed the terminal
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = child.communicate(timeout=60)
    reader.join(timeout=10)
    os.close(master)
    assert child.returncode == 0, b"".join(shown)
    assert json.loads(out)["acknowledged"]["events"] == 900
    bar = b"".join(shown).decode("utf-8", "replace")
    assert "uploaded" in bar and "900 events" in bar, bar


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _is_fork(pid: int, parent: int | None = None) -> bool:
    """Whether a worker is a fork of its parent (same command line), not a new interpreter."""
    return Path(f"/proc/{pid}/cmdline").read_bytes() == Path(f"/proc/{parent or os.getpid()}/cmdline").read_bytes()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker processes in /proc")
def test_workers_are_forks_only_while_this_process_runs_one_thread(tmp_path):
    """A fork copies no thread but the caller's: a lock another thread holds stays held in the
    child. With a second thread running, workers are new interpreters."""
    path = _lines(tmp_path / "in.ndjson", [make_batch(i) for i in range(300)])
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        before = _children(os.getpid())
        records = prepared_by_workers(iter_batches([str(path)], raw=True), Settings("", "never", 0, 256 * 1024),
                                      None, 1, wait=True)
        assert next(records)[0] == 0
        (worker,) = _children(os.getpid()) - before
        assert not _is_fork(worker) and b"backfill_workers" in Path(f"/proc/{worker}/cmdline").read_bytes()
        assert [r[0] for r in records] == list(range(1, 300))
    finally:
        release.set()
        other.join()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # an exited orphan may wait unreaped
    except OSError:
        return False


def _gone(pids: set[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_running(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def _start_with_ctrl_c(argv: list[str]) -> subprocess.Popen:
    """Start ``argv`` with Ctrl-C (SIGINT) handled as at a terminal, whatever this process inherited.

    A shell starts a background job (``pytest ... &``, a CI step's runner) with SIGINT ignored;
    children inherit an ignored signal, and Python then never turns SIGINT into
    KeyboardInterrupt, so the upload would run on. A handled signal is reset to its default
    in the child, which then installs Python's own handler.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker processes in /proc")
def test_interrupted_and_killed_uploads_with_workers_resume_exactly_once(tmp_path):
    """Ctrl-C, then kill -9, a real ``connector upload-events --workers 1``; rerun; count markers."""
    n = 1200
    source = tmp_path / "events.ndjson"
    source.write_text("".join(json.dumps(make_batch(i, 2)) + "\n" for i in range(n)))
    with SandboxProcess("--latency", "5-15") as sandbox:
        sandbox.configure(marker_attribute="marker")
        config = tmp_path / "config.json"
        config.write_text(json.dumps(sandbox.config))
        argv = [str(Path(sys.executable).parent / "connector"), "upload-events", str(source), "--config", str(config),
                "--state", str(tmp_path / "state.json"), "--concurrency", "2", "--workers", "1"]
        # The interrupted runs are paced slowly, so a loaded machine that is late to send the
        # signal still finds them midway; the pace is not part of what the state file is tied
        # to, so the last run resumes at a faster one.
        slow, fast = ["--rate", "150"], ["--rate", "2000"]

        def stop_at(count: int, sig: int) -> subprocess.Popen:
            child = _start_with_ctrl_c(argv + slow)
            deadline = time.monotonic() + 60
            while sandbox.state()["batches_accepted"] < count and time.monotonic() < deadline:
                time.sleep(0.05)
            workers = _children(child.pid)
            # The command runs one thread when it reaches the first line: its workers are forks.
            assert workers and all(_is_fork(worker, child.pid) for worker in workers)
            os.kill(child.pid, sig)
            child.out, child.err = child.communicate(timeout=60)
            assert workers and _gone(workers), "the worker processes must end with the upload"
            return child

        interrupted = stop_at(100, signal.SIGINT)
        assert interrupted.returncode == 130, interrupted.err
        assert json.loads(interrupted.out)["error"]["code"] == "interrupted"
        first = sandbox.state()["batches_accepted"]
        assert 0 < first < n - 300, "the upload must be interrupted early enough to be killed later"
        stop_at(first + 100, signal.SIGKILL)
        assert first < sandbox.state()["batches_accepted"] < n, "the upload must be killed midway"
        finished = subprocess.run(argv + fast, capture_output=True, timeout=120)
        assert finished.returncode == 0, finished.stderr
        summary = json.loads(finished.stdout)
        # The state file is written at most twice a second: what the killed run sent may be resent (same ids).
        assert summary["skipped"]["count"] >= first and summary["skipped"]["count"] + summary["acknowledged"]["count"] == n
        assert sandbox.event_markers() == {"events": 2 * n, "distinct": 2 * n, "doubled": 0, "doubled_examples": {}}
        assert sandbox.state()["batches_accepted"] == n
