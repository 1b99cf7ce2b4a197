"""The ``volume`` store: weavedb's database, in a Docker volume held by a data-only container."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

import anyio
import anyio.to_thread

from weavek.core.effects import Effect
from weavek.core.snapshot import Snapshot
from weavek.interfaces import Store
from weavek_weavedb import WeavedbStore
from weavek_weavedb.paths import FILE_NAME

from .errors import VolumeError
from .mounts import visible_directory
from .target import Target, parse_target

__all__ = ["VolumeStore"]


class VolumeStore(Store):
    """The peer name, ring and allocations in ``weavedb.sqlite`` inside a Docker volume.

    ``--persist volume`` uses the volume and data-only container ``weavedb``
    on the daemon at ``$DOCKER_HOST`` (default ``unix:///var/run/docker.sock``);
    ``--persist volume=NAME`` names them, and ``volume=NAME@unix:///PATH``
    (or ``@tcp://HOST:PORT``) names another daemon.

    Docker is used once, when the store is entered: to create the container
    and the volume if they are missing and to learn where the volume's
    directory is. From then on this is a :class:`~weavek_weavedb.WeavedbStore`
    over that directory, with the same file checks, transactions and fsyncs;
    the daemon may stop and restart without the store noticing. A daemon that
    does not answer at start raises
    :class:`~weavek.interfaces.StoreUnavailable`; a volume that disappears
    under a running peer raises :class:`~weavek_volume.VolumeError` (the peer
    stops rather than acknowledge writes to a deleted file).

    :attr:`database` is None until the store is entered (``weavek reset``
    then clears it through :meth:`apply`, as for any store without a path).
    """

    name: ClassVar[str] = "volume"

    def __init__(self, arg: str | None = None, **_keywords: object) -> None:
        # The shell may pass more keywords as it grows; this store needs none of them.
        super().__init__(arg)
        self.target: Target = parse_target(arg)
        self.database: Path | None = None
        """The database file, as this process opens it; known once entered."""
        self._inner: WeavedbStore | None = None
        self._identity: tuple[int, int] | None = None
        self._problem: str | None = None

    async def __aenter__(self) -> Self:
        # Here, not at the top: the Docker SDK is for peers that use this store.
        from .engine import connect, find_volume, make_container

        # Docker's SDK blocks: its calls run in a worker thread. They are not abandoned on
        # cancellation (each has a timeout), so a container is never left half-seen.
        client = await anyio.to_thread.run_sync(connect, self.target)
        try:
            found = await anyio.to_thread.run_sync(find_volume, client, self.target)
            directory = visible_directory(self.target.name, found.mountpoint)
            database = directory / FILE_NAME
            inner = WeavedbStore(str(database))
            # weavedb's checks first: a database it refuses leaves no container behind.
            await inner.__aenter__()
            try:
                await anyio.to_thread.run_sync(make_container, client, self.target, found)
            except BaseException:
                await inner.__aexit__(None, None, None)
                raise
        finally:
            client.close()
        self.database, self._inner = database, inner
        self._identity = _identity(database)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.__aexit__(exc_type, exc, tb)

    def health(self) -> str | None:
        """The volume's removal, once noticed; Docker's own state does not matter after start."""
        return self._problem

    async def load(self) -> Snapshot | None:
        """What the volume's database holds (weavedb's checks: a foreign file is refused)."""
        return await self._open().load()

    async def apply(self, effects: Sequence[Effect]) -> None:
        """Store a batch in one SQLite transaction in the volume; fsynced when this returns."""
        inner = self._open()
        self._check_still_there()
        await inner.apply(effects)

    def _open(self) -> WeavedbStore:
        if self._inner is None:
            raise RuntimeError("use the store inside `async with`")
        return self._inner

    def _check_still_there(self) -> None:
        # SQLite keeps writing to an open file after it is unlinked, so `docker volume rm`
        # under a running peer (after `docker rm weavedb`) would turn every later commit into
        # a write to a deleted file. One stat per batch (the inode is in the cache; no disk
        # access) turns that silent loss into a stop.
        assert self.database is not None
        if _identity(self.database) != self._identity:
            self._problem = (
                f"the database {self.database} was removed or replaced while the peer ran "
                "(was the Docker volume deleted?); stopping so as not to acknowledge lost writes"
            )
            raise VolumeError(self.target.name, self._problem)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino
