"""The one error of this store that stops the peer (Docker being down is StoreUnavailable)."""

from __future__ import annotations

__all__ = ["VolumeError"]


class VolumeError(ValueError):
    """The volume cannot be used as asked; says which volume and why, in one line.

    Raised for a bad ``--persist volume=`` argument, a container of that name
    that is not weavek's, a volume that is not a plain local directory, a
    directory this process cannot see, or a volume removed under a running
    peer. Nothing is created or written when it is raised, except for the
    last case, where the data is already gone.
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"volume {name}: {reason}")
        self.name = name
        self.reason = reason
