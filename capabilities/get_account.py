"""getAccount: read one account (GET /v1/accounts/{id}?accountId={id})."""

from connector_core import NotFound, hookimpl

from .common import (
    account_not_found,
    account_output,
    as_id,
    entities,
    manifest,
    pick_account,
    platform,
)

MANIFEST = manifest("getAccount")
__all__ = ["MANIFEST", "execute"]


@hookimpl
def execute(ctx, properties):
    account_id = as_id(properties["accountId"])
    try:
        response = platform(ctx).get("/v1/accounts/{id}", path_params={"id": account_id}, params={"accountId": account_id})
    except NotFound as exc:
        raise account_not_found(exc, account_id) from None
    account = pick_account(entities(response, "account"), response.status_code, account_id=account_id)
    return {"account": account_output(account)}
