"""The wire codec: round trips, every validation error, size limits and the ring's size.

Bad inputs are built by hand as CBOR field lists (``frame``) or by editing the
fields of a valid encoding (``fields_of``), so each test names exactly what is
wrong with the bytes.
"""

from __future__ import annotations

import random
import struct
from typing import Any

import cbor2
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from weavek.core import codec
from weavek.core.codec import (
    COMPRESS_ABOVE,
    MAX_DECOMPRESSED,
    MAX_ELECTION,
    MAX_ENTRIES,
    MAX_MESSAGE,
    DecodeError,
    decode,
    decode_ring,
    encode,
    encode_ring,
)
from weavek.core.messages import Message, PeerState, RingData, SpaceDenied, SpaceRequest
from weavek.core.peer import MAX_PEER_NAME

V4 = 10 << 24  # 10.0.0.0
V6 = 0xFD00 << 112  # fd00::
RING = RingData(
    V4, V4 + (1 << 20), 4, (1, 2), (V4, V4 + 10, V4 + 20), (1, 2, 1), (1, 2, 3), (5, 6, 7)
)


def frame(fields: list[Any], *, compress: bool = False) -> bytes:
    body = cbor2.dumps(fields)
    if compress:
        return b"\x11" + zstandard.ZstdCompressor().compress(body)
    return b"\x10" + body


def fields_of(data: bytes) -> list[Any]:
    body = data[1:] if data[0] == 0x10 else zstandard.ZstdDecompressor().decompress(data[1:])
    fields = cbor2.loads(body)
    assert isinstance(fields, list)
    return fields


def ring_with(index: int, value: Any) -> bytes:
    """A valid ring record (``RING``) with field ``index`` replaced."""
    fields = fields_of(encode_ring(RING))
    fields[index] = value
    return frame(fields)


def random_ring(n: int, seed: int = 1) -> RingData:
    """n entries, n distinct random peers, random tokens in a /12, small versions and frees."""
    rng = random.Random(seed)
    start = (10 << 24) | (32 << 16)
    tokens = tuple(sorted(rng.sample(range(start, start + (1 << 20)), n)))
    peers = tuple(rng.getrandbits(48) for _ in range(n))
    versions = tuple(rng.randrange(50) for _ in range(n))
    frees = tuple(rng.randint(0, 100) for _ in range(n))
    return RingData(start, start + (1 << 20), 4, peers[:3], tokens, peers, versions, frees)


# -- round trips ------------------------------------------------------------------------------

IPV6_RING = RingData(
    V6,
    V6 + (1 << 64),
    6,
    (MAX_PEER_NAME,),
    (V6, V6 + (1 << 63), V6 + (1 << 64) - 1),
    (MAX_PEER_NAME, 0, MAX_PEER_NAME),
    (0, 1 << 40, 7),
    ((1 << 63) - 1, 1 << 62, 1),
)
HUGE_RING = RingData(
    0, 1 << 128, 6, (), (5, 1 << 100, (1 << 128) - 1), (1, 2, 3), (2**300, 0, 1), (2**127, 0, 2**64)
)
EXAMPLES: list[Message] = [
    SpaceRequest(V4, V4 + (1 << 20)),
    SpaceRequest(0, 1),
    SpaceDenied(V6, V6 + (1 << 64)),
    SpaceDenied((1 << 128) - 1, 1 << 128),
    PeerState(()),
    PeerState(((1, "host1"), (MAX_PEER_NAME, "é" * 255), (0, ""), (7, "a\x00b"))),
    PeerState(((1, "host1"),), RING),
    PeerState((), IPV6_RING),
    PeerState((), HUGE_RING),
    PeerState((), RingData(V4, V4 + 16, 4, (), (), (), (), ())),
    PeerState((), RingData(0, 1 << 32, 4, (3,), (0,), (3,), (0,), (1 << 32,))),
    PeerState((), random_ring(1000)),
    PeerState(((9, "x"),), None, {"promise": [1, 2], "accepted": None, b"raw": {"n": 2**80}}),
    PeerState((), None, [True, False, -(2**70), -1, 0, "", b"", [], {}]),
    PeerState((), None, 0),
]


@pytest.mark.parametrize("message", EXAMPLES)
def test_round_trip(message: Message) -> None:
    data = encode(message)
    assert decode(data) == message
    assert data[0] >> 4 == codec.VERSION


@pytest.mark.parametrize("ring", [RING, IPV6_RING, HUGE_RING, random_ring(1000)])
def test_ring_round_trip(ring: RingData) -> None:
    assert decode_ring(encode_ring(ring)) == ring


def test_types_match_weave_unicast_bytes() -> None:
    assert fields_of(encode(SpaceRequest(0, 1)))[0] == 0
    assert fields_of(encode(PeerState(())))[0] == 1
    assert fields_of(encode(SpaceDenied(0, 1)))[0] == 2


def test_compression_only_when_large_and_useful() -> None:
    assert encode(PeerState(((1, "h"),)))[0] == 0x10
    assert encode(PeerState((), random_ring(1000)))[0] == 0x11
    text = "x" * (COMPRESS_ABOVE + 10)
    assert encode(PeerState(((1, text[:255]), (2, text[:255]), (3, text[:255]))))[0] == 0x11
    # a body just over the threshold that zstd cannot shrink goes out raw
    noise = random.Random(3).randbytes(COMPRESS_ABOVE)
    assert encode(PeerState((), None, noise))[0] == 0x10


def test_decode_takes_any_buffer() -> None:
    data = encode(PeerState((), RING))
    assert decode(bytearray(data)) == decode(memoryview(data)) == PeerState((), RING)
    with pytest.raises(DecodeError):
        decode("not bytes")  # type: ignore[arg-type]


def test_peer_column_omitted_when_each_owner_has_one_entry() -> None:
    distinct = RingData(0, 100, 4, (), (1, 2), (5, 6), (0, 0), (0, 0))
    assert fields_of(encode_ring(distinct))[7] == b""
    assert fields_of(encode_ring(RING))[7] == b"\x01\x00\x01\x00"


def test_ring_size_1000_peers() -> None:
    sizes = {n: len(encode_ring(random_ring(n))) for n in (10, 100, 1000)}
    print(f"encoded ring sizes: {sizes}")
    assert sizes[1000] <= 13_200
    assert sizes[100] <= 1_320


# -- hypothesis round trip --------------------------------------------------------------------

