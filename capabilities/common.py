"""What every mParticle capability shares: manifests, ids and Platform API responses."""

from __future__ import annotations

from importlib import resources
from typing import Any

from connector_core import Context, NotFound, UpstreamError, read_json

_MANIFESTS = resources.files("connector_mparticle.manifests")
CONNECTOR_MANIFEST = _MANIFESTS / "mparticle.json"
SERVICE = "mParticle"


def manifest(capability_id: str):
    """The packaged manifest of one capability (an ``importlib.resources`` traversable)."""
    return _MANIFESTS / f"{capability_id}.json"


def as_id(value: Any) -> int:
    """An id the input schema already checked (a positive integer or its digits) as ``int``."""
    return int(value)


def platform(ctx: Context):
    return ctx.http("platform")


def entities(response, what: str) -> list[dict]:
    """The entities of a Platform API answer: ``{data, dataType, errors}`` envelope or a bare array.

    An empty body (202 without content) gives an empty list. An envelope carrying errors
    and no data is an upstream error.
    """
    body = read_json(response, SERVICE, allow_empty=True)
    if body is None:
        return []
    if isinstance(body, list):
        items = body
    elif isinstance(body, dict) and "data" in body:
        items = body.get("data") or []
        errors = body.get("errors")
        if errors and not items:
            messages = "; ".join(
                " ".join(str(e.get(k)) for k in ("code", "message") if isinstance(e, dict) and e.get(k)) for e in errors
            )
            raise UpstreamError(f"{SERVICE} answered with errors: {messages}", status=response.status_code)
        if isinstance(items, dict):
            items = [items]
    elif isinstance(body, dict):
        items = [body]
    else:
        items = None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise UpstreamError(
            f"{SERVICE} answered with an unexpected {what} body; expected a list of objects",
            code="invalid_response",
            status=response.status_code,
        )
    return items


def account_not_found(exc: NotFound, account_id: int) -> NotFound:
    """A not-found error that says what to fix."""
    return NotFound(
        f"account {account_id} does not exist or is outside the scope of these credentials; "
        "check accountId and the account scope of the API credentials",
        status=exc.details.get("status"),
        body=exc.details.get("body"),
    )


def identified(items: list[dict], what: str) -> list[dict]:
    """``items`` with integer ids, or ``UpstreamError`` when one lacks an ``id`` or ``name``."""
    out = []
    for item in items:
        item_id = item.get("id")
        if isinstance(item_id, str) and item_id.isdigit():
            item = dict(item, id=int(item_id))
        if not isinstance(item.get("id"), int) or isinstance(item.get("id"), bool) or not isinstance(item.get("name"), str):
            raise UpstreamError(f"{SERVICE} answered with a {what} without a numeric id and a name", code="invalid_response")
        out.append(item)
    return out


def account_output(account: dict) -> dict:
    """The stable account shape: mParticle's account fields, ``id`` as an integer."""
    (account,) = identified([account], "account")
    return {k: account[k] for k in ("id", "name", "data_type", "created_on", "last_modified_on") if k in account}


def pick_account(items: list[dict], status: int, *, account_id: int | None = None, name: str | None = None) -> dict:
    """The account in ``items`` with this id (or, for a creation, this name).

    Matched, never taken by position: an answer that lists other accounts but not this
    one is an ``invalid_response`` (``status`` is the answer's HTTP status), however many
    it lists.
    """
    if account_id is not None:
        what = f"account {account_id}"
        found = [item for item in items if str(item.get("id")) == str(account_id)]
    else:
        what = f"the new account {name!r}"
        found = [item for item in items if item.get("name") == name]
    if found:
        return found[0]
    others = f"; it listed {len(items)} other account(s)" if items else ""
    raise UpstreamError(f"{SERVICE} answered {status} without {what}{others}", code="invalid_response", status=status)
