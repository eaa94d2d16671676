"""The sandbox's starting data: two organisations, their accounts, workspaces, audiences
and calculated attributes.

The demo client belongs to organisation 1 ("Acme"): accounts 1001-1003 are in its scope.
Account 1001 still has applications, so deleting it is refused (422). Organisation 2
("Globex") has account 2001 and workspace 6001, which exist but are out of the demo
client's scope (404). Globex has its own OAuth client so tests can check scope from
both sides.
"""

from __future__ import annotations

import copy
from typing import Any

DEMO_ORG = 1
OTHER_ORG = 2

# Demo credentials printed by `connector sandbox`; not secrets, the sandbox is local.
DEMO_CLIENT_ID = "sandbox-client-id"
DEMO_CLIENT_SECRET = "sandbox-client-secret"
DEMO_API_KEY = "us1-sandbox-api-key"
DEMO_API_SECRET = "sandbox-api-secret"

# (client_id, client_secret, org) of Globex's OAuth client.
OTHER_CLIENT = ("globex-client-id", "globex-client-secret", OTHER_ORG)

# id, name, org, applications, created_on, last_modified_on
ACCOUNTS = [
    (1001, "Acme Production", DEMO_ORG, 2, "2019-03-14T09:26:53.589", "2023-06-02T17:45:10.112"),
    (1002, "Acme Staging", DEMO_ORG, 0, "2019-03-14T09:31:07.004", "2022-11-21T08:03:44.870"),
    (1003, "Acme Sandbox", DEMO_ORG, 0, "2021-08-30T13:12:45.251", "2021-08-30T13:12:45.251"),
    (2001, "Globex Corporation", OTHER_ORG, 1, "2018-01-09T16:02:19.733", "2023-01-17T10:51:02.406"),
]

# id, name, account, created_on
WORKSPACES = [
    (5001, "Acme Web", 1001, "2019-03-14T09:27:40.117"),
    (5002, "Acme Mobile", 1001, "2019-04-02T11:15:22.530"),
    (5003, "Acme Staging", 1002, "2019-03-14T09:32:12.648"),
    (5004, "Acme Sandbox", 1003, "2021-08-30T13:13:01.937"),
    (6001, "Globex Global", 2001, "2018-01-09T16:05:48.201"),
]


def _output(provider: str, *configurations: str) -> dict[str, Any]:
    return {
        "provider_name": provider,
        "configurations": [{"name": name} for name in configurations],
        "data_type": "audience_output",
    }


def _audience(
    audience_id: int,
    name: str,
    external_name: str,
    size: int,
    workspaces: list[int],
    outputs: list[dict[str, Any]],
    *,
    calculated: bool = True,
    owner: str = "jane.doe@acme.example",
    modified: str = "2023-05-30T14:02:11.304",
    added: int = 0,
    dropped: int = 0,
) -> dict[str, Any]:
    return {
        "id": audience_id,
        "name": name,
        "external_name": external_name,
        "size": size,
        "created_by": owner,
        "last_modified_by": owner,
        "last_modified_on": modified,
        "is_calculated": calculated,
        "added_last_24_hours": added,
        "dropped_last_24_hours": dropped,
        "status": "active",
        "data_type": "audience",
        "workspaces": workspaces,  # ids; expanded to workspace objects by State
        "connected_outputs": outputs,
    }


AUDIENCES = {
    1001: [
        _audience(
            7622, "Lapsed purchasers (30 days)", "lapsed_purchasers_30d", 18452, [5001],
            [_output("Braze", "Braze EU"), _output("Google Ads", "Acme Search")], added=312, dropped=198,
        ),
        _audience(
            7623, "High value customers", "high_value_customers", 4210, [5001, 5002],
            [_output("Facebook", "Acme Custom Audiences")], added=41, dropped=7,
            owner="sam.lee@acme.example", modified="2023-06-01T08:44:59.021",
        ),
        _audience(
            7631, "Newsletter subscribers", "newsletter_subscribers", 120388, [5001], [],
            calculated=False, added=1022, dropped=87,
        ),
    ],
    1002: [
        _audience(7701, "QA testers", "qa_testers", 14, [5003], [], modified="2022-11-21T08:10:02.650"),
    ],
    1003: [],
    2001: [
        _audience(
            8801, "Globex loyalty members", "globex_loyalty", 98211, [6001],
            [_output("Salesforce Marketing Cloud", "Globex SFMC")], owner="ops@globex.example",
        ),
    ],
}


