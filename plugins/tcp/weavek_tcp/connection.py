"""One TCP connection: the handshake on a stream, then framed messages both ways.

The sans-IO pieces (:mod:`.framing`, :mod:`.handshake`, :mod:`.messages`)
decide everything; this module only moves their bytes. A :class:`Link` owns
a bounded send queue drained by a writer task, so a peer that stops reading
never blocks a broadcast to everyone else: when its queue overflows, the link
is closed instead (the peer re-dials and catches up through gossip).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import ByteStream

from weavek.core.peer import format_peer_name

from .crypto import TAG_SIZE
from .framing import MAX_FRAME, MAX_HANDSHAKE_FRAME, FrameDecoder, encode_frame
from .handshake import Handshake, Hello, State
from .messages import Close, Heartbeat, Message, decode_message, encode_message

__all__ = ["Link", "read_frame", "run_handshake"]

log = logging.getLogger("weavek.tcp")

Address = tuple[str, int]


async def read_frame(stream: ByteStream, decoder: FrameDecoder) -> bytes:
    """The next frame off ``stream`` (raises EndOfStream, ProtocolError)."""
    while True:
        frame = decoder.next_frame()
        if frame is not None:
            return frame
        decoder.feed(await stream.receive())


async def run_handshake(
    stream: ByteStream, hs: Handshake, decoder: FrameDecoder, timeout: float
) -> None:
    """Exchange hellos (and confirmations) until ``hs`` is done, within ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        await stream.send(encode_frame(hs.hello(), MAX_HANDSHAKE_FRAME))
        while hs.state is not State.DONE:
            reply = hs.receive(await read_frame(stream, decoder))
            if reply is not None:
                await stream.send(encode_frame(reply, MAX_HANDSHAKE_FRAME))
    decoder.max_size = MAX_FRAME  # the peer is who it says (or no password is in use)


class Link:
    """An established connection to one peer."""

    def __init__(
        self,
        stream: ByteStream,
        decoder: FrameDecoder,
        hs: Handshake,
        addr: Address,
        *,
        heartbeat: float,
        idle_timeout: float,
        queue_size: int = 1024,
    ) -> None:
        assert hs.peer is not None
        self.peer_hello: Hello = hs.peer
        self.peer = hs.peer.name
        self.uid = hs.peer.uid
        self.nickname = hs.peer.nickname
        self.port = hs.peer.port
        self.link_id = hs.link_id
        self.initiator = hs.initiator
        self.addr = addr
        self._stream = stream
        self._decoder = decoder
        self._session = hs.session
        self._heartbeat = heartbeat
        self._idle_timeout = idle_timeout
        self._out_send, self._out_receive = anyio.create_memory_object_stream[bytes](queue_size)
        self._scope = anyio.CancelScope()
        self.closed = False
        self._write_error: Exception | None = None

    def __repr__(self) -> str:
        return f"<Link {self.peer:012x}({self.nickname}) {self.addr[0]}:{self.addr[1]}>"

    def send(self, msg: Message) -> None:
        """Queue ``msg``; a peer too slow to take it loses the connection."""
        if self.closed:
            return
        body = encode_message(msg)
        if len(body) + TAG_SIZE > MAX_FRAME:
            # The kernel's codec keeps messages smaller; refuse rather than break the link.
            log.warning("not sending a message of %d bytes to %s: too large", len(body), self)
            return
        try:
            self._out_send.send_nowait(body)
        except anyio.WouldBlock:
            log.warning("send queue to %s full; closing the connection", self.describe())
            self.abort()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The writer already ended (the peer closed first): the message has nowhere to go,
            # and one dead link must not stop a flood or a refusal from reaching the others.
            self.closed = True

    def close(self, reason: str) -> None:
        """Tell the peer why, then close (as soon as what is queued before is sent)."""
        if self.closed:
            return
        self.send(Close(reason))
        self.closed = True
        self._out_send.close()
        # The writer ends the link once the Close is out; a peer that stopped reading
        # would keep it waiting, so a deadline ends it regardless.
        self._scope.deadline = min(self._scope.deadline, anyio.current_time() + 2.0)

    def abort(self) -> None:
        """Close now, dropping whatever is queued."""
        self.closed = True
        self._scope.cancel()

    def describe(self) -> str:
        """``name(nick) at host:port`` for log lines."""
        return f"{format_peer_name(self.peer)}({self.nickname}) at {self.addr[0]}:{self.addr[1]}"

    async def run(self, on_message: Callable[[Link, Message], Awaitable[None]]) -> None:
        """Read and write until either side closes; raises what ended the connection."""
        error: Exception | None = None
        with self._scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._write, tg.cancel_scope)
                try:
                    await self._read(on_message)
                except Exception as e:  # re-raised below, not wrapped in an ExceptionGroup
                    error = e
                tg.cancel_scope.cancel()
        error = error or self._write_error
        if error is not None:
            raise error

    async def _read(self, on_message: Callable[[Link, Message], Awaitable[None]]) -> None:
        while True:
            with anyio.fail_after(self._idle_timeout):
                frame = await read_frame(self._stream, self._decoder)
            body = self._session.open(frame) if self._session is not None else frame
            msg = decode_message(body)
            if msg is None or isinstance(msg, Heartbeat):
                continue
            if isinstance(msg, Close):
                log.info("%s closed the connection: %s", self.describe(), msg.reason)
                return
            await on_message(self, msg)

    async def _write(self, scope: anyio.CancelScope) -> None:
        heartbeat = encode_message(Heartbeat())
        try:
            async with self._out_receive:
                while True:
                    body = heartbeat
                    with anyio.move_on_after(self._heartbeat):
                        try:
                            body = await self._out_receive.receive()
                        except anyio.EndOfStream:
                            break  # close(): everything queued before the Close is sent
                    if self._session is not None:
                        body = self._session.seal(body)
                    await self._stream.send(encode_frame(body))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as e:
            self._write_error = e
        scope.cancel()
