"""A byte relay from a Unix socket to a TCP address, run inside a test host's network namespace.

    ip netns exec NS python relay.py SOCKET_PATH HOST PORT

Unix sockets live in the file system, not in a network namespace, so the test
process (in the root namespace) talks to a peer's HTTP API on the namespace's
own ``127.0.0.1`` through this relay: no packet ever leaves the loopback of
either namespace. Each accepted connection gets its own TCP connection; when
either side closes, both are closed, so a client that gives up is seen by the
peer as a disconnect (which cancels a waiting request, as with a direct
connection). Prints ``ready`` once it listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()


async def _serve(
    host: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection(host, port)
    except OSError:
        writer.close()
        return
    tasks = [
        asyncio.create_task(_pipe(reader, up_writer)),
        asyncio.create_task(_pipe(up_reader, writer)),
    ]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    for w in (writer, up_writer):
        with contextlib.suppress(OSError):
            w.close()


async def main(path: str, host: str, port: int) -> None:
    server = await asyncio.start_unix_server(
        lambda r, w: _serve(host, port, r, w), path=path, backlog=512
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
