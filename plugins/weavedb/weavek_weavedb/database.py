"""The SQLite side of the store: schema, checks, reads, and one transaction per batch.

Everything here is synchronous and runs on the store's worker thread; the
event loop never waits on the disk. The rules that keep data safe:

* a file is only ever written once it is known to be ours (our
  ``application_id`` and schema version) or blank (a SQLite file with no
  schema at all, as a crash during the very first start can leave);
* the blank file is set up in ONE transaction, so a crash leaves it blank
  or complete, never half made;
* each batch of effects is one ``BEGIN IMMEDIATE ... COMMIT``: all of it is
  durable when :meth:`Database.apply` returns, or none of it is there.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from itertools import groupby
from pathlib import Path

from weavek.core import codec
from weavek.core.address import CIDR, format_address
from weavek.core.effects import Allocated, ClearStore, Effect, Released, SaveRing
from weavek.core.messages import RingData
from weavek.core.peer import MAX_PEER_NAME, UNKNOWN_PEER
from weavek.core.snapshot import Snapshot

from .errors import WeavedbError
from .holdings import Holdings

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "Database"]

log = logging.getLogger(__name__)

APPLICATION_ID = 0x57564B44
"""``PRAGMA application_id`` of our files ("WVKD"): tells a weavedb file from any other SQLite."""
SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the schema below; a file with a higher one is refused."""

_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value ANY) STRICT;
CREATE TABLE ring (id INTEGER PRIMARY KEY CHECK (id = 1), blob BLOB NOT NULL) STRICT;
CREATE TABLE holdings (
    ident TEXT NOT NULL,
    address TEXT NOT NULL,
    prefix INTEGER NOT NULL,
    version INTEGER NOT NULL,
    is_container INTEGER NOT NULL,
    PRIMARY KEY (ident, address)
) STRICT, WITHOUT ROWID;
INSERT INTO meta VALUES ('schema', {SCHEMA_VERSION}), ('created_by', 'weavek-weavedb');
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""
# In primary key order (no sort: the table is one b-tree by it), so an ident's rows are adjacent.
_HOLDINGS = "SELECT ident, address, prefix, version, is_container FROM holdings ORDER BY ident"
_ALLOCATE = "INSERT OR REPLACE INTO holdings VALUES (?, ?, ?, ?, ?)"
# The flag belongs to the ident, as in Weave's ownedAddresses: the latest allocation sets it.
_FLAG = "UPDATE holdings SET is_container = ?1 WHERE ident = ?2 AND is_container <> ?1"
_RELEASE = "DELETE FROM holdings WHERE ident = ? AND address = ?"
_SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA", "OFF")
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
"""The socket address family to parse a stored address with, by its version column."""


