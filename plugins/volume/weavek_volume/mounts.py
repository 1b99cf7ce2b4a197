"""Where this process sees the volume: on the Docker host, or mounted into our container.

Docker gives a volume's directory as the host sees it
(``/var/lib/docker/volumes/weavedb/_data``). A peer run on the host opens
that path. A peer run in a container started with ``--volumes-from weavedb``
(or ``-v weavedb:/weavedb``) cannot see it, but it has the same directory
mounted somewhere: ``/proc/self/mountinfo`` names, for each mount, the
directory of its filesystem it shows (the "root" field), which for a volume
is the tail of the host path. Finding that mount is one read of a file, so
the peer works in both places with nothing to configure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import VolumeError

__all__ = ["Mount", "find_in_mountinfo", "parse_mountinfo", "visible_directory"]

MOUNTINFO = Path("/proc/self/mountinfo")

# The kernel escapes space, tab, newline and backslash in paths as \ooo (fs/proc_namespace.c).
_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of ``/proc/self/mountinfo``: which directory of a filesystem is shown where."""

    root: str
    """The directory of the mounted filesystem that appears at :attr:`mount_point`."""
    mount_point: str
    """Where it appears, in this process's mount namespace."""


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts in ``/proc/PID/mountinfo`` text; lines that are not mounts are skipped.

    Format (proc(5)): ``ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] -
    FSTYPE SOURCE SUPER_OPTIONS``; only ROOT and MOUNT_POINT are used.
    """
    mounts = []
    # Only "\n" ends a line: other characters splitlines() breaks on may be in a path.
    for line in text.split("\n"):
        fields = line.split(" ")
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        if root.startswith("/") and mount_point.startswith("/"):
            mounts.append(Mount(root, mount_point))
    return mounts


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def find_in_mountinfo(mounts: list[Mount], host_path: str) -> Path | None:
    """Where a mount of ``host_path`` (a volume's directory on the host) appears, if anywhere.

    A mount shows ``host_path`` when its root is ``host_path`` (the volume
    lives on the host's root filesystem) or a tail of it (``/var/lib/docker``
    is a filesystem of its own, root ``/volumes/weavedb/_data``). The tail must
    include the volume's own directory (``weavedb/_data``), so that an
    unrelated bind mount whose root is ``/_data`` or ``/`` never matches.
    """
    wanted = PurePosixPath(host_path)
    if len(wanted.parts) < 3:
        return None
    tail = wanted.parts[-2:]
    for mount in mounts:
        root = PurePosixPath(mount.root)
        if root.parts[-2:] == tail and wanted.parts[-len(root.parts) + 1 :] == root.parts[1:]:
            return Path(mount.mount_point)
    return None


def visible_directory(name: str, host_path: str, mountinfo: Path = MOUNTINFO) -> Path:
    """The volume's directory as this process can open it.

    :raises VolumeError: when neither the host path nor a mount of it is here.
    """
    path = Path(host_path)
    try:
        if path.is_dir():
            return path
    except PermissionError:
        raise VolumeError(
            name, f"cannot open {host_path}: permission denied (run the peer as root)"
        ) from None
    try:
        found = find_in_mountinfo(parse_mountinfo(mountinfo.read_text()), host_path)
    except OSError:
        found = None  # no /proc: then only the host path could have worked
    if found is not None and found.is_dir():
        return found
    raise VolumeError(
        name,
        f"its directory {host_path} on the Docker host is not visible here: run the peer on "
        f"the Docker host, or in a container started with --volumes-from {name}",
    )