def _definition(
    calculation_type: str,
    datapoint: dict[str, Any],
    *,
    conditions: list[dict[str, Any]] | None = None,
    time_period: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "recipe_type": "event",
        "datapoint": datapoint,
        "conditions": conditions or [],
        "calculation_type": calculation_type,
        "time_period": time_period or {"type": "since", "date": "2022-01-01T00:00:00", "within": None, "within_unit": None},
        "seeding": {"cutoff_date": None},
    }


def _datapoint(kind: str, event_name: str, event_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "event_name": event_name,
        "attribute_name": extra.get("attribute_name"),
        "event_type": event_type,
        "custom_event_type": extra.get("custom_event_type"),
        "attribute_category": extra.get("attribute_category"),
        "use_product_quantity": extra.get("use_product_quantity", False),
    }


def _ca(
    ca_id: int,
    name: str,
    description: str,
    *,
    active: dict[str, Any] | None,
    draft: dict[str, Any] | None = None,
    audiences: int = 0,
    owner: str = "jane.doe@acme.example",
    created: str = "2022-02-10T10:20:30.400",
    modified: str = "2023-04-18T15:01:12.993",
) -> dict[str, Any]:
    return {
        "id": ca_id,
        "name": name,
        "description": description,
        "created_by": owner,
        "created_on": created,
        "last_modified_on": modified,
        "last_modified_by": owner,
        "active_definition": active,
        "draft_definition": draft,
        "audience_count": audiences,
        "activated_on": modified if active else None,
        "activated_by": owner if active else None,
    }


_PURCHASES = _datapoint("event", "purchase", "commerce_event", use_product_quantity=True)
_SESSIONS = _datapoint("event", "session_start", "session_start")
_CATEGORY = _datapoint(
    "event_attribute", "purchase", "commerce_event", attribute_name="Category", attribute_category="product_attribute",
)
_SIGNUP = _datapoint("event", "Newsletter Signup", "custom_event", custom_event_type="user_preference")

CALCULATED_ATTRIBUTES = {
    5001: [
        _ca(101, "Lifetime purchases", "Number of purchases since 2022", active=_definition("count", _PURCHASES), audiences=2),
        _ca(
            102, "Last seen", "Time of the most recent session",
            active=_definition("last_occurrence_timestamp", _SESSIONS),
        ),
        _ca(
            103, "Favorite category", "Most frequent product category in the last 8 weeks",
            active=None,
            draft=_definition(
                "most_frequent", _CATEGORY,
                time_period={"type": "within", "date": None, "within": 8, "within_unit": "weeks"},
            ),
            owner="sam.lee@acme.example",
        ),
    ],
    5002: [
        _ca(
            104, "Sessions in last 7 days", "App sessions within the last 7 days",
            active=_definition(
                "count", _SESSIONS, time_period={"type": "within", "date": None, "within": 7, "within_unit": "days"},
            ),
            audiences=1,
        ),
        _ca(
            105, "Newsletter signup date", "First newsletter signup",
            active=_definition(
                "first_occurrence_timestamp", _SIGNUP,
                conditions=[{
                    "type": "attribute", "operator": "equals", "attribute_name": "source",
                    "value": "footer", "values": None, "min_value": None, "max_value": None,
                }],
            ),
        ),
    ],
    5003: [],
    5004: [],
    6001: [
        _ca(
            201, "Lifetime purchases", "Globex purchase count",
            active=_definition("count", _PURCHASES), owner="ops@globex.example",
        ),
    ],
}


def audiences() -> dict[int, list[dict[str, Any]]]:
    """A fresh, mutable copy of the seeded audiences per account id."""
    return copy.deepcopy(AUDIENCES)


def calculated_attributes() -> dict[int, list[dict[str, Any]]]:
    """A fresh, mutable copy of the seeded calculated attributes per workspace id."""
    return copy.deepcopy(CALCULATED_ATTRIBUTES)