names = st.integers(0, MAX_PEER_NAME)
counts = st.integers(0, 200) | st.integers(0, 2**130)
plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.binary(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def rings(draw: st.DrawFn) -> RingData:
    version = draw(st.sampled_from([4, 6]))
    limit = 1 << (32 if version == 4 else 128)
    start = draw(st.sampled_from([0, V4, V6 % limit]) | st.integers(0, limit - 1))
    end = draw(st.integers(start + 1, min(limit, start + (1 << 64))) | st.just(limit))
    tokens = sorted(draw(st.sets(st.integers(start, end - 1), max_size=12)))
    n = len(tokens)
    owners = st.lists(names, min_size=n, max_size=n, unique=True)
    table = draw(st.lists(names, min_size=1, max_size=4))
    peers = draw(owners | st.lists(st.sampled_from(table), min_size=n, max_size=n))
    versions = draw(st.lists(counts, min_size=n, max_size=n))
    frees = draw(st.lists(counts, min_size=n, max_size=n))
    seeds = draw(st.lists(names, max_size=4))
    return RingData(start, end, version, *map(tuple, (seeds, tokens, peers, versions, frees)))


nicknames = st.lists(st.tuples(names, st.text(max_size=20)), max_size=4).map(tuple)
ranges = st.integers(0, (1 << 128) - 1).flatmap(
    lambda s: st.tuples(st.just(s), st.integers(s + 1, 1 << 128))
)
messages: st.SearchStrategy[Message] = st.one_of(
    ranges.map(lambda r: SpaceRequest(*r)),
    ranges.map(lambda r: SpaceDenied(*r)),
    st.builds(PeerState, nicknames),
    st.builds(PeerState, nicknames, rings()),
    st.builds(PeerState, nicknames, st.none(), plain.filter(lambda v: v is not None)),
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_round_trip_property(message: Message) -> None:
    assert decode(encode(message)) == message


@settings(max_examples=100, deadline=None)
@given(rings())
def test_ring_round_trip_property(ring: RingData) -> None:
    assert decode_ring(encode_ring(ring)) == ring


# -- decode errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty message"),
        (b"\x70", "unsupported message version 7"),
        (b"\x00\x80", "unsupported message version 0"),
        (b"\x12\x80", "unknown header flags"),
        (b"\x10", "truncated"),
        (frame([7, 0, 1]), "unsupported message type 7"),
        (frame([3, *fields_of(encode_ring(RING))[1:]]), "unsupported message type 3"),
        (frame([]), "unsupported message type None"),
        (frame(["x", 1]), "unsupported message type 'x'"),
        (frame([0, 1]), "has 2 fields"),
        (frame([0, 5, 5]), "bad range"),
        (frame([0, 0, (1 << 128) + 1]), "bad range"),
        (frame([0, -1, 5]), "negative integer"),
        (frame([0, 1.5, 5]), "major type 7"),
        (frame([0, [1], 5]), "major type 4"),
        (frame([0, {1: 2}, 5]), "major type 5"),
        (frame([0, cbor2.CBORTag(1, 0), 5]), "major type 6"),
        (frame([0, 0, cbor2.CBORTag(2, "x")]), "bignum tag not on a byte string"),
        (frame([0, 0, b"\x05"]), "expected an unsigned integer"),
        (frame([0, 0, True]), "major type 7"),
        (frame([0, 0, 1]) + b"\x00", "trailing bytes"),
        (b"\x10\x9f\x00\x00\x01\xff", "indefinite"),
        (b"\x10\x83\x00\x00\x5f\xff", "indefinite"),
        (b"\x10\x83\x00\x00\x1c", "indefinite-length or reserved"),
        (b"\x10\x83\x00\x00\x1b\x00", "truncated"),
        (b"\x10\x83\x00\x00\x45\x00", "truncated"),
        (b"\x10\x83\x00\x00\x62\xff\xfe", "invalid UTF-8"),
        (b"\x10\x9b" + b"\xff" * 8, "not a short CBOR array"),
        (frame(list(range(17))), "not a short CBOR array"),
        (b"\x11not zstd", "bad zstd frame"),
        (b"\x11", "bad zstd frame"),
    ],
)
def test_decode_errors(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode(data)


RING_ERRORS = [
    (1, b"\x00", "start: expected an unsigned integer"),
    (1, RING.end, "bad range"),
    (2, 1 << 32 | 1, "bad range"),
    (3, 5, "IP version 5 is not 4 or 6"),
    (3, "4", "IP version '4' is not 4 or 6"),
    (4, b"\x00" * 7, "seeds: 7 bytes"),
    (4, 1, "seeds: expected a byte string"),
    (5, b"\x00" * 6, "peer index column"),
    (6, b"\x01\x00\x0a\x00", "not strictly increasing"),
    (6, b"\x04" + struct.pack(">3I", 0, 1 << 20, 1), "outside"),
    (6, b"\x01\x00\x0a", "peer index column"),
    (6, b"\x00", "without a width"),
    (6, b"", "tokens: column without a width"),
    (6, b"\x02\x00\x01\x00", "not a column of 2-byte values"),
    (6, b"\x01" + bytes(MAX_ENTRIES + 1), f"limit is {MAX_ENTRIES}"),
    (7, b"\x01\x00\x02\x00", "peer index column"),
    (7, b"\x01\x00\x01", "peer index column"),
    (7, b"", "peer table has 2 names for 3 entries"),
    (7, None, "peers: expected a byte string"),
    (8, b"\x01\x01\x02", "differ in length"),
    (9, b"\x02\x00\x01\x00\x02", "differ in length"),
    (9, b"\x03" + bytes(10), "not a column"),
]


@pytest.mark.parametrize(("index", "value", "match"), RING_ERRORS)
def test_ring_errors(index: int, value: Any, match: str) -> None:
    data = ring_with(index, value)
    with pytest.raises(DecodeError, match=match):
        decode_ring(data)
    state = [1, b"", b"\x01", "", None, *fields_of(data)[1:]]
    with pytest.raises(DecodeError, match=match):
        decode(frame(state))


def test_ring_record_errors() -> None:
    with pytest.raises(DecodeError, match="not a ring record"):
        decode_ring(encode(PeerState((), RING)))
    with pytest.raises(DecodeError, match="not a ring record"):
        decode_ring(frame(fields_of(encode_ring(RING))[:-1]))
    with pytest.raises(DecodeError, match="unsupported message version 7"):
        decode_ring(b"\x70")


def state(
    nick_names: bytes = b"", lengths: bytes = b"\x01", text: Any = "", election: Any = None
) -> bytes:
    return frame([1, nick_names, lengths, text, election])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (state(b"\x00" * 6, b"\x01\x01", "ab"), "nickname columns do not match"),
        (state(b"\x00" * 6, b"\x01\x02", "a"), "nickname columns do not match"),
        (state(b"\x00" * 6, b"\x01", ""), "nickname columns do not match"),
        (state(text=b""), "nickname columns do not match"),
        (state(b"\x00" * 6, b"\x02\x01\x00", "x" * 256), "longer than 255"),
        (state(b"\x00" * 5, b"\x01\x01", "a"), "nicknames: 5 bytes"),
        (frame([1, b"", b"\x01", "", None, 1]), "has 6 fields"),
        (frame([1, b"", b"\x01", ""]), "has 4 fields"),
        (frame([1, b"", b"\x01", "", cbor2.dumps(1), *fields_of(encode_ring(RING))[1:]]), "both"),
        (state(election=5), "election: expected a byte string"),
        (state(election=b""), "bad election data"),
        (state(election=b"\xf7"), "may not contain UndefinedType"),
        (state(election=b"\xf0"), "may not contain CBORSimpleValue"),
        (state(election=cbor2.dumps(1.5)), "may not contain float"),
        (state(election=cbor2.dumps({1: 2})), "map key must be a text string"),
        (state(election=cbor2.dumps({"a": {(1, 2): 3}})), "map key must be"),
        (state(election=cbor2.dumps(1) + b"\x00"), "trailing bytes after election"),
        (state(election=b"\x9f\xff"), "bad election data"),
        (state(election=b"\x81" * 40 + b"\x00"), "bad election data"),
        (state(election=b"\x62\xff\xfe"), "bad election data"),
        (state(election=b"\x5a\xff\xff\xff\xff"), "bad election data"),
        (state(election=bytes(MAX_ELECTION + 1)), "exceeds"),
    ],
)
def test_peer_state_errors(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode(data)


@pytest.mark.parametrize(
    "value",
    [
        cbor2.CBORTag(1, 0),  # datetime
        cbor2.CBORTag(5, [2**62, 1]),  # bigfloat: 2**(2**62) if it were evaluated
        cbor2.CBORTag(4, [-(2**62), 1]),  # decimal fraction
        cbor2.CBORTag(28, [1]),  # shared value
        cbor2.CBORTag(29, 0),  # shared reference
        cbor2.CBORTag(30, [1, 0]),  # rational
        cbor2.CBORTag(35, "(a+)+$"),  # regex
        cbor2.CBORTag(258, [1]),  # set
        cbor2.CBORTag(55799, 1),  # self-describe
        cbor2.CBORTag(999, 1),  # unknown
        [1, {"k": cbor2.CBORTag(37, b"0" * 16)}],  # nested uuid
    ],
)
def test_election_tags_refused(value: Any) -> None:
    with pytest.raises(DecodeError, match="bad election data"):
        decode(state(election=cbor2.dumps(value)))


def test_large_election_data() -> None:
    big = PeerState((), None, {"votes": ["y" * 100] * 100, "blob": bytes(10_000)})
    assert decode(encode(big)) == big
    blob = cbor2.dumps(big.election)
    assert decode(state(election=blob)) == big
    with pytest.raises(DecodeError, match="trailing bytes after election"):
        decode(state(election=blob + b"\x00"))


def test_election_bignums_allowed() -> None:
    value = {"big": 2**100, "neg": -(2**100)}
    assert decode(state(election=cbor2.dumps(value))) == PeerState((), None, value)


def test_every_truncation_fails() -> None:
    for data in (encode(PeerState(((1, "a"),), RING)), encode(PeerState((), random_ring(200)))):
        for cut in range(len(data)):
            with pytest.raises(DecodeError):
                decode(data[:cut])


def test_unexpected_internal_error_becomes_decode_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(fields: list[object]) -> RingData:
        raise KeyError("surprise")

    monkeypatch.setattr(codec, "_ring", boom)
    with pytest.raises(DecodeError, match="malformed message: KeyError") as info:
        decode(encode(PeerState((), RING)))
    assert isinstance(info.value.__cause__, KeyError)
    with pytest.raises(DecodeError, match="KeyError"):
        decode_ring(encode_ring(RING))


def test_encode_refuses_what_is_too_big(monkeypatch: pytest.MonkeyPatch) -> None:
    message = PeerState((), None, random.Random(5).randbytes(1000))  # zstd cannot shrink it
    monkeypatch.setattr(codec, "MAX_MESSAGE", 1000)
    with pytest.raises(ValueError, match="exceeds 1000 bytes"):
        encode(message)
    monkeypatch.setattr(codec, "MAX_DECOMPRESSED", 500)
    with pytest.raises(ValueError, match="exceeds 500 bytes"):
        encode(message)


def test_encode_refuses_too_many_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "MAX_ENTRIES", 2)
    with pytest.raises(ValueError, match="more than 2 peer names"):
        encode(PeerState((), RingData(0, 10, 4, (1, 2, 3), (), (), (), ())))
    with pytest.raises(ValueError, match="more than 2"):
        encode(PeerState(((1, ""), (2, ""), (3, ""))))


