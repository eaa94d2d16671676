"""mParticle Events API batches: check, parse, identify, serialise and pack into requests.

Used by ``uploadEventBatch``, which checks batches before sending them. The sandbox does not
use it: it has its own validator (``sandbox/validation.py``), written separately from the
documentation, so the two can be compared (tests/test_mparticle_truth.py).

Rule of the house
-----------------
``check_batch`` refuses a batch only for

1. what mParticle's documentation says the API refuses **and** no official SDK sends, or
2. what mParticle would accept and then silently lose (a field it cannot read, such as an
   event ``data`` that is not an object, or an unknown batch field).

Anything uncertain passes and is reported as a warning (``warnings=`` list, each with the
JSON path), never an error: values only an SDK sends, and values the official schema admits
but the JSON reference does not. Sources (tags of ``../shared/reference/mparticle-api.md``):
D-JSON (JSON reference page, https://docs.mparticle.com/developers/server/json-reference/),
D-HTTP (Events API page, https://docs.mparticle.com/developers/server/http/), D-LIM
(default service limits), SCH21/SCH26 (official batch schema, 2021 and 2026), OAS (Events
API OpenAPI file), PY (``mparticle`` package on PyPI, ``mparticle/models/*.py``), JAVA
(mparticle-java-events-sdk, ``src/main/java/com/mparticle/model/*.java``).

=====================================================  =======  ==============================
Rule                                                   Verdict  Source
=====================================================  =======  ==============================
batch is a JSON object                                 error    D-HTTP (the body is a batch);
                                                                the schema sets no type (1)
unknown batch field (incl. OAS ``batch_context``)      error    SCH21/26 additionalProperties
                                                                false; PY and JAVA send only
                                                                known fields; else lost (2)
``schema_version``: any value                          pass     D-HTTP examples send it; D-JSON
                                                                says output-only
``environment``: production, development               pass     D-JSON, SCH21/26
``environment``: ``unknown``                           warning  OAS and JAVA only
``environment``: null or another value                 error    SCH21/26 enum; no SDK sends it
``user_identities``: an object with SCH26's 22 keys    pass     SCH26, OAS, D-JSON, JAVA
``user_identities.customerid``                         warning  PY user_identities.py writes
                                                                it; D-JSON says customer_id
other identity keys                                    error    SCH26 additionalProperties
                                                                false; no SDK sends them
identity value a number or boolean                     warning  SCH26 ``String`` admits them;
                                                                D-JSON documents strings
identity value an object or array                      error    SCH26 refuses; no SDK sends it
``device_info.platform``: D-JSON/SCH26 list            pass     D-JSON, SCH21/26
``device_info.platform``: Unknown / desktop, FireTV    warning  PY device_information.py /
                                                                JAVA DeviceInformation.java
``device_info.platform``: anything else                error    SCH21/26 enum; no SDK sends it
``user_attributes`` values: scalars, lists of scalars  pass     SCH ``StringOrArray``
``user_attributes`` value an object or nested list     error    SCH refuses; no SDK sends it
``deleted_user_attributes``: array of strings          error    SCH items ``string``
``mpid`` and other integer fields: JSON integers       error    SCH ``Integer``; no SDK sends
                                                                strings; ``mpid`` is int64
``source_request_id`` not a string                     error    exception (3)
``ip`` not an IPv4/IPv6 address                        error    SCH ``format``; else lost (2)
object fields (device_info, context, consent_state,    error    the schema definitions set no
application_info, ...) not objects                              type; a non-object is lost (2)
``context.data_plan.plan_version`` not an integer      error    SCH ``Integer``
event not an object, or ``data`` not an object         error    SCH (event); data lost (2)
event without ``data``                                 warning  SCH26 requires it, SCH21 not;
                                                                required fields still apply
``event_type``: D-JSON's list plus the schemas'        pass     D-JSON, SCH21/26, OAS
``event_type``: ``unknown``                            warning  PY event_base.py only
``custom_event_type``: D-JSON + SCH lists              pass     D-JSON, SCH21/26, JAVA
enum value ``unknown`` (custom_event_type, product     warning  PY models only (app_event.py,
/promotion action, transition, push message type,               product_action.py, ...)
application_state, profile_event_type)
other enum values                                      error    D-JSON/SCH enums; no SDK
required fields per event type (below)                 error    D-JSON; SCH when D-JSON is
                                                                silent
required ``push_registration.register`` or             warning  SCH21/26 admit null
``user_identity_change.new`` null (absent: error)               (``Boolean``; an untyped
                                                                ``new``); JAVA sends nulls
required string empty                                  error    D-HTTP 400: "missing or empty"
``profile`` without its SCH26-required fields          warning  PY profile_event.py has no
                                                                previous_mpid/current_mpid
commerce event: more than one non-empty of             error    D-JSON "required or
product_action / promotion_action /                             disallowed"; a commerce event
product_impressions                                             holds one kind, so the rest
                                                                would be lost (2)
commerce event: none of them non-empty                 warning  PY sends crash reports as
                                                                commerce_event with none
                                                                (batch.py ``_allowed_types``)
commerce event: empty list, {} or null                 absent   JAVA CommerceEventData sends
                                                                ``product_impressions: []``
                                                                and ``promotion_action: null``
custom_attributes values scalars; objects refused      error    SCH ``String`` values
common event fields: timestamp_unixtime_ms,            error    SCH ``EventData`` (Integer,
session_id, event_id, event_num integers;                       string, Uuid); no SDK sends
source_message_id, session_uuid strings                         other types
``context.data_plan.plan_id`` a number or boolean      warning  SCH ``String``; D-JSON: string
request over 256 KB; bulk over 100 batches             error    D-LIM; D-HTTP
=====================================================  =======  ==============================

(1) a schema-valid value the checker refuses; each is listed in tests/test_mparticle_truth.py
and tested. (2) mParticle could not read it, so accepting it would lose data silently.
(3) D-JSON documents a string; SCH's loose ``String`` also admits numbers and booleans.
``uploadEventBatch`` reports and de-duplicates batches by this id as a string (issue 11), so
a number is refused with a hint to quote it.

Required fields per event type: a field is required when D-JSON documents it as required,
not merely because a schema or OAS lists it. So ``screen_view.screen_name``,
``session_end.session_duration_ms``, ``session_start.session_id``, ``opt_out.is_opted_out``,
``network_performance.url``/``response_code``, ``crash_report.severity``/``message``,
``push_message.push_message_token`` and ``push_notification_payload`` are optional, and
``application_state_transition`` does not need ``is_first_run``/``is_upgrade`` (OAS only).
Types D-JSON does not describe (``profile``, ``user_attribute_change``,
``user_identity_change``) follow SCH26; ``user_identity_change`` needs ``new`` only, because
``old`` is null when an identity is first set (as in the samples). Null counts as absent for
every optional field except ``environment`` (the samples and JAVA send nulls).

Size limits: a request body (one batch for ``/v2/events``, an array of batches for
``/v2/bulkevents``) may be at most 256 KB (D-LIM), and a bulk request at most 100 batches
(D-HTTP). The 128 KB per-batch figure is performance guidance and is not enforced; content
limits that mParticle applies by truncating are not checked either.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable
from typing import Any

from connector_core.errors import Fault, InvalidInput
from connector_core.validation import MAX_DEPTH, plain_values

try:  # optional: faster serialisation; every use falls back to the standard library
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = [
    "MAX_REQUEST_BYTES",
    "MAX_BATCHES_PER_REQUEST",
    "EVENT_TYPES",
    "IDENTITY_TYPES",
    "check_batch",
    "check_batches",
    "parse_batches",
    "encode",
    "decode",
    "encode_single",
    "chunk_batches",
]

MAX_REQUEST_BYTES = 256 * 1024
MAX_BATCHES_PER_REQUEST = 100

# Display order: D-JSON's documented types first, then those only the schemas/OAS list.
_EVENT_TYPE_ORDER = (
    "custom_event", "commerce_event", "screen_view", "session_start", "session_end",
    "uninstall", "crash_report", "opt_out", "push_registration",
    "application_state_transition", "push_message", "network_performance", "breadcrumb",
    "first_run", "pre_attribution", "profile", "push_reaction", "user_attribute_change",
    "user_identity_change",
)
EVENT_TYPES = frozenset(_EVENT_TYPE_ORDER)

_IDENTITY_ORDER = (
    "customer_id", "email", "other", "other_id_2", "other_id_3", "other_id_4", "other_id_5",
    "other_id_6", "other_id_7", "other_id_8", "other_id_9", "other_id_10", "mobile_number",
    "phone_number_2", "phone_number_3", "facebook", "twitter", "google", "microsoft",
    "yahoo", "alias", "facebook_custom_audience_id",
)
IDENTITY_TYPES = frozenset(_IDENTITY_ORDER)


# Allowed values: dicts give O(1) membership and keep the documented order for messages.
def _choices(*values: str) -> dict[str, None]:
    return dict.fromkeys(values)


_ENVIRONMENTS = _choices("production", "development")
_CUSTOM_EVENT_TYPES = _choices(
    "navigation", "location", "search", "transaction", "user_content", "user_preference",
    "social", "media", "attribution", "other",
)
_COMMERCE_EVENT_TYPES = _choices(
    "add_to_cart", "remove_from_cart", "checkout", "checkout_option", "click", "view_detail",
    "purchase", "refund", "promotion_view", "promotion_click", "add_to_wishlist",
    "remove_from_wishlist", "impression", "attribution", "consent_granted", "consent_denied",
    "navigation", "location", "search", "transaction", "user_content", "user_preference",
    "social", "media", "other",
)
_PRODUCT_ACTIONS = _choices(
    "add_to_cart", "remove_from_cart", "checkout", "checkout_option", "click", "view_detail",
    "purchase", "refund", "add_to_wishlist", "remove_from_wish_list",
)
_PROMOTION_ACTIONS = _choices("view", "click")
_TRANSITION_TYPES = _choices(
    "application_initialized", "application_exit", "application_background",
    "application_foreground",
)
_PUSH_MESSAGE_TYPES = _choices("sent", "received", "action")
_APPLICATION_STATES = _choices("not_running", "background", "foreground")
_PROFILE_EVENT_TYPES = _choices("signup", "login", "logout", "update", "delete")
_PLATFORMS = _choices(
    "iOS", "Android", "web", "tvOS", "roku", "out_of_band", "alexa", "smart_tv", "fire_tv",
    "xbox",
)

# Values only an official SDK sends: accepted with a warning naming the SDK file.
_PY = "the Python SDK (mparticle/models/{})"
_JAVA = "the Java Events SDK (model/{}.java)"
_SDK_PLATFORMS = {
    "Unknown": _PY.format("device_information.py"),
    "desktop": _JAVA.format("DeviceInformation"),
    "FireTV": _JAVA.format("DeviceInformation"),
}
_SDK_ENVIRONMENTS = {"unknown": "the OpenAPI file and " + _JAVA.format("Batch")}
# Every enum of the Python SDK's generated models also allows "unknown".
_SDK_UNKNOWN = {"unknown": _PY.format("*.py, in every enumeration")}
_SDK_IDENTITIES = {"customerid": _PY.format("user_identities.py")}

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_SCALARS = frozenset((str, int, float, bool, type(None)))


# --------------------------------------------------------------------------- helpers

class _Faults(list):
    """The errors found so far; ``warnings`` collects what passes but may not do what is meant."""

    __slots__ = ("warnings",)

    def __init__(self, warnings: list | None = None):
        super().__init__()
        self.warnings = [] if warnings is None else warnings

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Fault(path, message))


def _sdk_only(faults: _Faults, path: str, value: object, what: str, sdk_values: dict) -> bool:
    """Warn and return True when ``value`` is one only an SDK sends."""
    source = sdk_values.get(value) if _is_str(value) else None
    if source is None:
        return False
    faults.warn(path, (
        f"{value!r} is not a documented {what}; {source} sends it, so it is passed on, but "
        "mParticle may not read it as intended"
    ))
    return True


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def _is_int(value: object) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _is_str(value: object) -> bool:
    return type(value) is str or isinstance(value, str)


def _is_dict(value: object) -> bool:
    return type(value) is dict or isinstance(value, dict)


def _is_list(value: object) -> bool:
    return type(value) is list or isinstance(value, (list, tuple))


def _is_scalar(value: object) -> bool:
    return type(value) in _SCALARS or isinstance(value, (str, int, float))


def _member(path: str, key: object) -> str:
    key = str(key)
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"


def _hint(value: object, choices) -> str:
    if not _is_str(value):
        return ""
    by_lower = {choice.lower(): choice for choice in choices}
    import difflib  # only for a did-you-mean, not at start-up

    match = difflib.get_close_matches(value.lower(), list(by_lower), n=1)
    return f" (did you mean {by_lower[match[0]]!r}?)" if match else ""


def _enum_message(value: object, what: str, choices) -> str:
    listed = ", ".join(choices)
    if not _is_str(value):
        return f"{what} must be a string, one of: {listed} (got {_json_type(value)})"
    return f"{value!r} is not a known {what}{_hint(value, choices)}; use one of: {listed}"


_SPLIT_DIGITS = re.compile(r"(\d+)")


def _path_order(fault: Fault) -> list:
    # Natural order, so events[2] sorts before events[10].
    parts: list = _SPLIT_DIGITS.split(fault.path)
    parts[1::2] = map(int, parts[1::2])
    return parts


# --------------------------------------------------------------------------- events

# Field kinds of the per-event-type rules, and how a fault message names each.
_STR, _BOOL, _INT, _ENUM, _OBJ = range(5)
_WARN = "warn"  # "required" level of a field the schema requires but an SDK cannot send
# "required" level of a field D-JSON and the schemas require, whose schema type admits null:
# absent is an error, an explicit null only a warning (uncertain: the schema accepts it).
_NULL_WARN = "null-warn"
_NEED = {_STR: "string", _BOOL: "true or false", _INT: "integer", _OBJ: "object"}

# event_type -> ((field, required, kind, allowed values or None), ...)
_RULES: dict[str, tuple] = {
    "custom_event": (
        ("event_name", True, _STR, None),
        ("custom_event_type", True, _ENUM, _CUSTOM_EVENT_TYPES),
    ),
    "commerce_event": (
        ("custom_event_type", False, _ENUM, _COMMERCE_EVENT_TYPES),
        ("event_name", False, _STR, None),
        ("screen_name", False, _STR, None),
        ("currency_code", False, _STR, None),
        ("is_non_interactive", False, _BOOL, None),
    ),
    "screen_view": (("screen_name", False, _STR, None),),
    "session_start": (),  # session_id: an integer, as in every event (see _check_events)
    "session_end": (("session_duration_ms", False, _INT, None),),
    "opt_out": (("is_opted_out", False, _BOOL, None),),
    "push_registration": (
        # SCH21/26 ``Boolean`` is boolean or null; JAVA serialises an unset register as null.
        ("register", _NULL_WARN, _BOOL, None),
        ("registration_token", True, _STR, None),
    ),
    "application_state_transition": (
        ("application_transition_type", True, _ENUM, _TRANSITION_TYPES),
        ("is_first_run", False, _BOOL, None),
        ("is_upgrade", False, _BOOL, None),
    ),
    "push_message": (
        ("push_message_type", True, _ENUM, _PUSH_MESSAGE_TYPES),
        ("application_state", False, _ENUM, _APPLICATION_STATES),
    ),
    "network_performance": (("url", False, _STR, None),),
    "breadcrumb": (
        ("label", True, _STR, None),
        ("session_number", False, _INT, None),
    ),
    "profile": (
        ("profile_event_type", _WARN, _ENUM, _PROFILE_EVENT_TYPES),
        ("previous_mpid", _WARN, _INT, None),
        ("current_mpid", _WARN, _INT, None),
    ),
    "user_attribute_change": (("user_attribute_name", True, _STR, None),),
    # SCH26 requires "new" but gives it no type, so null passes the schema.
    "user_identity_change": (("new", _NULL_WARN, _OBJ, None),),
}


def _data_path(path: str, i: int) -> str:
    return f"{path}.events[{i}].data"


def _missing(faults, path, i, event, data, event_type, field, kind, allowed) -> None:
    need = f"one of: {', '.join(allowed)}" if kind == _ENUM else _NEED[kind]
    message = f"{event_type} needs {field!r} ({need})"
    if field in data:
        message += ", not null"
    elif field in event:
        message += "; it is next to 'data' but belongs inside it"
    faults.append(Fault(f"{_data_path(path, i)}.{field}", message))


def _check_rules(rules, data, event, event_type, path, i, faults) -> None:
    for field, required, kind, allowed in rules:
        value = data.get(field)
        if value is None:
            if required is _WARN:
                faults.warn(f"{_data_path(path, i)}.{field}", (
                    f"{event_type} should have {field!r} (the 2026 schema requires it; the "
                    "Python SDK's model has no such field)"
                ))
            elif required is _NULL_WARN and field in data:
                faults.warn(f"{_data_path(path, i)}.{field}", (
                    f"{event_type} has {field!r} null; D-JSON requires a value, but the official "
                    "schema admits null, so it is sent (mParticle may refuse or ignore the event)"
                ))
            elif required:
                _missing(faults, path, i, event, data, event_type, field, kind, allowed)
            continue
        if kind == _ENUM:
            if not (_is_str(value) and value in allowed):
                where = f"{_data_path(path, i)}.{field}"
                if not _sdk_only(faults, where, value, field, _SDK_UNKNOWN):
                    faults.append(Fault(where, _enum_message(value, field, allowed)))
        elif kind == _STR:
            if not _is_str(value):
                faults.append(Fault(
                    f"{_data_path(path, i)}.{field}",
                    f"{field!r} must be a string, not {_json_type(value)}",
                ))
            elif required and not value:
                faults.append(Fault(
                    f"{_data_path(path, i)}.{field}",
                    f"{event_type} needs a non-empty {field!r}",
                ))
        elif kind == _BOOL:
            if type(value) is not bool:
                faults.append(Fault(
                    f"{_data_path(path, i)}.{field}",
                    f"{field!r} must be true or false, not {_json_type(value)}",
                ))
        elif kind == _INT:
            if not _is_int(value):
                faults.append(Fault(
                    f"{_data_path(path, i)}.{field}",
                    f"{field!r} must be an integer, not {_json_type(value)}",
                ))
        elif not _is_dict(value):  # _OBJ
            faults.append(Fault(
                f"{_data_path(path, i)}.{field}",
                f"{field!r} must be an object, not {_json_type(value)}",
            ))


def _check_commerce(data: dict, path: str, i: int, faults: list) -> None:
    base = _data_path(path, i)
    # JAVA sends "product_impressions": [] and "promotion_action": null beside its
    # product_action, so empty values count as absent.
    present = [k for k in ("product_action", "promotion_action", "product_impressions")
               if data.get(k) not in (None, [], {})]
    if not present:
        faults.warn(base, (
            "a commerce_event should have one of 'product_action', 'promotion_action' or "
            "'product_impressions' (D-JSON); without one mParticle may record no commerce "
            "activity. The Python SDK sends its crash reports like this"
        ))
    elif len(present) > 1:
        which = " and ".join(repr(k) for k in present)
        faults.append(Fault(base, (
            "commerce_event needs exactly one of 'product_action', 'promotion_action' or "
            f"'product_impressions' (got {which}); mParticle records one kind per event, so "
            "send one commerce event per kind"
        )))
    action = data.get("product_action")
    if action is not None:
        _check_action(action, f"{base}.product_action", "product_action", _PRODUCT_ACTIONS, faults)
        if _is_dict(action):
            _check_object_list(action.get("products"), f"{base}.product_action.products",
                               "product", faults)
    promotion = data.get("promotion_action")
    if promotion is not None:
        _check_action(promotion, f"{base}.promotion_action", "promotion_action",
                      _PROMOTION_ACTIONS, faults)
        if _is_dict(promotion):
            _check_object_list(promotion.get("promotions"), f"{base}.promotion_action.promotions",
                               "promotion", faults)
    impressions = data.get("product_impressions")
    if impressions is not None:
        _check_object_list(impressions, f"{base}.product_impressions", "product impression",
                           faults)
    cart = data.get("shopping_cart")
    if cart is not None and not _is_dict(cart):
        faults.append(Fault(f"{base}.shopping_cart",
                            f"'shopping_cart' must be an object, not {_json_type(cart)}"))


def _check_action(action, path: str, what: str, allowed, faults: list) -> None:
    if not _is_dict(action):
        faults.append(Fault(path, f"{what!r} must be an object, not {_json_type(action)}"))
        return
    value = action.get("action")
    if value is None:
        faults.append(Fault(f"{path}.action",
                            f"{what} needs 'action' (one of: {', '.join(allowed)})"))
    elif not (_is_str(value) and value in allowed):
        if not _sdk_only(faults, f"{path}.action", value, f"{what} action", _SDK_UNKNOWN):
            faults.append(Fault(f"{path}.action", _enum_message(value, f"{what} action", allowed)))


def _check_object_list(value, path: str, what: str, faults: list) -> None:
    if value is None:
        return
    if not _is_list(value):
        faults.append(Fault(path, f"must be an array of {what} objects, not {_json_type(value)}"))
        return
    for j, item in enumerate(value):
        if not _is_dict(item):
            faults.append(Fault(f"{path}[{j}]",
                                f"each {what} must be an object, not {_json_type(item)}"))


def _check_identity_change(data: dict, path: str, i: int, faults: list) -> None:
    new = data.get("new")
    if _is_dict(new):
        kind = new.get("identity_type")
        if not (_is_str(kind) and kind in IDENTITY_TYPES):
            faults.append(Fault(f"{_data_path(path, i)}.new.identity_type",
                                _enum_message(kind, "identity_type", _IDENTITY_ORDER)))
    old = data.get("old")
    if old is not None and not _is_dict(old):
        faults.append(Fault(f"{_data_path(path, i)}.old",
                            f"'old' must be an object or null, not {_json_type(old)}"))


_EXTRA: dict[str, Callable] = {
    "commerce_event": _check_commerce,
    "user_identity_change": _check_identity_change,
}

_EVENT_TYPE_LIST = ", ".join(_EVENT_TYPE_ORDER)


def _check_events(events, path: str, key: str, faults: list) -> None:
    if not _is_list(events):
        faults.append(Fault(f"{path}.events",
                            f"'events' must be an array of events, not {_json_type(events)}"))
        return
    rules_for = _RULES.get
    extra_for = _EXTRA.get
    for i, event in enumerate(events):
        if type(event) is not dict and not isinstance(event, dict):
            faults.append(Fault(
                f"{path}.events[{i}]",
                "each event must be an object with 'event_type' and 'data', "
                f"not {_json_type(event)}",
            ))
            continue
        event_type = event.get("event_type")
        if type(event_type) is not str or event_type not in EVENT_TYPES:
            where = f"{path}.events[{i}].event_type"
            if not _sdk_only(faults, where, event_type, "event_type", _SDK_UNKNOWN):
                if event_type is None:
                    message = f"each event needs 'event_type' (one of: {_EVENT_TYPE_LIST})"
                else:
                    message = _enum_message(event_type, "event_type", _EVENT_TYPE_ORDER)
                faults.append(Fault(where, message))
            event_type = None
        data = event.get("data")
        if type(data) is not dict and not isinstance(data, dict):
            stray = [k for k in event if k not in ("event_type", "data")]
            if data is None and not stray:
                # SCH21 allows an event without data; its required fields still apply.
                faults.warn(f"{path}.events[{i}].data", (
                    "an event without 'data' (an object with the event's fields); the 2026 "
                    "schema requires it"))
                data = {}
            else:
                if data is None:
                    message = "each event needs 'data' (an object with the event's fields)"
                    message += f"; move {', '.join(map(repr, stray))} inside 'data'"
                else:
                    message = f"'data' must be an object, not {_json_type(data)}"
                faults.append(Fault(f"{path}.events[{i}].data", message))
                continue

        # Fields every event type shares (D-JSON "common event data node properties").
        get = data.get
        value = get("timestamp_unixtime_ms")
        if value is not None and type(value) is not int and not _is_int(value):
            faults.append(Fault(
                f"{_data_path(path, i)}.timestamp_unixtime_ms",
                f"'timestamp_unixtime_ms' must be an integer (milliseconds since the Unix "
                f"epoch), not {_json_type(value)}",
            ))
        value = get("custom_attributes")
        if value is not None:
            if type(value) is dict or isinstance(value, dict):
                for key, item in value.items():
                    if type(item) not in _SCALARS and not _is_scalar(item):
                        faults.append(Fault(
                            _member(f"{_data_path(path, i)}.custom_attributes", key),
                            "custom attribute values must be a string, number, boolean or "
                            f"null, not {_json_type(item)}",
                        ))
            else:
                faults.append(Fault(
                    f"{_data_path(path, i)}.custom_attributes",
                    f"'custom_attributes' must be an object, not {_json_type(value)}",
                ))
        for field in ("custom_flags", "location", "device_current_state"):
            value = get(field)
            if value is not None and type(value) is not dict and not isinstance(value, dict):
                faults.append(Fault(f"{_data_path(path, i)}.{field}",
                                    f"{field!r} must be an object, not {_json_type(value)}"))
        for field in ("source_message_id", "session_uuid"):  # SCH EventData: string (Uuid)
            value = get(field)
            if value is not None and type(value) is not str and not isinstance(value, str):
                faults.append(Fault(f"{_data_path(path, i)}.{field}",
                                    f"{field!r} must be a string, not {_json_type(value)}"))
        for field in ("session_id", "event_id", "event_num"):  # SCH EventData: Integer
            value = get(field)
            if value is not None and type(value) is not int and not _is_int(value):
                faults.append(Fault(f"{_data_path(path, i)}.{field}",
                                    f"{field!r} must be an integer, not {_json_type(value)}"))

        if event_type is None:
            continue
        rules = rules_for(event_type)
        if rules:
            _check_rules(rules, data, event, event_type, path, i, faults)
        extra = extra_for(event_type)
        if extra is not None:
            extra(data, path, i, faults)


# --------------------------------------------------------------------------- batch fields

def _check_object(value, path, key, faults) -> None:
    if not _is_dict(value):
        faults.append(Fault(_member(path, key),
                            f"{key!r} must be an object, not {_json_type(value)}"))


def _check_string(value, path, key, faults) -> None:
    if not _is_str(value):
        faults.append(Fault(_member(path, key),
                            f"{key!r} must be a string, not {_json_type(value)}"))


def _check_scalar(value, path, key, faults) -> None:
    if not _is_scalar(value):
        faults.append(Fault(_member(path, key),
                            f"{key!r} must be a string, not {_json_type(value)}"))


def _check_integer(value, path, key, faults) -> None:
    if not _is_int(value):
        hint = ""
        if _is_str(value) and value.lstrip("-").isdigit():
            hint = f"; send it as a JSON number ({value}), not a string"
        faults.append(Fault(_member(path, key),
                            f"{key!r} must be an integer, not {_json_type(value)}{hint}"))


def _check_mpid(value, path, key, faults) -> None:
    if not _is_int(value):
        _check_integer(value, path, key, faults)
    elif not _INT64_MIN <= value <= _INT64_MAX:
        faults.append(Fault(_member(path, key), "'mpid' must fit in a signed 64-bit integer"))


def _check_string_list(value, path, key, faults) -> None:
    if not _is_list(value):
        faults.append(Fault(_member(path, key),
                            f"{key!r} must be an array of strings, not {_json_type(value)}"))
        return
    for j, item in enumerate(value):
        if not _is_str(item):
            faults.append(Fault(f"{_member(path, key)}[{j}]",
                                f"must be a string, not {_json_type(item)}"))


def _check_environment(value, path, key, faults) -> None:
    if not (_is_str(value) and value in _ENVIRONMENTS):
        if _sdk_only(faults, _member(path, key), value, "environment", _SDK_ENVIRONMENTS):
            return
        if value is None:
            message = ("'environment' must be 'production' or 'development', not null "
                       "(leave it out to get production)")
        else:
            message = _enum_message(value, "environment", _ENVIRONMENTS)
        faults.append(Fault(_member(path, key), message))


def _check_identities(value, path, key, faults) -> None:
    if not _is_dict(value):
        faults.append(Fault(_member(path, key),
                            f"'user_identities' must be an object, not {_json_type(value)}"))
        return
    base = _member(path, key)
    for name, identity in value.items():
        if name not in IDENTITY_TYPES and not _sdk_only(
                faults, _member(base, name), name, "user identity type (D-JSON says 'customer_id')",
                _SDK_IDENTITIES):
            if name == "mpid":
                message = "'mpid' is not a user identity; put it in the batch's top-level 'mpid'"
            else:
                message = _enum_message(name, "user identity type", _IDENTITY_ORDER)
            faults.append(Fault(_member(base, name), message))
            continue
        if identity is not None and not _is_str(identity):
            if _is_scalar(identity):  # SCH26's "String" admits numbers and booleans
                faults.warn(_member(base, name), (
                    f"identity values are documented as strings, not {_json_type(identity)}; "
                    f'send "{json.dumps(identity)}" to be sure mParticle matches it'))
                continue
            message = f"identity values must be strings, not {_json_type(identity)}"
            faults.append(Fault(_member(base, name), message))


def _check_user_attributes(value, path, key, faults) -> None:
    if not _is_dict(value):
        faults.append(Fault(_member(path, key),
                            f"'user_attributes' must be an object, not {_json_type(value)}"))
        return
    base = _member(path, key)
    for name, attribute in value.items():
        if type(attribute) in _SCALARS or _is_scalar(attribute):
            continue
        if _is_list(attribute) and all(_is_scalar(v) for v in attribute):
            continue
        faults.append(Fault(_member(base, name), (
            "user attribute values must be a string, number, boolean, null or a list of "
            f"strings, not {_json_type(attribute)}"
        )))


def _check_integration_attributes(value, path, key, faults) -> None:
    if not _is_dict(value):
        faults.append(Fault(_member(path, key),
                            f"'integration_attributes' must be an object, not {_json_type(value)}"))
        return
    base = _member(path, key)
    for module, attributes in value.items():
        if attributes is not None and not _is_dict(attributes):
            faults.append(Fault(_member(base, module), (
                "integration attributes are keyed by module id, each an object of "
                f"attribute names to values, not {_json_type(attributes)}"
            )))


def _check_ip(value, path, key, faults) -> None:
    if not _is_str(value):
        faults.append(Fault(_member(path, key), f"'ip' must be a string, not {_json_type(value)}"))
        return
    try:
        ipaddress.ip_address(value)
    except ValueError:
        faults.append(Fault(_member(path, key), f"{value!r} is not an IPv4 or IPv6 address"))


def _check_device_info(value, path, key, faults) -> None:
    if not _is_dict(value):
        _check_object(value, path, key, faults)
        return
    platform = value.get("platform")
    if platform is not None and not (_is_str(platform) and platform in _PLATFORMS):
        where = f"{_member(path, key)}.platform"
        if not _sdk_only(faults, where, platform, "platform", _SDK_PLATFORMS):
            faults.append(Fault(where, _enum_message(platform, "platform", _PLATFORMS)))


def _check_context(value, path, key, faults) -> None:
    if not _is_dict(value):
        _check_object(value, path, key, faults)
        return
    plan = value.get("data_plan")
    if plan is None:
        return
    base = f"{_member(path, key)}.data_plan"
    if not _is_dict(plan):
        faults.append(Fault(base, f"'data_plan' must be an object, not {_json_type(plan)}"))
        return
    plan_id = plan.get("plan_id")
    if plan_id is not None and not _is_str(plan_id):
        if _is_scalar(plan_id):  # the schema's loose "String" admits it; D-JSON says string
            faults.warn(f"{base}.plan_id", f"'plan_id' is documented as a string, not {_json_type(plan_id)}")
        else:
            faults.append(Fault(f"{base}.plan_id",
                                f"'plan_id' must be a string, not {_json_type(plan_id)}"))
    version = plan.get("plan_version")
    if version is not None and not _is_int(version):
        faults.append(Fault(f"{base}.plan_version",
                            f"'plan_version' must be an integer, not {_json_type(version)}"))


def _tolerate(value, path, key, faults) -> None:
    pass


# Batch field -> checker(value, path, key, faults). A null value is not checked, except for
# 'environment'. Any other key is an unknown field.
_BATCH_FIELDS: dict[str, Callable] = {
    "events": _check_events,
    "environment": _check_environment,
    "user_identities": _check_identities,
    "user_attributes": _check_user_attributes,
    "deleted_user_attributes": _check_string_list,
    "device_info": _check_device_info,
    "application_info": _check_object,
    "consent_state": _check_object,
    "context": _check_context,
    "integration_attributes": _check_integration_attributes,
    "partner_identities": _check_object,
    "source_info": _check_object,
    "attribution_info": _check_object,
    "mpid": _check_mpid,
    "origin_mpid": _check_integer,
    "timestamp_unixtime_ms": _check_integer,
    "batch_id": _check_integer,
    "source_request_id": _check_string,
    "mp_deviceid": _check_string,
    "ip": _check_ip,
    "api_key": _check_scalar,
    "api_keys": _check_string_list,
    "partner_identity": _check_scalar,
    "sdk_version": _check_scalar,
    "job_id": _check_scalar,
    "schema_version": _tolerate,
}
_BATCH_FIELD_NAMES = tuple(_BATCH_FIELDS)


# Event fields people put at the batch level by mistake.
_EVENT_LEVEL_FIELDS = frozenset(("event_type", "event_name", "custom_event_type", "data"))


def _unknown_field(key: object, path: str) -> Fault:
    name = str(key)
    if name in _EVENT_LEVEL_FIELDS:
        advice = "; event fields belong inside an event's 'data', in 'events'"
    else:
        advice = _hint(name, [k for k in _BATCH_FIELD_NAMES if k != "schema_version"])
        advice += "; the Events API rejects unknown fields"
    return Fault(_member(path, name), f"{name!r} is not a batch field{advice}")


def check_batch(batch: object, path: str = "$", warnings: list | None = None) -> list[Fault]:
    """Every fault of one Events API batch, sorted by path; ``[]`` when it is valid.

    ``path`` prefixes each fault's JSON path, e.g. ``$[2]`` for a batch inside a bulk array.
    Each message says how to fix the problem. What passes but may not do what the sender
    means (see the module docstring) is appended to ``warnings`` as ``Fault`` values.
    ``batch`` is JSON data (parsed, or passed by the engine's ``data_faults``): its keys are
    strings, which a lookup of a field's name can compare with.
    """
    if type(batch) is dict and _plainly_valid(batch):
        return []
    return _check_batch(batch, path, warnings)


def _check_batch(batch: object, path: str, warnings: list | None) -> list[Fault]:
    """:func:`check_batch` without its fast pass: the checks that word every fault and warning."""
    if type(batch) is not dict and not isinstance(batch, dict):
        return [Fault(path, f"a batch must be a JSON object, not {_json_type(batch)}")]
    faults = _Faults(warnings)
    fields = _BATCH_FIELDS
    for key, value in batch.items():
        check = fields.get(key) if type(key) is str else None
        if check is None:
            faults.append(_unknown_field(key, path))
        elif value is not None or key == "environment":
            check(value, path, key, faults)
    if len(faults) > 1:
        faults.sort(key=_path_order)
    return list(faults)


def check_batches(
    batches: list[dict], path: str = "$.jsonBody", single: bool = False,
    warnings: list | None = None,
) -> list[Fault]:
    """Faults of several batches: each at ``path[i]``, or at ``path`` itself when ``single``.

    Warnings go to ``warnings`` when given (see ``check_batch``).
    """
    if single:
        return [fault for batch in batches for fault in check_batch(batch, path, warnings)]
    faults: list[Fault] = []
    for i, batch in enumerate(batches):
        faults.extend(check_batch(batch, f"{path}[{i}]", warnings))
    return faults


# --------------------------------------------------------------------------- the fast pass
#
# Most batches are plainly valid: documented fields of exact JSON types, documented values.
# _plainly_valid says so without building a path or a message, and check_batch then answers
# [] at once. It is stricter than the checks above, never looser: anything it does not
# recognise as plainly valid (a fault, a warning, an SDK-only value, a subclass, an 'ip' to
# parse) goes to them. tests/test_batches.py checks that on thousands of mutated batches.


def _dicts(value: object) -> bool:
    """Whether ``value`` is a list of objects (exact types)."""
    if type(value) is not list:
        return False
    for item in value:
        if type(item) is not dict:
            return False
    return True


def _action_ok(action: dict, allowed: dict, list_key: str) -> bool:
    value = action.get("action")
    if type(value) is not str or value not in allowed:
        return False
    items = action.get(list_key)
    return items is None or _dicts(items)


def _commerce_ok(data: dict) -> bool:
    get = data.get
    action, promotion, impressions = get("product_action"), get("promotion_action"), get("product_impressions")
    cart = get("shopping_cart")
    if cart is not None and type(cart) is not dict:
        return False
    present = 0  # none is a warning, several a fault; empty ones count as absent
    if action is not None:
        if type(action) is not dict or not _action_ok(action, _PRODUCT_ACTIONS, "products"):
            return False
        present += 1
    if promotion is not None:
        if type(promotion) is not dict or not _action_ok(promotion, _PROMOTION_ACTIONS, "promotions"):
            return False
        present += 1
    if impressions is not None:
        if not _dicts(impressions):
            return False
        if impressions:
            present += 1
    return present == 1


def _identity_change_ok(data: dict) -> bool:
    new = data.get("new")
    if type(new) is dict:
        kind = new.get("identity_type")
        if type(kind) is not str or kind not in IDENTITY_TYPES:
            return False
    old = data.get("old")
    return old is None or type(old) is dict


_EXTRA_OK = {"commerce_event": _commerce_ok, "user_identity_change": _identity_change_ok}
# The fields every event type shares, by the exact type a plainly valid value has.
_EVENT_FIELD_TYPES = {
    "timestamp_unixtime_ms": int, "session_id": int, "event_id": int, "event_num": int,
    "source_message_id": str, "session_uuid": str,
    "custom_flags": dict, "location": dict, "device_current_state": dict, "custom_attributes": dict,
}


# The compiled event checks. For each event type, one function answers whether an event's
# data is plainly valid, generated on first use from the tables above (_EVENT_FIELD_TYPES,
# _RULES, _EXTRA_OK), which stay the only statement of the rules; in two forms: for the
# checker's fast pass (_PLAIN_OK) and, checking too that every value the rules do not type
# exactly is JSON data (plain_values), for uploadEventBatch's one pass (_DATA_OK). A loop over
# the tables costs a tuple unpacking, a lookup and a kind dispatch per field of every event;
# the generated code dispatches on the value's type and asks one set (a constant) whether
# the field refuses that type, then checks by name the fields that need more than a type
# (required, enumerated, non-empty). _event_check_source(event_type, data) gives the source.

_RULE_TYPES = {_STR: str, _ENUM: str, _BOOL: bool, _INT: int, _OBJ: dict}


def _event_check_source(event_type: str, data: bool) -> str:
    """The source of the check of an ``event_type`` event's data (an exact dict): with
    ``data``, ``_data_ok_<event_type>(data, depth)`` (``depth`` that of the data's values),
    else ``_plain_ok_<event_type>(data)``. Each answers True only when the checks of
    ``check_batch`` find no fault and no warning in it, and with ``data`` also ``data_faults``
    none (keys and strings aside); False whenever in doubt."""
    rules = _RULES.get(event_type, ())
    known = dict(_EVENT_FIELD_TYPES)  # field -> the exact type of a plainly valid value
    for field, _, kind, _ in rules:
        if field in known:  # pragma: no cover - a rule may not restate a common field
            raise AssertionError(f"{event_type}.{field} is both a common field and a rule")
        known[field] = _RULE_TYPES[kind]

    def literal(fields) -> str:  # a set display: Python compiles "x in {...}" to a frozenset constant
        return "{" + ", ".join(map(repr, sorted(fields))) + "}"

    def refusing(kind: type) -> str:
        return literal(field for field, need in known.items() if need is not kind)

    if data:  # numbers finite; open objects and fields the rules leave alone: JSON data
        head = f"def _data_ok_{event_type}(data, depth):"
        number = ["                        if kind is not float or item - item != 0.0:",
                  "                            return False"]
        open_object, other = " or not plain_values(value.values(), depth + 1)", " or not plain_values((value,), depth)"
    else:
        head = f"def _plain_ok_{event_type}(data):"
        number = ["                        if kind is not float:", "                            return False"]
        open_object = other = ""
    lines = [
        head,
        f'    """{event_type}: generated by _event_check_source from _EVENT_FIELD_TYPES, _RULES and _EXTRA_OK."""',
        "    for field, value in data.items():",
        "        kind = type(value)",
        "        if kind is str:",
        f"            if field in {refusing(str)}:",
        "                return False",
        "        elif kind is int:",
        f"            if field in {refusing(int)}:",
        "                return False",
        "        elif kind is dict:",
        "            if field in {'custom_attributes'}:  # values: scalars (a set: no == on an odd key)",
        "                for item in value.values():",
        "                    kind = type(item)",
        "                    if kind is not str and kind is not int and kind is not bool and item is not None:",
        *number,
        f"            elif field in {refusing(dict)}{open_object}:",
        "                return False",
        "        elif value is None:  # absent: required fields are checked below",
        "            pass",
        "        elif kind is bool:",
        f"            if field in {refusing(bool)}:",
        "                return False",
        f"        elif field in {literal(known)}{other}:",
        "            return False",
    ]
    for field, required, kind, allowed in rules:
        if not required and kind != _ENUM:
            continue  # its type, checked above, is all there is to it
        test = f"type(value) is not {_RULE_TYPES[kind].__name__}"
        if kind == _ENUM:
            test += f" or value not in {literal(allowed)}"
        elif kind == _STR and required:
            test += " or not value"
        if not required:  # absent or null passes
            test = f"value is not None and ({test})"
        lines += [f"    value = data.get({field!r})", f"    if {test}:", "        return False"]
    extra = _EXTRA_OK.get(event_type)
    lines.append(f"    return {extra.__name__}(data)" if extra is not None else "    return True")
    return "\n".join(lines) + "\n"


# event_type -> its check, compiled on first use (all of them at import took 6 ms).
_PLAIN_OK: dict[str, Callable[[dict], bool]] = {}
_DATA_OK: dict[str, Callable[[dict, int], bool]] = {}


def _event_check(event_type: object, data: bool) -> Callable[..., bool] | None:
    """The compiled check of ``event_type`` events (with ``data``, the one pass's form), kept
    in ``_DATA_OK`` or ``_PLAIN_OK``; None when it is not an event type."""
    if type(event_type) is not str or event_type not in EVENT_TYPES:
        return None
    namespace = {"plain_values": plain_values, **{f.__name__: f for f in _EXTRA_OK.values()}}
    source = _event_check_source(event_type, data)
    exec(compile(source, f"<batches: {event_type} event check>", "exec"), namespace)
    check = namespace[source[4:source.index("(")]]
    (_DATA_OK if data else _PLAIN_OK)[event_type] = check
    return check


def _events_ok(events: object) -> bool:
    if type(events) is not list:
        return False
    checks = _PLAIN_OK
    for event in events:
        if type(event) is not dict:
            return False
        try:
            event_type = event["event_type"]
            data = event["data"]  # missing data is a warning at best
        except KeyError:
            return False
        if type(event_type) is not str or type(data) is not dict:
            return False
        try:
            check = checks[event_type]
        except KeyError:
            check = _event_check(event_type, data=False)
            if check is None:
                return False
        if not check(data):
            return False
    return True


def _strings(value: object) -> bool:
    if type(value) is not list:
        return False
    for item in value:
        if type(item) is not str:
            return False
    return True


def _identities_ok(value: object) -> bool:
    if type(value) is not dict:
        return False
    for name, identity in value.items():
        if name not in IDENTITY_TYPES or (identity is not None and type(identity) is not str):
            return False
    return True


def _user_attributes_ok(value: object) -> bool:
    if type(value) is not dict:
        return False
    for attribute in value.values():
        if type(attribute) in _SCALARS:
            continue
        if type(attribute) is not list:
            return False
        for item in attribute:
            if type(item) not in _SCALARS:
                return False
    return True


def _device_info_ok(value: object) -> bool:
    if type(value) is not dict:
        return False
    platform = value.get("platform")
    return platform is None or (type(platform) is str and platform in _PLATFORMS)


def _context_ok(value: object) -> bool:
    if type(value) is not dict:
        return False
    plan = value.get("data_plan")
    if plan is None:
        return True
    if type(plan) is not dict:
        return False
    plan_id, version = plan.get("plan_id"), plan.get("plan_version")
    return (plan_id is None or type(plan_id) is str) and (version is None or type(version) is int)


def _integration_attributes_ok(value: object) -> bool:
    if type(value) is not dict:
        return False
    for attributes in value.values():
        if attributes is not None and type(attributes) is not dict:
            return False
    return True


def _type_ok(*types: type) -> Callable[[object], bool]:
    return lambda value: type(value) in types


_OBJECT_OK = _type_ok(dict)
_INTEGER_OK = _type_ok(int)
_STRING_OK = _type_ok(str)
_SCALAR_OK = _type_ok(str, int, float, bool)

# Batch field -> whether a non-null value is plainly valid ('ip' is left to _check_ip).
_PLAIN_FIELDS: dict[str, Callable[[object], bool]] = {
    "events": _events_ok,
    "environment": lambda value: type(value) is str and value in _ENVIRONMENTS,
    "user_identities": _identities_ok,
    "user_attributes": _user_attributes_ok,
    "deleted_user_attributes": _strings,
    "device_info": _device_info_ok,
    "application_info": _OBJECT_OK,
    "consent_state": _OBJECT_OK,
    "context": _context_ok,
    "integration_attributes": _integration_attributes_ok,
    "partner_identities": _OBJECT_OK,
    "source_info": _OBJECT_OK,
    "attribution_info": _OBJECT_OK,
    "mpid": lambda value: type(value) is int and _INT64_MIN <= value <= _INT64_MAX,
    "origin_mpid": _INTEGER_OK,
    "timestamp_unixtime_ms": _INTEGER_OK,
    "batch_id": _INTEGER_OK,
    "source_request_id": _STRING_OK,
    "mp_deviceid": _STRING_OK,
    "api_key": _SCALAR_OK,
    "api_keys": _strings,
    "partner_identity": _SCALAR_OK,
    "sdk_version": _SCALAR_OK,
    "job_id": _SCALAR_OK,
    "schema_version": lambda value: True,
}


def _plainly_valid(batch: dict) -> bool:
    """Whether the checks of :func:`check_batch` would find no fault and no warning in
    ``batch`` (a dict), answered without them; False whenever in doubt."""
    fields = _PLAIN_FIELDS
    for key, value in batch.items():
        ok = fields.get(key)
        if ok is None:  # an unknown field, or 'ip'
            return False
        if value is None:
            if key == "environment":
                return False
            continue
        if not ok(value):
            return False
    return True


# --------------------------------------------------------------------------- the fast pass, with the data check
#
# uploadEventBatch checks its jsonBody as JSON data itself (its manifest's checksInputData):
# the engine's walk of every value and the fast pass above visited the same values, one after
# the other. plain_data_batches answers both in one pass: the fast pass's rules, and, for every
# value they do not type exactly (open objects, fields the rules leave alone, floats), the
# engine's own walk (connector_core.validation.plain_values) at the depth the value has in the
# input. Keys and strings are left to one orjson.dumps of the body. False whenever in doubt:
# the caller then runs the engine's check and the checks above, as before.
# tests/test_upload_data_check.py holds it to data_faults and check_batch.


def plain_data_batches(batches: list, depth: int) -> bool:
    """Whether every batch of ``batches`` (each ``depth`` levels below the root of the input)
    is plainly valid (``check_batch`` finds no fault and no warning) and JSON data
    (``data_faults`` finds no fault, keys and strings aside)."""
    if depth + 4 >= MAX_DEPTH:  # an event's data values (depth + 4) could be too deep: the engine decides
        return False
    try:
        for batch in batches:
            if type(batch) is not dict or not _plain_data_batch(batch, depth):
                return False
    except Exception:  # a key whose == raises when a lookup compares it with a field's name: the engine decides
        return False
    return True


def _plain_data_batch(batch: dict, depth: int) -> bool:
    fields = _PLAIN_FIELDS
    below = depth + 1
    for key, value in batch.items():
        ok = fields.get(key)
        if ok is None:  # an unknown field, or 'ip'
            return False
        if value is None:
            if key == "environment":
                return False
            continue
        if key == "events":
            if not _events_data_ok(value, below):
                return False
            continue
        if not ok(value):
            return False
        kind = type(value)
        if kind is not str and kind is not int and kind is not bool and not plain_values((value,), below):
            return False
    return True


def _events_data_ok(events: object, depth: int) -> bool:
    # _events_ok, and the data check of each value it does not type exactly (_DATA_OK). The
    # events list is at ``depth``, each event one level below, its data two, its values three.
    if type(events) is not list:
        return False
    checks = _DATA_OK
    event_depth, value_depth = depth + 2, depth + 3
    for event in events:
        if type(event) is not dict:
            return False
        try:
            event_type = event["event_type"]
            data = event["data"]  # missing data is a warning at best
        except KeyError:
            return False
        if type(event_type) is not str or type(data) is not dict:
            return False
        try:
            check = checks[event_type]
        except KeyError:
            check = _event_check(event_type, data=True)
            if check is None:
                return False
        if len(event) != 2 and not plain_values(event.values(), event_depth):  # fields beside data
            return False
        if not check(data, value_depth):
            return False
    return True


# --------------------------------------------------------------------------- JSON text

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def _finite(obj: Any) -> Any:
    """A copy of ``obj`` with NaN and infinities replaced by None (as orjson writes them)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _encode_stdlib(obj: Any) -> bytes:
    try:
        text = _ENCODER.encode(obj)
    except ValueError as err:
        if "Out of range float" not in str(err):
            raise
        obj = _finite(obj)
        text = _ENCODER.encode(obj)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: \u-escape them instead
        return _ASCII_ENCODER.encode(obj).encode("ascii")


if _orjson is not None:
    # Datetimes and dataclasses go to the (absent) default hook, so they fail as they do
    # without orjson.
    _ORJSON_OPTIONS = _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS


def encode(obj: Any) -> bytes:
    """Compact UTF-8 JSON of ``obj``: no spaces, non-ASCII characters kept as they are.

    Uses orjson when it is installed and can serialise ``obj`` (it refuses integers beyond
    64 bits, non-string keys and lone surrogates); otherwise the standard library. Either
    way NaN and infinities become null, since JSON has no such numbers.
    """
    if _orjson is not None:
        try:
            return _orjson.dumps(obj, option=_ORJSON_OPTIONS)
        except TypeError:
            pass
    return _encode_stdlib(obj)


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str):
    raise _NonFinite(name)


_NON_FINITE = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')

# orjson 3.x silently turns integers outside [-2**63, 2**64) into floats. Text that may hold
# one goes to the standard library instead: any run of 20 or more digits, or a 19-digit
# negative number below -2**63 (all of which start with "-9"). A translate-and-find pass is
# several times faster than a regex for digit runs.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_TWENTY_DIGITS = b"0" * 20
_NEGATIVE_19_DIGITS = re.compile(rb"-9\d{18}")


def _may_hold_big_int(raw: bytes) -> bool:
    if _TWENTY_DIGITS in raw.translate(_DIGITS_AS_ZERO):
        return True
    return any(int(m.group()) < _INT64_MIN for m in _NEGATIVE_19_DIGITS.finditer(raw))


def _decode_stdlib(text: str | bytes) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except _NonFinite as err:
        doc = text.decode("utf-8", "replace") if isinstance(text, (bytes, bytearray)) else text
        pos = next((m.start(1) for m in _NON_FINITE.finditer(doc) if m.group(1)), 0)
        raise json.JSONDecodeError(f"{err} is not a JSON value (use null or a number)",
                                   doc, pos) from None


def decode(data: bytes | str) -> Any:
    """Parse JSON text (bytes or str) into Python values, keeping big integers exact.

    Raises ``json.JSONDecodeError`` (with ``lineno``/``colno``) on invalid JSON; NaN and
    Infinity are rejected because they are not JSON.
    """
    if _orjson is not None:
        try:
            raw = data.encode("utf-8") if isinstance(data, str) else data
        except UnicodeEncodeError:  # lone surrogates, which only the standard library reads
            raw = None
        if isinstance(raw, (bytes, bytearray)) and not _may_hold_big_int(raw):
            try:
                return _orjson.loads(raw)
            except _orjson.JSONDecodeError:
                pass  # the standard library decides, and words the error
    return _decode_stdlib(data)


# --------------------------------------------------------------------------- parsing input

_BLANK = " \t\r\n\u00a0\ufeff\u200b\u2028\u2029"


def _line_column(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - text.rfind("\n", 0, pos)


def parse_batches(json_body: object, path: str = "$.jsonBody") -> tuple[list[dict], bool]:
    """Turn user input into ``(batches, was_single)``.

    ``json_body`` is JSON text (one batch object or an array of them, surrounding whitespace
    allowed), a dict (one batch) or a list of dicts. ``was_single`` is True when one object
    was given. Raises ``InvalidInput`` with faults at ``path`` (or ``path[i]``) for invalid
    JSON (the message gives line and column), an empty array, or non-object items.
    """
    value = json_body
    if isinstance(json_body, (bytes, bytearray)):
        try:
            json_body = json_body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidInput("the JSON body is not valid UTF-8",
                               faults=[Fault(path, f"is not valid UTF-8 text: {err}")]) from None
    if isinstance(json_body, str):
        body = json_body.strip(_BLANK)
        if not body:
            raise InvalidInput("the JSON body is empty", faults=[Fault(
                path, "is empty; give one batch object {...} or an array of batches [{...}]")])
        lead = len(json_body) - len(json_body.lstrip(_BLANK))
        try:
            value = decode(body)
        except json.JSONDecodeError as err:
            line, column = _line_column(json_body, lead + err.pos)
            message = f"invalid JSON at line {line}, column {column}: {err.msg}"
            raise InvalidInput("the JSON body is not valid JSON",
                               faults=[Fault(path, message)]) from None
        except (ValueError, RecursionError) as err:
            raise InvalidInput("the JSON body is not valid JSON",
                               faults=[Fault(path, f"invalid JSON: {err}")]) from None

    if isinstance(value, dict):
        return [value], True
    if isinstance(value, (list, tuple)):
        if not value:
            raise InvalidInput("no batches to send", faults=[Fault(
                path, "is an empty array; give at least one batch object")])
        faults = [
            Fault(f"{path}[{i}]", f"must be a batch object, not {_json_type(item)}")
            for i, item in enumerate(value) if not isinstance(item, dict)
        ]
        if faults:
            raise InvalidInput("every item of the array must be a batch object", faults=faults)
        return list(value), False
    raise InvalidInput("the JSON body must be a batch object or an array of batches", faults=[
        Fault(path, "must be a batch object {...} or an array of batch objects [{...}], "
                    f"not {_json_type(value)}")])


# --------------------------------------------------------------------------- requests

def _too_large(size: int, limit: int, path: str) -> InvalidInput:
    message = (
        f"this batch is {size:,} bytes as a request body, over the {limit:,}-byte "
        f"({limit / 1024:g} KB) limit of one Events API request; split its events into "
        "several batches for the same user"
    )
    return InvalidInput("a batch is too large to send", faults=[Fault(path, message)])


def encode_single(batch: dict) -> bytes:
    """The request body for ``/v2/events`` (one batch).

    Raises ``InvalidInput`` at ``$.jsonBody`` when it exceeds ``MAX_REQUEST_BYTES``.
    """
    body = encode(batch)
    if len(body) > MAX_REQUEST_BYTES:
        raise _too_large(len(body), MAX_REQUEST_BYTES, "$.jsonBody")
    return body


def chunk_batches(
    batches: list[dict],
    max_batches: int = MAX_BATCHES_PER_REQUEST,
    max_bytes: int = MAX_REQUEST_BYTES,
) -> list[tuple[list[dict], bytes]]:
    """Pack batches, in order, into ``/v2/bulkevents`` bodies (JSON arrays).

    Each body holds at most ``max_batches`` batches and at most ``max_bytes`` bytes, counted
    exactly (``[`` + items joined by ``,`` + ``]``); each batch is encoded once. Returns
    ``[(batches_in_body, body), ...]``. Raises ``InvalidInput`` with a fault at
    ``$.jsonBody[i]`` when batch ``i`` alone would exceed ``max_bytes``.
    """
    if max_batches < 1 or max_bytes < 2:
        raise ValueError("max_batches must be >= 1 and max_bytes >= 2")
    chunks: list[tuple[list[dict], bytes]] = []
    members: list[dict] = []
    parts: list[bytes] = []
    size = 1  # "[" plus the items and commas so far; "]" is added when checking
    for i, batch in enumerate(batches):
        item = encode(batch)
        n = len(item)
        if n + 2 > max_bytes:
            raise _too_large(n + 2, max_bytes, f"$.jsonBody[{i}]")
        if parts and (len(parts) >= max_batches or size + 1 + n + 1 > max_bytes):
            chunks.append((members, b"[" + b",".join(parts) + b"]"))
            members, parts, size = [], [], 1
        size += n + (1 if parts else 0)
        members.append(batch)
        parts.append(item)
    if parts:
        chunks.append((members, b"[" + b",".join(parts) + b"]"))
    return chunks
