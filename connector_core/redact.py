"""Keeps secret values out of messages, logs and error details."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

MASK = "***"


class Redactor:
    """Replaces every known secret value in text with ``***``.

    Secrets are the config fields a connector marks secret, plus values learnt at run
    time (access tokens, encoded Basic credentials).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self.add(*secrets)

    def add(self, *values: str) -> None:
        with self._lock:
            known = set(self._secrets)
            known.update(v for v in values if isinstance(v, str) and v)
            # Longest first, so a secret that contains another is masked whole.
            self._secrets = tuple(sorted(known, key=len, reverse=True))

    def __call__(self, value: Any) -> Any:
        """Redact a string, or every string inside lists and dicts."""
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self(v) for v in value)
        return value

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secret(s))"
