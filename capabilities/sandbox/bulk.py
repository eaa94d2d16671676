"""The sandbox's fast path for ``/v2/bulkevents``: the batch rules compiled into msgspec types.

Parsing a 256 KB bulk body into Python objects and then checking every event in Python cost
the sandbox most of its CPU per request. Here the rules of ``validation.py`` (``BATCH`` and
each event type's data) become msgspec ``Struct`` types, so one pass in C both parses and
checks a whole body, and an accepted body is kept as its bytes: its batches are parsed the
ordinary way only when someone looks at them (``Sandbox.batches``).

The fast path is sound, not complete: every body it accepts, the ordinary path (parse, then
``validate_batch``) accepts with the same batches; anything else (a fault, an undeclared key
in a batch or in an event's ``data``, an event without ``data``, nesting deeper than ``_DEPTH``
inside an open object, a float among the values of the marker attribute the sandbox counts)
goes to the ordinary path, which answers as before. Why an accepted body is one the ordinary
path accepts:

* every key is declared (``forbid_unknown_fields``) or lies in an open object, which is a map
  of JSON values nested at most ``_DEPTH`` deep; so msgspec parses every byte, strictly (RFC
  8259, UTF-8, no NaN, no number out of a double's range, no lone surrogate) and skips no
  value; the ordinary parser (orjson, or ``json`` for what orjson refuses or reads inexactly)
  therefore reads the same text without error, too shallow for any recursion limit;
* an open object with declared fields (``device_info``, ``context``, ``product_action``,
  ``promotion_action``, ``user_identity_change``'s ``new``: apps put their own keys there) is
  such a map, converted after decoding to a Struct of its declared fields that ignores the
  rest (``_struct``'s ``__post_init__``): the declared fields are checked on the values the
  map holds, its last duplicate key winning as in the ordinary parser;
* each field's type admits exactly what ``_walk`` admits for it (``int`` no float or bool,
  of any size but mpid's range, a required string not empty, an enumeration a ``Literal``,
  null only where null passes), duplicate keys are checked each time they occur, and the
  rules msgspec cannot express (an IP address, one kind of commerce action) are checked
  here after decoding.

``tests/test_sandbox_bulk.py`` checks this against the walk on mutated and
hypothesis-generated batches and bodies. Without msgspec installed the ordinary path
serves every request.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
from typing import Annotated, Any, Literal, Optional, Union

from . import validation

try:
    import msgspec
except ImportError:  # pragma: no cover - the optional extra `sandbox`; without it the ordinary path serves
    msgspec = None

_DEPTH = 3  # nesting of arrays and objects inside an open object that the fast path reads (deeper: the ordinary path)

_names = itertools.count()
_SCALARS = {"string": str, "integer": int, "number": float, "boolean": bool, "null": type(None)}


def _json_value() -> Any:
    """Any JSON value nested at most ``_DEPTH`` deep (a deeper one fails to decode)."""
    value: Any = Union[str, int, float, bool, None]
    for _ in range(_DEPTH):
        value = Union[str, int, float, bool, None, list[value], dict[str, value]]
    return value


def _open_fields(spec: Any) -> bool:
    """Whether ``spec`` is an object with declared fields that also admits undeclared keys."""
    return isinstance(spec, dict) and bool(spec.get("open")) and bool(
        spec.get("fields") or spec.get("required") or spec.get("present"))


def _type(spec: Any, null: bool, value: Any, lenient: bool = False) -> Any:
    """The msgspec type admitting what ``validation._walk`` admits for ``spec`` (and null when ``null``).

    An open object with declared fields is a map of JSON values (every member parsed,
    strictly) whose declared fields its parent's ``__post_init__`` checks (``_struct``);
    with ``lenient`` (inside such a map, already parsed) it is a Struct that ignores
    undeclared keys."""
    if spec == "event":
        out = _event_type(value)
    elif "any" in spec["types"]:
        out = value
    elif "enum" in spec:
        assert set(spec) <= {"type", "enum", "types", "python", "leaf", "null"}, spec
        out = Literal[tuple(sorted(spec["enum"]))]
    elif _open_fields(spec) and not lenient:
        out = dict[str, value]
    elif spec.get("fields") or spec.get("required") or spec.get("present"):
        assert "values" not in spec and "items" not in spec and "range" not in spec, spec
        out = _struct(spec, value, lenient=lenient)
    elif "values" in spec:
        out = dict[str, _type(spec["values"], validation._nullable(spec["values"]), value, lenient)]
    else:
        parts = []
        for name in spec["types"]:
            if name == "array":
                parts.append(list[_type(spec["items"], False, value, lenient)] if "items" in spec else list[value])
            elif name == "object":  # an open object without fields: any members
                assert spec.get("open"), spec  # (a closed one would admit no key: not in the rules)
                parts.append(dict[str, value])
            elif name == "integer" and "range" in spec:
                low, high = spec["range"]
                parts.append(Annotated[int, msgspec.Meta(ge=low, le=high)])
            else:
                parts.append(_SCALARS[name])
        out = Union[tuple(parts)] if len(parts) > 1 else parts[0]
    return Optional[out] if null else out


def _struct(spec: dict, value: Any, lenient: bool = False, **options: Any) -> Any:
    """An object's rules as a Struct: every field declared, no other key admitted (``lenient``:
    other keys ignored, for an object whose members were already parsed as JSON values).

    A field that is an open object with declared fields (``device_info``, ``product_action``,
    ...) is decoded as a map of JSON values, so every member is parsed as strictly as any
    other (msgspec would skip an ignored key's value without checking its UTF-8, its numbers'
    range or its depth); this Struct's ``__post_init__`` then converts each such map to its
    lenient Struct, which checks the declared fields as ``_walk`` does and raises (a
    ``ValidationError``: the body goes the ordinary way) when one does not pass."""
    required, present = set(spec.get("required", ())), set(spec.get("present", ()))
    fields = []
    checks = []  # (attribute, lenient Struct) of the open objects with declared fields
    for i, (name, sub) in enumerate(spec.get("fields", {}).items()):
        if "format" in sub:  # only the batch's ip has one: batch_summaries checks it
            assert spec is validation.BATCH and name == "ip" and sub["format"] == "ip", (name, sub)
        nullable = validation._nullable(sub)
        if name in required:  # "missing or empty": present, not null, not ""
            kind = _type(sub, False, value, lenient)
            assert kind is str or "enum" in sub and "" not in sub["enum"], (name, sub)
            fields.append((f"f{i}", Annotated[str, msgspec.Meta(min_length=1)] if kind is str else kind,
                           msgspec.field(name=name)))
        elif name in present:  # present, null or not
            fields.append((f"f{i}", _type(sub, nullable, value, lenient), msgspec.field(name=name)))
        elif nullable:
            fields.append((f"f{i}", _type(sub, True, value, lenient), msgspec.field(name=name, default=None)))
        else:  # may be absent, not null
            fields.append((f"f{i}", Union[_type(sub, False, value, lenient), msgspec.UnsetType],
                           msgspec.field(name=name, default=msgspec.UNSET)))
        if _open_fields(sub) and not lenient:
            checks.append((f"f{i}", _struct(sub, value, lenient=True)))
    namespace = {"__post_init__": _post_init(tuple(checks))} if checks else None
    return msgspec.defstruct(f"Rules{next(_names)}", fields, kw_only=True, forbid_unknown_fields=not lenient, gc=False,
                             namespace=namespace, **options)


def _post_init(checks: tuple) -> Any:
    """A ``__post_init__`` converting each of ``checks``' maps (when present) to its lenient Struct."""
    convert, unset = msgspec.convert, msgspec.UNSET

    def __post_init__(self) -> None:
        for attribute, kind in checks:
            found = getattr(self, attribute)
            if found is not None and found is not unset:
                convert(found, kind)  # a ValidationError (a ValueError) fails the decode

    return __post_init__


