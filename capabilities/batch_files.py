"""Reading event batches from files as a stream: JSON arrays, NDJSON, gzip, standard input.

``iter_batches(paths)`` yields one batch at a time from every file in order, so memory does
not grow with the input. The format is decided by the content, not the name:

* gzip (magic bytes ``1f 8b``) is decompressed on the fly, whatever the name;
* text starting with ``[`` is a JSON array of batches;
* text whose first line is a whole JSON object is NDJSON (one batch per line), each line
  parsed with orjson;
* anything else is a sequence of JSON values (concatenated or pretty-printed objects).

Arrays and multi-line values are parsed by ijson's incremental parser (its C backend, yajl2_c, when available) with
``use_float=True``: numbers with a fraction or exponent become ``float`` (ijson's default
``Decimal`` would not serialise with orjson), integers stay exact ``int``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import ijson
import orjson

from connector_core import Fault, InvalidInput

__all__ = ["STDIN", "Line", "check_readable", "file_digest", "iter_batches", "iter_text_batches"]

STDIN = "-"
_CHUNK = 1 << 16
_WHITESPACE = b" \t\r\n\xef\xbb\xbf"  # the UTF-8 BOM too


def _open(path: str) -> BinaryIO:
    if path == STDIN:
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:  # a text stream standing in for stdin (a host running the CLI in-process)
            return io.BufferedReader(io.BytesIO(sys.stdin.read().encode("utf-8")), _CHUNK)
        return stdin if hasattr(stdin, "peek") else io.BufferedReader(stdin, _CHUNK)
    try:
        return open(path, "rb", buffering=_CHUNK)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}",
                           faults=[Fault(f"$.files[{path!r}]", exc.strerror or str(exc))]) from None


def _first_byte(stream: BinaryIO) -> bytes:
    """The first byte that is not whitespace, without consuming it ('' for empty input)."""
    while True:
        head = stream.peek(_CHUNK)[:_CHUNK]
        if not head:
            return b""
        stripped = head.lstrip(_WHITESPACE)
        if stripped:
            return stripped[:1]
        stream.read(len(head))


class Line:
    """One NDJSON line not parsed yet: its bytes, and where it is for the error that names it
    (``count``: the batch's position in its file; ``number``: the line number)."""

    __slots__ = ("text", "where", "count", "number")

    def __init__(self, text: bytes, where: str, count: int, number: int) -> None:
        self.text = text
        self.where = where
        self.count = count
        self.number = number

    def parse(self) -> Any:
        """The batch (orjson), or ``InvalidInput`` naming the file and the line."""
        try:
            return orjson.loads(self.text)
        except orjson.JSONDecodeError as exc:
            raise self.error(str(exc)) from None

    def error(self, reason: str) -> InvalidInput:
        return InvalidInput(f"{self.where} line {self.number} is not valid JSON: {reason}",
                            faults=[Fault(f"$.files[{self.where!r}][{self.count}]", f"line {self.number}: {reason}")])


def _values(stream: BinaryIO, where: str, lines: bool = False) -> Iterator[Any]:
    first = _first_byte(stream)
    if first == b"[":
        return ijson.items(stream, "item", use_float=True)
    if first == b"{" and _is_json(stream.peek(_CHUNK).split(b"\n", 1)[0]):
        return _raw_lines(stream, where) if lines else _lines(stream, where)
    return ijson.items(stream, "", multiple_values=True, use_float=True)


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _lines(stream: BinaryIO, where: str) -> Iterator[Any]:
    """NDJSON, one line at a time: orjson parses a line several times faster than ijson."""
    loads = orjson.loads
    count = 0
    for number, line in enumerate(stream, 1):
        if line.isspace():  # strip() would empty it (a line read from a stream is never b""), without a copy
            continue
        try:
            value = loads(line)
        except orjson.JSONDecodeError as exc:
            raise Line(line, where, count, number).error(str(exc)) from None
        yield value
        count += 1


def _raw_lines(stream: BinaryIO, where: str) -> Iterator[Line]:
    count = 0
    for number, line in enumerate(stream, 1):
        if line.isspace():  # strip() would empty it (a line read from a stream is never b""), without a copy
            continue
        yield Line(line, where, count, number)
        count += 1


def check_readable(paths: Iterable[str]) -> None:
    """Raise ``InvalidInput`` now, before anything is sent, for a file that cannot be opened."""
    for path in paths:
        if path != STDIN:
            _open(path).close()


def iter_batches(paths: Iterable[str], *, raw: bool = False) -> Iterator[Any]:
    """Every batch of every file in ``paths`` (``-`` is standard input), in order.

    With ``raw``, the batches of NDJSON input come as :class:`Line` items, not parsed (an
    uploader parses them in worker processes); other input is parsed here as always.
    Raises ``InvalidInput`` naming the file and the batch position when a file cannot be
    read or stops being JSON; the batches before that point have been yielded.
    """
    for path in paths:
        file = _open(path)
        try:
            stream: BinaryIO = file
            if file.peek(2)[:2] == b"\x1f\x8b":
                stream = io.BufferedReader(gzip.GzipFile(fileobj=file, mode="rb"), _CHUNK)  # type: ignore[arg-type]
            count = 0
            where = "standard input" if path == STDIN else path
            try:
                for value in _values(stream, where, raw):
                    yield value
                    count += 1
            except InvalidInput:
                raise
            except (ijson.JSONError, ValueError, OSError, EOFError) as exc:
                reason = _reason(exc)
                message = f"{where} is not valid JSON or NDJSON after {count} batch(es): {reason}"
                raise InvalidInput(message, faults=[Fault(f"$.files[{where!r}][{count}]", reason)]) from None
        finally:
            if path != STDIN:
                file.close()


def iter_text_batches(text: str | bytes, path: str = "$.jsonBody") -> Iterator[Any]:
    """The batches of a JSON array (or sequence of objects) given as text, parsed in 64 KB slices.

    Only one slice of the text is copied at a time, so parsing holds the text plus one batch.
    """
    encode = (lambda s: s.encode("utf-8", "surrogatepass")) if isinstance(text, str) else bytes
    coro_out = ijson.sendable_list()
    stripped_start = 0
    while stripped_start < len(text) and text[stripped_start] in (" \t\r\n\ufeff" if isinstance(text, str) else b" \t\r\n"):
        stripped_start += 1
    head = text[stripped_start:stripped_start + 1]
    array = head in ("[", b"[")
    sink = ijson.items_coro(coro_out, "item" if array else "", multiple_values=not array, use_float=True)
    count = 0
    try:
        for start in range(0, len(text), _CHUNK):
            sink.send(encode(text[start:start + _CHUNK]))
            for value in coro_out:
                yield value
                count += 1
            coro_out.clear()
        sink.close()
        for value in coro_out:
            yield value
            count += 1
        coro_out.clear()
    except (ijson.JSONError, ValueError) as exc:
        reason = _reason(exc)
        raise InvalidInput(f"the JSON body stops being valid JSON after {count} batch(es): {reason}",
                           faults=[Fault(f"{path}[{count}]" if array else path, reason)]) from None


def _reason(exc: Exception) -> str:
    """ijson's message without its multi-line excerpt, with advice for what it cannot read."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    reason = lines[0]
    if "integer overflow" in reason:
        reason += " (an integer beyond 64 bits, which no Events API field accepts)"
    near = next((line.strip() for line in lines[1:2] if line.strip()), "")
    return f"{reason} near {near[:80]!r}" if near else reason


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes, read in slices (what ties a state file to its inputs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
