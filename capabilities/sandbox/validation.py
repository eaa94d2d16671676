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
#    saves the walk's work on valid batches, and never decides a fault on its own. Any
#    exception inside it (an unhashable value looked up in a set) means "let the walk decide".

_NONE = type(None)


class _Anything:
    """The admitted Python types of a leaf of type "any": every type."""

    def __contains__(self, _: object) -> bool:
        return True


_EVERY_TYPE = _Anything()


def _nullable(sub: dict) -> bool:
    return sub.get("null", True) is not False


def _member_checks(spec: dict) -> tuple[dict, dict, dict]:
    """An object's fields (and its ``values``, under the key None) split by how one is checked:
    ``types`` (a leaf: the value's type is looked up), ``enums`` (a string enumeration: the
    value itself is looked up) and ``calls`` (anything else: a function that takes null too)."""
    types, enums, calls = {}, {}, {}
    members = dict(spec.get("fields", {}))
    if spec.get("values") is not None:
        members[None] = spec["values"]
    for name, sub in members.items():
        null = _nullable(sub)
        if sub["leaf"] and sub["python"] is None:
            types[name] = _EVERY_TYPE  # null included: "any" admits it
        elif sub["leaf"]:
            types[name] = sub["python"] | {_NONE} if null else sub["python"]
        elif set(sub) <= {"type", "enum", "types", "python", "leaf", "null"} and sub["python"] == frozenset((str,)):
            enums[name] = sub["enum"] | {None} if null else sub["enum"]
        else:
            calls[name] = _value_ok(sub, null)
    return types, enums, calls


def _fields_ok(spec: dict) -> Any:
    """``dict -> bool``: whether ``_walk`` would find nothing in an object of ``spec``."""
    required = tuple(spec.get("required", ()))
    present = tuple(spec.get("present", ()))
    types, enums, calls = _member_checks(spec)
    # The rule of a key that is not a field: the object's ``values``, else refused unless open.
    other = types.pop(None, None), enums.pop(None, None), calls.pop(None, None)
    other_ok = None if other == (None, None, None) else _member_ok(*other)
    closed = other_ok is None and not spec.get("open")
    if other_ok is not None and not types and not enums and not calls and not required and not present:
        allowed = other[0]
        if allowed is not None:  # a map of leaves (custom attributes, the commonest object): one loop
            def map_ok(value: dict) -> bool:
                for item in value.values():
                    if type(item) not in allowed:
                        return False
                return True

            return map_ok

        def values_ok(value: dict) -> bool:
            for item in value.values():
                if not other_ok(item):
                    return False
            return True

        return values_ok

    def fields_ok(value: dict) -> bool:
        for name in required:
            found = value.get(name)
            if found is None or found == "":
                return False
        for name in present:
            if name not in value:
                return False
        for key, item in value.items():
            allowed = types.get(key)
            if allowed is not None:
                if type(item) in allowed:
                    continue
                return False
            allowed = enums.get(key)
            if allowed is not None:
                if item in allowed and (type(item) is str or item is None):  # None is in it when null passes
                    continue
                return False
            check = calls.get(key)
            if check is not None:
                if check(item):
                    continue
                return False
            if closed or other_ok is not None and not other_ok(item):
                return False
        return True

    return fields_ok


def _member_ok(types: Any, enum: Any, call: Any) -> Any:
    """One of ``_member_checks``'s three kinds of rule as a function."""
    if types is not None:
        return lambda item: type(item) in types
    if enum is not None:
        return lambda item: item in enum and (type(item) is str or item is None)
    return call


def _value_ok(spec: Any, null: bool = False) -> Any:
    """``value -> bool``: whether ``_walk(value, spec)`` would add no error; with ``null``,
    None passes too (a field whose value may be null)."""
    if spec == "event":
        return _event_ok
    python = spec["python"]
    if spec["leaf"]:
        allowed = _EVERY_TYPE if python is None else python | {_NONE} if null else python
        return lambda value: type(value) in allowed
    enum = spec.get("enum")
    low, high = spec.get("range", (None, None))
    ip = spec.get("format") == "ip"
    items = spec.get("items")
    objects = dict in python if python is not None else True
    fields_ok = _fields_ok(spec) if objects else None
    if items == "event":
        return _events_ok if python == frozenset((list,)) and null and enum is None and low is None and not ip \
            else _generic(python, enum, low, high, ip, _event_ok, fields_ok, null)
    item_ok = None if items is None else _value_ok(items)
    if python == frozenset((dict,)) and enum is None and low is None and not ip and item_ok is None:
        if null:
            def object_ok(value: Any) -> bool:
                if type(value) is dict:
                    return fields_ok(value)
                return value is None
        else:
            def object_ok(value: Any) -> bool:
                return type(value) is dict and fields_ok(value)
        return object_ok
    return _generic(python, enum, low, high, ip, item_ok, fields_ok, null)


def _generic(python, enum, low, high, ip, item_ok, fields_ok, null) -> Any:
    def ok(value: Any) -> bool:
        if value is None and null:
            return True
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


# D-JSON: product_action, promotion_action and product_impressions are "required or
# disallowed" in a commerce event (see ``_event``).
_COMMERCE_KINDS = ("product_action", "promotion_action", "product_impressions")
_EMPTY_KINDS = (None, [], {})


def _commerce_ok(fields_ok: Any) -> Any:
    def commerce_ok(data: dict) -> bool:
        if not fields_ok(data):
            return False
        kinds = 0
        for key in _COMMERCE_KINDS:
            if data.get(key) not in _EMPTY_KINDS:
                kinds += 1
        return kinds <= 1

    return commerce_ok


def _event_ok(event: Any) -> bool:
    return _events_ok([event]) if event is not None else False


def _events_ok(events: Any) -> bool:
    """An ``events`` value (null, or a list of events): one loop, no call per event but its data's."""
    if type(events) is not list:
        return events is None
    data_ok, empty_ok = _DATA_OK, _EMPTY_DATA_OK
    for event in events:
        if type(event) is not dict:
            return False
        check = data_ok.get(event.get("event_type"))  # None for a non-string or unknown type
        if check is None:
            return False
        data = event.get("data")
        if type(data) is dict:
            if not check(data):
                return False
        elif data is None:
            # Fields next to a missing data are a fault; else data counts as {}.
            if len(event) != 1 + ("data" in event) or not empty_ok[event["event_type"]]:
                return False
        else:
            return False
    return True


def _batch_ok(batch: Any) -> bool:
    """Whether ``walk_batch(batch)`` would find nothing (without an exception of its own)."""
    try:
        return type(batch) is dict and _BATCH_FIELDS_OK(batch)
    except (TypeError, RecursionError):  # an unhashable value met a lookup: the walk decides
        return False


_DATA_OK = {}
for _type, _rules in _EVENT_RULES.items():
    _check = _fields_ok(_rules)
    _DATA_OK[_type] = _commerce_ok(_check) if _type == "commerce_event" else _check
_EMPTY_DATA_OK = {_type: _check({}) for _type, _check in _DATA_OK.items()}
_BATCH_FIELDS_OK = _fields_ok(BATCH)
