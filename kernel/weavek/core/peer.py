"""Peer names: 48-bit identities, printed like MAC addresses.

A peer name is an int in ``[0, 2**48)``. Zero is the unknown peer. Names print
as six zero-padded lower-case octets (``00:00:00:00:00:01``) and never in
short form; they parse from the full form or with a single ``::`` standing
for two to five zero octets (``::1``, ``1::``, ``12::78:9a:bc``), as Weave's
mesh did.
"""

from __future__ import annotations

__all__ = ["MAX_PEER_NAME", "UNKNOWN_PEER", "PeerNameError", "format_peer_name", "parse_peer_name"]

UNKNOWN_PEER = 0
MAX_PEER_NAME = (1 << 48) - 1
_HEX = frozenset("0123456789abcdefABCDEF")


class PeerNameError(ValueError):
    """A peer name could not be parsed."""


def format_peer_name(name: int) -> str:
    """``1`` -> ``"00:00:00:00:00:01"``."""
    if not 0 <= name <= MAX_PEER_NAME:
        # Out of range, the slicing below would print a wrong name without a word.
        raise PeerNameError(f"peer name {name} out of range [0, 2**48)")
    raw = f"{name:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def _octets(part: str, text: str) -> list[int]:
    if part == "":
        return []
    out = []
    for octet in part.split(":"):
        if not 1 <= len(octet) <= 2 or not _HEX.issuperset(octet):
            raise PeerNameError(f"invalid peer name {text!r}: bad octet {octet!r}")
        out.append(int(octet, 16))
    return out


def parse_peer_name(text: str) -> int:
    """Parse a peer name; raise :class:`PeerNameError` with the reason if it is invalid."""
    if text.count("::") > 1:
        raise PeerNameError(f"invalid peer name {text!r}: more than one '::'")
    if "::" in text:
        head, _, tail = text.partition("::")
        left, right = _octets(head, text), _octets(tail, text)
        missing = 6 - len(left) - len(right)
        if not 2 <= missing <= 5:
            raise PeerNameError(f"invalid peer name {text!r}: '::' must stand for 2 to 5 octets")
        octets = left + [0] * missing + right
    else:
        octets = _octets(text, text)
        if len(octets) != 6:
            raise PeerNameError(
                f"invalid peer name {text!r}: expected 6 octets like 01:23:45:67:89:ab"
            )
    value = 0
    for octet in octets:
        value = (value << 8) | octet
    return value
