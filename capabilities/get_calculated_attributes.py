"""getCalculatedAttributes: list a workspace's calculated attributes.

GET /platform/v2/workspaces/{workspace}/calculatedattributes, with ``name`` when
``nameOptional`` is given. The v2 API takes no ``accountId``.
"""

from connector_core import NotFound, hookimpl

from .common import as_id, entities, identified, manifest, platform

MANIFEST = manifest("getCalculatedAttributes")
__all__ = ["MANIFEST", "execute"]


@hookimpl
def execute(ctx, properties):
    workspace = as_id(properties["workspace"])
    name = properties.get("nameOptional")
    try:
        response = platform(ctx).get(
            "/platform/v2/workspaces/{id}/calculatedattributes",
            path_params={"id": workspace},
            params={"name": name} if name else None,
        )
    except NotFound as exc:
        raise NotFound(
            f"workspace {workspace} does not exist or is outside the scope of these credentials; check workspace",
            status=exc.details.get("status"),
            body=exc.details.get("body"),
        ) from None
    attributes = identified(entities(response, "calculated attribute"), "calculated attribute")
    return {"calculatedAttributes": attributes, "count": len(attributes)}
