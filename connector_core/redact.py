"""Keeps secret values out of messages, logs, outputs and error details, in any encoding.

A secret can reach text in many spellings: as is, escaped by ``json.dumps`` (non-ASCII as
``\\u00e9``, quotes and backslashes escaped), escaped by ``repr``, percent-encoded by a URL
or a form body (``%20`` or ``+``), inside the base64 of HTTP Basic credentials. The
:class:`Redactor` knows every one of these spellings of every secret it was given and
replaces each with ``***``.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
# Values shorter than this are not secrets worth the name: masking them would garble
# ordinary words ("s" in "accounts"). The engine refuses such values in secret fields.
MIN_SECRET_LENGTH = 4

_PERCENT = re.compile(r"%[0-9A-F]{2}")


def spellings(secret: str) -> set[str]:
    """Every spelling of ``secret`` the redactor matches (see the module docstring)."""
    forms = {secret}
    for ensure_ascii in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ensure_ascii)[1:-1]
        forms.add(escaped)
        forms.add(escaped.replace("/", "\\/"))  # some encoders escape the solidus
        forms.add(json.dumps(escaped, ensure_ascii=ensure_ascii)[1:-1])  # JSON text inside a JSON string
    forms.add(re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), json.dumps(secret)[1:-1]))
    # repr picks its quote by content, and a secret inside a longer string may get the other one.
    forms.add(repr(secret)[1:-1])
    forms.add(repr(secret + "'\"")[1:-4])
    if '"' not in secret:
        forms.add(repr(secret + "'")[1:-2])
    forms.add(ascii(secret)[1:-1])
    forms.add(repr(secret.encode("utf-8", "surrogatepass"))[2:-1])
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret, safe=""), quote_plus(secret)):
        forms.add(encoded)
        forms.add(_PERCENT.sub(lambda m: m.group(0).lower(), encoded))
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def basic_credentials(username: str, password: str) -> list[str]:
    """The base64 forms of ``username:password`` as an HTTP Basic header carries them."""
    raw = f"{username}:{password}".encode("utf-8", "surrogatepass")
    return [base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii")]


class Redactor:
    """Replaces every known secret value, in every spelling, with ``***``.

    Secrets are the config fields a connector marks secret, plus values learnt at run
    time (access tokens, encoded Basic credentials). A redactor made with ``parent``
    passes every secret it learns on to it (the CLI's redactor learns the secrets of
    every connection its engine opens). Thread-safe.
    """

    def __init__(self, secrets: Iterable[str] = (), *, parent: Redactor | None = None) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._parent = parent
        self.add(*secrets)

    def add(self, *values: str) -> None:
        """Learn secret values (each in all its spellings); values under 4 characters are ignored."""
        new = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}
        if self._parent is not None and new:
            self._parent.add(*new)
        with self._lock:
            if new <= self._secrets:
                return
            self._secrets = self._secrets | new
            forms: set[str] = set()
            for secret in self._secrets:
                forms |= spellings(secret)
            # Longest first, so a spelling that contains another is masked whole.
            ordered = sorted(forms, key=lambda f: (-len(f), f))
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def add_basic(self, username: str, password: str) -> None:
        """Learn HTTP Basic credentials: the password and the encoded ``username:password``."""
        self.add(password, *basic_credentials(username, password))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, value: str) -> str:
        """``value`` with every secret spelling masked."""
        pattern = self._pattern
        return pattern.sub(MASK, value) if pattern is not None else value

    def __call__(self, value: Any) -> Any:
        """Redact a string, or every string (keys included) inside lists, tuples and dicts."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self(v) for v in value)
        return value

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secret(s))"


class RedactingFormatter(logging.Formatter):
    """A log formatter whose whole output (message, arguments, traceback) goes through a redactor.

    Put it on a handler to keep secrets out of every record that reaches the handler,
    whichever logger made it (plugins' own module loggers included).
    """

    def __init__(self, redactor: Redactor, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.text(super().format(record))