def _lock(path: Path) -> int:
    """Open ``path`` (creating it empty) and lock it for this process alone; the descriptor.

    Two peers on one file would each hand out the addresses the other does
    not know of. As BoltDB did for Weave, an exclusive ``flock`` on the file
    itself says so at once; the kernel drops it when the process dies, even
    by ``kill -9``. SQLite's own locks are ``fcntl`` record locks, which a
    ``flock`` does not touch.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise WeavedbError(path, f"cannot open: {err.strerror}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise WeavedbError(
                path, "in use by another process (is another weavek peer using this file?)"
            ) from None
        raise WeavedbError(path, f"cannot lock: {err.strerror}") from err
    return fd


class Database:
    """One open weavedb file; its methods are called one at a time, by the store's worker.

    :param synchronous: SQLite's ``PRAGMA synchronous``; ``FULL`` (fsync
        the WAL at every commit) is what makes :meth:`apply` durable
        through a power cut, not only through a crash of the process.
    """

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {_SYNCHRONOUS}")
        self.path = path
        if sqlite3.sqlite_version_info < (3, 37):
            raise WeavedbError(path, f"needs SQLite 3.37 or later, not {sqlite3.sqlite_version}")
        self._lock = _lock(path)
        try:
            # Manual transactions (isolation_level None); the worker may be any one thread.
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as err:
            os.close(self._lock)
            raise WeavedbError(path, f"cannot open: {err}") from err
        try:
            self._adopt(synchronous)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the file (SQLite checkpoints the WAL into it and removes the WAL) and unlock it."""
        try:
            self._conn.close()
        finally:
            os.close(self._lock)

    def _adopt(self, synchronous: str) -> None:
        # Only reads until the file is known to be ours or blank: a foreign file stays untouched.
        try:
            # Wait out another writer (an operator's sqlite3 shell mid-transaction) rather
            # than fail a batch at once. A connection setting: nothing is written.
            self._conn.execute("PRAGMA busy_timeout = 10000")
            app_id, version = self._pragma("application_id"), self._pragma("user_version")
            if app_id == APPLICATION_ID:
                if version > SCHEMA_VERSION:
                    raise WeavedbError(
                        self.path,
                        f"written by a newer weavek-weavedb (schema {version}; "
                        f"this one reads schema {SCHEMA_VERSION}); upgrade weavek-weavedb",
                    )
                if version != SCHEMA_VERSION:
                    raise WeavedbError(self.path, f"unknown schema version {version}")
            else:
                objects = self._conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
                if app_id or version or objects:
                    raise WeavedbError(
                        self.path,
                        f"not a weavedb file (application_id {app_id:#x}, user_version "
                        f"{version}, {objects} schema objects); refusing to touch it",
                    )
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise WeavedbError(self.path, f"cannot use WAL mode (journal_mode is {mode})")
            self._conn.execute(f"PRAGMA synchronous = {synchronous}")
            # Truncate the WAL after checkpoints, so one big batch does not leave a big file.
            self._conn.execute("PRAGMA journal_size_limit = 4194304")
            if app_id != APPLICATION_ID:
                # One script with its own BEGIN/COMMIT (executescript commits anything pending).
                self._transaction(lambda: self._conn.executescript(_SCHEMA), begin=False)
                log.info("weavedb %s: created (schema %d)", self.path, SCHEMA_VERSION)
        except sqlite3.Error as err:
            raise WeavedbError(self.path, f"unreadable: {err}") from err

    def _pragma(self, name: str) -> int:
        value = self._conn.execute(f"PRAGMA {name}").fetchone()[0]
        assert isinstance(value, int)
        return value

    def _transaction(self, body: Callable[[], object], begin: bool = True) -> None:
        if begin:
            self._conn.execute("BEGIN IMMEDIATE")
        try:
            body()
            if begin:
                self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    # -- reading ---------------------------------------------------------------

    def load(self) -> Snapshot | None:
        """What the file holds, checked through and through; None when it holds no ring or holdings.

        Raises :class:`WeavedbError` for a damaged file or a row that does not parse.
        """
        try:
            problems = [row[0] for row in self._conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise WeavedbError(self.path, "corrupt: " + "; ".join(map(str, problems[:5])))
            # One read transaction, so the three reads see the same commit.
            self._conn.execute("BEGIN")
            try:
                peer = self._conn.execute("SELECT value FROM meta WHERE key = 'peer'").fetchone()
                ring = self._conn.execute("SELECT blob FROM ring WHERE id = 1").fetchone()
                # Row by row from the cursor: a million rows never sit in one list.
                holdings = self._holdings(self._conn.execute(_HOLDINGS))
            finally:
                self._conn.execute("COMMIT")
        except sqlite3.Error as err:
            raise WeavedbError(self.path, f"unreadable: {err}") from err
        if ring is None and not holdings:
            return None
        return Snapshot(self._peer(peer), self._ring(ring), holdings)

    def _peer(self, row: tuple[object] | None) -> int:
        if row is None:
            # Holdings with no name to vouch for them: the allocator discards them as another's.
            return UNKNOWN_PEER
        value = row[0]
        if type(value) is not int or not 0 <= value <= MAX_PEER_NAME:
            raise WeavedbError(self.path, f"stored peer name {value!r} is not a peer name")
        return value

    def _ring(self, row: tuple[object] | None) -> RingData | None:
        if row is None:
            return None
        if not isinstance(row[0], bytes):
            raise WeavedbError(self.path, "stored ring is not a blob")
        try:
            return codec.decode_ring(row[0])
        except codec.DecodeError as err:
            raise WeavedbError(self.path, f"stored ring does not decode: {err}") from err

    def _holdings(self, rows: Iterable[tuple[object, ...]]) -> Holdings:
        # The hot loop of a restart: a million rows must take about a second. So each row
        # goes straight into the compact Holdings, and addresses are parsed by the C
        # library's strict inet_pton (dotted quads only, no leading zeros, no zones).
        out = Holdings()
        add = out.add
        pton, from_bytes = socket.inet_pton, int.from_bytes
        shapes: set[tuple[object, object]] = set()  # (prefix, version) pairs seen valid
        for row in rows:
            ident, address, prefix, version, is_container = row
            try:
                if type(ident) is not str or type(address) is not str:
                    raise ValueError("ident and address must be text")
                if (prefix, version) not in shapes:
                    if version not in _FAMILIES or type(prefix) is not int:
                        raise ValueError("version or prefix out of shape")
                    CIDR(0, prefix, version)  # checks the prefix against the version
                    shapes.add((prefix, version))
                value = from_bytes(pton(_FAMILIES[version], address))  # type: ignore[index]
                if is_container not in (0, 1):
                    raise ValueError("is_container out of shape")
            except (ValueError, OSError) as err:
                raise WeavedbError(self.path, f"holding row {row!r} does not parse: {err}") from err
            add(ident, value, prefix, version, is_container == 1)  # type: ignore[arg-type]
        return out

    # -- writing ---------------------------------------------------------------

    def apply(self, effects: Sequence[Effect]) -> None:
        """Carry out the storage effects in order, as one durable transaction."""
        ops = [e for e in effects if isinstance(e, SaveRing | Allocated | Released | ClearStore)]
        if not ops:
            return  # nothing to make durable: no transaction, no fsync
        clears: list[str] = []
        try:
            self._transaction(lambda: self._write(ops, clears))
        except sqlite3.Error as err:
            raise WeavedbError(self.path, f"write failed, batch not stored: {err}") from err
        for reason in clears:
            log.info("weavedb %s: cleared: %s", self.path, reason)

    def _write(self, ops: Sequence[Effect], clears: list[str]) -> None:
        run = self._conn.executemany
        # Runs of one kind go to SQLite together; the order between runs is kept.
        for kind, group in groupby(ops, type):
            if kind is Allocated:
                allocs = [e for e in group if isinstance(e, Allocated)]
                run(_ALLOCATE, [(e.ident, *_address(e.cidr), e.is_container) for e in allocs])
                run(_FLAG, [(e.is_container, e.ident) for e in allocs])
            elif kind is Released:
                releases = [e for e in group if isinstance(e, Released)]
                run(_RELEASE, [(e.ident, _address(e.cidr)[0]) for e in releases])
            else:
                for effect in group:
                    self._write_one(effect, clears)

    def _write_one(self, effect: Effect, clears: list[str]) -> None:
        execute = self._conn.execute
        if isinstance(effect, SaveRing):
            blob = codec.encode_ring(effect.ring)
            execute("INSERT OR REPLACE INTO ring VALUES (1, ?)", (blob,))
            execute("INSERT OR REPLACE INTO meta VALUES ('peer', ?)", (effect.peer,))
        elif isinstance(effect, ClearStore):
            execute("DELETE FROM holdings")
            execute("DELETE FROM ring")
            execute("DELETE FROM meta WHERE key = 'peer'")
            clears.append(effect.reason)


def _address(cidr: CIDR) -> tuple[str, int, int]:
    # Text, not an int: an IPv6 address does not fit SQLite's 64-bit integers, and text
    # reads well in the sqlite3 shell.
    return format_address(cidr.addr, cidr.version), cidr.prefix, cidr.version
