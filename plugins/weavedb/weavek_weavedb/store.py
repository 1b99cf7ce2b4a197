"""The ``weavedb`` store: a :class:`~weavek.interfaces.Store` over a local SQLite file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self, TypeVar

import anyio
import anyio.to_thread

from weavek.core.effects import Effect
from weavek.core.snapshot import Snapshot
from weavek.interfaces import Store

from .database import Database
from .errors import WeavedbError
from .paths import prepare, resolve_path

__all__ = ["WeavedbStore"]

_T = TypeVar("_T")


class WeavedbStore(Store):
    """The peer name, the ring and the local allocations in one SQLite file.

    ``--persist weavedb`` uses :func:`~weavek_weavedb.paths.default_path`;
    ``--persist weavedb=PATH`` names the file. All disk work runs on one
    worker at a time (a private capacity limiter of 1), so the event loop
    never blocks and concurrent :meth:`apply` calls are committed one after
    the other, in the order they asked.

    A file that cannot be loaded (not SQLite, another program's, a newer
    schema, a ring that does not decode) raises
    :class:`~weavek_weavedb.WeavedbError` and is never written to.
    """

    name: ClassVar[str] = "weavedb"
    synchronous: ClassVar[str] = "FULL"
    """SQLite's ``PRAGMA synchronous`` (see the README for FULL against NORMAL)."""

    def __init__(self, arg: str | None = None, **_keywords: object) -> None:
        # The shell may pass more keywords as it grows; this store needs none of them.
        super().__init__(arg)
        self.path: Path = resolve_path(arg)
        self._limiter = anyio.CapacityLimiter(1)
        self._db: Database | None = None
        self._broken: WeavedbError | None = None

    async def __aenter__(self) -> Self:
        self._db = await self._run(self._open)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        db, self._db = self._db, None
        if db is not None:
            # Shielded: a cancelled peer must still close the file cleanly.
            with anyio.CancelScope(shield=True):
                await self._run(db.close)

    async def load(self) -> Snapshot | None:
        """What the file holds, or None when it holds nothing; raises WeavedbError if damaged."""
        db = self._open_db()
        try:
            return await self._run(db.load)
        except WeavedbError as err:
            # Whoever ignores this error must not get to overwrite the data with a fresh start.
            self._broken = err
            raise

    async def apply(self, effects: Sequence[Effect]) -> None:
        """Store a batch of effects in one transaction; durable (fsynced) when this returns."""
        db = self._open_db()
        if self._broken is not None:
            raise WeavedbError(self.path, f"not written: load failed ({self._broken.reason})")
        await self._run(db.apply, effects)

    def _open(self) -> Database:
        prepare(self.path)
        return Database(self.path, self.synchronous)

    def _open_db(self) -> Database:
        if self._db is None:
            raise RuntimeError("use the store inside `async with`")
        return self._db

    async def _run(self, func: Callable[..., _T], *args: object) -> _T:
        # Not abandoned on cancellation: a commit that started finishes, and the file is closed.
        return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)
