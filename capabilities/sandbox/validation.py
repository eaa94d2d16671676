"""The sandbox's own reading of an Events API batch: what it answers 400 to.

Written from mParticle's documentation, separately from the connector's checker
(``connector_mparticle.batches``), which the sandbox must not use: the sandbox is the
witness the connector is tested against, and a witness that shares the connector's rules
would agree with every mistake in them. ``tests/test_mparticle_truth.py`` runs both over
the same batches; where they differ on purpose the table of docs/sandbox.md says why.

The rules are data (``BATCH``, ``EVENT_DATA``): a small subset of JSON Schema read by
``_walk``. Sources: the JSON reference (https://docs.mparticle.com/developers/server/json-reference/,
"D-JSON"), the Events API page (https://docs.mparticle.com/developers/server/http/,
"D-HTTP"), the official batch schema (``mparticle.inbound.eventsapi.schema.json``, "SCH").

Tolerances: where SCH and the official SDKs disagree, the sandbox accepts what the SDKs
send, as mParticle does (the Java SDK's own test expects 202 for it): the identity key
``customerid`` (Python SDK), platforms ``Unknown``/``desktop``/``FireTV``, ``unknown``
enumeration values (Python SDK), environment ``unknown`` (OpenAPI file, Java SDK),
``product_impressions: []`` beside a ``product_action`` (Java SDK), a commerce event
without any action (the Python SDK's crash reports), null for any optional field, and null
for the two required fields whose SCH type admits it (``push_registration.register``,
``user_identity_change.new``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, NamedTuple

MAX_REQUEST_BYTES = 262_144  # "256KB" per request, /events and /bulkevents alike (service limits page)
MAX_BATCHES = 100  # per /bulkevents request (D-HTTP)

_INT64 = (-(2**63), 2**63 - 1)


class Problem(NamedTuple):
    """One reason for a 400: where (a JSON path) and what."""

    path: str
    message: str

# -- the grammar: {"type": ..., "enum": ..., "fields": {...}, "items": ..., "values": ...,
#    "required": (...), "open": True when undeclared keys are allowed}

_STRING = {"type": "string"}
_INTEGER = {"type": "integer"}
_NUMBER = {"type": "number"}
_BOOLEAN = {"type": "boolean"}
_OBJECT = {"type": "object", "open": True}
_SCALAR = {"type": ("string", "number", "integer", "boolean")}
_STRING_MAP = {"type": "object", "values": _SCALAR}


def _enum(*values: str) -> dict:
    return {"type": "string", "enum": frozenset(values)}


# D-JSON "user_identities": a string per identity type (plus the Python SDK's spelling).
IDENTITY_KEYS = (
    "customer_id", "email", "other", "other_id_2", "other_id_3", "other_id_4", "other_id_5", "other_id_6",
    "other_id_7", "other_id_8", "other_id_9", "other_id_10", "mobile_number", "phone_number_2",
    "phone_number_3", "facebook", "twitter", "google", "microsoft", "yahoo", "alias",
    "facebook_custom_audience_id",
    "customerid",  # tolerance: mparticle-python-sdk models/user_identities.py
)
# SCH "String": strings, numbers and booleans are all allowed as identity values.
_IDENTITY = {"type": "object", "fields": {key: _SCALAR for key in IDENTITY_KEYS}}

_PLATFORM = _enum("iOS", "Android", "web", "tvOS", "roku", "out_of_band", "alexa", "smart_tv", "fire_tv",
                  "xbox", "Unknown", "desktop", "FireTV")  # the last three: SDK tolerances

_USER_ATTRIBUTE = {"type": ("string", "number", "integer", "boolean", "array"),
                   "items": {"type": ("string", "number", "integer", "boolean", "null")}}

_COMMON = {  # D-JSON "common event data node properties"
    "timestamp_unixtime_ms": _INTEGER,
    "source_message_id": _STRING,
    "session_id": _INTEGER,
    "session_uuid": _STRING,
    "event_id": _INTEGER,
    "event_num": _INTEGER,
    "custom_attributes": _STRING_MAP,
    "custom_flags": _OBJECT,
    "location": _OBJECT,
    "device_current_state": _OBJECT,
}

_U = "unknown"  # every enumeration of the Python SDK's models also offers it (tolerance)

_PRODUCT_LIST = {"type": "array", "items": _OBJECT}

# event_type -> the fields D-JSON (or SCH, for types D-JSON does not describe) gives its data.
EVENT_DATA: dict[str, dict] = {
    "custom_event": {"required": ("event_name", "custom_event_type"), "fields": {
        "event_name": _STRING,
        "custom_event_type": _enum("navigation", "location", "search", "transaction", "user_content",
                                   "user_preference", "social", "media", "attribution", "other", _U),
    }},
    "commerce_event": {"fields": {
        "product_action": {"type": "object", "open": True, "required": ("action",), "fields": {
            "action": _enum("add_to_cart", "remove_from_cart", "checkout", "checkout_option", "click",
                            "view_detail", "purchase", "refund", "add_to_wishlist", "remove_from_wish_list", _U),
            "products": _PRODUCT_LIST}},
        "promotion_action": {"type": "object", "open": True, "required": ("action",), "fields": {
            "action": _enum("view", "click", _U), "promotions": _PRODUCT_LIST}},
        "product_impressions": {"type": "array", "items": _OBJECT},
        "shopping_cart": _OBJECT,
        "currency_code": _STRING,
        "screen_name": _STRING,
        "event_name": _STRING,
        "is_non_interactive": _BOOLEAN,
        "custom_event_type": _enum(
            "add_to_cart", "remove_from_cart", "checkout", "checkout_option", "click", "view_detail", "purchase",
            "refund", "promotion_view", "promotion_click", "add_to_wishlist", "remove_from_wishlist", "impression",
            "attribution", "consent_granted", "consent_denied", "navigation", "location", "search",
            "transaction", "user_content", "user_preference", "social", "media", "other", _U),
    }},
    "screen_view": {"fields": {"screen_name": _STRING}},
    "session_start": {},
    "session_end": {"fields": {"session_duration_ms": _INTEGER}},
    "uninstall": {},
    "first_run": {},
    "pre_attribution": {},
    "push_reaction": {},
    "crash_report": {},
    "opt_out": {"fields": {"is_opted_out": _BOOLEAN}},
    # SCH's Boolean admits null and the Java SDK writes an unset register as null: present suffices.
    "push_registration": {"required": ("registration_token",), "present": ("register",),
                          "fields": {"register": _BOOLEAN, "registration_token": _STRING}},
    "application_state_transition": {"required": ("application_transition_type",), "fields": {
        "application_transition_type": _enum("application_initialized", "application_exit",
                                             "application_background", "application_foreground", _U),
        "is_first_run": _BOOLEAN, "is_upgrade": _BOOLEAN}},
    "push_message": {"required": ("push_message_type",), "fields": {
        "push_message_type": _enum("sent", "received", "action", _U),
        "application_state": _enum("not_running", "background", "foreground", _U)}},
    "network_performance": {"fields": {"url": _STRING}},
    "breadcrumb": {"required": ("label",), "fields": {"label": _STRING, "session_number": _INTEGER}},
    # SCH: profile_event_type, previous_mpid, current_mpid are required there, but the Python
    # SDK's ProfileEvent cannot carry the two ids; the sandbox requires none of them.
    "profile": {"fields": {"profile_event_type": _enum("signup", "login", "logout", "update", "delete", _U),
                           "previous_mpid": _INTEGER, "current_mpid": _INTEGER}},
    "user_attribute_change": {"required": ("user_attribute_name",), "fields": {"user_attribute_name": _STRING}},
    # SCH26 requires "new" without giving it a type, so null passes the schema: present suffices.
    "user_identity_change": {"present": ("new",), "fields": {
        "new": {"type": "object", "open": True, "fields": {"identity_type": _enum(*IDENTITY_KEYS[:-1])},
                "required": ("identity_type",)},
        "old": _OBJECT}},
}
EVENT_TYPES = frozenset(EVENT_DATA) | {_U}

BATCH = {"type": "object", "fields": {
    "events": {"type": "array", "items": "event"},
    "environment": {**_enum("production", "development", _U), "null": False},
    "user_identities": _IDENTITY,
    "user_attributes": {"type": "object", "values": _USER_ATTRIBUTE},
    "deleted_user_attributes": {"type": "array", "items": _STRING},
    "device_info": {"type": "object", "open": True, "fields": {"platform": _PLATFORM}},
    "application_info": _OBJECT,
    "consent_state": _OBJECT,
    "context": {"type": "object", "open": True, "fields": {"data_plan": {
        "type": "object", "open": True, "fields": {"plan_id": _SCALAR, "plan_version": _INTEGER}}}},
    "integration_attributes": {"type": "object", "values": {"type": "object", "open": True}},
    "partner_identities": _OBJECT,
    "source_info": _OBJECT,
    "attribution_info": _OBJECT,
    "mpid": {"type": "integer", "range": _INT64},
    "origin_mpid": _INTEGER,
    "timestamp_unixtime_ms": _INTEGER,
    "batch_id": _INTEGER,
    "source_request_id": _STRING,
    "mp_deviceid": _STRING,
    "ip": {"type": "string", "format": "ip"},
    "api_key": _SCALAR,
    "api_keys": {"type": "array", "items": _STRING},
    "partner_identity": _SCALAR,
    "sdk_version": _SCALAR,
    "job_id": _SCALAR,
    "schema_version": {"type": "any"},  # sent in D-HTTP's examples although D-JSON calls it output-only
}}

_PYTHON_TYPES = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,), "null": (type(None),),
}


def _compile(spec: Any) -> None:
    """Give every spec the set of Python types it admits (``bool`` is not an integer)."""
    if not isinstance(spec, dict) or "python" in spec:
        return
    types = spec["type"] if isinstance(spec["type"], tuple) else (spec["type"],)
    spec["types"] = types
    spec["python"] = None if "any" in types else frozenset(t for name in types for t in _PYTHON_TYPES[name])
    # A leaf needs only its type checked: the walker checks it in place of a call (most values are leaves).
    spec["leaf"] = not any(k in spec for k in ("enum", "range", "format", "items", "fields", "values", "required", "present"))
    for sub in (*spec.get("fields", {}).values(), spec.get("items"), spec.get("values")):
        _compile(sub)


def _kind(value: Any) -> str:
    for name in ("boolean", "integer", "number", "string", "object", "array"):
        if type(value) in _PYTHON_TYPES[name]:
            return name
    return "null" if value is None else type(value).__name__


def _path(path: tuple) -> str:
    """``("$", "events", 0, "data")`` → ``$.events[0].data``; built only for a fault."""
    out = [path[0]]
    for key in path[1:]:
        if isinstance(key, int):
            out.append(f"[{key}]")
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            out.append(f".{key}")
        else:
            out.append(f"[{json.dumps(key)}]")
    return "".join(out)


def _walk(value: Any, spec: dict, path: tuple, errors: list[Problem]) -> None:
    python = spec["python"]
    if python is not None and type(value) not in python:
        errors.append(Problem(_path(path), f"expected {' or '.join(spec['types'])}, got {_kind(value)}"))
        return
    if "enum" in spec and not (isinstance(value, str) and value in spec["enum"]):
        errors.append(Problem(_path(path), f"{value!r} is not one of {', '.join(sorted(spec['enum']))}"))
    if "range" in spec and not spec["range"][0] <= value <= spec["range"][1]:
        errors.append(Problem(_path(path), "out of range"))
    if spec.get("format") == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            errors.append(Problem(_path(path), "not an IP address"))
    items = spec.get("items")
    if items is not None and type(value) is list:
        for i, item in enumerate(value):
            if items == "event":
                _event(item, (*path, i), errors)
            elif not (items["leaf"] and (items["python"] is None or type(item) in items["python"])):
                _walk(item, items, (*path, i), errors)
    if type(value) is dict:
        fields = spec.get("fields", {})
        for name in spec.get("required", ()):
            if value.get(name) in (None, ""):
                errors.append(Problem(_path((*path, name)), "required field missing or empty"))
        for name in spec.get("present", ()):  # required, but null is accepted
            if name not in value:
                errors.append(Problem(_path((*path, name)), "required field missing"))
        values = spec.get("values")
        for key, item in value.items():
            sub = fields.get(key) or values
            if sub is None:
                if not spec.get("open"):
                    errors.append(Problem(_path((*path, key)), "unknown field"))
                continue
            if item is None:
                if sub.get("null", True) is False:
                    errors.append(Problem(_path((*path, key)), "must not be null"))
                continue
            if sub["leaf"] and (sub["python"] is None or type(item) in sub["python"]):
                continue
            _walk(item, sub, (*path, key), errors)


def _event(event: Any, path: tuple, errors: list[Problem]) -> None:
    if type(event) is not dict:
        errors.append(Problem(_path(path), f"an event is an object, got {_kind(event)}"))
        return
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        errors.append(Problem(_path((*path, "event_type")), f"{event_type!r} is not an event type"))
        return
    data = event.get("data")
    if data is None:
        stray = [k for k in event if k not in ("event_type", "data")]
        if stray:  # fields next to a missing data would be lost
            errors.append(Problem(_path((*path, "data")), f"missing; {', '.join(stray)} belong inside it"))
            return
        data = {}
    if type(data) is not dict:
        errors.append(Problem(_path((*path, "data")), f"expected object, got {_kind(data)}"))
        return
    _walk(data, _EVENT_RULES.get(event_type, _EVENT_RULES[_U]), (*path, "data"), errors)
    if event_type == "commerce_event":
        # D-JSON: product_action, promotion_action and product_impressions are "required or
        # disallowed": one kind per event. Empty values count as absent (the Java SDK).
        kinds = [k for k in ("product_action", "promotion_action", "product_impressions")
                 if data.get(k) not in (None, [], {})]
        if len(kinds) > 1:
            errors.append(Problem(_path((*path, "data")), "one of product_action, promotion_action, "
                                  f"product_impressions, not {len(kinds)}"))


# Each event type's data: its own fields over the common ones, compiled once.
_EVENT_RULES = {
    event_type: {"type": "object", "open": True, "required": spec.get("required", ()), "present": spec.get("present", ()),
                 "fields": {**_COMMON, **spec.get("fields", {})}}
    for event_type, spec in {**EVENT_DATA, _U: {}}.items()
}
for _rules in (BATCH, *_EVENT_RULES.values()):
    _compile(_rules)


def validate_batch(batch: Any, path: str = "$") -> list[Problem]:
    """The reasons mParticle would answer 400 to ``batch``, each with its JSON path; [] when valid."""
    if _batch_ok(batch):  # most batches are valid: a yes/no pass first, the walk words the faults
        return []
    return walk_batch(batch, path)


def walk_batch(batch: Any, path: str = "$") -> list[Problem]:
    """:func:`validate_batch` without its yes/no pass: the walk that words every fault."""
    errors: list[Problem] = []
    if type(batch) is not dict:
        return [Problem(path, f"a batch is a JSON object, got {_kind(batch)}")]
    _walk(batch, BATCH, (path,), errors)
    return errors


# -- the yes/no pass: the same rules compiled into closures that answer whether ``_walk`` would
#    find nothing, without building a path or a message. It must agree with the walk on every
#    input (tests/test_mparticle_truth.py checks it on thousands of mutated batches): it only
#    saves the walk's work on valid batches, and never decides a fault on its own.

_ANY = object()  # a leaf of type "any"
# How a field's value is checked inside an object: its Python types (a leaf), an enumeration
# of strings, or a function; null is then accepted, except for _NOT_NULL fields.
_TYPES, _ENUM, _CALL, _NOT_NULL = range(4)


def _field_rule(sub: dict) -> tuple[int, Any]:
    if sub.get("null", True) is False:
        return _NOT_NULL, _ok_function(sub)
    if sub["leaf"]:
        return _TYPES, (_ANY if sub["python"] is None else sub["python"])
    if set(sub) <= {"type", "enum", "types", "python", "leaf"} and sub["python"] == frozenset((str,)):
        return _ENUM, sub["enum"]
    return _CALL, _ok_function(sub)


def _ok_function(spec: Any) -> Any:
    """``value -> bool``: whether ``_walk(value, spec)`` would add no error."""
    if spec == "event":
        return _event_ok
    python = spec["python"]
    if spec["leaf"]:
        if python is None:
            return lambda value: True
        return lambda value: type(value) in python
    enum = spec.get("enum")
    low, high = spec.get("range", (None, None))
    ip = spec.get("format") == "ip"
    items = spec.get("items")
    item_ok = None if items is None else _ok_function(items)
    required = tuple(spec.get("required", ()))
    present = tuple(spec.get("present", ()))
    is_open = bool(spec.get("open"))
    rules = {name: _field_rule(sub) for name, sub in spec.get("fields", {}).items()}
    values = spec.get("values")
    values_rule = None if values is None else _field_rule(values)
    unknown_ok = values is not None or is_open

    def fields_ok(value: dict) -> bool:
        for name in required:
            found = value.get(name)
            if found is None or found == "":
                return False
        for name in present:
            if name not in value:
                return False
        for key, item in value.items():
            rule = rules.get(key) or values_rule
            if rule is None:
                if unknown_ok:
                    continue
                return False
            how, arg = rule
            if item is None:
                if how == _NOT_NULL:
                    return False
                continue
            if how == _TYPES:
                if arg is _ANY or type(item) in arg:
                    continue
                return False
            if how == _ENUM:
                if type(item) is str and item in arg:
                    continue
                return False
            if not arg(item):
                return False
        return True

    if values is not None and not spec.get("fields") and not required and not present and values_rule[0] == _TYPES \
            and values_rule[1] is not _ANY and enum is None and low is None and not ip and item_ok is None:
        types = values_rule[1]

        def map_ok(value: Any) -> bool:  # an object of scalars (custom attributes): the commonest object
            if type(value) not in python:
                return False
            if type(value) is dict:
                for item in value.values():
                    if item is not None and type(item) not in types:
                        return False
            return True

        return map_ok

    if enum is None and low is None and not ip and item_ok is None and python is not None and dict in python:
        def object_ok(value: Any) -> bool:
            kind = type(value)
            if kind not in python:
                return False
            return kind is not dict or fields_ok(value)

        return object_ok

    def ok(value: Any) -> bool:
        kind = type(value)
        if python is not None and kind not in python:
            return False
        if enum is not None and not (isinstance(value, str) and value in enum):
            return False
        if low is not None and not low <= value <= high:
            return False
        if ip:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                return False
        if item_ok is not None and kind is list:
            for item in value:
                if not item_ok(item):
                    return False
        return kind is not dict or fields_ok(value)

    return ok


def _event_ok(event: Any) -> bool:
    if type(event) is not dict:
        return False
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        return False
    data = event.get("data")
    if data is None:
        for key in event:
            if key != "event_type" and key != "data":
                return False
        data = {}
    if type(data) is not dict or not _EVENT_OK[event_type](data):
        return False
    if event_type == "commerce_event":
        kinds = 0
        for key in ("product_action", "promotion_action", "product_impressions"):
            if data.get(key) not in (None, [], {}):
                kinds += 1
        if kinds > 1:
            return False
    return True


_EVENT_OK = {event_type: _ok_function(rules) for event_type, rules in _EVENT_RULES.items()}
_batch_ok = _ok_function(BATCH)
