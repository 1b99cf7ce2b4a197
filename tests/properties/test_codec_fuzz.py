"""Fuzzing the codec: whatever the bytes, decode returns a message or raises DecodeError.

Inputs get progressively closer to valid: arbitrary bytes; arbitrary bytes
behind a valid header; arbitrary CBOR behind a valid header (raw and
zstd-compressed); message-shaped CBOR arrays with arbitrary fields; arbitrary
election data inside a valid peer state; and valid encodings that are
truncated, cut or overwritten. Whenever decode accepts something, encoding
the result must round-trip: decode never accepts what encode would refuse.
"""

from __future__ import annotations

from typing import Any

import cbor2
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from weavek.core.codec import DecodeError, decode, decode_ring, encode, encode_ring
from weavek.core.messages import Message, PeerState, RingData, SpaceDenied, SpaceRequest
from weavek.core.peer import MAX_PEER_NAME

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(data: bytes) -> None:
    """Decode both ways; only DecodeError may escape, and what decodes must re-encode."""
    try:
        message: Message = decode(data)
    except DecodeError:
        pass
    else:
        assert decode(encode(message)) == message
    try:
        ring = decode_ring(data)
    except DecodeError:
        pass
    else:
        assert decode_ring(encode_ring(ring)) == ring


def raw(data: bytes) -> bytes:
    """The same encoding, uncompressed, so mutations reach the CBOR and not just zstd."""
    if data[0] & 1:
        return b"\x10" + zstandard.ZstdDecompressor().decompress(data[1:])
    return data


# -- valid messages ---------------------------------------------------------------------------

names = st.integers(0, MAX_PEER_NAME)
counts = st.integers(0, 300) | st.integers(0, 2**80)


@st.composite
def rings(draw: st.DrawFn) -> RingData:
    version = draw(st.sampled_from([4, 6]))
    start = draw(st.sampled_from([0, 10 << 24, (0xFD << 120) >> (96 if version == 4 else 0)]))
    end = start + draw(st.integers(1, 1 << (20 if version == 4 else 64)))
    tokens = sorted(draw(st.sets(st.integers(start, end - 1), max_size=30)))
    n = len(tokens)
    table = draw(st.lists(names, min_size=1, max_size=5))
    peers = draw(
        st.lists(names, min_size=n, max_size=n, unique=True)
        | st.lists(st.sampled_from(table), min_size=n, max_size=n)
    )
    columns = [draw(st.lists(counts, min_size=n, max_size=n)) for _ in range(2)]
    seeds = draw(st.lists(names, max_size=3))
    return RingData(
        start, end, version, tuple(seeds), tuple(tokens), tuple(peers), *map(tuple, columns)
    )


nicknames = st.lists(st.tuples(names, st.text(max_size=12)), max_size=3).map(tuple)
plain = st.recursive(
    st.booleans() | st.integers() | st.text(max_size=6) | st.binary(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(SpaceRequest, st.just(0), st.integers(1, 1 << 128)),
    st.builds(SpaceDenied, st.integers(0, 1 << 32), st.just(1 << 128)),
    st.builds(PeerState, nicknames, rings()),
    st.builds(PeerState, nicknames, st.none(), plain),
)

# -- arbitrary CBOR -----------------------------------------------------------------------------

TAGS = st.sampled_from([0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 37, 52, 256, 258, 260, 999, 55799])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.binary(max_size=40)
    | st.text(max_size=10)
    | st.just(cbor2.undefined)
)
cbor_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=3) | st.integers(-5, 5), inner, max_size=3)
        | st.builds(cbor2.CBORTag, TAGS, inner)
    ),
    max_leaves=15,
)
columns = st.binary(max_size=40) | st.sampled_from([b"", b"\x01", b"\x01\x00\x01", b"\x00" * 6])
fields = st.integers(0, 2**70) | columns | st.text(max_size=5) | st.none() | cbor_values


def dump(value: Any) -> bytes | None:
    try:
        return cbor2.dumps(value)
    except (cbor2.CBOREncodeError, ValueError, TypeError, OverflowError):
        return None


# -- the fuzz tests -----------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(st.sampled_from([b"\x10", b"\x11"]), st.binary(max_size=300))
def test_arbitrary_bytes_behind_valid_header(header: bytes, data: bytes) -> None:
    check(header + data)


@FUZZ
@given(cbor_values, st.booleans())
def test_arbitrary_cbor(value: Any, compress: bool) -> None:
    body = dump(value)
    if body is not None:
        check(b"\x11" + zstandard.ZstdCompressor().compress(body) if compress else b"\x10" + body)


@FUZZ
@given(st.integers(0, 4), st.lists(fields, max_size=15))
def test_message_shaped_cbor(kind: int, rest: list[Any]) -> None:
    body = dump([kind, *rest])
    if body is not None:
        check(b"\x10" + body)


@FUZZ
@given(rings(), st.integers(1, 9), fields)
def test_ring_with_one_field_replaced(ring: RingData, index: int, value: Any) -> None:
    record = cbor2.loads(raw(encode_ring(ring))[1:])
    record[index] = value
    body = dump(record)
    if body is not None:
        check(b"\x10" + body)
        check(b"\x10" + cbor2.dumps([1, b"", b"\x01", "", None, *record[1:]]))


@FUZZ
@given(cbor_values.map(dump) | st.binary(max_size=40))
def test_arbitrary_election_data(blob: bytes | None) -> None:
    if blob is not None:
        check(b"\x10" + cbor2.dumps([1, b"", b"\x01", "", blob]))


@FUZZ
@given(messages, st.data())
def test_mutated_valid_encodings(message: Message, data: st.DataObject) -> None:
    encoded = encode(message)
    assert decode(encoded) == message
    for original in dict.fromkeys([encoded, raw(encoded)]):
        size = len(original)
        at = data.draw(st.integers(0, size - 1))
        mutation = data.draw(st.sampled_from(["truncate", "flip", "set", "insert", "delete"]))
        if mutation == "truncate":
            mutated = original[:at]
        elif mutation == "flip":
            bit = data.draw(st.integers(0, 7))
            mutated = original[:at] + bytes([original[at] ^ (1 << bit)]) + original[at + 1 :]
        elif mutation == "set":
            byte = data.draw(st.integers(0, 255))
            mutated = original[:at] + bytes([byte]) + original[at + 1 :]
        elif mutation == "insert":
            mutated = original[:at] + data.draw(st.binary(min_size=1, max_size=8)) + original[at:]
        else:
            mutated = original[:at] + original[at + data.draw(st.integers(1, 8)) :]
        check(mutated)


@settings(max_examples=150, deadline=None)
@given(messages)
def test_valid_encodings_decode(message: Message) -> None:
    assert decode(encode(message)) == message
    if isinstance(message, PeerState) and message.ring is not None:
        assert decode_ring(encode_ring(message.ring)) == message.ring
