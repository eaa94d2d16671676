"""Near-miss batches for the differential tests of the batch checker and the sandbox: copies
of a valid batch with a node or two deleted, replaced by an odd value or given a stray key.

One generator for tests/test_batches.py (the checker's fast pass against its full checks)
and tests/test_mparticle_truth.py (the checker against the sandbox's independent validator),
each with its own replacements and seeds; and ``splice``, which puts a hypothesis value into a
batch, for the fast passes' hypothesis tests (tests/test_batches_fast_pass.py,
tests/test_sandbox_bulk.py).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator, Sequence
from typing import Any

from hypothesis import strategies as st


def _nodes(node: Any, list_head: int, path: tuple = ()) -> Iterator[tuple]:
    """Paths to every node under ``node``: object members, and the first ``list_head`` items of arrays."""
    if path:
        yield path
    children = node.items() if isinstance(node, dict) else enumerate(node[:list_head]) if isinstance(node, list) else ()
    for key, child in children:
        yield from _nodes(child, list_head, (*path, key))


def _pick(rng: random.Random, choices: Sequence[Any]) -> Any:
    # A choice of one draws nothing from rng, so a seed gives the same batches whatever the options.
    return choices[0] if len(choices) == 1 else rng.choice(choices)


def batch_mutants(
    batch: dict, rng: random.Random, count: int, *, replacements: Sequence[Any], edits: Sequence[int] = (1,),
    stray_keys: Sequence[str] = ("zz_unknown",), stray_values: Sequence[Any] = (1,), list_head: int = 3,
) -> Iterator[tuple[str, dict]]:
    """``count`` copies of ``batch``, each changed ``rng.choice(edits)`` times; yields
    ``(path, copy)`` with the path of the last node changed (``events.#.data``).

    Each change picks a node: deletes it (15%, object members), adds a stray member to the
    object holding it (10%: a key of ``stray_keys`` set to one of ``stray_values``), or else
    replaces it with one of ``replacements`` (a fresh copy each time).
    """
    for _ in range(count):
        mutant = copy.deepcopy(batch)
        path: tuple = ()
        for _ in range(_pick(rng, edits)):
            paths = list(_nodes(mutant, list_head))
            if not paths:
                break
            path = rng.choice(paths)
            parent = mutant
            for key in path[:-1]:
                parent = parent[key]
            roll = rng.random()
            if roll < 0.15 and isinstance(parent, dict):
                del parent[path[-1]]
            elif roll < 0.25 and isinstance(parent, dict):
                parent[_pick(rng, stray_keys)] = _pick(rng, stray_values)
            else:
                parent[path[-1]] = copy.deepcopy(_pick(rng, replacements))
        yield ".".join("#" if isinstance(k, int) else str(k) for k in path), mutant


def splice(data: Any, batch: Any, values: st.SearchStrategy, keys: Sequence[str] = ("zz",), depth: int = 4) -> None:
    """Put a value drawn from ``values`` into ``batch`` in place, with hypothesis' ``data``: walk
    down at most ``depth`` levels to a random object or array, then set the member it came
    through or one of ``keys`` (an object), or one of its items (an array)."""
    node, key = batch, None
    for _ in range(data.draw(st.integers(0, depth))):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
        if not children:
            break
        key, child = data.draw(st.sampled_from(children))
        if not isinstance(child, (dict, list)):
            break
        node = child
    value = data.draw(values)
    if isinstance(node, dict):
        node[data.draw(st.sampled_from([key, *keys])) if key is not None else keys[0]] = value
    elif node:
        node[data.draw(st.integers(0, len(node) - 1))] = value
