"""JSON-schema validation that reports every fault with its JSON path.

Validators are compiled once (``compile_schema``) and wrapped, not subclassed. A schema
node may carry an ``errorMessage`` string: when that node fails, its message replaces
jsonschema's (plugin authors use it to say how to fix a value).

Checking a schema against the Draft 2020-12 meta-schema costs milliseconds, so
``schema_faults`` and ``validator_for`` remember their answer per schema content: one
schema shared by a thousand manifests is checked and compiled once. ``lint_schema``
finds what the meta-schema allows but an author never means: unknown keywords (a typo
such as ``requried`` is silently ignored by JSON Schema) and ``$`` anchors that let a
trailing newline through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators

from . import cache as verified_cache
from .errors import Fault

try:  # optional: a faster data check (see _plain_data)
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

_MAX_MESSAGE = 300


def close_matches(word: str, possibilities: Iterable[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """``difflib.get_close_matches``, imported only when a did-you-mean is needed (not at start-up)."""
    import difflib

    return difflib.get_close_matches(word, list(possibilities), n=n, cutoff=cutoff)


def compile_schema(schema: dict) -> jsonschema.protocols.Validator:
    """Check ``schema`` against its meta-schema and return a reusable validator.

    Raises ``jsonschema.exceptions.SchemaError`` when the schema itself is invalid. A pass is
    remembered in the content-keyed cache (:mod:`connector_core.cache`), so a later process
    compiles the same schema without the meta-schema check; a failure is never remembered.
    """
    cls = _dialect(schema)
    key = verified_cache.content_key("schema", _content_key(schema))
    if not verified_cache.verified(key):
        cls.check_schema(schema)
        verified_cache.remember(key)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _dialect(schema: Any) -> Any:
    """The validator class for ``schema``'s ``$schema`` (Draft 2020-12 when it names none).

    A ``$schema`` that is not a string gets Draft 2020-12, whose meta-schema then reports it
    (jsonschema's own lookup would raise on it)."""
    if isinstance(schema, dict) and not isinstance(schema.get("$schema", ""), str):
        return jsonschema.Draft202012Validator
    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)


def _content_key(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), default=repr)


_META_VALIDATORS: dict[type, Any] = {}
_SCHEMA_FAULTS: dict[str, list[Fault]] = {}
_VALIDATORS: dict[str, Any] = {}


def schema_faults(schema: Any, root: str = "$") -> list[Fault]:
    """Every way ``schema`` breaks its meta-schema (``check_schema`` reports only one).

    The answer is remembered per schema content, so each distinct schema is checked once
    per process.
    """
    key = _content_key(schema)
    found = _SCHEMA_FAULTS.get(key)
    if found is None:
        cls = _dialect(schema)
        meta = _META_VALIDATORS.get(cls)
        if meta is None:
            # With the format checker, as check_schema does: a pattern must be a regular expression.
            meta = _META_VALIDATORS[cls] = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)
        found = _SCHEMA_FAULTS[key] = faults(meta, schema)
    if root == "$":
        return list(found)
    return [Fault(root + f.path[1:], f.message) for f in found]


def validator_for(schema: dict) -> jsonschema.protocols.Validator:
    """A validator for a schema that ``schema_faults`` found valid, shared by equal schemas."""
    key = _content_key(schema)
    validator = _VALIDATORS.get(key)
    if validator is None:
        cls = _dialect(schema)
        validator = _VALIDATORS[key] = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return validator


# Every keyword of JSON Schema Draft 2020-12 (all vocabularies), the few older ones that
# validators still honour, and the annotations this framework reads.
KNOWN_KEYWORDS = frozenset(
    """$schema $id $ref $anchor $dynamicRef $dynamicAnchor $vocabulary $comment $defs
    prefixItems items contains additionalProperties properties patternProperties dependentSchemas
    propertyNames if then else allOf anyOf oneOf not unevaluatedItems unevaluatedProperties
    type const enum multipleOf maximum exclusiveMaximum minimum exclusiveMinimum maxLength
    minLength pattern maxItems minItems uniqueItems maxContains minContains maxProperties
    minProperties required dependentRequired title description default deprecated readOnly
    writeOnly examples format contentEncoding contentMediaType contentSchema
    definitions dependencies $recursiveRef $recursiveAnchor additionalItems
    errorMessage secret example""".split()
)
# "dependencies" (before Draft 2019-09) maps names to schemas or to lists of names (skipped).
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies")
_SCHEMA_VALUES = (
    "items", "contains", "additionalProperties", "propertyNames", "if", "then", "else", "not",
    "unevaluatedItems", "unevaluatedProperties", "contentSchema", "additionalItems",
)
_SCHEMA_LISTS = ("prefixItems", "allOf", "anyOf", "oneOf", "items")
_NEWLINE_SAFE_END = "(?!\\n)"


