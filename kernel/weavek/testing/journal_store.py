"""A store on a real directory that tests can take away: for the peer's "store unavailable" path.

:class:`JournalStore` (``--persist journal=DIR``) appends each
:meth:`~weavek.interfaces.Store.apply` as one fsynced JSON line to
``DIR/journal`` and replays the lines on :meth:`~weavek.interfaces.Store.load`.
``DIR`` stands for the store's service: remove it (or make it unwritable to
a non-root user) and every write raises
:class:`~weavek.interfaces.StoreUnavailable`, as an etcd store does while
etcd is down; create it again and writes succeed. Anything else that goes
wrong (``journal`` is a directory, a line that does not parse) is a plain
error, which stops a peer.

The file work runs on a worker thread, one call at a time, so a write takes
real time and the event loop goes on meanwhile, as with ``weavedb``.
:attr:`JournalPlugin.gate`, when set, holds every write until it is set
again: a slow disk under the test's control.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import anyio
import anyio.to_thread

from weavek.core import codec
from weavek.core.address import parse_cidr
from weavek.core.effects import Allocated, ClearStore, Effect, Released, SaveRing
from weavek.core.snapshot import Snapshot
from weavek.interfaces import Store, StoreUnavailable
from weavek.plugin import hookimpl

from .store import MemoryStore

__all__ = ["JournalPlugin", "JournalStore", "journal_idents"]

_UNAVAILABLE = frozenset({errno.ENOENT, errno.EACCES, errno.EROFS, errno.ENOSPC, errno.EPERM})
"""OS errors that mean "the service is not there now", not "the data is wrong"."""


def _encode(effect: Effect) -> list[Any] | None:
    if isinstance(effect, Allocated):
        return ["a", effect.ident, str(effect.cidr), effect.is_container]
    if isinstance(effect, Released):
        return ["r", effect.ident, str(effect.cidr)]
    if isinstance(effect, SaveRing):
        return ["s", effect.peer, codec.encode_ring(effect.ring).hex()]
    if isinstance(effect, ClearStore):
        return ["c", effect.reason]
    return None


def _replay(lines: Sequence[str]) -> MemoryStore:
    state = MemoryStore(0)
    for line in lines:
        for op in json.loads(line):
            kind = op[0]
            if kind == "a":
                state.apply(Allocated(op[1], parse_cidr(op[2]), op[3]))
            elif kind == "r":
                state.apply(Released(op[1], parse_cidr(op[2])))
            elif kind == "s":
                state.peer = op[1]
                state.apply(SaveRing(codec.decode_ring(bytes.fromhex(op[2])), op[1]))
            elif kind == "c":
                state.apply(ClearStore(op[1]))
            else:
                raise ValueError(f"unknown journal entry {op!r}")
    return state


def journal_idents(directory: Path) -> dict[str, list[str]]:
    """Ident -> the CIDRs the journal in ``directory`` holds for it now (what a restart loads)."""
    path = directory / "journal"
    lines = path.read_text().splitlines() if path.exists() else []
    return {ident: [str(c) for c in cidrs] for ident, (cidrs, _) in _replay(lines).owned.items()}


class JournalStore(Store):
    """A store appending fsynced JSON lines to ``DIR/journal``; unavailable while DIR is not."""

    name: ClassVar[str] = "journal"
    plugin: ClassVar[JournalPlugin | None] = None

    def __init__(self, arg: str | None = None, **_keywords: object) -> None:
        super().__init__(arg)
        if not arg:
            raise ValueError("--persist journal=DIR needs a directory")
        self.directory = Path(arg)
        self._limiter = anyio.CapacityLimiter(1)
        self._problem: str | None = None

    def health(self) -> str | None:
        return self._problem

    async def load(self) -> Snapshot | None:
        lines = await anyio.to_thread.run_sync(self._read, limiter=self._limiter)
        return _replay(lines).snapshot()

    async def apply(self, effects: Sequence[Effect]) -> None:
        ops = [op for op in map(_encode, effects) if op is not None]
        if not ops:
            return
        gate = self.plugin.gate if self.plugin is not None else None
        if gate is not None and self.plugin is not None:
            self.plugin.stalled += 1
            await gate.wait()
        line = json.dumps(ops, separators=(",", ":")) + "\n"
        await anyio.to_thread.run_sync(self._append, line.encode(), limiter=self._limiter)
        if self.plugin is not None:
            self.plugin.writes.append(len(ops))

    def _read(self) -> list[str]:
        if not self.directory.is_dir():
            self._fail(f"directory {self.directory} is missing")
        path = self.directory / "journal"
        return path.read_text().splitlines() if path.exists() else []

    def _append(self, data: bytes) -> None:
        try:
            fd = os.open(self.directory / "journal", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as err:
            if err.errno in _UNAVAILABLE:
                self._fail(f"cannot open {self.directory}/journal: {err.strerror}")
            raise
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._problem = None

    def _fail(self, problem: str) -> None:
        self._problem = problem
        raise StoreUnavailable(problem)


class JournalPlugin:
    """Offers the ``journal`` store; :attr:`gate` holds writes, :attr:`writes` lists them."""

    def __init__(self) -> None:
        self.gate: anyio.Event | None = None
        """While set to an unset event, every write waits for it."""
        self.stalled = 0
        """Writes that have waited at a gate."""
        self.writes: list[int] = []
        """The number of storage effects of every successful write, in order."""
        self.store_class: type[Store] = type("JournalStore", (JournalStore,), {"plugin": self})

    @hookimpl
    def weavek_stores(self) -> list[type[Store]]:
        return [self.store_class]
