"""How a peer gets its name when the operator gives none.

A peer keeps one 48-bit name for life: its ranges in everyone's ring are
filed under it. So the name is, in order of preference, the one the operator
typed, the one persisted with the ring, one derived from the machine (stable
across re-installs of weavek, as Weave's was across restarts), and only as a
last resort a random one.
"""

from __future__ import annotations

import hashlib
import random
import socket
from pathlib import Path

from weavek.core.snapshot import Snapshot

__all__ = ["MACHINE_ID", "choose_name", "default_nickname", "machine_name", "random_name"]

MACHINE_ID = Path("/etc/machine-id")


def _as_mac(raw: bytes) -> int:
    """Six bytes as a peer name that looks like a locally administered unicast MAC."""
    first = (raw[0] | 0x02) & ~0x01  # locally administered, never multicast
    return int.from_bytes(bytes([first & 0xFF]) + raw[1:6], "big")


def machine_name(path: Path = MACHINE_ID) -> int | None:
    """A name derived from the machine id (sha256, first six bytes); None if there is none."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text:
        return None
    return _as_mac(hashlib.sha256(text.encode()).digest())


def random_name() -> int:
    """A fresh random name, for machines without a machine id."""
    return _as_mac(random.SystemRandom().randbytes(6))


def choose_name(given: int | None, snapshot: Snapshot | None, path: Path = MACHINE_ID) -> int:
    """The operator's name, else the persisted one, else the machine's, else a random one."""
    if given is not None:
        return given
    if snapshot is not None and snapshot.peer:
        return snapshot.peer
    return machine_name(path) or random_name()


def default_nickname() -> str:
    """The host name, as Weave showed in ``status ipam``."""
    return socket.gethostname()