def lint_schema(schema: Any, root: str = "$") -> list[Fault]:
    """What a valid schema most likely gets wrong: unknown keywords, newline-leaky ``$``.

    Keys starting with ``x-`` are extensions and never reported.
    """
    found: list[Fault] = []
    _lint(schema, [], found)
    return [Fault(json_path(parts, root), message) for parts, message in found]


def _lint(schema: Any, parts: list, found: list) -> None:
    if not isinstance(schema, dict):
        return
    for key in schema:
        if key not in KNOWN_KEYWORDS and not key.startswith("x-"):
            match = close_matches(key, sorted(KNOWN_KEYWORDS), n=1, cutoff=0.7)
            hint = f"; did you mean {match[0]!r}?" if match else "; prefix extensions with 'x-'"
            found.append((parts + [key], f"unknown JSON Schema keyword {key!r} (JSON Schema ignores it){hint}"))
    if isinstance(schema.get("pattern"), str) and leaky_end_anchor(schema["pattern"]):
        found.append((parts + ["pattern"], _LEAKY_MESSAGE))
    for key in _SCHEMA_MAPS:
        value = schema.get(key)
        if isinstance(value, dict):
            for name, sub in value.items():
                if key == "patternProperties" and leaky_end_anchor(name):
                    found.append((parts + [key, name], _LEAKY_MESSAGE))
                _lint(sub, parts + [key, name], found)
    for key in _SCHEMA_VALUES:
        if isinstance(schema.get(key), dict):
            _lint(schema[key], parts + [key], found)
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            for i, sub in enumerate(schema[key]):
                _lint(sub, parts + [key, i], found)


_LEAKY_MESSAGE = (
    "'$' also matches before a trailing newline (a value ending in \\n passes); "
    "end the pattern with '$(?!\\n)', which Python and JavaScript read alike"
)


def leaky_end_anchor(pattern: str) -> bool:
    """Whether ``pattern`` has a ``$`` anchor not followed by ``(?!\\n)``.

    In Python's ``re`` (which jsonschema uses) ``$`` matches at the end *and* before a final
    newline; ``\\Z`` would fix that but JavaScript does not know it.
    """
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # a leading ] (after an optional ^) is a literal inside a class
                i += 1
        elif char == "$" and not pattern.startswith(_NEWLINE_SAFE_END, i + 1) and not pattern.startswith("(?!\n)", i + 1):
            return True
        i += 1
    return False


def json_path(parts: Iterable[Any], root: str = "$") -> str:
    """Render path parts as a JSON path: ``$.events[0].data['odd key']``."""
    out = [root]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif isinstance(part, str) and part.isidentifier():
            out.append(f".{part}")
        else:
            out.append(f"[{part!r}]")
    return "".join(out)


def _sort_key(parts: tuple) -> tuple:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in parts)


def faults(validator, instance: Any, root: str = "$") -> list[Fault]:
    """Every fault of ``instance``, sorted by path, one per problem."""
    found: dict[tuple, set[str]] = {}
    for error in validator.iter_errors(instance):
        for parts, message in _describe(error):
            found.setdefault(parts, set()).add(message)
    return [
        Fault(json_path(parts, root), message)
        for parts in sorted(found, key=_sort_key)
        for message in sorted(found[parts])
    ]


