"""Addresses and CIDR blocks: parsing, printing and block arithmetic, IPv4 and IPv6."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weavek.core.address import CIDR, AddressError, format_address, parse_address, parse_cidr

V4 = 1 << 32
V6 = 1 << 128
BITS = {4: 32, 6: 128}


def ip(text: str) -> int:
    return int(ipaddress.ip_address(text))


# --- parse_address / format_address -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "version"),
    [
        ("0.0.0.0", 0, 4),
        ("10.32.0.1", 0x0A200001, 4),
        ("255.255.255.255", V4 - 1, 4),
        ("::", 0, 6),
        ("::1", 1, 6),
        ("fd00::1", (0xFD00 << 112) | 1, 6),
        ("FD00::1", (0xFD00 << 112) | 1, 6),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", V6 - 1, 6),
        ("::ffff:10.0.0.1", (0xFFFF << 32) | 0x0A000001, 6),
    ],
)
def test_parse_address(text: str, value: int, version: int) -> None:
    assert parse_address(text) == (value, version)


@pytest.mark.parametrize(
    ("value", "version", "text"),
    [
        (0, 4, "0.0.0.0"),
        (0x0A200001, 4, "10.32.0.1"),
        (V4 - 1, 4, "255.255.255.255"),
        (0, 6, "::"),
        ((0xFD00 << 112) | 1, 6, "fd00::1"),
        (V6 - 1, 6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ],
)
def test_format_address(value: int, version: int, text: str) -> None:
    assert format_address(value, version) == text


def test_format_address_defaults_to_ipv4() -> None:
    assert format_address(0x0A200001) == "10.32.0.1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "abc",
        "10.0.0",
        "10.0.0.256",
        "10.0.0.1.2",
        "010.0.0.1",  # leading zeros are ambiguous (octal?) and refused
        "10.0.0.-1",
        "1::2::3",
        "fd00::g",
        "fe80::1%eth0",  # a zone would be dropped by int(); refused as Go's ParseIP does
        "10.0.0.1/8",
        "10.0.0.1x",
    ],
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(text)
    assert repr(text) in str(info.value)


def test_address_error_is_a_value_error() -> None:
    assert issubclass(AddressError, ValueError)


@given(st.integers(0, V4 - 1))
def test_ipv4_round_trip(value: int) -> None:
    text = format_address(value, 4)
    assert parse_address(text) == (value, 4)
    assert text == str(ipaddress.IPv4Address(value))


@given(st.integers(0, V6 - 1))
def test_ipv6_round_trip(value: int) -> None:
    text = format_address(value, 6)
    assert parse_address(text) == (value, 6)
    assert parse_address(text.upper()) == (value, 6)
    assert text == str(ipaddress.IPv6Address(value))


# --- CIDR blocks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end", "host_range"),
    [
        # IPv4
        ("10.32.0.0/12", ip("10.32.0.0"), ip("10.48.0.0"), (ip("10.32.0.1"), ip("10.47.255.255"))),
        ("10.32.0.5/12", ip("10.32.0.0"), ip("10.48.0.0"), (ip("10.32.0.1"), ip("10.47.255.255"))),
        ("10.40.0.0/30", ip("10.40.0.0"), ip("10.40.0.4"), (ip("10.40.0.1"), ip("10.40.0.3"))),
        ("10.40.0.1/31", ip("10.40.0.0"), ip("10.40.0.2"), (ip("10.40.0.0"), ip("10.40.0.2"))),
        ("10.40.0.7/32", ip("10.40.0.7"), ip("10.40.0.8"), (ip("10.40.0.7"), ip("10.40.0.8"))),
        ("0.0.0.0/0", 0, V4, (1, V4 - 1)),
        ("192.168.7.9/0", 0, V4, (1, V4 - 1)),
        ("255.255.255.255/32", V4 - 1, V4, (V4 - 1, V4)),
        # IPv6
        (
            "fd00::/64",
            ip("fd00::"),
            ip("fd00:0:0:1::"),
            (ip("fd00::1"), ip("fd00::ffff:ffff:ffff:ffff")),
        ),
        (
            "fd00::1234/64",
            ip("fd00::"),
            ip("fd00:0:0:1::"),
            (ip("fd00::1"), ip("fd00::ffff:ffff:ffff:ffff")),
        ),
        ("fd00::1/128", ip("fd00::1"), ip("fd00::2"), (ip("fd00::1"), ip("fd00::2"))),
        ("fd00::1/127", ip("fd00::"), ip("fd00::2"), (ip("fd00::"), ip("fd00::2"))),
        (
            "fd00::/32",
            ip("fd00::"),
            ip("fd00:1::"),
            (ip("fd00::1"), ip("fd00:0:ffff:ffff:ffff:ffff:ffff:ffff")),
        ),
        ("::/0", 0, V6, (1, V6 - 1)),
    ],
)
def test_cidr_block(text: str, start: int, end: int, host_range: tuple[int, int]) -> None:
    cidr = parse_cidr(text)
    assert cidr.start == start
    assert cidr.end == end
    assert cidr.size == end - start
    assert cidr.range == (start, end)
    assert cidr.host_range == host_range
    net = ipaddress.ip_network(text, strict=False)
    assert (cidr.start, cidr.size) == (int(net.network_address), net.num_addresses)


@pytest.mark.parametrize(
    ("text", "prefix", "version", "size"),
    [
        ("10.32.0.0/12", 12, 4, 1 << 20),
        ("10.0.0.0/32", 32, 4, 1),
        ("0.0.0.0/0", 0, 4, 1 << 32),
        ("fd00::/64", 64, 6, 1 << 64),
        ("fd00::/32", 32, 6, 1 << 96),
        ("::/0", 0, 6, 1 << 128),
        ("::1/128", 128, 6, 1),
    ],
)
def test_cidr_size_prefix_version(text: str, prefix: int, version: int, size: int) -> None:
    cidr = parse_cidr(text)
    assert (cidr.prefix, cidr.version, cidr.size, cidr.bits) == (
        prefix,
        version,
        size,
        BITS[version],
    )


def test_cidr_without_prefix_is_one_address() -> None:
    assert parse_cidr("10.32.0.9") == CIDR(ip("10.32.0.9"), 32, 4)
    assert parse_cidr("fd00::9") == CIDR(ip("fd00::9"), 128, 6)
    assert parse_cidr("fd00::9").size == 1


def test_cidr_keeps_host_bits() -> None:
    cidr = parse_cidr("10.32.0.5/12")
    assert cidr.addr == ip("10.32.0.5")
    assert not cidr.is_aligned
    assert str(cidr) == "10.32.0.5/12"
    assert cidr.address_text() == "10.32.0.5"
    assert cidr.network() == CIDR(ip("10.32.0.0"), 12, 4)
    assert cidr.network().is_aligned
    assert str(cidr.network()) == "10.32.0.0/12"
    assert cidr.network().with_addr(ip("10.33.1.2")) == parse_cidr("10.33.1.2/12")


def test_cidr_contains_and_overlaps() -> None:
    cidr = parse_cidr("10.40.0.0/30")
    assert [cidr.contains(ip(f"10.40.0.{i}")) for i in range(5)] == [True] * 4 + [False]
    assert not cidr.contains(ip("10.39.255.255"))
    assert cidr.overlaps((ip("10.39.0.0"), ip("10.40.0.1")))
    assert cidr.overlaps((ip("10.40.0.3"), ip("10.41.0.0")))
    assert cidr.overlaps((ip("10.40.0.1"), ip("10.40.0.2")))
    assert not cidr.overlaps((ip("10.39.0.0"), ip("10.40.0.0")))  # half-open: touches, no overlap
    assert not cidr.overlaps((ip("10.40.0.4"), ip("10.41.0.0")))


def test_cidr_is_frozen_and_hashable() -> None:
    cidr = parse_cidr("10.32.0.0/12")
    assert {cidr, parse_cidr("10.32.0.0/12")} == {cidr}
    with pytest.raises(AttributeError):
        cidr.prefix = 13  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/12",
        "10.32.0.0/",
        "10.32.0.0/33",
        "10.32.0.0/-1",
        "10.32.0.0/+1",
        "10.32.0.0/1x",
        "10.32.0.0/ 12",
        "10.32.0.0/0012",
        "10.32.0.0/12/3",
        "10.32.0.0/255.240.0.0",
        "10.32.0.0/²",  # str.isdigit() is true for it
        "10.32.0.0/١٢",  # Arabic-Indic digits: int() would read 12
        "10.32.0.256/12",
        "fd00::/129",
        "fd00::/1000",
        "fd00::g/64",
        "fe80::1%eth0/64",
        "garbage",
    ],
)
def test_parse_cidr_rejects(text: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_cidr(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    ("addr", "prefix", "version"),
    [
        (0, 33, 4),
        (0, -1, 4),
        (0, 129, 6),
        (V4, 32, 4),
        (-1, 32, 4),
        (V6, 64, 6),
        (0, 0, 5),
    ],
)
def test_cidr_constructor_rejects(addr: int, prefix: int, version: int) -> None:
    with pytest.raises(AddressError):
        CIDR(addr, prefix, version)


# --- properties -------------------------------------------------------------------------------


@st.composite
def cidrs(draw: st.DrawFn) -> CIDR:
    version = draw(st.sampled_from([4, 6]))
    bits = BITS[version]
    return CIDR(draw(st.integers(0, (1 << bits) - 1)), draw(st.integers(0, bits)), version)


@given(cidrs())
def test_cidr_text_round_trip(cidr: CIDR) -> None:
    assert parse_cidr(str(cidr)) == cidr
    assert parse_cidr(str(cidr).upper()) == cidr


@given(cidrs())
def test_cidr_block_arithmetic(cidr: CIDR) -> None:
    assert cidr.size == 1 << (cidr.bits - cidr.prefix)
    assert cidr.start % cidr.size == 0
    assert cidr.end - cidr.start == cidr.size
    assert cidr.start <= cidr.addr < cidr.end <= 1 << cidr.bits
    assert cidr.contains(cidr.addr)
    assert cidr.is_aligned == (cidr.addr == cidr.start)
    assert cidr.network().range == cidr.range
    assert cidr.with_addr(cidr.start).is_aligned
    lo, hi = cidr.host_range
    assert cidr.start <= lo < hi <= cidr.end
    assert hi - lo == (cidr.size - 2 if cidr.size >= 4 else cidr.size)
    net = ipaddress.ip_network(f"{cidr.address_text()}/{cidr.prefix}", strict=False)
    assert (cidr.start, cidr.end) == (int(net.network_address), int(net.broadcast_address) + 1)


@given(cidrs(), st.integers(0, V6 - 1))
def test_cidr_contains_matches_range(cidr: CIDR, addr: int) -> None:
    addr %= 1 << cidr.bits
    assert cidr.contains(addr) == (cidr.start <= addr < cidr.end)
    assert cidr.overlaps((addr, addr + 1)) == cidr.contains(addr)


@given(
    st.lists(
        st.one_of(st.integers(0, 300).map(str), st.text("0123456789+-x ", max_size=4)),
        min_size=3,
        max_size=5,
    )
)
def test_dotted_quad_fast_path_agrees_with_ipaddress(parts: list[str]) -> None:
    text = ".".join(parts)
    try:
        expected: tuple[int, int] | None = (int(ipaddress.IPv4Address(text.strip())), 4)
    except ValueError:
        expected = None
    try:
        got: tuple[int, int] | None = parse_address(text)
    except AddressError:
        got = None
    if got is not None and got[1] == 6:
        got = None  # not an IPv4 text; ipaddress.IPv4Address refused it above
    assert got == expected
