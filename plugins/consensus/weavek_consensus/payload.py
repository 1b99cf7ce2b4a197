"""The election payload: a node's map of claims as plain CBOR-able data, and its strict reader.

The kernel carries the payload opaquely inside a peer state (``election``)
while the sender has no ring. It is one map::

    {
      "v": 1,
      "nodes": {"<name, 12 hex>:<uid, 16 hex>":
                    [promise round, promise name, promise uid,
                     accepted round, accepted name, accepted uid,
                     value index or null]},
      "values": [[origin round, origin name, origin uid, names]]
    }

A ballot of (0, 0, 0) is "none"; a record has a value index exactly when it
accepted a ballot. ``names`` is the value's peer names, sorted and distinct,
each 6 bytes big-endian, concatenated. Values are listed once and referred to
by index, because a record per node repeating a list of every node would grow
with the square of the cluster.

:func:`decode` trusts nothing: anything out of shape or out of range makes
the whole payload None, and nothing it is given can make it raise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from itertools import pairwise
from typing import Any

from .paxos import MAX_NODES, MAX_ROUND, MAX_VALUES, NO_BALLOT, Ballot, Claims, NodeID, Value

__all__ = ["VERSION", "decode", "encode"]

VERSION = 1
MAX_NAME = (1 << 48) - 1
MAX_UID = (1 << 64) - 1
_KEY = re.compile(r"[0-9a-f]{12}:[0-9a-f]{16}")
_KEYS = {"v", "nodes", "values"}


class _Invalid(Exception):
    """Raised inside :func:`decode` only, on the first thing out of shape."""


def encode(knows: Mapping[NodeID, Claims]) -> dict[str, Any]:
    """A map of claims as the payload above."""
    values: list[list[Any]] = []
    index: dict[Value, int] = {}
    nodes: dict[str, list[Any]] = {}
    for (name, uid), claims in knows.items():
        ref = None
        if claims.value is not None:
            ref = index.get(claims.value)
            if ref is None:
                ref = index[claims.value] = len(values)
                names = b"".join(n.to_bytes(6, "big") for n in claims.value.names)
                values.append([*claims.value.origin, names])
        nodes[f"{name:012x}:{uid:016x}"] = [*claims.promise, *claims.accepted, ref]
    return {"v": VERSION, "nodes": nodes, "values": values}


def decode(data: object) -> dict[NodeID, Claims] | None:
    """The map of claims in a payload from a peer; None if anything about it is invalid."""
    try:
        return _decode(data)
    except _Invalid:
        return None
    except Exception:  # a bug here must not become a crash on a peer's payload
        return None


def _decode(data: object) -> dict[NodeID, Claims]:
    if not isinstance(data, dict) or set(data) != _KEYS or _int(data["v"]) != VERSION:
        raise _Invalid
    nodes, raw_values = data["nodes"], data["values"]
    if not isinstance(nodes, dict) or not isinstance(raw_values, list):
        raise _Invalid
    # Our own values plus MAX_VALUES heard of: the most a sender's map can hold.
    if len(nodes) > MAX_NODES or len(raw_values) > MAX_VALUES + 1:
        raise _Invalid
    values = [_value(v) for v in raw_values]
    return {_node_id(key): _claims(record, values) for key, record in nodes.items()}


def _int(x: object) -> int:
    if type(x) is not int:  # bool is an int subclass, and not a number here
        raise _Invalid
    return x


def _node_id(key: object) -> NodeID:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise _Invalid
    name, uid = int(key[:12], 16), int(key[13:], 16)
    if name == 0 or uid == 0:
        raise _Invalid
    return name, uid


def _ballot(round_: object, name: object, uid: object) -> Ballot:
    ballot = (_int(round_), _int(name), _int(uid))
    if ballot == NO_BALLOT:
        return NO_BALLOT
    r, n, u = ballot
    if not (0 < r <= MAX_ROUND and 0 < n <= MAX_NAME and 0 < u <= MAX_UID):
        raise _Invalid
    return ballot


def _value(raw: object) -> Value:
    if not isinstance(raw, list) or len(raw) != 4:
        raise _Invalid
    origin = _ballot(*raw[:3])
    blob = raw[3]
    if origin == NO_BALLOT or not isinstance(blob, bytes) or len(blob) % 6:
        raise _Invalid
    return Value(origin, _names(blob))


# Every vote after the accept-request carries the same value, so one election
# parses the same list of names once per vote; remembering the last few saves
# that. A list is at most MAX_NODES names (6 KiB), so the cache stays small.
@lru_cache(maxsize=32)
def _names(blob: bytes) -> tuple[int, ...]:
    if not 0 < len(blob) <= 6 * MAX_NODES:
        raise _Invalid
    names = tuple(int.from_bytes(blob[i : i + 6], "big") for i in range(0, len(blob), 6))
    if names[0] == 0 or any(a >= b for a, b in pairwise(names)):
        raise _Invalid  # sorted and distinct, as every honest pick is
    return names


def _claims(record: object, values: list[Value]) -> Claims:
    if not isinstance(record, list) or len(record) != 7:
        raise _Invalid
    promise, accepted = _ballot(*record[:3]), _ballot(*record[3:6])
    if accepted > promise:
        raise _Invalid  # nobody accepts above what it promised
    ref = record[6]
    if accepted == NO_BALLOT:
        if ref is not None:
            raise _Invalid
        return Claims(promise)
    index = _int(ref)
    if not 0 <= index < len(values) or values[index].origin > accepted:
        raise _Invalid  # a value is chosen by its origin ballot, at or before any acceptance
    return Claims(promise, accepted, values[index])
