"""What ``--persist volume[=NAME][@DOCKER_HOST]`` asks for: which volume, on which Docker daemon."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import VolumeError

__all__ = ["DEFAULT_DOCKER_HOST", "DEFAULT_NAME", "Target", "parse_target"]

DEFAULT_NAME = "weavedb"
"""The data-only container's and the volume's name when none is given (Weave's)."""
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
"""Docker's own default, used when neither the argument nor ``DOCKER_HOST`` names a daemon."""

# Docker's rule for container names (daemon/names: RestrictedNamePattern); volumes accept these too.
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_SCHEMES = ("unix://", "tcp://", "http://", "https://")


@dataclass(frozen=True, slots=True)
class Target:
    """The volume (and data-only container) name and the address of the daemon that has it."""

    name: str
    docker_host: str

    def __str__(self) -> str:
        return f"{self.name}@{self.docker_host}"


def parse_target(arg: str | None, environ: Mapping[str, str] | None = None) -> Target:
    """``NAME``, ``NAME@ADDRESS``, ``@ADDRESS`` or nothing; missing parts take the defaults.

    The daemon is ``ADDRESS`` when given, else ``$DOCKER_HOST``, else
    :data:`DEFAULT_DOCKER_HOST`. A ``@`` cannot be part of a Docker name, so
    the split is unambiguous.

    :raises VolumeError: for a name Docker would refuse or an address that
        is not ``unix://``, ``tcp://``, ``http://`` or ``https://``.
    """
    env = os.environ if environ is None else environ
    text = (arg or "").strip()
    name, at, address = text.partition("@")
    name = name.strip() or DEFAULT_NAME
    if not _NAME.fullmatch(name):
        raise VolumeError(
            name, "not a Docker container name (letters, digits, '_', '.', '-'; two or more)"
        )
    address = address.strip() if at else env.get("DOCKER_HOST", "").strip()
    if at and not address:
        raise VolumeError(name, f"nothing after '@' in {text!r}; expected NAME@unix:///PATH")
    address = address or DEFAULT_DOCKER_HOST
    if not address.startswith(_SCHEMES) or address in _SCHEMES:
        raise VolumeError(
            name,
            f"Docker address {address!r} is not unix:///PATH, tcp://HOST:PORT or http(s)://...",
        )
    return Target(name, address)
