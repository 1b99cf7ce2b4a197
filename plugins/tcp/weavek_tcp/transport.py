"""The ``tcp`` transport: Weave's gossip mesh over TCP, under anyio.

Connections come from three places: the listener, one dial loop per address
in ``peers`` (re-dialled with back-off for ever), and one dial loop per peer
learned from topology reports (while it stays reachable and unconnected).
Every connection runs the handshake, then is *admitted* (or refused: itself,
a name collision, a duplicate, a refused peer) and serves messages until
either side closes it. Admission and loss rebuild our topology report, flood
it, and recompute routes; a notifier task tells the peer when the set of
reachable peers changed.

Broadcasts are flooded: sent to every direct neighbour, and every receiver
relays a broadcast it had not seen (by origin and id) to all its neighbours
but the one it came from. That costs one copy per connection instead of one
per peer, which is fine for the small clusters IPAM runs on, and needs no
per-origin spanning tree that a changing topology could leave stale.

Sending and receiving are in :mod:`.routing`, dialling in :mod:`.dialer`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import ByteStream, SocketAttribute, TaskGroup

from weavek.core.events import PeersChanged
from weavek.core.peer import format_peer_name
from weavek.interfaces import Transport, TransportEvent

from .connection import Link, run_handshake
from .crypto import derive_psk
from .dialer import DEFAULT_PORT, Address, Dialer, Outcome, parse_address
from .framing import AuthenticationError, FrameDecoder, ProtocolError
from .handshake import Handshake, Hello
from .mesh import Backoff, SeenCache, TopologyTable
from .messages import Message, Neighbour, clip

__all__ = ["DEFAULT_PORT", "TcpTransport", "parse_address"]

log = logging.getLogger("weavek.tcp")
_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
"""What a connection that went away raises."""


class TcpTransport(Dialer, Transport):
    """Carries the peer's messages over TCP connections to other peers.

    Beyond the :class:`~weavek.interfaces.Transport` keywords, the timing and
    limits are keywords too (tests shrink them); ``connect_filter(name)``
    returning False forbids a direct connection to that peer (tests use it to
    force relaying).
    """

    name = "tcp"

    def __init__(
        self,
        arg: str | None,
        *,
        me: int,
        deliver: Callable[[TransportEvent], Awaitable[None]],
        nickname: str = "",
        listen: tuple[str, int] = ("0.0.0.0", DEFAULT_PORT),
        peers: Sequence[str] = (),
        password: bytes | None = None,
        connect_filter: Callable[[int], bool] | None = None,
        handshake_timeout: float = 10.0,
        heartbeat_interval: float = 15.0,
        idle_timeout: float = 60.0,
        topology_interval: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_cap: float = 10.0,
        max_connections: int = 256,
        max_handshakes_per_ip: int = 8,
    ) -> None:
        super().__init__(
            arg,
            me=me,
            deliver=deliver,
            nickname=nickname,
            listen=listen,
            peers=peers,
            password=password,
        )
        self.connect_filter = connect_filter
        self.handshake_timeout = handshake_timeout
        self.heartbeat_interval = heartbeat_interval
        self.idle_timeout = idle_timeout
        self.topology_interval = topology_interval
        self.backoff_initial = backoff_initial
        self.backoff_cap = backoff_cap
        self.max_connections = max_connections
        self.max_handshakes_per_ip = max_handshakes_per_ip
        self.uid = secrets.randbits(64)
        """Random per process: tells our own connections, restarts and name clashes apart."""
        self.port = 0
        """The port the listener is bound to, once entered."""
        self.table = TopologyTable(me, clip(nickname), time.time_ns() // 1000)
        self.links: dict[int, Link] = {}
        self.routes: dict[int, int] = {}
        self._seen = SeenCache()
        self._rng = random.Random()
        self._psk: bytes | None = None
        self._open = 0
        self._handshaking: Counter[str] = Counter()
        self._refused: dict[int, tuple[float, Backoff]] = {}
        self._names: dict[Address, int] = {}  # dialled address -> who answered there
        self._dialling: set[int] = set()
        self._dial_addresses = [parse_address(text) for text in self.peers]
        # Events need a running event loop: made in __aenter__.
        self._changed: anyio.Event
        self._dirty: anyio.Event
        self._listener: anyio.abc.Listener[ByteStream] | None = None
        self._reported: frozenset[int] = frozenset()
        self._tg: TaskGroup | None = None

    # -- lifecycle ------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._changed = anyio.Event()
        self._dirty = anyio.Event()
        if self.password is not None:
            self._psk = await anyio.to_thread.run_sync(derive_psk, self.password)
        listener = await anyio.create_tcp_listener(
            local_host=self.listen[0], local_port=self.listen[1]
        )
        self._listener = listener
        self.port = listener.listeners[0].extra(SocketAttribute.local_port)
        self._tg = tg = anyio.create_task_group()
        await tg.__aenter__()
        tg.start_soon(listener.serve, self._accept)
        for addr in self._dial_addresses:
            tg.start_soon(self._dial_configured, addr)
        tg.start_soon(self._announce_loop)
        tg.start_soon(self._notify_loop)
        log.info("listening on %s:%d as %s", self.listen[0], self.port, format_peer_name(self.me))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
            await self._tg.__aexit__(None, None, None)
            self._tg = None
        if self._listener is not None:
            await self._listener.aclose()
            self._listener = None

    # -- connections ----------------------------------------------------------

    async def _accept(self, stream: ByteStream) -> None:
        remote = stream.extra(SocketAttribute.remote_address)
        assert isinstance(remote, tuple)  # TCP: (host, port[, flowinfo, scope])
        host, port = str(remote[0]), int(remote[1])
        where = f"{host}:{port}"
        if self._open >= self.max_connections:
            log.warning("too many connections; dropping the one from %s", where)
        elif self._handshaking[host] >= self.max_handshakes_per_ip:
            log.warning("too many unauthenticated connections from %s; dropping one", host)
        else:
            await self._connection(stream, (host, port), initiator=False)
            return
        await stream.aclose()

    async def _connection(self, stream: ByteStream, addr: Address, *, initiator: bool) -> Outcome:
        """Run one connection from handshake to close; never raises for what a peer did."""
        where = f"{addr[0]}:{addr[1]}"
        way = "to" if initiator else "from"
        hs = Handshake(
            Hello(self.me, self.uid, secrets.randbits(64), self.port, self.table.own.nickname),
            initiator=initiator,
            psk=self._psk,
        )
        link: Link | None = None
        self._open += 1
        # Only strangers knocking count against their address's handshake limit.
        pending = Counter() if initiator else self._handshaking
        pending[addr[0]] += 1
        try:
            async with stream:
                decoder = FrameDecoder()
                try:
                    await run_handshake(stream, hs, decoder, self.handshake_timeout)
                finally:
                    pending[addr[0]] -= 1
                    if pending[addr[0]] <= 0:
                        del pending[addr[0]]
                link = Link(
                    stream,
                    decoder,
                    hs,
                    addr,
                    heartbeat=self.heartbeat_interval,
                    idle_timeout=self.idle_timeout,
                )
                reason = self._admit(link)
                if reason is not None:
                    link.close(reason)
                    with contextlib.suppress(ProtocolError, TimeoutError, *_GONE):
                        await link.run(_ignore)  # until the Close is out; nothing it says is heard
                    return Outcome(link.peer, itself=reason == "connection to ourselves")
                try:
                    await link.run(self._on_message)
                finally:
                    self._drop(link)
                log.info("connection %s %s closed", way, link.describe())
                return Outcome(link.peer, established=True)
        except AuthenticationError as e:
            if link is None:
                log.warning("authentication failed %s %s: wrong password?", way, where)
            else:  # the password was right, so this is tampering or a bug: say so
                log.warning("dropping connection %s %s: %s", way, link.describe(), e)
                self._drop(link)
                return Outcome(link.peer, established=True)
        except ProtocolError as e:
            log.warning("refusing connection %s %s: %s", way, where, e)
        except TimeoutError:
            if link is None:
                log.warning("handshake %s %s timed out", way, where)
            else:
                log.warning("connection %s %s timed out (no heartbeat)", way, link.describe())
                self._drop(link)
                return Outcome(link.peer, established=True)
        except _GONE:
            if link is None:
                log.info("connection %s %s closed during the handshake", way, where)
            else:
                log.info("connection %s %s lost", way, link.describe())
                self._drop(link)
                return Outcome(link.peer, established=True)
        finally:
            self._open -= 1
        return Outcome(hs.peer.name if hs.peer else None)

    def _admit(self, link: Link) -> str | None:
        """Make ``link`` the connection to its peer, or say why not."""
        peer, what = link.peer, link.describe()
        if peer == self.me:
            if link.uid == self.uid:
                log.info("refusing connection to ourselves at %s:%d", *link.addr)
                return "connection to ourselves"
            reason = f"name collision: {what} uses our name"
        elif self.connect_filter is not None and not self.connect_filter(peer):
            log.debug("not connecting to %s: excluded by connect_filter", what)
            return "excluded"
        elif self._refused_for(peer) > 0:
            reason = "refused for now"
        elif (existing := self.links.get(peer)) is not None:
            if existing.uid != link.uid:
                reason = f"name collision: {format_peer_name(peer)} is already connected"
            elif existing.link_id <= link.link_id:
                # Both ends compare the same number, so both keep the same connection.
                log.debug("dropping duplicate connection %s", what)
                return "duplicate connection"
            else:
                log.debug("replacing connection %s by a duplicate", existing.describe())
                del self.links[peer]
                existing.close("duplicate connection")
                reason = None
        else:
            reason = None
        if reason is not None:
            log.warning("refusing connection %s: %s", what, reason)
            return reason
        self.links[peer] = link
        log.info("connected to %s", what)
        for report in self.table.reports.values():
            link.send(report)
        self._links_changed()
        return None

    def _drop(self, link: Link) -> None:
        if self.links.get(link.peer) is link:
            del self.links[link.peer]
            self._links_changed()

    def _links_changed(self) -> None:
        own = self.table.set_own(Neighbour(p, ln.addr[0], ln.port) for p, ln in self.links.items())
        self._flood(own, None)
        self._recompute()

    def _recompute(self) -> None:
        self.routes = self.table.routes(self.links)
        self._dirty.set()
        self._changed.set()
        self._changed = anyio.Event()
        self._dial_learned_peers()

    # -- background -----------------------------------------------------------

    async def _announce_loop(self) -> None:
        unreachable: set[int] = set()
        while True:
            await anyio.sleep(self.topology_interval)
            self._flood(self.table.set_own(self.table.own.neighbours), None)
            # Forget a peer only once it was unreachable for a whole interval: its
            # report may just have arrived before the report that links it to us.
            now = set(self.table.reports) - set(self.routes)
            self.table.forget(set(self.table.reports) - (now & unreachable))
            unreachable = now

    async def _notify_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            reachable = frozenset(self.routes)
            if reachable != self._reported:
                self._reported = reachable
                await self.deliver(PeersChanged(reachable))


async def _ignore(link: Link, msg: Message) -> None:
    """What a refused connection's messages get: nothing."""