def test_encode_refuses_other_objects() -> None:
    with pytest.raises(ValueError, match="cannot encode RingData"):
        encode(RING)  # type: ignore[arg-type]


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)


# -- size limits ------------------------------------------------------------------------------


def test_oversized_input_refused() -> None:
    with pytest.raises(DecodeError, match="exceeds"):
        decode(b"\x10" + bytes(MAX_MESSAGE))


def test_zip_bomb_refused_before_decompressing() -> None:
    bomb = zstandard.ZstdCompressor(level=1).compress(bytes(MAX_DECOMPRESSED + 1))
    assert len(bomb) < 64 * 1024
    with pytest.raises(DecodeError, match="declares"):
        decode(b"\x11" + bomb)


def test_frame_without_content_size_refused() -> None:
    packer = zstandard.ZstdCompressor(write_content_size=False)
    for size in (10, MAX_DECOMPRESSED + 1):
        with pytest.raises(DecodeError, match="does not declare"):
            decode(b"\x11" + packer.compress(bytes(size)))
    stream = zstandard.ZstdCompressor().compressobj()
    with pytest.raises(DecodeError, match="does not declare"):
        decode(b"\x11" + stream.compress(bytes(1000)) + stream.flush())


def test_frame_that_lies_about_its_size_refused() -> None:
    body = cbor2.dumps([1, b"", b"\x01", "y" * 2000, None])
    packed = bytearray(zstandard.ZstdCompressor(level=1).compress(body))
    assert packed[4] == 0x60  # 2-byte content size field, single segment: it is bytes 5-6
    assert struct.unpack_from("<H", packed, 5)[0] + 256 == len(body)
    packed[5:7] = struct.pack("<H", 100)  # now declares 356 bytes
    assert zstandard.frame_content_size(bytes(packed)) == 356
    with pytest.raises(DecodeError, match="bad zstd frame"):
        decode(b"\x11" + bytes(packed))


