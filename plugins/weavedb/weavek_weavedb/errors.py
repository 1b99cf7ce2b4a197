"""The one error the store raises."""

from __future__ import annotations

__all__ = ["WeavedbError"]


class WeavedbError(ValueError):
    """The database file cannot be used: unreadable, foreign, corrupt or newer; says which file.

    Raised instead of touching the file: a peer that cannot load its state
    must stop rather than start afresh over addresses it may still hold.
    """

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"weavedb {path}: {reason}")
        self.path = path
        self.reason = reason