def _event_type(value: Any) -> Any:
    """One tagged Struct per event type: ``event_type`` picks it, ``data`` (an object) holds its
    rules. An event without ``data`` (valid for some types when nothing else is beside it) is
    left to the ordinary path."""
    kinds = []
    for event_type, rules in validation._EVENT_RULES.items():
        kinds.append(msgspec.defstruct(f"Event_{event_type}", [("data", _struct(rules, value))], kw_only=True,
                                       tag_field="event_type", tag=event_type, forbid_unknown_fields=True, gc=False))
    return Union[tuple(kinds)]


class _Compiled:
    """The decoder of a bulk body and the attribute names ``batch_summaries`` reads."""

    def __init__(self) -> None:
        batch = _struct(validation.BATCH, _json_value())
        self.decoder = msgspec.json.Decoder(list[batch])
        names = {field.encode_name: field.name for field in msgspec.structs.fields(batch)}
        self.events, self.request_id, self.ip = names["events"], names["source_request_id"], names["ip"]
        events = next(f.type for f in msgspec.structs.fields(batch) if f.encode_name == "events")
        # Optional[list[Union[Event_...]]]: the event Structs, by their tag
        structs = {kind.__struct_config__.tag: kind for kind in events.__args__[0].__args__[0].__args__}
        self.commerce = structs["commerce_event"]
        data = msgspec.structs.fields(self.commerce)[0].type
        self.commerce_kinds = tuple(f.name for f in msgspec.structs.fields(data) if f.encode_name in validation._COMMERCE_KINDS)
        # each event Struct -> the attribute of its data holding the custom attributes (markers)
        self.attributes = {kind: next(f.name for f in msgspec.structs.fields(msgspec.structs.fields(kind)[0].type)
                                      if f.encode_name == "custom_attributes") for kind in structs.values()}


