"""The ``observer`` init strategy: a peer that never votes, and waits to be given the ring.

Weave's ``--ipalloc-init observer``. An observer takes no part in the
election of the ring's first owners and never counts towards its quorum, so
it can join a cluster of any size without anyone adjusting a peer count.
When it first needs the ring (an allocation, a claim, a prime) it broadcasts
a *ring request* -- its state with no ring and no election data -- and
repeats it on every retry tick until the ring arrives:

* a peer that has a ring answers with it;
* an elector without one starts the election on the observer's behalf.

A cluster of observers alone therefore never gets a ring.
"""

from __future__ import annotations

from typing import Any

from weavek.core.strategy import NO_DECISION, Decision, InitArgumentError, InitStrategy

__all__ = ["ObserverStrategy"]


class ObserverStrategy(InitStrategy):
    """Never vote; ask for the ring when it is needed, until someone sends it.

    :raises InitArgumentError: when given an argument (``--init observer`` takes none).
    """

    name = "observer"
    elector = False

    def __init__(self, arg: str | None, *, me: int, peers_named: int = 0) -> None:
        super().__init__(arg, me=me, peers_named=peers_named)
        if arg is not None:
            raise InitArgumentError(f"--init observer={arg}: observer takes no argument")
        self.awaiting = False

    def establish(self, now: float) -> Decision:
        self.awaiting = True
        return Decision(broadcast=True)

    def tick(self, now: float) -> Decision:
        # The first request may have been lost, or reached only peers that
        # could neither answer nor vote yet: ask again.
        return Decision(broadcast=True) if self.awaiting else NO_DECISION

    def receive(self, sender: int, payload: Any) -> Decision:
        return NO_DECISION  # other peers' votes are not ours to count

    def ring_formed(self) -> None:
        self.awaiting = False

    def status(self, waiting: bool) -> str:
        return "priming" if waiting else "idle"

    def report(self) -> dict[str, Any] | None:
        # Weave reports a waiting observer as a Paxos participant that is not an elector.
        if not self.awaiting:
            return None
        return {"Elector": False, "KnownNodes": 0, "Quorum": 0}
