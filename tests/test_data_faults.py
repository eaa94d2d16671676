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
