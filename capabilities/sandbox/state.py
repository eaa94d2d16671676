"""The sandbox's data model: credentials, tokens, accounts, audiences, calculated attributes,
accepted batches, counters and the request log.

``State`` is built from the seed (``seed.py``) and guards itself with one lock, so HTTP
threads and the Python handle can use it at the same time. Rule violations raise
``Rejected``, which the routes turn into the error format of the API that was called.
"""

from __future__ import annotations

import collections
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

import attrs

from . import seed

REDACTED = "[REDACTED]"
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class Rejected(Exception):
    """A request broke a rule: answer ``status`` with ``code`` and one message per problem."""

    def __init__(self, status: int, code: str, *messages: str, headers: Iterable[tuple[str, str]] = ()):
        super().__init__(messages[0] if messages else code)
        self.status = status
        self.code = code
        self.messages = messages
        self.headers = list(headers)


class Clock:
    """Epoch seconds from ``source`` plus an offset that tests move forward."""

    def __init__(self, source: Callable[[], float] = time.time):
        self._source = source
        self.offset = 0.0

    def __call__(self) -> float:
        return self._source() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def iso(epoch: float) -> str:
    """mParticle's timestamp format: ISO-8601, UTC, milliseconds, no zone designator."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


@attrs.frozen
class Client:
    """OAuth client credentials (Platform API) of one organisation."""

    client_id: str
    client_secret: str = attrs.field(repr=False)
    org: int


@attrs.frozen
class Input:
    """Events API input credentials (HTTP Basic key and secret)."""

    api_key: str
    api_secret: str = attrs.field(repr=False)
    org: int


@attrs.define
class Account:
    id: int
    name: str
    org: int
    applications: int
    created_on: str
    last_modified_on: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "data_type": "account",
            "created_on": self.created_on,
            "last_modified_on": self.last_modified_on,
        }


def _name_key(name: str) -> str:
    return name.strip().casefold()


class State:
    """Everything the sandbox remembers between requests; ``reset`` means a new State."""

    def __init__(
        self,
        clock: Clock,
        clients: list[Client],
        inputs: list[Input],
        *,
        max_batches: int | None = 10_000,
        max_logged_requests: int | None = 1_000,
    ):
        self.lock = threading.RLock()
        self.clock = clock
        self.clients = {client.client_id: client for client in clients}
        self.inputs = {item.api_key: item for item in inputs}
        self.accounts = {
            account_id: Account(account_id, name, org, apps, created, modified)
            for account_id, name, org, apps, created, modified in seed.ACCOUNTS
        }
        self.workspaces = {ws_id: (name, account_id, created) for ws_id, name, account_id, created in seed.WORKSPACES}
        self.audiences = seed.audiences()
        self.calculated_attributes = seed.calculated_attributes()
        self.tokens: dict[str, tuple[Client, float]] = {}
        # A batch, or (the accepted body it is in, its index) until it is looked at: kept_batches().
        self.batches: collections.deque[dict[str, Any] | tuple[_Unparsed, int]] = collections.deque(maxlen=max_batches)
        # Batches a bulk request carried that failed validation: dropped, kept for inspection.
        self.rejected: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_batches)
        self.markers: collections.Counter[Any] = collections.Counter()  # marker value -> accepted events
        self.seen_request_ids: set[tuple[str, str]] = set()
        self.log: collections.deque[tuple] = collections.deque(maxlen=max_logged_requests)
        self.counters = collections.Counter(
            token_requests=0, tokens_issued=0, batches_accepted=0, events_accepted=0, duplicates_dropped=0,
            requests_total=0, historical_batches=0, batches_rejected=0, events_rejected=0,
        )
        self.by_status: collections.Counter[str] = collections.Counter()
        self.by_endpoint: collections.Counter[str] = collections.Counter()

    # -- OAuth ---------------------------------------------------------------------------

    def authenticate_client(self, client_id: Any, client_secret: Any) -> Client | None:
        client = self.clients.get(client_id) if isinstance(client_id, str) else None
        if client is None or not isinstance(client_secret, str):
            return None
        return client if _same_secret(client.client_secret, client_secret) else None

    def issue_token(self, client: Client, lifetime: int) -> str:
        token = secrets.token_urlsafe(32)
        with self.lock:
            now = self.clock()
            self.tokens = {t: entry for t, entry in self.tokens.items() if entry[1] > now}
            self.tokens[token] = (client, now + lifetime)
            self.counters["tokens_issued"] += 1
        return token

    def client_for_token(self, token: str) -> Client:
        entry = self.tokens.get(token)
        if entry is None:
            raise Rejected(401, "UNAUTHORIZED", "The access token is invalid.")
        if entry[1] <= self.clock():
            raise Rejected(401, "UNAUTHORIZED", "The access token has expired.")
        return entry[0]

    # -- Platform ------------------------------------------------------------------------

    def account_in_scope(self, org: int, raw_id: str) -> Account:
        account = self.accounts.get(int(raw_id)) if raw_id.isascii() and raw_id.isdigit() else None
        if account is None or account.org != org:
            raise Rejected(404, "NOT_FOUND", f"Account {raw_id} was not found.")
        return account

    def accounts_of(self, org: int) -> list[Account]:
        with self.lock:
            return [account for account in self.accounts.values() if account.org == org]

    def _check_unique(self, org: int, name: str, exclude: int | None = None) -> None:
        key = _name_key(name)
        for account in self.accounts.values():
            if account.org == org and account.id != exclude and _name_key(account.name) == key:
                raise Rejected(422, "VALIDATION_ERROR", f"Account name '{name}' must be unique.")

    def create_account(self, org: int, name: str) -> Account:
        with self.lock:
            self._check_unique(org, name)
            now = iso(self.clock())
            account = Account(max(self.accounts, default=1000) + 1, name, org, 0, now, now)
            self.accounts[account.id] = account
            self.audiences[account.id] = []
            return account

    def rename_account(self, account: Account, name: str) -> Account:
        with self.lock:
            self._check_unique(account.org, name, exclude=account.id)
            account.name = name
            account.last_modified_on = iso(self.clock())
            return account

    def delete_account(self, account: Account) -> None:
        with self.lock:
            if account.applications:
                raise Rejected(
                    422, "VALIDATION_ERROR",
                    f"Account {account.id} still has {account.applications} application(s); "
                    "all applications must be deleted before the account can be deleted.",
                )
            del self.accounts[account.id]
            self.audiences.pop(account.id, None)
            for ws_id in [ws for ws, (_, owner, _) in self.workspaces.items() if owner == account.id]:
                del self.workspaces[ws_id]
                self.calculated_attributes.pop(ws_id, None)

    def _workspace_json(self, ws_id: int) -> dict[str, Any]:
        name, _, created = self.workspaces[ws_id]
        return {"name": name, "id": ws_id, "data_type": "workspace", "created_on": created}

    def audiences_of(self, account: Account) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {**audience, "workspaces": [self._workspace_json(ws) for ws in audience["workspaces"]]}
                for audience in self.audiences.get(account.id, [])
            ]

    def calculated_attributes_of(self, org: int, raw_workspace: str, name: str | None) -> list[dict[str, Any]]:
        with self.lock:
            ws_id = int(raw_workspace) if raw_workspace.isascii() and raw_workspace.isdigit() else None
            workspace = self.workspaces.get(ws_id) if ws_id is not None else None
            if workspace is None or self.accounts[workspace[1]].org != org:
                raise Rejected(404, "NOT_FOUND", f"Workspace {raw_workspace} was not found.")
            items = self.calculated_attributes.get(ws_id, [])
            return [ca for ca in items if not name or ca["name"] == name]

    # -- Events --------------------------------------------------------------------------

    def authenticate_input(self, key: str, secret: str, client_credentials: bool) -> bool:
        item = self.inputs.get(key)
        if item is not None:
            return _same_secret(item.api_secret, secret)
        return client_credentials and self.authenticate_client(key, secret) is not None

    def accept_batches(
        self, api_key: str, batches: list[dict[str, Any]], historical: bool = False, marker: str | None = None,
    ) -> None:
        """Keep each batch unless its ``source_request_id`` was already seen for this key;
        count the ``marker`` custom attribute of the events of each batch kept."""
        with self.lock:
            if historical:
                self.counters["historical_batches"] += len(batches)
            for batch in batches:
                self._keep(api_key, batch.get("source_request_id"), batch, len(batch.get("events") or ()),
                           None if marker is None else _markers(batch, marker))

    def accept_unparsed(
        self, api_key: str, body: bytes, summaries: list[tuple[Any, int, list | None]], parse: Callable[[bytes], list],
    ) -> None:
        """``accept_batches`` for a bulk body whose batches all passed (``bulk.batch_summaries``:
        each batch's ``source_request_id``, number of events and marker values, None when no
        marker is counted): the batches are kept as the body and parsed with ``parse`` the
        first time one is looked at (``kept_batches``)."""
        body_batches = _Unparsed(body, parse)
        with self.lock:
            for index, (request_id, events, markers) in enumerate(summaries):
                self._keep(api_key, request_id, (body_batches, index), events, markers)

    def _keep(self, api_key: str, request_id: Any, kept: Any, events: int, markers: list | None) -> None:
        """Keep one accepted batch (or where to parse it from) unless its id was seen for this key."""
        if isinstance(request_id, str) and request_id:
            if (api_key, request_id) in self.seen_request_ids:
                self.counters["duplicates_dropped"] += 1
                return
            self.seen_request_ids.add((api_key, request_id))
        self.batches.append(kept)
        self.counters["batches_accepted"] += 1
        self.counters["events_accepted"] += events
        if markers is not None:
            self.markers.update(markers)

    def kept_batches(self) -> list[dict[str, Any]]:
        """The accepted batches kept for inspection, oldest first, parsed where they were not yet."""
        with self.lock:
            return [kept if type(kept) is not tuple else kept[0].batch(kept[1]) for kept in self.batches]

    def reject_batches(self, api_key: str, rejected: list[tuple[int, Any, list]]) -> None:
        """Drop batches of an accepted bulk request that failed validation, keeping
        ``(index in the request, batch, faults)`` for inspection."""
        if not rejected:
            return
        with self.lock:
            for index, batch, faults in rejected:
                events = batch.get("events") if isinstance(batch, dict) else None
                self.rejected.append({
                    "time": self.clock(), "api_key": api_key, "index": index, "batch": batch,
                    "faults": [{"path": fault.path, "message": fault.message} for fault in faults],
                })
                self.counters["batches_rejected"] += 1
                self.counters["events_rejected"] += len(events) if isinstance(events, list) else 0

    def marker_summary(self, limit: int = 100) -> dict[str, Any]:
        """Accepted events carrying a marker, distinct markers, and up to ``limit`` doubled ones."""
        with self.lock:
            events = sum(self.markers.values())
            doubled = {str(value): count for value, count in self.markers.items() if count > 1}
            return {
                "events": events,
                "distinct": len(self.markers),
                "doubled": len(doubled),
                "doubled_examples": dict(list(doubled.items())[:limit]),
            }

    # -- Bookkeeping ---------------------------------------------------------------------

    def record(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
               endpoint: str, status: int | None, effect: str | None) -> None:
        """Count one answered (or dropped) request and add it to the log."""
        kept = {
            name: (value.partition(" ")[0] if name in _SECRET_HEADERS else value)
            for name, value in headers.items()
        }
        with self.lock:
            self.counters["requests_total"] += 1
            if endpoint == "token":
                self.counters["token_requests"] += 1
            self.by_status["dropped" if status is None else str(status)] += 1
            self.by_endpoint[endpoint] += 1
            self.log.append((self.clock(), method, path, query, kept, body, endpoint, status, effect))

    def request_log(self) -> list[dict[str, Any]]:
        with self.lock:
            entries = list(self.log)
        return [
            {
                "time": at,
                "method": method,
                "path": path,
                "query": _first_values(query),
                "headers": headers,
                "endpoint": endpoint,
                "status": status,
                "effect": effect,
                **_body_view(body, secret_field="client_secret" if endpoint == "token" else None),
            }
            for at, method, path, query, headers, body, endpoint, status, effect in entries
        ]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                **self.counters,
                "requests_by_status": dict(self.by_status),
                "requests_by_endpoint": dict(self.by_endpoint),
                "accounts": [
                    {**account.to_json(), "org": account.org, "applications": account.applications,
                     "workspaces": sorted(ws for ws, (_, owner, _) in self.workspaces.items() if owner == account.id)}
                    for account in self.accounts.values()
                ],
                "clients": [{"client_id": c.client_id, "org": c.org} for c in self.clients.values()],
                "inputs": [{"api_key": i.api_key, "org": i.org} for i in self.inputs.values()],
                "batches_kept": len(self.batches),
                "rejected_kept": len(self.rejected),
            }


class _Unparsed:
    """The batches of one accepted bulk body, parsed when one is first looked at."""

    __slots__ = ("_body", "_parse", "_batches")

    def __init__(self, body: bytes, parse: Callable[[bytes], list]):
        self._body, self._parse, self._batches = body, parse, None

    def batch(self, index: int) -> dict[str, Any]:
        if self._batches is None:
            self._batches, self._body = self._parse(self._body), b""
        return self._batches[index]


def _first_values(query: str) -> dict[str, str]:
    """Query parameters with their first value, as the routes read them."""
    out: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        out.setdefault(name, value)
    return out


def _body_view(body: bytes, secret_field: str | None) -> dict[str, Any]:
    """The logged body as text and, when it is JSON, parsed; ``secret_field`` is redacted."""
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    if secret_field:
        if isinstance(parsed, dict) and secret_field in parsed:
            parsed[secret_field] = REDACTED
            text = json.dumps(parsed)
        elif parsed is None and secret_field in text:  # form-encoded token request
            pairs = [(k, REDACTED if k == secret_field else v) for k, v in parse_qsl(text, keep_blank_values=True)]
            text = "&".join(f"{k}={v}" for k, v in pairs)
    return {"body": text, "json": parsed}


def _markers(batch: dict[str, Any], attribute: str) -> list[Any]:
    """The values of ``attribute`` among the custom attributes of the batch's events."""
    found = []
    for event in batch.get("events") or ():
        data = event.get("data") if isinstance(event, dict) else None
        attributes = data.get("custom_attributes") if isinstance(data, dict) else None
        if isinstance(attributes, dict) and attribute in attributes:
            value = attributes[attribute]
            found.append(value if isinstance(value, (str, int, float, bool)) or value is None else repr(value))
    return found


def _same_secret(expected: str, offered: str) -> bool:
    """Constant-time comparison of two secrets of any characters.

    ``secrets.compare_digest`` raises ``TypeError`` for ``str`` with non-ASCII characters, so
    a hostile client sending ``client_secret=é`` would get a 500 instead of a 401; bytes compare
    whatever the characters (``surrogatepass``: a JSON body may hold a lone surrogate).
    """
    return secrets.compare_digest(expected.encode("utf-8", "surrogatepass"), offered.encode("utf-8", "surrogatepass"))
