"""IP addresses, CIDR blocks and ranges, as plain integers.

Everything in the kernel handles addresses as Python ints, so the same code
serves an IPv4 /12 and an IPv6 /64: nothing is ever sized by the number of
addresses in a block. A range is a half-open pair ``(start, end)``.

Parsing and printing lean on the standard library's :mod:`ipaddress`; the
values that travel through the allocator are ints and small frozen records.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

__all__ = [
    "CIDR",
    "AddressError",
    "Range",
    "format_address",
    "parse_address",
    "parse_cidr",
]

Range = tuple[int, int]
"""A half-open interval of addresses ``[start, end)``."""

_BITS = {4: 32, 6: 128}


class AddressError(ValueError):
    """An address or CIDR written by a user or a peer could not be understood."""


def parse_address(text: str) -> tuple[int, int]:
    """Parse ``"10.32.0.1"`` or ``"fd00::1"`` into ``(value, version)``."""
    stripped = text.strip()
    value = _dotted_quad(stripped)
    if value is not None:
        return value, 4
    try:
        ip = ipaddress.ip_address(stripped)
    except ValueError:
        raise AddressError(f"invalid IP address {text!r}") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        # int(ip) would silently drop the zone ("fe80::1%eth0"); Go's ParseIP rejects it too.
        raise AddressError(f"invalid IP address {text!r}: zone not allowed")
    return int(ip), ip.version


def _dotted_quad(text: str) -> int | None:
    """The common case without :mod:`ipaddress` (a store restores a million of these).

    Only text :mod:`ipaddress` accepts the same way is taken here -- four ASCII decimal
    octets up to 255, no leading zeros -- and anything else goes to it.
    """
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not (part.isascii() and part.isdigit() and len(part) <= 3) or (
            len(part) > 1 and part[0] == "0"
        ):
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = (value << 8) | octet
    return value


def format_address(value: int, version: int = 4) -> str:
    """Print an address held as an int in its usual notation."""
    if version == 4:
        return str(ipaddress.IPv4Address(value))
    return str(ipaddress.IPv6Address(value))


class _CIDRFields(NamedTuple):
    addr: int
    prefix: int
    version: int


class CIDR(_CIDRFields):
    """An address with a prefix length, such as ``10.32.0.5/12``.

    ``addr`` is the address as written; it need not be the first address of
    the block (an allocation result is a host address with the subnet's
    prefix). ``start``/``end`` give the block it lies in. A tuple underneath,
    because the allocator makes one per allocation and must do so cheaply.
    """

    __slots__ = ()

    def __new__(cls, addr: int, prefix: int, version: int = 4) -> CIDR:
        bits = _BITS.get(version)
        if bits is None:
            raise AddressError(f"unknown IP version {version}")
        if not 0 <= prefix <= bits:
            raise AddressError(f"prefix length /{prefix} out of range for IPv{version}")
        if not 0 <= addr < (1 << bits):
            raise AddressError(f"address {addr} out of range for IPv{version}")
        return super().__new__(cls, addr, prefix, version)

    @property
    def bits(self) -> int:
        return _BITS[self.version]

    @property
    def size(self) -> int:
        """How many addresses the block holds."""
        return 1 << (self.bits - self.prefix)

    @property
    def start(self) -> int:
        return self.addr & ~(self.size - 1)

    @property
    def end(self) -> int:
        """One past the last address of the block."""
        return self.start + self.size

    @property
    def range(self) -> Range:
        return (self.start, self.end)

    @property
    def host_range(self) -> Range:
        """The block without its first (network) and last (broadcast) address.

        Blocks of fewer than four addresses have no room for that rule and
        are used whole.
        """
        start, end = self.start, self.end
        if end - start < 4:
            return (start, end)
        return (start + 1, end - 1)

    @property
    def is_aligned(self) -> bool:
        """True when ``addr`` is the block's first address."""
        return self.addr == self.start

    def network(self) -> CIDR:
        """The same block written from its first address."""
        return CIDR(self.start, self.prefix, self.version)

    def with_addr(self, addr: int) -> CIDR:
        """A host address inside this block, carrying this block's prefix (not re-validated)."""
        return tuple.__new__(CIDR, (addr, self[1], self[2]))

    def contains(self, addr: int) -> bool:
        return self.start <= addr < self.end

    def overlaps(self, other: Range) -> bool:
        return self.start < other[1] and other[0] < self.end

    def address_text(self) -> str:
        return format_address(self.addr, self.version)

    def __str__(self) -> str:
        return f"{format_address(self.addr, self.version)}/{self.prefix}"

    def __repr__(self) -> str:
        return f"CIDR({self})"


def parse_cidr(text: str) -> CIDR:
    """Parse ``"10.32.0.0/12"`` (host bits allowed, as in an allocation result).

    An address without a prefix is a single-address block.
    """
    raw = text.strip()
    addr_text, sep, prefix_text = raw.partition("/")
    try:
        value, version = parse_address(addr_text)
    except AddressError:
        raise AddressError(f"invalid CIDR {text!r}: bad address {addr_text!r}") from None
    if not sep:
        return CIDR(value, _BITS[version], version)
    # isdigit() alone admits "²" (int() then fails) and other scripts' digits ("١٢").
    if not (prefix_text.isascii() and prefix_text.isdigit()) or len(prefix_text) > 3:
        raise AddressError(f"invalid prefix length in {text!r}")
    prefix = int(prefix_text)
    if prefix > _BITS[version]:
        raise AddressError(f"prefix length /{prefix} out of range in {text!r}")
    return CIDR(value, prefix, version)
