"""The fast yes/no pass of ``data_faults`` never lets through what the full walk refuses."""

import enum
import math

import pytest

from connector_core.validation import _plain_data, data_faults

# The documented limit (docs/operators.md: "nesting deeper than 32 levels"), written out.
MAX_DEPTH = 32


class Colour(enum.IntEnum):
    RED = 1


def nested(depth):
    value = "leaf"
    for _ in range(depth):
        value = [value]
    return value


BAD = [
    math.nan, math.inf, -math.inf, "x\ud800", {"k\udfff": 1}, {1: "a"}, {("t",): 1},
    nested(MAX_DEPTH + 1), {"a": [object()]}, b"bytes", {1.5}, [1, 2, {"deep": nested(MAX_DEPTH)}],
]


@pytest.mark.parametrize("value", BAD, ids=range(len(BAD)))
def test_every_fault_of_the_full_walk_is_found(value):
    assert not _plain_data(value, MAX_DEPTH, True)
    assert data_faults(value)


@pytest.mark.parametrize("value", [
    None, True, 0, -(2**70), 1.5, "ascii", "ünïcode ✓", {"a": [1, 2.0, None, {"b": "c"}], "é": ()},
    nested(MAX_DEPTH), (1, [2]),
], ids=range(10))
def test_plain_data_passes_on_the_fast_path(value):
    assert _plain_data(value, MAX_DEPTH, True)
    assert data_faults(value) == []


def test_other_types_take_the_full_walk_and_keep_its_answer():
    # Subclasses are left to the full walk, which accepts an IntEnum as an int.
    assert not _plain_data({"c": Colour.RED}, MAX_DEPTH, True)
    assert data_faults({"c": Colour.RED}) == []
    # Lone surrogates are let through where unicode=False (a service's answer).
    assert _plain_data("x\ud800", MAX_DEPTH, False)
    assert data_faults("x\ud800", unicode=False) == []


# --------------------------------------------------------------------------- differential
#
# data_faults answers [] from a fast pass and otherwise runs the walk that words the faults.
# The fast pass comes in two forms: pure Python (_plain_walk, the reference, used without
# orjson) and a walk of the values that leaves keys and strings to one orjson call
# (_plain_data). Hypothesis builds hostile values, the differential checks hold both to the
# walk: the same yes/no, and a yes only where the walk finds nothing.

import decimal  # noqa: E402
import uuid  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from connector_core.validation import _plain_values, _plain_walk, _walk_faults, plain_values  # noqa: E402


class Text(str):
    pass


class Number(int):
    pass


class Real(float):
    pass


class Mapping(dict):
    pass


class Items(list):
    pass


class Shade(enum.Enum):
    DARK = "dark"


class Flag(str, enum.Enum):
    ON = "on"


# Every string hypothesis can make, lone surrogates included.
_TEXT = st.text(st.characters(codec=None, categories=None), max_size=6)
_ODD_LEAVES = st.sampled_from([
    math.nan, math.inf, -math.inf, b"bytes", bytearray(b"x"), decimal.Decimal("1.5"), Colour.RED, Shade.DARK, Flag.ON,
    uuid.UUID(int=7), 1j, {1, 2}, frozenset(), object(), Text("sub"), Number(3), Real(0.5), Real(math.nan), True, None,
])
_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63 - 2, max_value=2**66), st.floats(), _TEXT,
    _ODD_LEAVES,
)
_KEYS = st.one_of(_TEXT, st.integers(-2, 2), st.booleans(), st.none(), st.just(("t",)), st.just(Text("k")),
                  st.just(Flag.ON), st.just(1.5))


def _containers(children):
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(_KEYS, children, max_size=4),
        st.dictionaries(st.text(max_size=3), children, max_size=3).map(Mapping),
        st.lists(children, max_size=2).map(Items),
    )


_VALUES = st.recursive(_LEAVES, _containers, max_leaves=25)
# Mostly plain JSON, so the fast pass says yes often and the walk has to agree.
_PLAIN = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=5)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=4), children, max_size=4)),
    max_leaves=30,
)


def _agree(value, max_depth: int, unicode: bool) -> bool:
    walked = _walk_faults(value, "$", max_depth, unicode)
    fast = _plain_walk(value, max_depth, unicode)
    assert _plain_data(value, max_depth, unicode) is fast, value
    assert walked == [] or not fast, (value, walked)
    if not _plain_values((value,), 0, max_depth):  # the values pass alone can only say no earlier
        assert not fast, value
    assert data_faults(value, max_depth=max_depth, unicode=unicode) == walked
    return fast


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_VALUES, _PLAIN, _PLAIN.map(lambda v: {"wrap": v, "odd": [math.nan]})),
       st.sampled_from([0, 1, 2, 3, 4, MAX_DEPTH]), st.booleans())
