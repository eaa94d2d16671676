"""updateAccount: rename an account (PUT /v1/accounts/{id}?accountId={id} with {"name": updatedName})."""

from connector_core import Conflict, NotFound, hookimpl

from .common import (
    account_not_found,
    account_output,
    as_id,
    entities,
    manifest,
    pick_account,
    platform,
)

MANIFEST = manifest("updateAccount")
__all__ = ["MANIFEST", "execute"]


@hookimpl
def execute(ctx, properties):
    account_id = as_id(properties["accountId"])
    name = properties["updatedName"]
    try:
        response = platform(ctx).put(
            "/v1/accounts/{id}", path_params={"id": account_id}, params={"accountId": account_id}, json={"name": name}
        )
    except NotFound as exc:
        raise account_not_found(exc, account_id) from None
    except Conflict as exc:
        raise Conflict(
            f"mParticle refused to rename account {account_id} to {name!r}: {exc.details.get('body') or exc.message}; "
            "account names are unique, so choose another updatedName",
            status=exc.details.get("status"),
        ) from None
    # 202 may come with the updated account in the envelope or with no body at all.
    items = entities(response, "account")
    account = pick_account(items, response.status_code, account_id=account_id) if items else {"id": account_id, "name": name}
    return {"account": account_output(account)}
