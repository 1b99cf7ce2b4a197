"""The ``etcd`` store: a :class:`~weavek.interfaces.Store` over keys in etcd, one prefix per peer.

Keys under ``ROOT/<peer name>/`` (``ROOT`` is ``/weavek`` unless the URL names another):

``meta``
    ``{"format":"weavek-etcd","schema":1}``: written once, when the prefix is
    first used. A prefix with keys but without this marker is not ours and is
    never written to.
``owner``
    Who claimed the prefix last (host, pid, time). Its *mod revision* is the
    fencing token: every write is a transaction that compares it with the
    revision this process got when it claimed the prefix, so once another
    process claims it (the same ``--name`` launched elsewhere), this one's
    writes are refused (:class:`~weavek_etcd.errors.EtcdTakenOver`).
``log/<seq>``
    One value per :meth:`EtcdStore.apply`: the batch's changes (a record,
    :mod:`weavek_etcd.records`), written in ONE transaction with the fencing
    compare -- so a batch is in etcd whole or not at all.
``ledger/<gen>/<piece>`` and ``head``
    Every ``compact_every`` records the whole state is written as a ledger
    (zstd-compressed CBOR, in pieces under etcd's request size limit), then
    one transaction points ``head`` at it and deletes the records it covers
    and the previous ledger. An interrupted compaction leaves pieces that
    ``head`` does not name; they are ignored and replaced by the next one.

Loading reads the whole prefix in one range request: the ledger ``head``
names, then the records after it, in order. One write per batch, whatever
its size, keeps allocation fast; the ledger keeps restores fast.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

import anyio

from weavek.core.effects import Effect
from weavek.core.peer import format_peer_name
from weavek.core.snapshot import Snapshot
from weavek.interfaces import Store, StoreUnavailable
from weavek.node.naming import machine_name

from .endpoints import parse_target
from .errors import EtcdDataError, EtcdStoreError, EtcdTakenOver
from .records import Ledger, RecordError, decode_ledger, decode_record, encode_ledger, ops_of
from .records import encode_record as _encode_record

if TYPE_CHECKING:
    import aetcd

    from .connection import Connection

__all__ = ["MARKER", "SCHEMA", "EtcdStore"]

log = logging.getLogger(__name__)

SCHEMA = 1
MARKER = b'{"format":"weavek-etcd","schema":1}'
PIECE = 1 << 20
"""Largest value written in one request (etcd refuses requests over 1.5 MiB by default)."""


class EtcdStore(Store):
    """The peer name, the ring and the local allocations in etcd, under the peer's name.

    ``--persist etcd=http://HOST:PORT[,http://HOST:PORT...]``. The peer name
    is ``--name``, else the one derived from ``/etc/machine-id``: the same
    name on another machine finds the same data.

    etcd that cannot be reached raises
    :class:`~weavek.interfaces.StoreUnavailable` (and :meth:`health` says
    so) until it answers again; a batch that failed so is not in etcd, and
    may be applied again. Data that is not ours, corrupt or newer raises
    :class:`~weavek_etcd.errors.EtcdDataError` and is never written to.
    """

    name: ClassVar[str] = "etcd"
    compact_every: ClassVar[int] = 1000
    """Records written between two ledgers (bounds what a restore replays)."""
    timeout: ClassVar[float] = 5.0
    """Seconds one request may take on one endpoint before the next is tried."""
    load_timeout: ClassVar[float] = 60.0
    """Seconds :meth:`load` waits for etcd to answer at start-up."""
    probe_interval: ClassVar[float] = 2.0
    """Seconds between checks that etcd answers, so :meth:`health` is current when idle."""

    def __init__(self, arg: str | None = None, *, peer: int | None = None, **_: object) -> None:
        # The shell may pass more keywords as it grows; this store needs only the name.
        super().__init__(arg, peer=peer)
        self.target = parse_target(arg)
        self.prefix = b""
        """``ROOT/<peer name>/``, known once entered."""
        self._conn: Connection | None = None
        self._lock = anyio.Lock()
        self._ledger = Ledger()
        self._seq = 0  # the last record written (or covered by the ledger)
        self._gen = 0  # the ledger generation head names
        self._since = 0  # records since that ledger
        self._owner_rev = 0
        self._broken: EtcdStoreError | None = None
        self._tasks: anyio.abc.TaskGroup | None = None

    # -- life cycle ------------------------------------------------------------

    async def __aenter__(self) -> Self:
        name = self.peer if self.peer is not None else machine_name()
        if name is None:
            raise EtcdStoreError(
                self.target.urls(), "needs --name on a machine without /etc/machine-id"
            )
        self.prefix = f"{self.target.root}/{format_peer_name(name)}/".encode()
        from .connection import Connection  # aetcd and grpc: only for peers using etcd

        self._conn = Connection(self.target, self.where, self.timeout)
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._probe)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tasks, self._tasks = self._tasks, None
        conn, self._conn = self._conn, None
        if tasks is not None:
            tasks.cancel_scope.cancel()
            await tasks.__aexit__(None, None, None)
        if conn is not None:
            with anyio.CancelScope(shield=True):  # a cancelled peer still closes its channels
                await conn.close()

    @property
    def where(self) -> str:
        return f"{self.target.urls()} {self.prefix.decode()}"

    def health(self) -> str | None:
        if self._broken is not None:
            return str(self._broken)
        return None if self._conn is None else self._conn.problem

    async def _probe(self) -> None:
        while True:
            await anyio.sleep(self.probe_interval)
            conn = self._conn
            if conn is None or self._lock.locked():
                continue
            with contextlib.suppress(StoreUnavailable, EtcdStoreError):  # health() says so
                await conn.call("a check", lambda c: c.get(self.prefix + b"meta"))

    # -- the Store interface -------------------------------------------------

    async def load(self) -> Snapshot | None:
        """Claim the prefix, then read it; None when it holds nothing.

        While etcd cannot be reached, tries again every half second for
        :attr:`load_timeout` seconds (a peer and its etcd started together),
        then raises :class:`~weavek.interfaces.StoreUnavailable`.
        """
        deadline = anyio.current_time() + self.load_timeout
        warned = -1e9
        while True:
            try:
                return await self._load()
            except StoreUnavailable as exc:
                now = anyio.current_time()
                if now >= deadline:
                    raise StoreUnavailable(
                        f"{exc} (gave up loading after {self.load_timeout:g} s)"
                    ) from None
                if now - warned >= 5:
                    log.warning("%s; waiting up to %.0f s", exc, deadline - now)
                    warned = now
                await anyio.sleep(0.5)

    async def _load(self) -> Snapshot | None:
        async with self._lock:
            try:
                await self._claim()
                kvs = await self._call("reading", lambda c: c.get_prefix(self.prefix))
                self._read([(kv.key, kv.value) for kv in kvs.kvs])
                return self._ledger.snapshot()
            except EtcdDataError as err:
                # Whoever ignores this error must not get to overwrite the data.
                self._broken = err
                raise

    async def apply(self, effects: Sequence[Effect]) -> None:
        """Store one batch in one etcd transaction; it is in etcd when this returns."""
        ops = ops_of(effects)
        if not ops:
            return
        async with self._lock:
            if self._broken is not None:
                raise type(self._broken)(self._broken.where, f"not written: {self._broken.reason}")
            if self._owner_rev == 0:
                raise RuntimeError("load() must be called before apply()")
            seq = self._seq + 1
            record = _encode_record(ops)
            if len(record) > PIECE:
                # Too big for one request: the whole new state as a ledger, switched to at once.
                ledger = self._ledger.copy()
                ledger.apply(ops)
                await self._compact(ledger, seq)
                self._ledger, self._seq = ledger, seq
                return
            # A retry after StoreUnavailable rewrites the same key: a batch whose commit
            # was in doubt is replaced, never doubled.
            key = self._log_key(seq)
            await self._fenced("a batch", lambda t: [t.put(key, record)])
            self._ledger.apply(ops)
            self._seq, self._since = seq, self._since + 1
            if self._since >= self.compact_every:
                # The batch is stored; a compaction that fails is tried after the next one.
                with contextlib.suppress(StoreUnavailable):
                    await self._compact(self._ledger, self._seq)

    # -- claiming the prefix ---------------------------------------------------

    async def _claim(self) -> None:
        meta, owner = self.prefix + b"meta", self.prefix + b"owner"
        claim = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        ).encode()
        while True:

            async def take(c: aetcd.Client) -> Any:
                t = c.transactions
                return await c.transaction(
                    compare=[t.value(meta) == MARKER],
                    success=[t.put(owner, claim), t.get(owner)],
                    failure=[t.get(meta)],
                )

            ok, responses = await self._call("claiming the peer's keys", take)
            if ok:
                self._owner_rev = responses[1][0][1].mod_revision
                return
            if responses and responses[0]:
                raise self._foreign_marker(responses[0][0][0])
            # No marker: a new prefix, which must be empty, or someone else's keys.
            keys = await self._call("reading", lambda c: c.get_prefix(self.prefix, keys_only=True))
            if keys.kvs:
                first = keys.kvs[0].key.decode(errors="replace")
                raise EtcdDataError(
                    self.where,
                    f"{len(keys.kvs)} keys but no weavek-etcd marker ({first}, ...): "
                    "not this store's data; refusing to touch it",
                )

            async def create(c: aetcd.Client) -> Any:
                t = c.transactions
                return await c.transaction(
                    compare=[t.create(meta) == 0],
                    success=[t.put(meta, MARKER), t.put(owner, claim), t.get(owner)],
                    failure=[],
                )

            ok, responses = await self._call("creating the peer's keys", create)
            if ok:
                self._owner_rev = responses[2][0][1].mod_revision
                log.info("etcd %s: created (schema %d)", self.where, SCHEMA)
                return
            # Another process created it at the same moment: claim it from the top.

    def _foreign_marker(self, value: bytes) -> EtcdDataError:
        try:
            meta = json.loads(value)
            schema = meta["schema"] if meta.get("format") == "weavek-etcd" else None
        except (ValueError, TypeError, AttributeError, KeyError):
            schema = None
        if type(schema) is int and schema > SCHEMA:
            reason = (
                f"written by a newer weavek-etcd (schema {schema}; this one reads schema "
                f"{SCHEMA}); upgrade weavek-etcd"
            )
        else:
            reason = f"marker holds {value[:60]!r}, not weavek-etcd's; refusing to touch it"
        return EtcdDataError(self.where, reason)

    # -- reading ---------------------------------------------------------------

    def _read(self, kvs: list[tuple[bytes, bytes]]) -> None:
        n = len(self.prefix)
        head: dict[str, int] | None = None
        pieces: dict[int, dict[int, bytes]] = {}
        records: dict[int, tuple[bytes, bytes]] = {}
        for key, value in kvs:
            name = key[n:]
            try:
                if name in (b"meta", b"owner"):
                    continue
                if name == b"head":
                    head = _head(value)
                elif name.startswith(b"log/"):
                    records[_hex(name[4:], 16)] = (key, value)
                elif name.startswith(b"ledger/") and len(name) == 20 and name[15:16] == b"/":
                    pieces.setdefault(_hex(name[7:15], 8), {})[_hex(name[16:], 4)] = value
                else:
                    raise RecordError("not a key this store writes")
            except RecordError as err:
                raise self._bad(key, err) from None
        ledger, seq, gen = Ledger(), 0, 0
        if head is not None:
            gen, seq = head["gen"], head["seq"]
            got = pieces.get(gen, {})
            if sorted(got) != list(range(head["pieces"])):
                raise self._bad(self.prefix + b"head", f"ledger {gen} is missing pieces")
            try:
                ledger = decode_ledger(b"".join(got[i] for i in range(head["pieces"])))
            except RecordError as err:
                raise self._bad(self.prefix + b"ledger/%08x/" % gen, err) from None
        # Records the ledger covers are deleted with its head; any left are skipped.
        later = sorted(s for s in records if s > seq)
        if later != list(range(seq + 1, seq + 1 + len(later))):
            raise self._bad(self.prefix + b"log/", f"records after {seq} are not contiguous")
        for s in later:
            key, value = records[s]
            try:
                ledger.apply(decode_record(value))
            except RecordError as err:
                raise self._bad(key, err) from None
        self._ledger, self._gen, self._seq = ledger, gen, seq + len(later)
        self._since = len(later)

    def _bad(self, key: bytes, err: object) -> EtcdDataError:
        shown = key.decode(errors="replace")
        return EtcdDataError(self.where, f"{shown}: {err}; refusing to touch the data")

    # -- writing ---------------------------------------------------------------

    def _log_key(self, seq: int) -> bytes:
        return self.prefix + b"log/%016x" % seq

    async def _compact(self, ledger: Ledger, seq: int) -> None:
        """Write ``ledger`` (the state after record ``seq``) and switch ``head`` to it."""
        blob = encode_ledger(ledger)
        gen = self._gen + 1
        base = self.prefix + b"ledger/%08x/" % gen
        # Pieces an interrupted compaction left under this generation go first.
        await self._fenced("a ledger", lambda t: [t.delete(base, _end(base))])
        pieces = [blob[i : i + PIECE] for i in range(0, len(blob), PIECE)] or [b""]
        for i, piece in enumerate(pieces):
            key = base + b"%04x" % i
            await self._fenced("a ledger", lambda t, k=key, p=piece: [t.put(k, p)])
        head = json.dumps({"gen": gen, "seq": seq, "pieces": len(pieces)}).encode()
        logs, ledgers = self.prefix + b"log/", self.prefix + b"ledger/"
        await self._fenced(
            "a ledger",
            lambda t: [
                t.put(self.prefix + b"head", head),
                t.delete(logs, self._log_key(seq + 1)),
                t.delete(ledgers, self.prefix + b"ledger/%08x/" % gen),
            ],
        )
        self._gen, self._since = gen, 0

    async def _fenced(self, what: str, ops: Any) -> None:
        """Run ``ops(transactions)`` in one transaction, only while we still own the prefix."""
        owner = self.prefix + b"owner"

        async def txn(c: aetcd.Client) -> Any:
            t = c.transactions
            return await c.transaction(
                compare=[t.mod(owner) == self._owner_rev], success=ops(t), failure=[t.get(owner)]
            )

        ok, responses = await self._call(f"writing {what}", txn)
        if not ok:
            holder = responses[0][0][0] if responses and responses[0] else b"(nobody)"
            self._broken = EtcdTakenOver(
                self.where,
                f"another process claimed this peer's data ({holder.decode(errors='replace')}); "
                "this one writes no more",
            )
            raise self._broken

    async def _call(self, what: str, operation: Any) -> Any:
        if self._conn is None:
            raise RuntimeError("use the store inside `async with`")
        return await self._conn.call(what, operation)


def _end(prefix: bytes) -> bytes:
    # The first key after every key that starts with ``prefix`` (prefixes here end in "/").
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _hex(text: bytes, width: int) -> int:
    if len(text) != width or not all(c in b"0123456789abcdef" for c in text):
        raise RecordError(f"expected {width} lower-case hex digits")
    return int(text, 16)


def _head(value: bytes) -> dict[str, int]:
    try:
        head = json.loads(value)
    except ValueError as exc:
        raise RecordError(f"head is not JSON: {exc}") from None
    if not isinstance(head, dict) or set(head) != {"gen", "seq", "pieces"}:
        raise RecordError("head is not {gen, seq, pieces}")
    if not all(type(v) is int and 0 <= v < 1 << 63 for v in head.values()) or head["pieces"] < 1:
        raise RecordError("head numbers are out of range")
    return head
