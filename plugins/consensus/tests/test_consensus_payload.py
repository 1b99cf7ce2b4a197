"""The election payload: round trips through the kernel's codec, strict reading, junk, size."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weavek.core import codec
from weavek.core.messages import PeerState
from weavek.core.strategy import NO_DECISION, Decision
from weavek_consensus import ConsensusStrategy
from weavek_consensus.paxos import MAX_NODES, MAX_ROUND, MAX_VALUES, Claims, NodeID, Value
from weavek_consensus.payload import decode, encode

names = st.integers(1, (1 << 48) - 1)
uids = st.integers(1, (1 << 64) - 1)
ballots = st.tuples(st.integers(1, MAX_ROUND), names, uids)


@st.composite
def claims(draw: st.DrawFn) -> Claims:
    promise = draw(ballots)
    if draw(st.booleans()):
        return Claims(promise)
    accepted = min(promise, draw(ballots))
    origin = min(accepted, draw(ballots))
    value_names = draw(st.lists(names, min_size=1, max_size=8, unique=True).map(sorted))
    return Claims(promise, accepted, Value(origin, tuple(value_names)))


maps = st.dictionaries(st.tuples(names, uids), claims(), max_size=12)


def through_the_wire(payload: Any) -> Any:
    """What a peer receives: our payload inside a peer state, encoded and decoded."""
    message = codec.decode(codec.encode(PeerState(((1, "one"),), None, payload)))
    assert isinstance(message, PeerState)
    return message.election


@settings(max_examples=200, deadline=None)
@given(maps)
def test_a_map_survives_the_round_trip(knows: dict[NodeID, Claims]) -> None:
    assert decode(through_the_wire(encode(knows))) == knows


def test_values_are_listed_once() -> None:
    v = Value((1, 2, 22), (1, 2, 3))
    knows = {(n, 9): Claims((1, 2, 22), (1, 2, 22), v) for n in range(1, 6)}
    data = encode(knows)
    assert data["values"] == [[1, 2, 22, bytes.fromhex("000000000001000000000002000000000003")]]
    assert data["nodes"]["000000000001:0000000000000009"] == [1, 2, 22, 1, 2, 22, 0]


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40) | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=8)
        | st.dictionaries(st.text(max_size=30) | st.binary(max_size=8), inner, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=500, deadline=None)
@given(junk)
def test_junk_never_raises(data: Any) -> None:
    result = decode(data)
    assert result is None or isinstance(result, dict)
    strategy = ConsensusStrategy("3", me=1, uid=1)
    assert isinstance(strategy.receive(2, data), Decision)


def _paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(data, dict):
        for key, item in data.items():
            out += _paths(item, (*path, key))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            out += _paths(item, (*path, i))
    return out


def _replace(data: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in data.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(data)]


@settings(max_examples=500, deadline=None)
@given(maps, st.data(), junk)
def test_a_valid_payload_with_one_part_replaced_never_raises(
    knows: dict[NodeID, Claims], data: st.DataObject, part: Any
) -> None:
    payload = encode(knows)
    path = data.draw(st.sampled_from(_paths(payload)))
    mutated = _replace(payload, path, part)
    result = decode(mutated)
    assert result is None or isinstance(result, dict)
    strategy = ConsensusStrategy("3", me=1, uid=1)
    assert isinstance(strategy.receive(2, mutated), Decision)


GOOD_KEY = "000000000002:0000000000000016"
GOOD_VALUE = [1, 2, 22, bytes(5) + b"\x02"]


def payload_with(nodes: Any = None, values: Any = None, **extra: Any) -> dict[str, Any]:
    nodes = {GOOD_KEY: [1, 2, 22, 1, 2, 22, 0]} if nodes is None else nodes
    return {"v": 1, "nodes": nodes, "values": [GOOD_VALUE] if values is None else values, **extra}


def test_the_reference_payload_is_valid() -> None:
    assert decode(payload_with()) == {
        (2, 22): Claims((1, 2, 22), (1, 2, 22), Value((1, 2, 22), (2,)))
    }


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({**payload_with(), "v": 2}, id="other version"),
        pytest.param({**payload_with(), "v": True}, id="bool version"),
        pytest.param(payload_with(more=1), id="extra key"),
        pytest.param({"v": 1, "nodes": {}}, id="missing key"),
        pytest.param(payload_with(nodes=[]), id="nodes not a map"),
        pytest.param(
            payload_with(nodes={"00000000000A:0000000000000016": [1, 2, 22, 0, 0, 0, None]}),
            id="upper case",
        ),
        pytest.param(payload_with(nodes={b"k": [1, 2, 22, 0, 0, 0, None]}), id="bytes key"),
        pytest.param(
            payload_with(nodes={"000000000000:0000000000000016": [0, 0, 0, 0, 0, 0, None]}),
            id="unknown peer",
        ),
        pytest.param(
            payload_with(nodes={"000000000002:0000000000000000": [0, 0, 0, 0, 0, 0, None]}),
            id="zero uid",
        ),
        pytest.param(payload_with(nodes={GOOD_KEY: [1, 2, 22, 0, 0, 0]}), id="short record"),
        pytest.param(payload_with(nodes={GOOD_KEY: [1, 2, 0, 0, 0, 0, None]}), id="ballot uid 0"),
        pytest.param(payload_with(nodes={GOOD_KEY: [0, 2, 22, 0, 0, 0, None]}), id="round 0"),
        pytest.param(
            payload_with(nodes={GOOD_KEY: [1, 1 << 48, 22, 0, 0, 0, None]}), id="name > 48 bits"
        ),
        pytest.param(
            payload_with(nodes={GOOD_KEY: [1, 2, 1 << 64, 0, 0, 0, None]}), id="uid > 64 bits"
        ),
        pytest.param(
            payload_with(nodes={GOOD_KEY: [MAX_ROUND + 1, 2, 22, 0, 0, 0, None]}), id="round"
        ),
        pytest.param(
            payload_with(nodes={GOOD_KEY: [1, 2, 22, 2, 2, 22, 0]}), id="accepted>promise"
        ),
        pytest.param(payload_with(nodes={GOOD_KEY: [1, 2, 22, 0, 0, 0, 0]}), id="value, no accept"),
        pytest.param(
            payload_with(nodes={GOOD_KEY: [1, 2, 22, 1, 2, 22, None]}), id="accept, no value"
        ),
        pytest.param(payload_with(nodes={GOOD_KEY: [1, 2, 22, 1, 2, 22, 1]}), id="value index"),
        pytest.param(payload_with(nodes={GOOD_KEY: [1, 2, 22, 1, 2, 22, True]}), id="bool index"),
        pytest.param(payload_with(values=[[2, 2, 22, bytes(5) + b"\x02"]]), id="origin>accepted"),
        pytest.param(payload_with(values=[[1, 2, 22, bytes(5)]]), id="names not 6 bytes"),
        pytest.param(payload_with(values=[[1, 2, 22, b""]]), id="no names"),
        pytest.param(payload_with(values=[[1, 2, 22, bytes(6)]]), id="unknown peer named"),
        pytest.param(
            payload_with(values=[[1, 2, 22, bytes(5) + b"\x03" + bytes(5) + b"\x02"]]),
            id="unsorted names",
        ),
        pytest.param(payload_with(values=[[0, 0, 0, bytes(5) + b"\x02"]]), id="no origin"),
        pytest.param(payload_with(values=[GOOD_VALUE] * (MAX_VALUES + 2)), id="too many values"),
        pytest.param(
            payload_with(
                nodes={f"{n:012x}:{1:016x}": [0, 0, 0, 0, 0, 0, None] for n in range(1, 1100)}
            ),
            id="too many nodes",
        ),
    ],
)
def test_anything_out_of_shape_is_refused(bad: Any) -> None:
    assert decode(bad) is None
    strategy = ConsensusStrategy("3", me=1, uid=1)
    assert strategy.receive(2, bad) == NO_DECISION
    assert strategy.payload() is None  # a refused payload leaves no trace


def test_the_largest_map_we_keep_fits_in_a_peer_state() -> None:
    """MAX_NODES records, huge numbers everywhere, MAX_VALUES + 1 values of MAX_NODES names."""
    big = (1 << 64) - 1
    nodes = [((1 << 48) - 1 - n, big - n) for n in range(MAX_NODES)]
    all_names = tuple(sorted(name for name, _ in nodes))
    values = [
        Value((MAX_ROUND - i, nodes[i][0], big - i), all_names) for i in range(MAX_VALUES + 1)
    ]
    knows = {}
    for i, nid in enumerate(nodes):
        value = values[i % len(values)]
        knows[nid] = Claims((MAX_ROUND, *nodes[0]), (MAX_ROUND, *nodes[0]), value)
    payload = encode(knows)
    assert decode(through_the_wire(payload)) == knows
    blob = codec.encode(PeerState((), None, payload))
    assert len(blob) < codec.MAX_MESSAGE
