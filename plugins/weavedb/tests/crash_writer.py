"""Writes to a weavedb file until killed, printing each change once apply has returned.

Run by ``test_crash.py`` as ``python crash_writer.py PATH ROUND``. Output:
``ready N`` after load (N idents loaded); then for each batch, before apply,
``batch K`` and one line per effect (``+ IDENT HOST``, ``- IDENT HOST``,
``ring R``), and after apply returned (the batch is durable) ``ok K``.
"""

from __future__ import annotations

import random
import sys

import anyio

from weavek.core.effects import Allocated, Effect, Released, SaveRing
from weavek.testing.store_contract import PEER_A, PEER_B, make_ring, v4
from weavek_weavedb import WeavedbStore


async def main(path: str, round_: int) -> None:
    rng = random.Random(round_)
    async with WeavedbStore(path) as store:
        snap = await store.load()
        print("ready", 0 if snap is None else len(snap.owned), flush=True)
        held: list[tuple[str, int]] = []
        i = 0
        while True:
            batch: list[Effect] = []
            for _ in range(rng.choice((1, 1, 2, 3, 8, 32))):
                i += 1
                # Addresses unique across rounds: 20,000 a round inside the /12.
                batch.append(Allocated(f"r{round_}-{i}", v4(round_ * 20_000 + i), True))
            if held and rng.random() < 0.3:
                ident, host = held.pop(rng.randrange(len(held)))
                batch.append(Released(ident, v4(host)))
            if rng.random() < 0.05:
                batch.append(SaveRing(make_ring([PEER_A, PEER_B, 1000 + i]), PEER_A))
            # The intent first, then the acknowledgement once apply returned: the test knows
            # which batch was in flight at the kill, and checks it landed whole or not at all.
            say([f"batch {i}", *map(describe, batch)])
            await store.apply(batch)
            say([f"ok {i}"])
            held += [(e.ident, e.cidr.addr - v4(0).addr) for e in batch if isinstance(e, Allocated)]


def describe(effect: Effect) -> str:
    if isinstance(effect, Allocated):
        return f"+ {effect.ident} {effect.cidr.addr - v4(0).addr}"
    if isinstance(effect, Released):
        return f"- {effect.ident} {effect.cidr.addr - v4(0).addr}"
    assert isinstance(effect, SaveRing)
    return f"ring {effect.ring.seeds[0] - 1000}"


def say(lines: list[str]) -> None:
    # One write of whole lines (well under PIPE_BUF): the test never reads half a batch.
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]))
