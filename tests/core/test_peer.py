"""Peer names: the success and failure table of the reference (§7.6) and round-trip properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weavek.core.peer import (
    MAX_PEER_NAME,
    UNKNOWN_PEER,
    PeerNameError,
    format_peer_name,
    parse_peer_name,
)

names = st.integers(0, MAX_PEER_NAME)

# §7.6, the success rows, verbatim.
TABLE = [
    ("12:34:56:78:9A:BC", 0x123456789ABC),
    ("1:2:3:4:5:6", 0x010203040506),
    ("::56:78:9A:BC", 0x000056789ABC),
    ("12::78:9A:BC", 0x120000789ABC),
    ("12:34:56:78::", 0x123456780000),
    ("::BC", 0x0000000000BC),
    ("12::", 0x120000000000),
    ("ab:cD:Ef:AB::", 0xABCDEFAB0000),
    ("::1", 1),
    ("1::", 0x010000000000),
]

# §7.6, the rejected inputs, verbatim.
REJECTED = [
    "::",
    "::34:56:78:9A:BC",  # '::' standing for exactly one octet
    "12:34:56:78:9A::",  # likewise, at the end
    "12::78::",  # two '::'
    "123::",  # 3-digit octet
    "12::garbage",  # trailing garbage
]

# More ways to be wrong.
ALSO_REJECTED = [
    "",
    ":",
    ":::",
    ":::1",
    "1:::",
    "1:2:3:4:5",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:",
    ":1:2:3:4:5:6",
    "1:2:3::4:5:6",  # '::' for zero octets
    "1:2::3:4:5",  # '::' for one octet in the middle
    "::1:",
    "1::2::3",
    "12:34:56:78:9a:bc ",
    " 12:34:56:78:9a:bc",
    "12:34:56:78:9a:bc\n",
    "12:34:56:78:9a:bcd",
    "12:34:56:78:9a:bc:",
    "12-34-56-78-9a-bc",
    "123456789abc",
    "g::",
    "::g",
    "0x1::",
    "+1::",
    "-1::",
    "1_0::",
    "\uff11::",  # a full-width digit one
    "\u0661::",  # an Arabic-Indic digit one
]


@pytest.mark.parametrize(("text", "value"), TABLE)
def test_reference_table_parses(text: str, value: int) -> None:
    assert parse_peer_name(text) == value


@pytest.mark.parametrize(("text", "value"), TABLE)
def test_reference_table_is_case_insensitive(text: str, value: int) -> None:
    assert parse_peer_name(text.lower()) == value
    assert parse_peer_name(text.upper()) == value


@pytest.mark.parametrize("text", REJECTED + ALSO_REJECTED)
def test_rejected(text: str) -> None:
    with pytest.raises(PeerNameError) as info:
        parse_peer_name(text)
    assert repr(text) in str(info.value)


def test_peer_name_error_is_a_value_error() -> None:
    assert issubclass(PeerNameError, ValueError)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (UNKNOWN_PEER, "00:00:00:00:00:00"),
        (1, "00:00:00:00:00:01"),  # never printed short, as '::1'
        (0x010000000000, "01:00:00:00:00:00"),
        (0xABCDEFAB0000, "ab:cd:ef:ab:00:00"),
        (0x123456789ABC, "12:34:56:78:9a:bc"),
        (MAX_PEER_NAME, "ff:ff:ff:ff:ff:ff"),
    ],
)
def test_format(value: int, text: str) -> None:
    assert format_peer_name(value) == text


def test_constants() -> None:
    assert UNKNOWN_PEER == 0
    assert MAX_PEER_NAME == 2**48 - 1


@pytest.mark.parametrize("value", [-1, MAX_PEER_NAME + 1, 1 << 64])
def test_format_rejects_out_of_range(value: int) -> None:
    with pytest.raises(PeerNameError):
        format_peer_name(value)


@given(names)
def test_round_trip(value: int) -> None:
    text = format_peer_name(value)
    assert len(text) == 17
    assert text == text.lower()
    assert parse_peer_name(text) == value
    assert parse_peer_name(text.upper()) == value


@given(st.lists(st.integers(0, 255), min_size=6, max_size=6), st.data())
def test_octets_may_be_written_short_and_in_any_case(
    octets: list[int], data: st.DataObject
) -> None:
    written = []
    for octet in octets:
        digits = data.draw(st.sampled_from([f"{octet:x}", f"{octet:02x}"]))
        written.append("".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in digits))
    assert parse_peer_name(":".join(written)) == int.from_bytes(bytes(octets), "big")


@st.composite
def compressed(draw: st.DrawFn) -> tuple[str, int]:
    """A name written with one '::' standing for 2 to 5 zero octets, and its value."""
    zeros = draw(st.integers(2, 5))
    left = draw(st.integers(0, 6 - zeros))
    octets = draw(st.lists(st.integers(0, 255), min_size=6 - zeros, max_size=6 - zeros))
    head, tail = octets[:left], octets[left:]
    text = ":".join(f"{o:x}" for o in head) + "::" + ":".join(f"{o:X}" for o in tail)
    return text, int.from_bytes(bytes([*head, *([0] * zeros), *tail]), "big")


@given(compressed())
def test_compressed_form(case: tuple[str, int]) -> None:
    text, value = case
    assert parse_peer_name(text) == value
    assert parse_peer_name(text.swapcase()) == value
    assert parse_peer_name(format_peer_name(value)) == value


@given(names, st.text(min_size=1))
def test_trailing_garbage_after_a_full_name_is_rejected(value: int, garbage: str) -> None:
    with pytest.raises(PeerNameError):
        parse_peer_name(format_peer_name(value) + garbage)


@given(
    compressed(), st.text(min_size=1).filter(lambda s: not set(s) & set("0123456789abcdefABCDEF:"))
)
def test_trailing_garbage_after_a_compressed_name_is_rejected(
    case: tuple[str, int], garbage: str
) -> None:
    with pytest.raises(PeerNameError):
        parse_peer_name(case[0] + garbage)


@given(st.lists(st.integers(0, 255), min_size=5, max_size=6), st.data())
def test_compression_standing_for_fewer_than_two_octets_is_rejected(
    octets: list[int], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(octets)))
    text = (
        ":".join(f"{o:x}" for o in octets[:split])
        + "::"
        + ":".join(f"{o:x}" for o in octets[split:])
    )
    with pytest.raises(PeerNameError):
        parse_peer_name(text)
