"""createAccount: create an account (POST /v1/accounts with {"name": displayName}).

Creating is not safe to repeat in general, so the transport never retries it after an
ambiguous failure (timeout after sending, dropped connection, 5xx). Account names are
unique, though, so one deliberate re-send cannot make a second account: it either
creates the account (the first attempt had no effect) or is refused because the name
now exists, in which case the first attempt may have created it and the host gets
``outcome_unknown`` with the name to look up.

Any 2xx is a success, whatever its body: the output gives the account as mParticle returned
it, or only its name when the answer holds no readable account (no ``id`` then).
"""

from connector_core import Conflict, OutcomeUnknown, UpstreamError, hookimpl

from .common import (
    account_output,
    entities,
    manifest,
    pick_account,
    platform,
)

MANIFEST = manifest("createAccount")
__all__ = ["MANIFEST", "execute"]


@hookimpl
def execute(ctx, properties):
    name = properties["displayName"]
    client = platform(ctx)
    try:
        response = client.post("/v1/accounts", json={"name": name})
    except Conflict as exc:
        raise Conflict(
            f"mParticle refused to create account {name!r}: {exc.details.get('body') or exc.message}; "
            "account names are unique, so choose another displayName",
            status=exc.details.get("status"),
        ) from None
    except OutcomeUnknown as first:
        ctx.log.warning("create of account %r ended ambiguously (%s); re-sending once, duplicates are refused by name", name, first.message)
        try:
            response = client.post("/v1/accounts", json={"name": name})
        except Conflict:
            raise OutcomeUnknown(
                f"the first request may have created account {name!r}: it timed out or lost its answer, and an account "
                "with that name exists now. Look the account up before creating it again",
                name=name,
            ) from None
        except OutcomeUnknown as second:
            raise OutcomeUnknown(
                f"creating account {name!r} failed ambiguously twice ({second.message}); it may or may not exist now. "
                "Look the account up before creating it again",
                name=name,
            ) from None
    return {"account": _created(ctx, response, name)}


def _created(ctx, response, name: str) -> dict:
    """The new account as mParticle returned it, or only its name.

    Any 2xx means the account was created: the documentation gives ``201 Created`` and
    promises no body, so an empty, unreadable or unexpected body is no reason to report a
    failure (a retry would then be refused because the name exists).
    """
    try:
        return account_output(pick_account(entities(response, "account"), response.status_code, name=name))
    except UpstreamError as exc:
        ctx.log.warning("account %r was created (%s); its answer gives no readable account: %s",
                        name, response.status_code, exc.message)
    return {"name": name}
