"""What the etcd values hold: a peer's state (a :class:`Ledger`), and batches of changes to it.

Two kinds of value, both starting with a format byte:

* a **record** is one :meth:`~weavek.interfaces.Store.apply` batch: a CBOR
  list of operations (set the ring, add an address, drop an address, clear);
* a **ledger** is the whole state at one point -- the peer name, the ring
  (bytes from :func:`weavek.core.codec.encode_ring`) and every ident's
  addresses -- as zstd-compressed CBOR, split over several keys when large.

The decoders take bytes that may have been written by anyone with access to
etcd, so they check every field and raise :class:`RecordError`, and nothing
else, for anything out of shape (fuzzed with Hypothesis in the tests).
"""

from __future__ import annotations

import array
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import cbor2
import zstandard

from weavek.core import codec
from weavek.core.address import CIDR
from weavek.core.effects import Allocated, ClearStore, Effect, Released, SaveRing
from weavek.core.peer import MAX_PEER_NAME, UNKNOWN_PEER
from weavek.core.snapshot import Holding, Snapshot

__all__ = [
    "FORMAT",
    "Ledger",
    "Op",
    "RecordError",
    "decode_ledger",
    "decode_record",
    "encode_ledger",
    "encode_record",
    "ops_of",
]

FORMAT = 1
"""The first byte of every record and ledger value; another value is refused."""
MAX_LEDGER = 1 << 30
"""The largest decompressed ledger accepted (about 20M allocations)."""

SET_RING, ADD, DROP, CLEAR = 0, 1, 2, 3
Op = tuple[Any, ...]
"""``(SET_RING, peer, ring_bytes)``, ``(ADD, ident, cidr, is_container)``,
``(DROP, ident, cidr)`` or ``(CLEAR,)``."""

_VERSIONS = {4: 4, 16: 6}  # address bytes -> IP version
_CBOR: dict[str, Any] = {"max_depth": 8, "allow_indefinite": False, "str_errors": "strict"}


class RecordError(ValueError):
    """An etcd value that is not one this store wrote; says what is wrong with it."""


class Ledger:
    """A peer's persisted state in memory: what the keys in etcd add up to."""

    __slots__ = ("owned", "peer", "ring")

    def __init__(self) -> None:
        self.peer: int | None = None
        """The name saved with the ring (None: no ring was ever saved, or cleared since)."""
        self.ring: bytes | None = None
        """The ring as :func:`~weavek.core.codec.encode_ring` wrote it."""
        self.owned: dict[str, tuple[tuple[CIDR, ...], bool]] = {}

    def copy(self) -> Ledger:
        out = Ledger()
        out.peer, out.ring, out.owned = self.peer, self.ring, dict(self.owned)
        return out

    def apply(self, ops: Iterable[Op]) -> None:
        owned = self.owned
        for op in ops:
            kind = op[0]
            if kind == ADD:
                _, ident, cidr, flag = op
                held = owned.get(ident)
                cidrs = () if held is None else _without(held[0], cidr)
                # The flag belongs to the ident, as in Weave: the latest allocation sets it.
                owned[ident] = ((*cidrs, cidr), flag)
            elif kind == DROP:
                _, ident, cidr = op
                held = owned.get(ident)
                if held is not None:
                    rest = _without(held[0], cidr)
                    if rest:
                        owned[ident] = (rest, held[1])
                    else:
                        del owned[ident]
            elif kind == SET_RING:
                self.peer, self.ring = op[1], op[2]
            else:
                self.peer, self.ring = None, None
                owned.clear()

    def snapshot(self) -> Snapshot | None:
        """What :meth:`~weavek.interfaces.Store.load` returns; None when nothing is held."""
        if self.ring is None and not self.owned:
            return None
        ring = None if self.ring is None else codec.decode_ring(self.ring)
        # Holdings with no name to vouch for them: the allocator discards them as another's.
        peer = UNKNOWN_PEER if self.peer is None else self.peer
        owned = {ident: Holding(cidrs, flag) for ident, (cidrs, flag) in self.owned.items()}
        return Snapshot(peer, ring, owned)


def _without(cidrs: tuple[CIDR, ...], cidr: CIDR) -> tuple[CIDR, ...]:
    return tuple(c for c in cidrs if c.addr != cidr.addr or c.version != cidr.version)


