"""deleteAccount: delete an account (DELETE /v1/accounts?accountId={id})."""

from connector_core import Conflict, NotFound, OutcomeUnknown, hookimpl
from connector_core.http import NOT_EXECUTED

from .common import account_not_found, as_id, manifest, platform

MANIFEST = manifest("deleteAccount")
__all__ = ["MANIFEST", "execute"]


@hookimpl
def execute(ctx, properties):
    account_id = as_id(properties["accountId"])
    first = len(ctx.attempts)
    try:
        platform(ctx).delete("/v1/accounts", params={"accountId": account_id})
    except NotFound as exc:
        # The 404 is the truth only if no earlier attempt of this delete may have done the work:
        # a 429, a refused connection or a failed token request never executed; a lost answer
        # or a 5xx may have deleted the account just before this 404.
        earlier = [a for a in ctx.attempts[first:-1] if not a.credentials and a.outcome != NOT_EXECUTED]
        if earlier:
            what = earlier[-1].failure or f"answered {earlier[-1].status}"
            raise OutcomeUnknown(
                f"mParticle answered 404 to deleting account {account_id} after an earlier attempt of this call "
                f"whose outcome is unknown ({what}): either that attempt deleted the account or it never existed "
                "for these credentials; check with getAccount before acting on it",
                accountId=account_id,
                status=404,
            ) from None
        raise account_not_found(exc, account_id) from None
    except Conflict as exc:
        raise Conflict(
            f"mParticle refused to delete account {account_id}: {exc.details.get('body') or exc.message}; "
            "delete every application of the account first",
            status=exc.details.get("status"),
        ) from None
    return {"deleted": True, "accountId": account_id}
