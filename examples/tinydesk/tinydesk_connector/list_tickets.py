"""listTickets: read tickets by status through the export API (HTTP Basic)."""

from connector_core import UpstreamError, hookimpl, read_json

from . import manifest

MANIFEST = manifest("listTickets")


@hookimpl
def execute(ctx, properties):
    params = {"status": properties.get("status", "open"), "limit": properties.get("limit", 20)}
    answer = read_json(ctx.http("export").get("/tickets", params=params), "the Tinydesk export API")
    rows = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(rows, list):
        raise UpstreamError("the Tinydesk export API answered without a data list", code="invalid_response")
    tickets = [{"id": row["id"], "subject": row["subject"], "status": row["status"]} for row in rows]
    return {"tickets": tickets, "count": len(tickets)}