def test_the_fast_passes_agree_with_the_walk_on_hostile_values(value, max_depth, unicode):
    # A max_depth of 0 to 4 puts "at the limit" and "one beyond" within hypothesis' reach.
    _agree(value, max_depth, unicode)


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
@pytest.mark.parametrize("kind", [list, tuple, lambda v: {"k": v}])
def test_depth_at_the_limit_and_one_beyond(depth, kind):
    value = "leaf"
    for _ in range(depth):
        value = kind(value) if kind is not list and kind is not tuple else kind([value])
    assert _agree(value, MAX_DEPTH, True) is (depth <= MAX_DEPTH)
    assert (data_faults(value) == []) is (depth <= MAX_DEPTH)


def test_what_orjson_refuses_but_json_allows_is_still_plain():
    # orjson refuses integers beyond 64 bits and (always) lone surrogates; the pure pass decides.
    for value in ([2**64, -(2**63) - 1], {"big": 10**30}):
        assert _plain_values((value,), 0, MAX_DEPTH) and _plain_data(value, MAX_DEPTH, True)
    assert _plain_data(["x\udc80", {"k": "\ud800"}], MAX_DEPTH, False)
    assert _plain_data({"\ud800": 1}, MAX_DEPTH, False) and data_faults({"\ud800": 1}, unicode=False) == []
    assert not _plain_data({"\ud800": 1}, MAX_DEPTH, True)
    # What orjson would serialise but is not JSON data is stopped by the values pass first.
    for value in ({"u": uuid.UUID(int=1)}, [Shade.DARK], {"n": math.nan}, (Real(1.0),)):
        assert not _plain_values((value,), 0, MAX_DEPTH) and not _plain_data(value, MAX_DEPTH, True)


def test_a_key_orjson_refuses_is_worded_by_the_walk():
    for key, kind in ((1, "int 1"), (True, "bool True"), (None, "NoneType None"), (Text("k"), None), (Flag.ON, None)):
        value = {"a": {key: 1}}
        assert _plain_values((value,), 0, MAX_DEPTH) and not _plain_data(value, MAX_DEPTH, True)
        found = data_faults(value)
        if kind is None:  # a str subclass is a string: the walk accepts it
            assert found == []
        else:
            assert [(f.path, f.message) for f in found] == [
                ("$.a", f"has a key that is not a string ({kind}); object keys must be strings")]


def test_a_caller_deep_in_the_stack_gets_the_same_answer():
    import inspect
    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 12)  # too shallow for the recursive values pass
    try:
        answers = [_plain_data(nested(MAX_DEPTH), MAX_DEPTH, True), _plain_data(nested(MAX_DEPTH + 1), MAX_DEPTH, True)]
    finally:
        sys.setrecursionlimit(limit)
    assert answers == [True, False]


def test_plain_values_called_deep_in_the_stack_answers_no_rather_than_raising():
    # The public values pass of a capability's own data check: in doubt it says False, and the
    # capability then runs the full walk, which does not recurse.
    import inspect
    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 12)  # too shallow for the recursive values pass
    try:
        deep = plain_values([nested(MAX_DEPTH)], 0)
    finally:
        sys.setrecursionlimit(limit)
    assert deep is False
    assert plain_values([nested(MAX_DEPTH)], 0) is True  # with room in the stack, the same value passes


@pytest.mark.parametrize("leaf", ["x", 1, None, True, 1.5, [], {}], ids=repr)
def test_a_fault_after_a_plain_value_at_the_same_level_is_seen(leaf):
    for value in ([leaf, math.nan], {"a": leaf, "b": math.nan}, [leaf, [leaf, {"k": math.inf}]]):
        assert not _plain_values((value,), 0, MAX_DEPTH) and not _plain_data(value, MAX_DEPTH, True), value
        assert data_faults(value)


def test_data_faults_reports_the_first_twenty_faults_in_document_order():
    found = data_faults([math.nan] * 30)
    assert sorted(f.path for f in found) == sorted(f"$[{i}]" for i in range(20))


@pytest.mark.parametrize("value, paths", [
    ([nested(MAX_DEPTH), math.nan], ["$[0]" + "[0]" * (MAX_DEPTH - 1), "$[1]"]),
    ({1: "x", "b": math.nan}, ["$", "$.b"]),
    ({"\ud800": 1, "b": math.nan}, ["$", "$.b"]),
])
def test_a_fault_does_not_hide_the_faults_after_it(value, paths):
    # A container too deep, a key that is not a string, a key with a lone surrogate: each is
    # reported, and so is the NaN after it.
    assert [f.path for f in data_faults(value)] == paths


def test_without_orjson_the_data_check_finds_the_same_faults():
    import json
    import subprocess
    import sys

    value = {"a": [1, math.nan], "\ud800": 2, "b": nested(MAX_DEPTH + 1), "ok": {"x": "y"}}
    code = (
        "import json, math, sys; sys.modules['orjson'] = None\n"
        "from connector_core import validation\n"
        "value = {'a': [1, math.nan], '\\ud800': 2, 'b': " + repr(nested(MAX_DEPTH + 1)) + ", 'ok': {'x': 'y'}}\n"
        "print(json.dumps([validation._orjson is None, [[f.path, f.message] for f in validation.data_faults(value)],"
        " validation.data_faults({'plain': [1, 'two', None]})]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    without, found, plain = json.loads(done.stdout)
    assert without is True and plain == []
    assert found == [[f.path, f.message] for f in data_faults(value)]