def test_two_frames_refused() -> None:
    one = zstandard.ZstdCompressor().compress(cbor2.dumps([0, 0, 1]))
    with pytest.raises(DecodeError, match="bad zstd frame"):
        decode(b"\x11" + one + one)
    assert decode(b"\x11" + one) == SpaceRequest(0, 1)


def test_compressed_frames_decode() -> None:
    assert decode(frame(fields_of(encode(PeerState((), RING))), compress=True)) == PeerState(
        (), RING
    )


# -- encode refuses what decode would refuse --------------------------------------------------

cycle: list[Any] = []
cycle.append(cycle)


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (SpaceRequest(5, 5), "bad range"),
        (SpaceDenied(-1, 5), "bad range"),
        (SpaceRequest(0, (1 << 128) + 1), "bad range"),
        (PeerState(((1 << 48, "x"),)), "peer name"),
        (PeerState(((-1, "x"),)), "peer name"),
        (PeerState(((1, "x" * 256),)), "longer than 255"),
        (PeerState((), RING, {"a": 1}), "not both"),
        (PeerState((), None, 1.5), "float"),
        (PeerState((), None, (1, 2)), "tuple"),
        (PeerState((), None, {1: "a"}), "keys must be str or bytes"),
        (PeerState((), None, cycle), "nested deeper"),
        (PeerState((), None, "x" * MAX_ELECTION), "exceeds"),
        (PeerState((), RingData(0, 10, 5, (), (), (), (), ())), "IP version 5"),
        (PeerState((), RingData(0, 1 << 33, 4, (), (), (), (), ())), "bad range"),
        (PeerState((), RingData(4, 4, 4, (), (), (), (), ())), "bad range"),
        (PeerState((), RingData(0, 10, 4, (), (3, 3), (1, 1), (0, 0), (0, 0))), "strictly"),
        (PeerState((), RingData(0, 10, 4, (), (4, 3), (1, 1), (0, 0), (0, 0))), "strictly"),
        (PeerState((), RingData(5, 10, 4, (), (3,), (1,), (0,), (0,))), "strictly"),
        (PeerState((), RingData(0, 10, 4, (), (10,), (1,), (0,), (0,))), "strictly"),
        (PeerState((), RingData(0, 10, 4, (), (1,), (1, 2), (0,), (0,))), "differ"),
        (PeerState((), RingData(0, 10, 4, (), (1,), (1,), (0,), ())), "differ"),
        (PeerState((), RingData(0, 10, 4, (), (1,), (1,), (-1,), (0,))), "negative"),
        (PeerState((), RingData(0, 10, 4, (), (1,), (1,), (0,), (2**2048,))), "too large"),
        (PeerState((), RingData(0, 10, 4, (1 << 48,), (), (), (), ())), "peer name"),
        (PeerState((), RingData(0, 10, 4, (), (1,), (1 << 48,), (0,), (0,))), "peer name"),
    ],
)
def test_encode_refuses_invalid(message: Message, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode(message)
