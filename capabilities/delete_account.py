"""deleteAccount: delete an account (DELETE /v1/accounts?accountId={id})."""

from connector_core import Conflict, NotFound, hookimpl

from .common import CONNECTOR_MANIFEST, account_not_found, as_id, manifest, platform

MANIFEST = manifest("deleteAccount")
__all__ = ["CONNECTOR_MANIFEST", "MANIFEST", "execute"]


@hookimpl
def execute(ctx, properties):
    account_id = as_id(properties["accountId"])
    retries_before = ctx.stats.retries
    try:
        platform(ctx).delete("/v1/accounts", params={"accountId": account_id})
    except NotFound as exc:
        # Deleting is idempotent: when an attempt of this call failed (a lost answer, a 5xx)
        # and the retry finds the account gone, the goal holds and the call succeeds. Only a
        # first-attempt 404 proves the account never existed here.
        if ctx.stats.retries == retries_before:
            raise account_not_found(exc, account_id) from None
    except Conflict as exc:
        raise Conflict(
            f"mParticle refused to delete account {account_id}: {exc.details.get('body') or exc.message}; "
            "delete every application of the account first",
            status=exc.details.get("status"),
        ) from None
    return {"deleted": True, "accountId": account_id}
