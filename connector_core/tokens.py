"""Tokens cached by credential, shared by every connection of an engine.

A flow platform runs many tenants through one engine; its connection cache is small, so
tokens live here instead, keyed by a digest of the credential (token URL, client id and
secret: never the secret itself as a key that could be printed), bounded for thousands of
tenants. Fetches are single flight for failures as for successes: threads waiting for a
token that could not be obtained get the same error at once, and the failure is
remembered briefly, so N threads fail within one fetch's time, not N of them.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from .errors import AuthenticationFailed, ConnectorError, NetworkError

# Sized for thousands of tenants; an entry holds a token and a few numbers.
DEFAULT_MAX_ENTRIES = 10_000


class _Entry:
    __slots__ = ("lock", "token", "expires_at", "failure", "failed_until")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.token: str | None = None
        self.expires_at = 0.0
        self.failure: ConnectorError | None = None
        self.failed_until = 0.0


class TokenCache:
    """Access tokens by credential key (see the module docstring). Thread-safe.

    ``remember_rejection`` seconds a refused credential is remembered; ``remember_failure``
    seconds any other failure to obtain a token is (network, timeouts, upstream errors).
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        remember_rejection: float = 10.0,
        remember_failure: float = 2.0,
    ) -> None:
        self.max_entries = max_entries
        self.remember_rejection = remember_rejection
        self.remember_failure = remember_failure
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TokenCache({len(self._entries)} credential(s))"

    def _entry(self, key: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
            return entry

    def token(
        self,
        key: str,
        fetch: Callable[[], tuple[str, float]],
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin: float = 60.0,
        wait: float | None = None,
    ) -> str:
        """The cached token of credential ``key``, or a new one from ``fetch() -> (token, lifetime)``.

        One thread fetches while the others wait (at most ``wait`` seconds, then
        ``NetworkError``); a failure reaches every waiting thread and is remembered.
        """
        entry = self._entry(key)
        token = entry.token
        if token is not None and clock() < entry.expires_at:
            return token
        if not entry.lock.acquire(timeout=-1 if wait is None else max(0.0, wait)):
            raise NetworkError(
                f"gave up waiting {wait:.1f} s for another request to obtain the access token; retry later",
                code="deadline_exceeded",
            )
        try:
            now = clock()
            if entry.token is not None and now < entry.expires_at:
                return entry.token
            if entry.failure is not None and now < entry.failed_until:
                raise entry.failure.copy()
            try:
                token, lifetime = fetch()
            except ConnectorError as exc:
                remember = self.remember_rejection if isinstance(exc, AuthenticationFailed) else self.remember_failure
                entry.failure, entry.failed_until = exc, clock() + remember
                raise
            entry.failure = None
            entry.token = token
            entry.expires_at = clock() + max(lifetime - refresh_margin, lifetime / 2)
            return token
        finally:
            entry.lock.release()

    def clear(self) -> None:
        """Forget every token and remembered failure."""
        with self._lock:
            self._entries.clear()

    def invalidate(self, key: str, token: str | None = None) -> None:
        """Forget the token of ``key`` (only if it is still ``token``, when given)."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None:
            with entry.lock:
                if token is None or entry.token == token:
                    entry.token, entry.expires_at = None, 0.0
