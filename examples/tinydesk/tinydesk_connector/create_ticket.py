"""createTicket: open a ticket through the REST API (OAuth2 client credentials)."""

from connector_core import UpstreamError, hookimpl, read_json

from . import manifest

MANIFEST = manifest("createTicket")


@hookimpl
def execute(ctx, properties):
    body = {
        "subject": properties["subject"],
        "requester": {"email": properties["requesterEmail"]},
        "priority": properties.get("priority", "normal"),
        "tags": properties.get("tags", []),
    }
    # The framework fetches and caches the token, signs the request and maps error answers
    # to typed errors; a write that is not retry-safe is never repeated blindly.
    answer = read_json(ctx.http("api").post("/v2/tickets", json=body), "Tinydesk")
    ticket = answer.get("ticket") if isinstance(answer, dict) else None
    if not isinstance(ticket, dict):
        raise UpstreamError("Tinydesk answered without a ticket", code="invalid_response")
    return {
        "ticket": {
            "id": ticket["id"],
            "subject": ticket["subject"],
            "status": ticket["status"],
            "priority": ticket["priority"],
            "requesterEmail": ticket["requester"]["email"],
            "tags": ticket["tags"],
        }
    }
