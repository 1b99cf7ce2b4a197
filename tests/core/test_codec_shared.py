"""``codec.shared_decoding``: a simulator decodes each delivered bytes object once."""

from __future__ import annotations

import pytest

from weavek.core import codec
from weavek.core.messages import PeerState

STATE = PeerState(((1 << 40, "peer-0"),), None, {"v": 1, "nodes": {"a": [1, 2, None]}})


def test_outside_the_block_every_decode_is_fresh() -> None:
    data = codec.encode(STATE)
    first, second = codec.decode(data), codec.decode(data)
    assert first == second == STATE and first is not second


def test_inside_the_block_one_bytes_object_decodes_once() -> None:
    data = codec.encode(STATE)
    twin = bytes(bytearray(data))  # equal bytes, another object: decoded on its own
    with codec.shared_decoding():
        first = codec.decode(data)
        assert codec.decode(data) is first
        assert codec.decode(twin) == first and codec.decode(twin) is not first
        with codec.shared_decoding():  # nested blocks share the same memory
            assert codec.decode(data) is first
    assert codec.decode(data) is not first  # and it is gone once the block ends


def test_bad_bytes_still_fail_every_time() -> None:
    bad = b"\x10\x81\x09"
    with codec.shared_decoding():
        for _ in range(2):
            with pytest.raises(codec.DecodeError):
                codec.decode(bad)


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_SHARED_LIMIT", 3)
    messages = [codec.encode(PeerState(((1 << 40, f"p{i}"),))) for i in range(5)]
    with codec.shared_decoding():
        decoded = [codec.decode(m) for m in messages]
        assert codec._shared is not None and len(codec._shared) == 3
        assert codec.decode(messages[-1]) is decoded[-1]  # the newest are kept
        assert codec.decode(messages[0]) is not decoded[0]  # the oldest went first


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"a": [1, [2, [3.5]]]}, "may not contain float"),
        ({"a": [1, {"b": {4: 1}}]}, "keys must be str or bytes"),
        ([[1, (2,)]], "may not contain tuple"),
    ],
)
def test_election_data_is_checked_below_plain_lists(value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        codec.encode(PeerState((), None, value))


def test_a_cycle_runs_into_the_depth_limit() -> None:
    cycle: list[object] = [1]
    cycle.append(cycle)
    with pytest.raises(ValueError, match="nested deeper"):
        codec.encode(PeerState((), None, cycle))
