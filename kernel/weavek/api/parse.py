"""Reading addresses and subnets out of request paths, with Weave's error wording.

Each function raises :class:`BadInput` with a one-line reason; the route
answers 400 with it and changes nothing.
"""

from __future__ import annotations

from weavek.core.address import CIDR, AddressError, parse_address, parse_cidr

__all__ = ["MIN_SUBNET", "BadInput", "address", "claim_cidr", "subnet"]

MIN_SUBNET = 4
"""Fewest addresses a subnet to allocate in may have (Weave's rule)."""


class BadInput(ValueError):
    """A path parameter is not a valid address, CIDR or subnet."""


def _cidr(ip: str, prefixlen: str) -> CIDR:
    try:
        return parse_cidr(f"{ip}/{prefixlen}")
    except AddressError as exc:
        raise BadInput(str(exc)) from None


def subnet(ip: str, prefixlen: str) -> CIDR:
    """A subnet to allocate in: an aligned CIDR of at least four addresses."""
    try:
        cidr = _cidr(ip, prefixlen)
    except BadInput as exc:
        raise BadInput(f"invalid subnet - {exc}") from None
    if not cidr.is_aligned:
        raise BadInput(f"invalid subnet - {cidr} is not aligned (did you mean {cidr.network()}?)")
    if cidr.size < MIN_SUBNET:
        raise BadInput(f"invalid subnet - {cidr} has fewer than {MIN_SUBNET} addresses")
    return cidr


def claim_cidr(ip: str, prefixlen: str) -> CIDR:
    """An address to claim, with the prefix of the subnet it lies in."""
    return _cidr(ip, prefixlen)


def address(text: str) -> int:
    """A single address (``DELETE /ip/{id}/{ip}``)."""
    try:
        return parse_address(text)[0]
    except AddressError as exc:
        raise BadInput(str(exc)) from None
