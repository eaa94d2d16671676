"""``source_request_id`` for event batches: ids a host can repeat, and ids that never collide.

mParticle de-duplicates batches by ``source_request_id`` (per input key, for weeks): a batch
whose id it has seen is answered 202 and dropped. That is the only protection a client has
against doubled events, and it works only if a repeated upload carries the *same* ids.

:func:`assign_ids` gives every batch that has no ``source_request_id`` (missing, null or
``""``) an id:

* with an idempotency key, ``uuid5(NAMESPACE, f"{key}\\n{index}\\n{content_hash}")`` where
  ``index`` is the batch's position in the input and ``content_hash`` the SHA-256 of its
  canonical JSON (:func:`content_hash`). The same key and the same body give the same ids,
  so repeating a failed call cannot double events; a different body under the same key
  gives different ids, so a key reused for another upload loses nothing. The position is
  part of the id because two equal batches in one upload are two sets of events.
* without a key, a random UUID (version 4): a repeat of the call is a new upload.

Batches that carry an id keep it. Two *different* batches that share an id in one input are
refused (:func:`duplicate_id_faults`): mParticle would keep one of them and drop the other
in silence. Equal batches sharing an id are let through: mParticle keeps the one copy the
sender meant.

These functions are the contract other uploaders build on (``NAMESPACE`` and the derivation
never change: a change would double every event a host repeats across an upgrade).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from connector_core import Fault

try:  # the connector's dependency; the standard library serves where it cannot encode
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = [
    "NAMESPACE",
    "assign_ids",
    "canonical_json",
    "content_hash",
    "derive_id",
    "duplicate_id_faults",
    "has_id",
    "shared_id_faults",
    "id_from_canonical",
]

# uuid5(NAMESPACE_URL, "https://github.com/connector-framework/mparticle/source_request_id"),
# written out so it can never drift.
NAMESPACE = uuid.UUID("630ff906-b04e-570f-9139-c22fd7569d32")
_NAMESPACE_BYTES = NAMESPACE.bytes

_ID = "source_request_id"


def has_id(batch: dict) -> bool:
    """Whether the batch carries its own ``source_request_id`` (null and "" count as none)."""
    value = batch.get(_ID)
    return value is not None and value != ""


def canonical_json(batch: dict) -> bytes:
    """The batch without its ``source_request_id`` as canonical JSON (UTF-8 bytes).

    The canonical form is ``json.dumps(content, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)``: equal content gives equal bytes whatever the key order, spacing
    or input form. orjson writes the same bytes about ten times faster, except for floats
    below 1e-4 in magnitude, which it writes without an exponent or with a shorter one
    (``0.00001`` for ``1e-05``, ``2.5e-7`` for ``2.5e-07``); output where such a float may
    occur (``0.0000``, or a digit followed by ``e-``, strings included) and values orjson
    cannot encode go to the standard library.
    """
    content = {k: v for k, v in batch.items() if k != _ID} if _ID in batch else batch
    if _orjson is not None:
        try:
            raw = _orjson.dumps(content, option=_orjson.OPT_SORT_KEYS)
        except TypeError:  # integers beyond 64 bits, non-string keys
            raw = None
        if raw is not None and not _may_differ(raw):
            return raw
    try:
        text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except TypeError:  # keys of mixed types cannot be sorted: write them as the strings JSON makes of them
        text = json.dumps(json.loads(json.dumps(content)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: \u-escape them
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")).encode("ascii")


# Where orjson's number format may differ from the standard library's (see canonical_json):
# "0.0000", or a digit followed by "e-". A bare "e-" would also match common text
# ("sale-2025", "mobile-app") and send most real batches down the standard library's path,
# several times slower. The pattern starts with the literal "e-", so the regex engine scans
# for it at memchr speed and looks behind only where it occurs (a character class first
# would be tried at every position, twenty times slower).
_DIGIT_E_MINUS = re.compile(rb"e-(?<=[0-9]e-)")


def _may_differ(raw: bytes) -> bool:
    return b"0.0000" in raw or _DIGIT_E_MINUS.search(raw) is not None


def content_hash(batch: dict) -> str:
    """SHA-256 (hex) of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(batch)).hexdigest()


