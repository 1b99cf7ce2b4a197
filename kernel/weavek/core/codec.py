"""The wire codec: :mod:`weavek.core.messages` records to bytes and back.

Byte 0 is the header: format version (1) in the high nibble, flags in the low
nibble. Flag ``0x01`` says the rest is one zstd frame that declares its
content size (the other flags must be 0). The rest, unzipped, is one
definite-length CBOR array of *flat* fields: unsigned ints (tag-2 bignums
above 64 bits), byte strings, text strings and null. Nothing nests, so no
input makes the decoder build more than a few objects before the fields are
checked. Field 0 is the type; the numbers are Weave's unicast type bytes:

* ``[0, start, end]`` SpaceRequest; ``[2, start, end]`` SpaceDenied;
* ``[1, nick_peers, nick_lengths, nick_text, election, *ring]`` PeerState:
  ``ring`` is the 9 fields below or nothing; ``election`` is null, or the
  CBOR of the election data as a byte string;
* ``[3, *ring]``: a ring on its own (:func:`encode_ring`, for stores).

Ring fields: ``start, end, ip_version, seeds, peer_table, tokens, peers,
versions, frees``. A *name list* (seeds, peer table, nickname peers) is 6
big-endian bytes a peer name, concatenated. An *int column* is a width byte
*w* (1-255, the fewest bytes that hold the largest value) then each value as
*w* big-endian bytes. ``tokens`` holds deltas: the first from ``start``, each
next from the previous token. The peer table lists each owner once, in order
of first appearance; ``peers`` is a column of indices into it, or empty when
every owner holds one entry (then the table *is* the owner list). Nicknames
are a name list, a column of lengths in characters, and the texts joined.
The encoder ends a zstd block after each field over 128 bytes, so each
column gets its own entropy tables.

Limits: :data:`MAX_MESSAGE` bytes on the wire (Weave's mesh frames stop at
10 MiB); :data:`MAX_DECOMPRESSED` bytes unzipped, checked against the size
the frame declares before anything is allocated (a ring of
:data:`MAX_ENTRIES` entries fits); :data:`MAX_ENTRIES` entries, seeds or
nicknames; :data:`MAX_NICKNAME` characters a nickname; :data:`MAX_ELECTION`
bytes of election CBOR, nested at most :data:`MAX_ELECTION_DEPTH` deep.
Election data is None, bool, int, str, bytes, list, and dict with str or
bytes keys (their hashes are salted, so colliding keys cannot be crafted);
floats, tuples and CBOR tags other than bignums are refused. Decode refuses
anything out of shape or limits with :class:`DecodeError`; encode refuses to
produce it with :class:`ValueError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from io import BytesIO
from itertools import accumulate
from operator import sub
from typing import Any, TypeVar

import cbor2
import zstandard

from weavek.core.messages import Message, PeerState, RingData, SpaceDenied, SpaceRequest
from weavek.core.peer import MAX_PEER_NAME

__all__ = [
    "COMPRESS_ABOVE",
    "MAX_DECOMPRESSED",
    "MAX_ELECTION",
    "MAX_ELECTION_DEPTH",
    "MAX_ENTRIES",
    "MAX_MESSAGE",
    "MAX_NICKNAME",
    "VERSION",
    "DecodeError",
    "decode",
    "decode_ring",
    "encode",
    "encode_ring",
    "shared_decoding",
]

VERSION = 1
MAX_MESSAGE = 16 * 1024 * 1024
MAX_DECOMPRESSED = 64 * 1024 * 1024
COMPRESS_ABOVE = 512
"""Bodies longer than this are zstd-compressed, if that saves 3% or more."""
MAX_ENTRIES = 1 << 20
MAX_NICKNAME = 255
MAX_ELECTION = 256 * 1024
MAX_ELECTION_DEPTH = 32

_T = TypeVar("_T")
_ZSTD, _LEVEL = 0x01, 5
_REQUEST, _STATE, _DENIED, _RING = 0, 1, 2, 3
_LIMITS = {4: 1 << 32, 6: 1 << 128}
_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}
_SCALAR_SET = frozenset((type(None), bool, int, str, bytes))
_KEY_SET = frozenset((str, bytes))
# Tags cbor2 decodes itself (dates, decimals, bigfloats, regexes, sharing, sets...): all
# refused before they are evaluated; bignums (2, 3) stay. Unknown tags reach tag_hook.
_TAGS = (0, 1, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004)


class DecodeError(ValueError):
    """Bytes from a peer or a store are not a valid message; the only error decode raises."""


def _refuse_tag(*_args: object) -> Any:
    raise DecodeError("CBOR tags are not allowed in election data")


_STRICT: dict[str, Any] = {"tag_hook": _refuse_tag, "max_depth": MAX_ELECTION_DEPTH}
_STRICT |= {"allow_indefinite": False, "strict_hashable_types": True}
_STRICT["semantic_decoders"] = dict.fromkeys((*_TAGS, 43000, 55799), _refuse_tag)


def encode(message: Message) -> bytes:
    """Encode a message; raises :class:`ValueError` if it is not valid (so could not decode)."""
    if isinstance(message, SpaceRequest | SpaceDenied):
        _check_range(message.start, message.end, 1 << 128, "range", ValueError)
        kind = _REQUEST if isinstance(message, SpaceRequest) else _DENIED
        return _frame([kind, message.start, message.end])
    if not isinstance(message, PeerState):
        raise ValueError(f"cannot encode {type(message).__name__}")
    if message.ring is not None and message.election is not None:
        raise ValueError("a peer state carries a ring or election data, not both")
    nicks = [nick for _, nick in message.nicknames]
    if nicks and max(map(len, nicks)) > MAX_NICKNAME:
        raise ValueError(f"nickname longer than {MAX_NICKNAME} characters")
    fields: list[object] = [_STATE, _pack_names([peer for peer, _ in message.nicknames])]
    fields += [_pack_ints(list(map(len, nicks))), "".join(nicks), _pack_election(message.election)]
    return _frame(fields + ([] if message.ring is None else _ring_fields(message.ring)))


def encode_ring(ring: RingData) -> bytes:
    """Encode a ring on its own, as stores keep it."""
    return _frame([_RING, *_ring_fields(ring)])


def decode(data: bytes) -> Message:
    """Decode a message; raises :class:`DecodeError`, and nothing else, if it is not valid."""
    if _shared is None:
        return _guarded(_message, data)
    key = id(data)
    hit = _shared.get(key)
    if hit is not None and hit[0] is data:
        return hit[1]
    message = _guarded(_message, data)
    if len(_shared) >= _SHARED_LIMIT:
        del _shared[next(iter(_shared))]  # the oldest: its deliveries are done by now
    _shared[key] = (data, message)  # holding ``data`` keeps its id from being reused
    return message


_shared: dict[int, tuple[bytes, Message]] | None = None
_SHARED_LIMIT = 4096


@contextmanager
def shared_decoding() -> Iterator[None]:
    """Within this block, decode each bytes *object* once and hand every caller the result.

    For simulators, which deliver one broadcast's bytes object to every peer:
    what decode returns is a pure function of the bytes, so the run is the
    same, only faster. Callers then share the decoded message, so they must
    not change it (messages are frozen; election data is only read). A real
    peer receives fresh bytes from its socket every time and never uses this.
    """
    global _shared
    outer = _shared
    _shared = {} if outer is None else outer
    try:
        yield
    finally:
        _shared = outer


def decode_ring(data: bytes) -> RingData:
    """Decode what :func:`encode_ring` made; raises :class:`DecodeError` only."""
    return _guarded(_ring_record, data)


def _guarded(parse: Callable[[list[object]], _T], data: bytes) -> _T:
    try:
        return parse(_fields(_unframe(data)))
    except DecodeError:
        raise
    except Exception as exc:  # last resort: no other error may reach the caller
        raise DecodeError(f"malformed message: {type(exc).__name__}: {exc}") from exc


def _message(fields: list[object]) -> Message:
    kind = fields[0] if fields else None
    if kind in (_REQUEST, _DENIED) and len(fields) == 3:
        start, end = _expect(fields[1], int, "start"), _expect(fields[2], int, "end")
        _check_range(start, end, 1 << 128, "range", DecodeError)
        return SpaceRequest(start, end) if kind == _REQUEST else SpaceDenied(start, end)
    if kind == _STATE and len(fields) in (5, 14):
        ring = _ring(fields[5:]) if len(fields) == 14 else None
        election = _unpack_election(fields[4])
        if ring is not None and election is not None:
            raise DecodeError("peer state carries both a ring and election data")
        return PeerState(_unpack_nicknames(fields[1:4]), ring, election)
    if kind in (_REQUEST, _DENIED, _STATE):
        raise DecodeError(f"message of type {kind} has {len(fields)} fields")
    raise DecodeError(f"unsupported message type {kind!r}")


def _ring_record(fields: list[object]) -> RingData:
    if len(fields) != 10 or fields[0] != _RING:
        raise DecodeError(f"not a ring record (type {fields[0] if fields else None!r})")
    return _ring(fields[1:])


# -- framing: header byte, zstd, the flat CBOR array -----------------------------------------


def _frame(fields: list[object]) -> bytes:
    parts = [bytes((0x80 | len(fields),)), *map(cbor2.dumps, fields)]  # at most 14 fields
    body = b"".join(parts)
    if len(body) > MAX_DECOMPRESSED:
        raise ValueError(f"message of {len(body)} bytes exceeds {MAX_DECOMPRESSED} bytes")
    header = VERSION << 4
    if len(body) > COMPRESS_ABOVE:
        packer = zstandard.ZstdCompressor(level=_LEVEL).compressobj(size=len(body))
        chunks = []
        for part in parts:
            chunks.append(packer.compress(part))
            if len(part) > 128:
                chunks.append(packer.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
        packed = b"".join([*chunks, packer.flush()])
        if len(packed) < len(body) - len(body) // 32:  # worth unzipping: 3% or more
            header, body = header | _ZSTD, packed
    if len(body) >= MAX_MESSAGE:
        raise ValueError(f"message of {len(body) + 1} bytes exceeds {MAX_MESSAGE} bytes")
    return bytes((header,)) + body


def _unframe(data: bytes) -> bytes:
    data = data if isinstance(data, bytes) else bytes(data)
    if not data:
        raise DecodeError("empty message")
    if len(data) > MAX_MESSAGE:
        raise DecodeError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE} bytes")
    if data[0] >> 4 != VERSION:
        raise DecodeError(f"unsupported message version {data[0] >> 4}")
    if data[0] & 0x0F & ~_ZSTD:
        raise DecodeError(f"unknown header flags {data[0] & 0x0F:#x}")
    if not data[0] & _ZSTD:
        return data[1:]
    try:
        size = zstandard.frame_content_size(data[1:])
        if size < 0:
            raise DecodeError("zstd frame does not declare its content size")
        if size > MAX_DECOMPRESSED:
            raise DecodeError(f"zstd frame declares {size} bytes, limit is {MAX_DECOMPRESSED}")
        unzip = zstandard.ZstdDecompressor(max_window_size=MAX_DECOMPRESSED)
        body: bytes = unzip.decompress(data[1:], max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise DecodeError(f"bad zstd frame: {exc}") from exc
    return body


def _head(body: bytes, pos: int) -> tuple[int, int, int]:
    """The CBOR item head at ``pos``: major type, argument, position after it."""
    if pos >= len(body):
        raise DecodeError("truncated message")
    major, info = body[pos] >> 5, body[pos] & 31
    if info < 24:
        return major, info, pos + 1
    if info > 27:
        raise DecodeError("indefinite-length or reserved CBOR item")
    end = pos + 1 + (1 << (info - 24))
    if end > len(body):
        raise DecodeError("truncated message")
    return major, int.from_bytes(body[pos + 1 : end], "big"), end


def _fields(body: bytes) -> list[object]:
    major, count, pos = _head(body, 0)
    if major != 4 or count > 16:
        raise DecodeError("message body is not a short CBOR array")
    out: list[object] = []
    for _ in range(count):
        major, arg, pos = _head(body, pos)
        if major == 6 and arg == 2:  # a bignum: tag 2 on a byte string
            major, arg, pos = _head(body, pos)
            if major != 2:
                raise DecodeError("bignum tag not on a byte string")
            major = -1
        if major == 0:
            out.append(arg)
        elif major in (-1, 2, 3):
            if pos + arg > len(body):
                raise DecodeError("truncated message")
            chunk, pos = body[pos : pos + arg], pos + arg
            value: object = chunk if major == 2 else int.from_bytes(chunk, "big")
            if major == 3:
                try:
                    value = chunk.decode()
                except UnicodeDecodeError:
                    raise DecodeError("invalid UTF-8 in message text") from None
            out.append(value)
        elif major == 7 and arg == 22:
            out.append(None)
        else:
            what = "negative integer" if major == 1 else f"CBOR item of major type {major}"
            raise DecodeError(f"unexpected {what} in message")
    if pos != len(body):
        raise DecodeError("trailing bytes after message")
    return out


def _expect(value: object, kind: type[_T], what: str) -> _T:
    if not isinstance(value, kind):  # the parser yields only int, bytes, str and None
        noun = "an unsigned integer" if kind is int else "a byte string"
        raise DecodeError(f"{what}: expected {noun}")
    return value


def _check_range(start: int, end: int, limit: int, what: str, error: type[ValueError]) -> None:
    if not 0 <= start < end <= limit:
        raise error(f"{what}: bad range [{start}, {end}) (limit {limit})")


# -- columns: fixed-width big-endian ints, unpacked by struct in C ----------------------------


def _pack_fixed(values: Sequence[int], width: int) -> bytes:
    if width == 1:
        return bytes(values)
    if width in _CODES:
        return struct.pack(f">{len(values)}{_CODES[width]}", *values)
    if width > 8:
        return b"".join([value.to_bytes(width, "big") for value in values])
    wide, out = struct.pack(f">{len(values)}Q", *values), bytearray(width * len(values))
    for k in range(width):  # keep the low ``width`` bytes of each 8-byte value
        out[k::width] = wide[8 - width + k :: 8]
    return bytes(out)


def _unpack_fixed(blob: bytes, width: int, what: str) -> tuple[int, ...]:
    n, extra = divmod(len(blob), width)
    if extra:
        raise DecodeError(f"{what}: {len(blob)} bytes is not a column of {width}-byte values")
    if n > MAX_ENTRIES:
        raise DecodeError(f"{what}: {n} values, limit is {MAX_ENTRIES}")
    if width in _CODES:
        return struct.unpack(f">{n}{_CODES[width]}", blob)
    if width > 8:
        return tuple(
            [int.from_bytes(blob[i : i + width], "big") for i in range(0, len(blob), width)]
        )
    wide = bytearray(8 * n)
    for k in range(width):  # widen each value to 8 bytes, then unpack them all at once
        wide[8 - width + k :: 8] = blob[k::width]
    return struct.unpack(f">{n}Q", wide)


def _pack_ints(values: Sequence[int]) -> bytes:
    width = max(1, (max(values, default=0).bit_length() + 7) // 8)
    if width > 255:
        raise ValueError("integer too large to encode")
    try:
        return bytes((width,)) + _pack_fixed(values, width)
    except (struct.error, OverflowError, ValueError):
        raise ValueError("negative integer cannot be encoded") from None


def _unpack_ints(column: object, what: str) -> tuple[int, ...]:
    column = _expect(column, bytes, what)
    if not column or not column[0]:
        raise DecodeError(f"{what}: column without a width")
    return _unpack_fixed(column[1:], column[0], what)


def _pack_names(names: Sequence[int]) -> bytes:
    if len(names) > MAX_ENTRIES:
        raise ValueError(f"more than {MAX_ENTRIES} peer names")
    try:
        if max(names, default=0) <= MAX_PEER_NAME:
            return _pack_fixed(names, 6)
    except struct.error:
        pass
    raise ValueError("peer name out of range [0, 2**48)")


def _unpack_names(blob: object, what: str) -> tuple[int, ...]:
    return _unpack_fixed(_expect(blob, bytes, what), 6, what)


def _ring_fields(ring: RingData) -> list[object]:
    if ring.version not in _LIMITS:
        raise ValueError(f"IP version {ring.version} is not 4 or 6")
    _check_range(ring.start, ring.end, _LIMITS[ring.version], "ring", ValueError)
    tokens, n = ring.tokens, len(ring.tokens)
    if not len(ring.peers) == len(ring.versions) == len(ring.frees) == n <= MAX_ENTRIES:
        raise ValueError("ring columns differ in length or exceed MAX_ENTRIES")
    deltas = [tokens[0] - ring.start, *map(sub, tokens[1:], tokens[:-1])] if n else []
    if n and (min(deltas) < 0 or 0 in deltas[1:] or tokens[-1] >= ring.end):
        raise ValueError("ring tokens not strictly increasing inside [start, end)")
    table = list(dict.fromkeys(ring.peers))
    peers = b""
    if len(table) != n:
        index = {peer: i for i, peer in enumerate(table)}
        peers = _pack_ints(list(map(index.__getitem__, ring.peers)))
    names = [_pack_names(ring.seeds), _pack_names(table)]
    tail = [_pack_ints(deltas), peers, _pack_ints(ring.versions), _pack_ints(ring.frees)]
    return [ring.start, ring.end, ring.version, *names, *tail]


def _ring(fields: list[object]) -> RingData:
    start, end = _expect(fields[0], int, "start"), _expect(fields[1], int, "end")
    version = fields[2]
    if type(version) is not int or version not in _LIMITS:
        raise DecodeError(f"ring IP version {version!r} is not 4 or 6")
    _check_range(start, end, _LIMITS[version], "ring", DecodeError)
    seeds, table = _unpack_names(fields[3], "seeds"), _unpack_names(fields[4], "peer table")
    deltas = list(_unpack_ints(fields[5], "tokens"))
    n = len(deltas)
    if 0 in deltas[1:]:
        raise DecodeError("ring tokens are not strictly increasing")
    if n:
        deltas[0] += start
    tokens = tuple(accumulate(deltas))
    if n and tokens[-1] >= end:
        raise DecodeError("ring token outside [start, end)")
    if fields[6] == b"":
        if len(table) != n:
            raise DecodeError(f"peer table has {len(table)} names for {n} entries")
        peers = table
    else:
        index = _unpack_ints(fields[6], "peers")
        if len(index) != n or (n and max(index) >= len(table)):
            raise DecodeError("peer index column does not match the entries and table")
        peers = tuple(map(table.__getitem__, index))
    versions, frees = _unpack_ints(fields[7], "versions"), _unpack_ints(fields[8], "frees")
    if len(versions) != n or len(frees) != n:
        raise DecodeError(f"ring columns differ in length ({n} tokens)")
    return RingData(start, end, version, seeds, tokens, peers, versions, frees)


def _unpack_nicknames(fields: list[object]) -> tuple[tuple[int, str], ...]:
    names, lengths = _unpack_names(fields[0], "nicknames"), _unpack_ints(fields[1], "nick lengths")
    text = fields[2]
    if type(text) is not str or len(names) != len(lengths) or sum(lengths) != len(text):
        raise DecodeError("nickname columns do not match")
    if lengths and max(lengths) > MAX_NICKNAME:
        raise DecodeError(f"nickname longer than {MAX_NICKNAME} characters")
    ends = list(accumulate(lengths, initial=0))
    return tuple(zip(names, map(text.__getitem__, map(slice, ends, ends[1:])), strict=True))


# -- election data: nested CBOR, plain values only --------------------------------------------


def _check_plain(value: Any, error: type[ValueError]) -> None:
    """Refuse anything but plain data; iterative, and a cycle runs into the depth limit."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind in _SCALAR_SET:
            continue
        if depth >= MAX_ELECTION_DEPTH:
            raise error(f"election data nested deeper than {MAX_ELECTION_DEPTH}")
        if kind is list:
            children: Any = item
        elif kind is dict:
            if not set(map(type, item)) <= _KEY_SET:
                raise error("election map keys must be str or bytes")
            children = item.values()
        else:
            raise error(f"election data may not contain {kind.__name__}")
        # Most containers hold only scalars: look at their types in C, and walk
        # only into the ones that do not (which the loop then checks or refuses).
        if not set(map(type, children)) <= _SCALAR_SET:
            stack.extend((x, depth + 1) for x in children if type(x) not in _SCALAR_SET)


def _pack_election(value: Any) -> bytes | None:
    if value is None:
        return None
    _check_plain(value, ValueError)
    blob: bytes = cbor2.dumps(value)
    if len(blob) > MAX_ELECTION:
        raise ValueError(f"election data of {len(blob)} bytes exceeds {MAX_ELECTION}")
    return blob


def _unpack_election(field: object) -> Any:
    if field is None:
        return None
    blob = _expect(field, bytes, "election")
    if len(blob) > MAX_ELECTION:
        raise DecodeError(f"election data of {len(blob)} bytes exceeds {MAX_ELECTION}")
    stream = BytesIO(blob)
    try:
        value = cbor2.CBORDecoder(stream, **_STRICT).decode()
    except cbor2.CBORError as exc:
        raise DecodeError(f"bad election data: {exc}") from exc
    if stream.tell() != len(blob):
        raise DecodeError("trailing bytes after election data")
    _check_plain(value, DecodeError)
    return value
