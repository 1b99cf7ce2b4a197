"""Where the database file lives, and making its directory safely."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .errors import WeavedbError

__all__ = ["FILE_NAME", "ROOT_PATH", "default_path", "prepare", "resolve_path"]

FILE_NAME = "weavedb.sqlite"
ROOT_PATH = Path("/var/lib/weavek") / FILE_NAME
"""Where a peer run as root keeps its data (Weave keeps its own under /var/lib/weave)."""


def default_path(environ: Mapping[str, str] | None = None, euid: int | None = None) -> Path:
    """The file used without ``--persist weavedb=PATH``.

    ``/var/lib/weavek/weavedb.sqlite`` for root; otherwise under
    ``$XDG_STATE_HOME`` (default ``~/.local/state``), per the XDG base
    directory spec, which is where state that should outlive a restart goes.
    """
    env = os.environ if environ is None else environ
    if (os.geteuid() if euid is None else euid) == 0:
        return ROOT_PATH
    state = env.get("XDG_STATE_HOME", "")
    # The spec says a relative value is invalid and must be ignored.
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "weavek" / FILE_NAME


def resolve_path(arg: str | None) -> Path:
    """``--persist weavedb=PATH`` gives the file; nothing gives :func:`default_path`."""
    if arg is None or not arg.strip():
        return default_path()
    return Path(arg.strip()).expanduser()


def prepare(path: Path) -> None:
    """Create the missing parent directories (mode 0700) and the file itself (mode 0600).

    An existing file or directory is left exactly as it is. What is created
    is made durable (the parent directory is fsynced), so a power cut right
    after the first commit cannot lose the file's directory entry.
    """
    try:
        missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
        for directory in reversed(missing):
            directory.mkdir(mode=0o700)
            _fsync_dir(directory.parent)
        if not path.exists():
            # SQLite gives its -wal and -shm files the database file's mode.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            _fsync_dir(path.parent)
    except OSError as err:
        raise WeavedbError(path, f"cannot create: {err.strerror or err}") from err


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
