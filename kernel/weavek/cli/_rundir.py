"""Where a launched peer leaves its pid file, its launch record and its log.

One directory per user: ``$WEAVEK_RUN_DIR`` if set, else ``/run/weavek`` for
root, else ``$XDG_RUNTIME_DIR/weavek``, else ``/tmp/weavek-$UID``. Files are
named by the HTTP port, the one thing every command is told
(``--http-addr``): ``weavek-6784.pid`` (the pid alone, as pid files are),
``weavek-6784.json`` (what ``reset`` needs to know about the launch) and
``weavek-6784.log`` (the background peer's output).

A pid file can outlive its process (``kill -9``, a reboot on a persistent
/tmp), and the pid can be reused, so :func:`running_pid` believes it only
when the process is alive and its command line says ``weavek``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = [
    "ENV_RUN_DIR",
    "LaunchRecord",
    "PeerFiles",
    "alive",
    "peer_files",
    "run_dir",
    "wait_gone",
]

ENV_RUN_DIR: Final = "WEAVEK_RUN_DIR"


def run_dir() -> Path:
    """The directory for this user's peers' files, created if missing."""
    given = os.environ.get(ENV_RUN_DIR)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if given:
        where = Path(given)
    elif os.geteuid() == 0:
        where = Path("/run/weavek")
    elif runtime:
        where = Path(runtime) / "weavek"
    else:
        where = Path(f"/tmp/weavek-{os.getuid()}")
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    return where


@dataclass(frozen=True, slots=True)
class LaunchRecord:
    """What a peer was launched with, for the commands that outlive its answers."""

    pid: int
    http: str
    persist: str


@dataclass(frozen=True, slots=True)
class PeerFiles:
    """The files of the peer whose HTTP API is on ``port``."""

    pid: Path
    record: Path
    log: Path

    def write_pid(self, pid: int) -> None:
        _write_atomically(self.pid, f"{pid}\n")

    def write_record(self, record: LaunchRecord) -> None:
        fields = {"pid": record.pid, "http": record.http, "persist": record.persist}
        _write_atomically(self.record, json.dumps(fields) + "\n")

    def read_record(self) -> LaunchRecord | None:
        try:
            data: Any = json.loads(self.record.read_text())
            return LaunchRecord(int(data["pid"]), str(data["http"]), str(data["persist"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def running_pid(self) -> int | None:
        """The pid of the peer, if the pid file names a live weavek process; else None."""
        try:
            pid = int(self.pid.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) and _is_weavek(pid) else None

    def remove(self, *, only_pid: int | None = None) -> None:
        """Delete the pid file and the launch record (only if they name ``only_pid``, if given)."""
        if only_pid is not None:
            try:
                if int(self.pid.read_text().strip()) != only_pid:
                    return
            except (OSError, ValueError):
                pass
        for file in (self.pid, self.record):
            file.unlink(missing_ok=True)


def peer_files(port: int) -> PeerFiles:
    """The files of the peer whose HTTP API listens on ``port``."""
    where = run_dir()
    stem = f"weavek-{port}"
    return PeerFiles(where / f"{stem}.pid", where / f"{stem}.json", where / f"{stem}.log")


def alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not ours to judge
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: kill(0) is all we know
    # The state follows the command name in parentheses, which may itself hold ") ".
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; True if it did."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _is_weavek(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc at all: trust the pid file
    except OSError:
        return True
    return b"weavek" in cmdline


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    partial.replace(path)