def ops_of(effects: Sequence[Effect]) -> list[Op]:
    """The storage effects of a batch as operations, in order; the other effects are dropped."""
    ops: list[Op] = []
    for e in effects:
        if isinstance(e, Allocated):
            ops.append((ADD, e.ident, e.cidr, e.is_container))
        elif isinstance(e, Released):
            ops.append((DROP, e.ident, e.cidr))
        elif isinstance(e, SaveRing):
            ops.append((SET_RING, e.peer, codec.encode_ring(e.ring)))
        elif isinstance(e, ClearStore):
            ops.append((CLEAR,))
    return ops


def _addr(cidr: CIDR) -> bytes:
    return cidr.addr.to_bytes(4 if cidr.version == 4 else 16, "big")


def encode_record(ops: Sequence[Op]) -> bytes:
    """One batch as one value."""
    out: list[list[Any]] = []
    for op in ops:
        kind = op[0]
        if kind == ADD:
            out.append([ADD, op[1], _addr(op[2]), op[2].prefix, op[3]])
        elif kind == DROP:
            out.append([DROP, op[1], _addr(op[2]), op[2].prefix])
        elif kind == SET_RING:
            out.append([SET_RING, op[1], op[2]])
        else:
            out.append([CLEAR])
    return bytes([FORMAT]) + cbor2.dumps(out)


def encode_ledger(ledger: Ledger) -> bytes:
    """The whole state as one (compressed) value; the store splits it into pieces.

    Columns, so that a restore of 100k allocations decodes in a fraction of a
    second: the idents, one flag byte and one address count per ident, then
    per address its version and prefix length, then the IPv4 addresses (4
    bytes each) and the IPv6 ones (16 bytes each), in the same order.
    """
    idents = list(ledger.owned)
    flags = bytearray()
    counts = array.array("I")
    versions, prefixes, addrs6 = bytearray(), bytearray(), bytearray()
    addrs4 = array.array("I")
    for cidrs, flag in ledger.owned.values():
        flags.append(flag)
        counts.append(len(cidrs))
        for cidr in cidrs:
            versions.append(cidr.version)
            prefixes.append(cidr.prefix)
            if cidr.version == 4:
                addrs4.append(cidr.addr)
            else:
                addrs6 += cidr.addr.to_bytes(16, "big")
    if sys.byteorder != "little":
        counts.byteswap()
        addrs4.byteswap()
    columns = [idents, bytes(flags), counts.tobytes(), bytes(versions), bytes(prefixes)]
    body = cbor2.dumps([ledger.peer, ledger.ring, *columns, addrs4.tobytes(), bytes(addrs6)])
    return bytes([FORMAT]) + zstandard.ZstdCompressor(level=3).compress(body)


# -- decoding ----------------------------------------------------------------------


def decode_record(data: bytes) -> list[Op]:
    """The operations of a record; :class:`RecordError` if it is not one this store wrote."""
    items = _load(data, "record", compressed=False)
    if not isinstance(items, list):
        raise RecordError("record is not a list of operations")
    return [_guard(_op, item) for item in items]


def decode_ledger(data: bytes) -> Ledger:
    """The state a ledger value holds; :class:`RecordError` if it is not one this store wrote."""
    fields = _load(data, "ledger", compressed=True)
    if not isinstance(fields, list) or len(fields) != 9:
        raise RecordError("ledger is not [peer, ring, and seven columns]")
    peer, ring, idents, flags, counts_raw, versions, prefixes, raw4, raw6 = fields
    ledger = Ledger()
    if (peer is None) != (ring is None):
        raise RecordError("ledger has a peer name without a ring, or the reverse")
    if ring is not None:
        ledger.peer, ledger.ring = _peer(peer), _ring(ring)
    if not isinstance(idents, list) or not all(type(i) is str for i in idents):
        raise RecordError("ledger idents are not a list of text")
    columns = (flags, counts_raw, versions, prefixes, raw4, raw6)
    if not all(isinstance(c, bytes) for c in columns):
        raise RecordError("ledger columns are not bytes")
    n, m = len(idents), len(versions)
    v6 = versions.count(6)
    if len(counts_raw) != 4 * n or len(raw4) != 4 * (m - v6) or len(raw6) != 16 * v6:
        raise RecordError("ledger columns do not match in length")
    counts, addrs4 = array.array("I"), array.array("I")
    counts.frombytes(counts_raw)
    addrs4.frombytes(raw4)
    if sys.byteorder != "little":
        counts.byteswap()
        addrs4.byteswap()
    if len(flags) != n or flags.translate(None, b"\x00\x01"):
        raise RecordError("ledger flags are not one 0 or 1 per ident")
    if sum(counts) != m or len(prefixes) != m or 0 in counts:
        raise RecordError("ledger address counts do not add up")
    if versions.translate(None, b"\x04\x06"):
        raise RecordError("ledger has an IP version other than 4 and 6")
    if len(set(idents)) != n:
        raise RecordError("ledger lists an ident twice")
    if prefixes and max(prefixes) > 128:
        raise RecordError("ledger has a prefix length over 128")
    # Checked here, so made without CIDR's own checks: a restore makes 100k of them.
    new = tuple.__new__
    if not v6:
        if prefixes and max(prefixes) > 32:
            raise RecordError("ledger has an IPv4 prefix length over 32")
        cidrs = [new(CIDR, (a, p, 4)) for a, p in zip(addrs4, prefixes, strict=True)]
    else:
        four, six = (
            iter(addrs4),
            (int.from_bytes(raw6[i : i + 16]) for i in range(0, len(raw6), 16)),
        )
        cidrs = []
        for version, prefix in zip(versions, prefixes, strict=True):
            if version == 4 and prefix > 32:
                raise RecordError(f"ledger has an IPv4 prefix length /{prefix}")
            cidrs.append(new(CIDR, (next(four if version == 4 else six), prefix, version)))
    if m == n:  # one address per ident, the usual case
        pairs = [((c,), f == 1) for c, f in zip(cidrs, flags, strict=True)]
        ledger.owned = dict(zip(idents, pairs, strict=True))
        return ledger
    owned = ledger.owned
    at = 0
    for ident, flag, count in zip(idents, flags, counts, strict=True):
        owned[ident] = (tuple(cidrs[at : at + count]), flag == 1)
        at += count
    return ledger