def derive_id(key: str, index: int, batch: dict) -> str:
    """The ``source_request_id`` of the batch at ``index`` of an upload under ``key``."""
    return id_from_canonical(key, index, canonical_json(batch))


def id_from_canonical(key: str, index: int, canonical: bytes) -> str:
    """:func:`derive_id` for a batch whose :func:`canonical_json` the caller already has
    (an uploader that sends those bytes saves encoding the batch twice)."""
    name = f"{key}\n{index}\n{hashlib.sha256(canonical).hexdigest()}"
    # uuid.uuid5(NAMESPACE, name), written out: building the UUID object cost more than the
    # hashes (tests/test_mparticle_exactly_once.py checks the two agree).
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def assign_ids(
    batches: Sequence[dict],
    key: str | None = None,
    *,
    start: int = 0,
    new_id: Callable[[], object] = uuid.uuid4,
) -> list[dict]:
    """The batches, each with a ``source_request_id`` (see the module docstring).

    Batches without one are shallow-copied with a derived id when ``key`` is given (a
    non-empty string), else a random one (``new_id``); the caller's dicts never change.
    ``start`` is the position of ``batches[0]`` in the whole upload, for uploaders that
    send a long input in slices.
    """
    out = []
    for offset, batch in enumerate(batches):
        if not has_id(batch):
            value = derive_id(key, start + offset, batch) if key else str(new_id())
            batch = {**batch, _ID: value}
        out.append(batch)
    return out


def with_id(encoded: bytes, batch: dict, identified: dict) -> bytes:
    """``batches.encode(identified)``, where ``identified`` is ``batch`` with the id
    :func:`assign_ids` gave it and ``encoded`` is orjson's encoding of ``batch`` (as
    ``batches.encode`` writes it when orjson takes the batch): the id is written into those
    bytes rather than the batch encoded again (when ``batch`` held the key, as null or "",
    it is encoded again: the key keeps its place)."""
    from .batches import _orjson, encode

    if _orjson is None or _ID in batch or type(identified.get(_ID)) is not str or not encoded.endswith(b"}"):
        return encode(identified)
    try:
        member = b'"source_request_id":' + _orjson.dumps(identified[_ID])
    except TypeError:  # a lone surrogate: encode says how it goes out
        return encode(identified)
    return b"{" + member + b"}" if encoded == b"{}" else encoded[:-1] + b"," + member + b"}"


def duplicate_id_faults(batches: Sequence[dict], path: str = "$.jsonBody") -> list[Fault]:
    """Faults for different batches that share a ``source_request_id``, naming both paths.

    Batches that are equal (ids included) may share it: mParticle keeps the one copy.
    """
    first: dict[Any, int] = {}
    pairs: list[tuple[int, int]] = []
    for i, batch in enumerate(batches):
        value = batch.get(_ID)
        if not isinstance(value, str) or not value:
            continue
        j = first.setdefault(value, i)
        if j != i and batches[j] != batch:
            pairs += [(j, i), (i, j)]
    return [_shared(path, at, other) for at, other in sorted(pairs)]


def shared_id_faults(path: str, first: int, second: int) -> list[Fault]:
    """The two faults of :func:`duplicate_id_faults` for batches ``first`` and ``second``
    (for an uploader that reads its batches as a stream and keeps only their hashes)."""
    return [_shared(path, first, second), _shared(path, second, first)]


def _shared(path: str, at: int, other: int) -> Fault:
    return Fault(
        f"{path}[{at}].{_ID}",
        f"is also the source_request_id of {path}[{other}], a different batch; mParticle keeps only "
        "the first batch it sees with an id and drops the other in silence. Give each batch its own "
        "id, or leave the ids out and let the connector assign them",
    )