def _describe(error: jsonschema.exceptions.ValidationError):
    parts = tuple(error.absolute_path)
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if error.validator == "required" and isinstance(error.instance, dict):
        for name in error.validator_value:
            if name not in error.instance:
                yield parts + (name,), custom or "is required"
        return
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        for name in error.instance:
            if name not in known and not any(re.search(p, name) for p in patterns):
                hint = _close_match(name, known)
                yield parts + (name,), custom or f"is not an allowed property{hint}"
        return
    if custom:
        yield parts, custom
        return
    if error.validator in ("oneOf", "anyOf") and error.context:
        # Report the branch jsonschema's best_match picks for this error (it ranks the errors of
        # a branch the other way round from top-level errors, so it is given the error itself);
        # when no branch stands out it answers the error itself, reported as it is.
        best = jsonschema.exceptions.best_match([error])
        if best is not error:
            yield from _describe(best)
            return
    yield parts, _shorten(error.message)


def _close_match(name: str, known: Iterable[str]) -> str:
    match = close_matches(name, list(known), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _shorten(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


# Deepest nesting of objects and arrays accepted in inputs and configs. Real payloads
# stay far below it; deeper data would exhaust recursion in the validators.
MAX_DEPTH = 32
_MAX_DATA_FAULTS = 20


def data_faults(value: Any, root: str = "$", max_depth: int = MAX_DEPTH, *, unicode: bool = True) -> list[Fault]:
    """Faults of ``value`` as JSON data, before any schema looks at it.

    Strings must be valid Unicode (no lone surrogates; ``unicode=False`` lets them pass, in
    values and keys alike, for data a service answered), object keys strings, numbers
    finite, containers at most ``max_depth`` deep, and nothing but dicts, lists, strings,
    numbers, booleans and ``None``. Any depth is safe: no walk recurses beyond ``max_depth``
    levels, nor fails when the caller is deep in the stack.
    """
    if _plain_data(value, max_depth, unicode):
        return []
    return _walk_faults(value, root, max_depth, unicode)


def _walk_faults(value: Any, root: str, max_depth: int, unicode: bool) -> list[Fault]:
    """:func:`data_faults` without its fast pass: the walk that finds and words every fault."""
    found: list[Fault] = []
    stack: list[tuple[Any, tuple, int]] = [(value, (), 0)]
    while stack and len(found) < _MAX_DATA_FAULTS:
        item, parts, depth = stack.pop()
        if item is None or isinstance(item, (bool, int)):
            continue
        if isinstance(item, str):
            problem = _unicode_problem(item) if unicode else None
            if problem:
                found.append(Fault(json_path(parts, root), problem))
            continue
        if isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                found.append(Fault(json_path(parts, root), "must be a finite number (NaN and Infinity are not JSON)"))
            continue
        if isinstance(item, (dict, list, tuple)):
            if depth >= max_depth:
                found.append(Fault(json_path(parts, root), f"nests deeper than {max_depth} levels of objects and arrays"))
                continue
            if isinstance(item, dict):
                children = []
                for key, child in item.items():
                    if not isinstance(key, str):
                        found.append(Fault(json_path(parts, root), f"has a key that is not a string ({type(key).__name__} {key!r}); object keys must be strings"))
                        continue
                    problem = _unicode_problem(key) if unicode else None
                    if problem:
                        found.append(Fault(json_path(parts, root), f"has a key that {problem}"))
                        continue
                    children.append((child, parts + (key,), depth + 1))
                stack.extend(reversed(children))
            else:
                stack.extend(reversed([(child, parts + (i,), depth + 1) for i, child in enumerate(item)]))
            continue
        found.append(Fault(json_path(parts, root), f"is a {type(item).__name__}, which is not JSON data"))
    return sorted(found, key=lambda f: f.path)


# The fast pass. A large upload's input is mostly strings and object keys: checking each in
# Python cost more than the rest of the walk, so when orjson is installed one C pass settles
# them all (it refuses a key that is not exactly a str, a str subclass included, and a lone
# surrogate), after a walk of the values has made sure it sees only exact JSON types (orjson
# would also serialise an Enum, a UUID or a NaN, and it crashes on an Enum whose value raises).


def _plain_data(value: Any, max_depth: int, unicode: bool) -> bool:
    """True when ``value`` certainly has no fault of :func:`data_faults`, with no JSON path
    built; False whenever in doubt (the full walk then finds and words the faults). Gives
    the same answer as :func:`_plain_walk`, faster."""
    if _orjson is None:
        return _plain_walk(value, max_depth, unicode)
    try:
        if not _plain_values((value,), 0, max_depth):
            return False
    except RecursionError:  # called from deep in the stack: the pass that does not recurse
        return _plain_walk(value, max_depth, unicode)
    try:
        _orjson.dumps(value)
    except TypeError:  # a key not exactly a str, a lone surrogate, an integer beyond 64 bits
        return _plain_walk(value, max_depth, unicode)
    return True


def plain_values(items: Iterable[Any], depth: int, max_depth: int = MAX_DEPTH) -> bool:
    """True when every item of ``items``, each ``depth`` levels of objects and arrays below the
    root of an input, certainly has no fault of :func:`data_faults` but those of its keys and
    strings: exact JSON types (tuples as arrays), finite numbers, no container at ``max_depth``
    or deeper. False whenever in doubt.

    For a capability that checks input properties as JSON data in its own pass
    (``checksInputData``): it answers for the values it does not type itself, and one
    ``orjson.dumps`` of the property answers for every key and string (it refuses a key
    that is not exactly a ``str`` and a lone surrogate)."""
    try:
        return _plain_values(items, depth, max_depth)
    except RecursionError:
        return False


def _plain_values(items: Any, depth: int, max_depth: int) -> bool:
    """:func:`_plain_walk` for ``items`` at ``depth``, without a look at keys and strings.
    Recursive, at most ``max_depth`` calls deep: a quarter faster than a walk level by level."""
    for item in items:
        kind = type(item)
        if kind is str:
            continue
        if kind is dict:
            if depth >= max_depth or not _plain_values(item.values(), depth + 1, max_depth):
                return False
        elif kind is int or item is None or kind is bool:
            continue
        elif kind is list or kind is tuple:
            if depth >= max_depth or not _plain_values(item, depth + 1, max_depth):
                return False
        elif kind is float:
            if item - item != 0.0:  # NaN and infinities
                return False
        else:
            return False
    return True


def _plain_walk(value: Any, max_depth: int, unicode: bool) -> bool:
    """The fast pass in pure Python: one pass, level by level, exact types only (anything
    else, such as a subclass, a NaN or a bad string, answers False)."""
    level = [value]
    depth = 0
    while level:
        below: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is str:
                if unicode and not item.isascii() and _unicode_problem(item):
                    return False
            elif kind is dict:
                if depth >= max_depth:
                    return False
                for key in item:
                    if type(key) is not str or (unicode and not key.isascii() and _unicode_problem(key)):
                        return False
                below.extend(item.values())
            elif kind is list or kind is tuple:
                if depth >= max_depth:
                    return False
                below.extend(item)
            elif kind is float:
                if item - item != 0.0:  # NaN and infinities
                    return False
            elif not (item is None or kind is int or kind is bool):
                return False
        level = below
        depth += 1
    return True


def _unicode_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"contains a lone surrogate (U+{ord(text[exc.start]):04X}) at character {exc.start}; "
                "strings must be valid Unicode")
    return None


# -- a fast yes/no for the common subset of JSON Schema ------------------------------------
#
# jsonschema walks a schema through generic machinery (evolve, descend, referencing) on every
# call; for the small schemas of a capability that is most of the client-side cost of a call.
# ``fast_check`` compiles a schema that uses only the keywords below into plain Python
# closures that answer "valid or not" with jsonschema's semantics. Only a valid instance is
# settled by it: an invalid one is handed to jsonschema for the faults and messages. A schema
# with any other keyword (format, $ref, allOf, uniqueItems, ...) gets no fast check.

_ANNOTATIONS = frozenset(
    "title description default examples example errorMessage secret $comment deprecated readOnly writeOnly".split()
)
# Dialects whose reading of the keywords below is the same. jsonschema reads a subschema by
# its own $schema, if any (an unknown one keeps the enclosing dialect); Drafts 3 and 4 differ
# (1.0 is not an integer there, and Draft 4 has no const).
_SAME_DIALECTS = (
    jsonschema.Draft6Validator, jsonschema.Draft7Validator, jsonschema.Draft201909Validator, jsonschema.Draft202012Validator, None,
)
_TYPES: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}
_FAST: dict[str, Any] = {}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fast_check(schema: Any):
    """A ``check(instance) -> bool`` for ``schema`` that agrees with jsonschema, or ``None``
    when the schema uses a keyword it does not handle. Compiled once per schema content."""
    key = _content_key(schema)
    if key not in _FAST:
        try:
            _FAST[key] = _compile_fast(schema)
        except _Unsupported:
            _FAST[key] = None
    return _FAST[key]