def _load(data: bytes, what: str, *, compressed: bool) -> object:
    if not isinstance(data, bytes) or not data:
        raise RecordError(f"{what} is empty")
    if data[0] != FORMAT:
        raise RecordError(f"{what} has format {data[0]}, this weavek-etcd reads format {FORMAT}")
    body = memoryview(data)[1:]
    try:
        if compressed:
            params = zstandard.get_frame_parameters(body)
            if params.content_size > MAX_LEDGER:  # unknown size reads as a huge number
                raise RecordError(f"{what} does not declare a size within {MAX_LEDGER} bytes")
            body = memoryview(zstandard.ZstdDecompressor().decompress(body))
        return cbor2.loads(body, tag_hook=_no_tags, **_CBOR)
    except RecordError:
        raise
    except Exception as exc:  # any failure of the decoders on foreign bytes is "not ours"
        raise RecordError(f"{what} does not decode: {type(exc).__name__}: {exc}") from None


def _no_tags(_decoder: object, tag: object) -> object:
    raise RecordError("CBOR tags are not used by this store")


def _guard(parse: Any, item: object) -> Any:
    try:
        return parse(item)
    except RecordError:
        raise
    except (ValueError, TypeError, IndexError) as exc:
        raise RecordError(f"{item!r:.80} is out of shape: {exc}") from None


def _op(item: object) -> Op:
    if not isinstance(item, list) or not item or type(item[0]) is not int:
        raise RecordError(f"operation {item!r:.80} is not [kind, ...]")
    kind, n = item[0], len(item)
    if kind == ADD and n == 5:
        if type(item[4]) is not bool:
            raise RecordError("is_container is not a boolean")
        return (ADD, _ident(item[1]), _cidr(item[2], item[3]), item[4])
    if kind == DROP and n == 4:
        return (DROP, _ident(item[1]), _cidr(item[2], item[3]))
    if kind == SET_RING and n == 3:
        return (SET_RING, _peer(item[1]), _ring(item[2]))
    if kind == CLEAR and n == 1:
        return (CLEAR,)
    raise RecordError(f"unknown operation {kind} with {n} fields")


def _ident(value: object) -> str:
    if not isinstance(value, str):
        raise RecordError(f"ident {value!r:.40} is not text")
    return value


def _cidr(addr: object, prefix: object) -> CIDR:
    if not isinstance(addr, bytes) or len(addr) not in _VERSIONS or type(prefix) is not int:
        raise RecordError(f"address {addr!r:.40}/{prefix!r:.10} is not 4 or 16 bytes and a prefix")
    return CIDR(int.from_bytes(addr, "big"), prefix, _VERSIONS[len(addr)])


def _peer(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_PEER_NAME:
        raise RecordError(f"peer name {value!r:.40} is not a peer name")
    return value


def _ring(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise RecordError("ring is not bytes")
    try:
        codec.decode_ring(value)
    except codec.DecodeError as exc:
        raise RecordError(f"ring does not decode: {exc}") from None
    return value
