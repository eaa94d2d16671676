"""``connector upload-events``: a thin command-line layer over :func:`backfill.upload`.

Registered by the mParticle package through the ``register_commands`` hook (see
``tools.py``); the core knows nothing about it. Prints one JSON summary on stdout, a
progress bar on stderr when stderr is a terminal, and exits with a documented code
(:data:`EXIT_HELP`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from typing import Any

from connector_core import Fault, InvalidInput
from connector_core.cli import add_connection_options, connect_from_args

from .backfill import DEFAULT_CONCURRENCY, DEFAULT_RATE, HISTORICAL_MODES, Progress, StateFile, upload
from .batch_files import STDIN, check_readable, file_digest, iter_batches
from .lean_gc import lean_gc

CONNECTOR = "mparticle"

EXIT_HELP = """exit codes:
  0    every batch was acknowledged by mParticle (now or by an earlier run with the same --state)
  3    done, but some batches were refused (see --dead-letter); the rest were acknowledged
  11   some batches were sent without an answer: rerun the same command to resend them with the
       same ids (mParticle drops the copies); with --state only the rest is sent
  130  interrupted (Ctrl-C); rerun the same command to resume
  other an error stopped the upload (its category's code: 2 usage, 3 input, 4 config, 5 auth,
       8 rate limited, 10 network, 12 plugin); the JSON summary on stdout says what was sent"""


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "upload-events",
        help="backfill event batches from JSON/NDJSON files to mParticle, resumable and rate-paced",
        description=(
            "Upload mParticle event batches from files: a JSON array of batches or NDJSON (one batch "
            "per line), either gzip-compressed; '-' reads standard input. Batches are read as a "
            "stream, checked one by one, given deterministic source_request_ids and sent in bulk "
            "requests (at most 100 batches and 256 KB) over several connections, within a "
            "batch-rate budget. Prints one JSON summary."
        ),
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="JSON array or NDJSON file, gzip allowed; '-' for standard input")
    add_connection_options(parser)
    parser.add_argument("--dead-letter", metavar="PATH",
                        help="write refused batches here as NDJSON: {\"index\", \"batch\", \"reasons\": [{\"path\", \"message\"}]}")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first refused batch instead of continuing")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, metavar="BATCHES_PER_S",
                        help=f"batch-rate budget (default {DEFAULT_RATE:g}, mParticle's documented default)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                        help=f"HTTP connections sending at once, at most (default {DEFAULT_CONCURRENCY}; two until an answer takes over 4 ms)")
    parser.add_argument("--workers", type=_workers, default="auto", metavar="N|auto",
                        help="processes that parse, check, identify and encode NDJSON batches while this one sends "
                             f"(default auto: none for input under {AUTO_WORKERS_BYTES >> 20} MB or from standard "
                             "input, else one per CPU, at most " f"{AUTO_WORKERS_MAX}; 0: all in this process)")
    parser.add_argument("--historical", choices=HISTORICAL_MODES, default="never",
                        help="never (default): everything to /v2/bulkevents; auto: batches with events older than "
                             "30 days to /v2/bulkevents/historical; always: everything there. Batches going there "
                             "are checked against its rules first (events, each with timestamp_unixtime_ms, "
                             "none under 72 hours old)")
    parser.add_argument("--state", metavar="PATH",
                        help="resumable state file: records what mParticle acknowledged; rerunning the same "
                             "command sends only the rest, with the same ids")
    parser.add_argument("--idempotency-key", default="", metavar="KEY",
                        help="scopes the derived source_request_ids (default none: the same batch at the same "
                             "position always gets the same id, so uploading the same file twice delivers it once)")
    parser.set_defaults(handler=run)


AUTO_WORKERS_BYTES = 16 << 20  # below this, starting worker processes costs more than it saves
AUTO_WORKERS_MAX = 4


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be auto or a whole number >= 0, not {text!r}")
    return value


def workers_for(files: list[str], asked: int | str) -> int:
    """How many worker processes ``--workers`` means for ``files``."""
    if asked != "auto":
        if asked and os.name != "posix":
            raise InvalidInput("--workers needs a POSIX system (Linux, macOS); pass --workers 0",
                               faults=[Fault("$.workers", "worker processes are not supported on this system")])
        return int(asked)
    if os.name != "posix" or STDIN in files:
        return 0
    size = sum(os.path.getsize(path) for path in files)
    # One per CPU, not one fewer for this process: it mostly waits on the network, and on two
    # CPUs one worker was the busiest process while the other CPU idled (1.66 against 2.16 s for
    # 200,000 events 20 ms away, median of three).
    return 0 if size < AUTO_WORKERS_BYTES else min(AUTO_WORKERS_MAX, os.cpu_count() or 1)


def _fingerprint(args, events_url: str) -> str:
    """What a state file is tied to: the inputs' bytes and the options that change what is sent."""
    if STDIN in args.files:
        raise InvalidInput("--state needs files: standard input cannot be checked to be the same input on a rerun",
                           faults=[Fault("$.state", "cannot be used with '-' (standard input)")])
    basis = {
        "files": [file_digest(path) for path in args.files],
        "historical": args.historical,
        "idempotencyKey": args.idempotency_key,
        "eventsUrl": events_url,
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


class _DeadLetter:
    def __init__(self, path: str, append: bool) -> None:
        try:
            self.file = open(path, "ab" if append else "wb")
        except OSError as exc:
            raise InvalidInput(f"cannot write the dead-letter file {path}: {exc.strerror or exc}",
                               faults=[Fault("$.deadLetter", exc.strerror or str(exc))]) from None

    def __call__(self, record: dict) -> None:
        from .batches import encode

        try:
            line = encode(record)
        except (TypeError, ValueError):
            line = json.dumps(record, default=str).encode("utf-8")
        self.file.write(line + b"\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class _Bar:
    """A tqdm progress bar of acknowledged events on a terminal; nothing otherwise."""

    def __init__(self, stream) -> None:
        self.stream = stream if stream.isatty() else None
        self.bar = None
        self.events = 0

    def __call__(self, progress: Progress) -> None:
        if self.stream is None:
            return
        if self.bar is None:
            # Made at the first progress, not before the upload: tqdm starts a monitor
            # thread, and worker processes are forked only while this process has one.
            from tqdm import tqdm

            self.bar = tqdm(unit=" events", unit_scale=True, file=self.stream, dynamic_ncols=True, desc="uploaded")
        self.bar.update(progress.events_acknowledged - self.events)
        self.events = progress.events_acknowledged
        self.bar.set_postfix(batches=progress.batches_acknowledged, refused=progress.batches_refused,
                             rate=f"{progress.rate:.0f}/s", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _exit_code(report) -> int:
    if report.interrupted:
        return 130
    if report.error is not None:
        return report.error.exit_code
    return {"accepted": 0, "partial": 3, "unknown": 11}.get(report.status, 1)


def run(args, engine) -> int:
    if args.rate <= 0:
        raise InvalidInput("--rate must be a positive number of batches per second", faults=[Fault("$.rate", "must be > 0")])
    if args.concurrency < 1:
        raise InvalidInput("--concurrency must be at least 1", faults=[Fault("$.concurrency", "must be >= 1")])
    with connect_from_args(engine, args, CONNECTOR, capability="uploadEventBatch") as connection:
        return _upload(args, connection)


def _upload(args, connection) -> int:
    check_readable(args.files)
    events_url = connection.base_url("events")
    state = StateFile(args.state, _fingerprint(args, events_url)).load() if args.state else None
    dead_letter = _DeadLetter(args.dead_letter, append=bool(state and state.resumed)) if args.dead_letter else None
    bar = _Bar(sys.stderr)
    workers = workers_for(args.files, args.workers)
    try:
        with lean_gc():
            report = upload(
                connection,
                iter_batches(args.files, raw=workers > 0),
                workers=workers,
                from_text=True,
                rate=args.rate,
                concurrency=args.concurrency,
                historical=args.historical,
                idempotency_key=args.idempotency_key,
                dead_letter=dead_letter,
                fail_fast=args.fail_fast,
                state=state,
                progress=bar,
            )
    finally:
        bar.close()
        if dead_letter is not None:
            dead_letter.close()
    summary: dict[str, Any] = report.to_dict()
    summary["deadLetter"] = args.dead_letter
    summary["state"] = args.state
    sys.stdout.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return _exit_code(report)


__all__ = ["EXIT_HELP", "add_command", "run"]