class _Unsupported(Exception):
    pass


def _compile_fast(schema: Any):
    if schema is True or schema == {}:
        return lambda value: True
    if not isinstance(schema, dict):
        raise _Unsupported
    checks: list = []
    for keyword, arg in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        if keyword == "$schema":
            if not isinstance(arg, str) or jsonschema.validators.validator_for({"$schema": arg}, default=None) not in _SAME_DIALECTS:
                raise _Unsupported
        elif keyword == "type":
            names = [arg] if isinstance(arg, str) else arg
            if not isinstance(names, list) or not all(n in _TYPES for n in names):
                raise _Unsupported
            tests = [_TYPES[n] for n in names]
            checks.append(lambda v, tests=tests: any(t(v) for t in tests))
        elif keyword in ("enum", "const"):
            options = arg if keyword == "enum" else [arg]
            # Strings, null and booleans (compared by identity: 1 == True in Python, not in JSON
            # Schema) are exact; numbers, arrays and objects are left to jsonschema.
            if not isinstance(options, list) or not all(o is None or isinstance(o, (str, bool)) for o in options):
                raise _Unsupported
            allowed = frozenset(o for o in options if not isinstance(o, bool))
            flags = tuple(o for o in options if isinstance(o, bool))
            checks.append(
                lambda v, allowed=allowed, flags=flags: any(v is f for f in flags) or ((v is None or isinstance(v, str)) and v in allowed)
            )
        elif keyword in ("minLength", "maxLength"):
            if not isinstance(arg, int) or isinstance(arg, bool):
                raise _Unsupported
            if keyword == "minLength":
                checks.append(lambda v, n=arg: not isinstance(v, str) or len(v) >= n)
            else:
                checks.append(lambda v, n=arg: not isinstance(v, str) or len(v) <= n)
        elif keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if not _is_number(arg):
                raise _Unsupported
            compare = {
                "minimum": lambda v, n: v >= n,
                "maximum": lambda v, n: v <= n,
                "exclusiveMinimum": lambda v, n: v > n,
                "exclusiveMaximum": lambda v, n: v < n,
            }[keyword]
            checks.append(lambda v, n=arg, compare=compare: not _is_number(v) or compare(v, n))
        elif keyword == "pattern":
            if not isinstance(arg, str):
                raise _Unsupported
            search = re.compile(arg).search
            checks.append(lambda v, search=search: not isinstance(v, str) or search(v) is not None)
        elif keyword == "required":
            if not isinstance(arg, list) or not all(isinstance(n, str) for n in arg):
                raise _Unsupported
            names = tuple(arg)
            checks.append(lambda v, names=names: not isinstance(v, dict) or all(n in v for n in names))
        elif keyword == "properties":
            if not isinstance(arg, dict):
                raise _Unsupported
            subs = tuple((name, _compile_fast(sub)) for name, sub in arg.items())
            checks.append(lambda v, subs=subs: not isinstance(v, dict) or all(name not in v or check(v[name]) for name, check in subs))
        elif keyword == "additionalProperties":
            if "patternProperties" in schema:
                raise _Unsupported
            known = frozenset(schema.get("properties", {}))
            if arg is False:
                checks.append(lambda v, known=known: not isinstance(v, dict) or all(k in known for k in v))
            else:
                extra = _compile_fast(arg)
                checks.append(lambda v, known=known, extra=extra: not isinstance(v, dict) or all(k in known or extra(x) for k, x in v.items()))
        elif keyword == "items":
            item = _compile_fast(arg)  # a list here is the older tuple form: unsupported
            checks.append(lambda v, item=item: not isinstance(v, list) or all(item(x) for x in v))
        elif keyword in ("minItems", "maxItems"):
            if not isinstance(arg, int) or isinstance(arg, bool):
                raise _Unsupported
            if keyword == "minItems":
                checks.append(lambda v, n=arg: not isinstance(v, list) or len(v) >= n)
            else:
                checks.append(lambda v, n=arg: not isinstance(v, list) or len(v) <= n)
        else:
            raise _Unsupported
    checks_t = tuple(checks)
    return lambda value: all(check(value) for check in checks_t)