@functools.lru_cache(maxsize=None)
def _compiled() -> _Compiled:
    return _Compiled()  # built on first use: tens of ms that a sandbox serving no bulk request need not pay


def prepare() -> None:
    """Build the fast path's types now rather than on the first bulk request (a no-op without msgspec)."""
    if msgspec is not None:
        _compiled()


def batch_summaries(body: bytes, marker: str | None = None) -> list[tuple[Any, int, list | None]] | None:
    """``(source_request_id, number of events, marker values)`` of each batch of a bulk
    ``body`` whose every batch the rules accept, 1 to ``MAX_BATCHES`` of them; the marker
    values (of the ``marker`` custom attribute, in event order) only when ``marker`` is given.
    None when the ordinary path must decide (msgspec missing, a fault anywhere, anything the
    fast path does not read, a marker that is a float: the ordinary parser's reading counts)."""
    if msgspec is None:
        return None
    compiled = _compiled()
    try:
        batches = compiled.decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):  # a ValidationError is a DecodeError
        return None
    if not 1 <= len(batches) <= validation.MAX_BATCHES:
        return None
    commerce, kinds, empty = compiled.commerce, compiled.commerce_kinds, validation._EMPTY_KINDS
    attributes = compiled.attributes
    out = []
    for batch in batches:
        events = getattr(batch, compiled.events)
        found = None if marker is None else []
        if events:
            for event in events:
                if type(event) is commerce:  # D-JSON: one kind of commerce action at most (validation._event)
                    data = event.data
                    if sum(getattr(data, name) not in empty for name in kinds) > 1:
                        return None
                if found is not None:  # as state._markers reads them
                    values = getattr(event.data, attributes[type(event)])
                    if values is not None and marker in values:
                        value = values[marker]
                        if type(value) is float:
                            return None
                        found.append(value)
        address = getattr(batch, compiled.ip)
        if address is not None:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                return None
        out.append((getattr(batch, compiled.request_id), len(events) if events else 0, found))
    return out
