"""getAudiences: list an account's audiences (GET /v1/audiences?accountId={id})."""

from connector_core import NotFound, hookimpl

from .common import (
    account_not_found,
    as_id,
    entities,
    identified,
    manifest,
    platform,
)

MANIFEST = manifest("getAudiences")
__all__ = ["MANIFEST", "execute"]


@hookimpl
def execute(ctx, properties):
    account_id = as_id(properties["accountId"])
    try:
        response = platform(ctx).get("/v1/audiences", params={"accountId": account_id})
    except NotFound as exc:
        raise account_not_found(exc, account_id) from None
    audiences = identified(entities(response, "audience"), "audience")
    return {"audiences": audiences, "count": len(audiences)}
