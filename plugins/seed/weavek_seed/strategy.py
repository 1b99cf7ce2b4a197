"""The ``seed`` init strategy: the ring is divided among peers named up front.

Weave's ``--ipalloc-init seed=...``. Every peer is launched with the same
list of peer names and divides the range among exactly those peers, so every
peer computes the same ring on its own and can allocate at once. Two peers
given different lists build different rings and refuse each other's, so the
list is sorted and de-duplicated: only the set of names matters, not how it
was typed.

The named peers need not be running, and a peer need not be in the list
itself; it then owns nothing at first and asks the seeds for space.
"""

from __future__ import annotations

from weavek.core.peer import UNKNOWN_PEER, PeerNameError, parse_peer_name
from weavek.core.strategy import Decision, InitArgumentError, InitStrategy

__all__ = ["SeedStrategy", "parse_seeds"]

_USAGE = "--init seed needs a list of peer names, e.g. seed=::1,::2"


def parse_seeds(arg: str | None) -> tuple[int, ...]:
    """Parse ``"::1,::2"`` into sorted, distinct peer names.

    :raises InitArgumentError: when the list is missing or empty, or a name is invalid.
    """
    if arg is None or not arg.strip():
        raise InitArgumentError(_USAGE)
    seeds = set()
    for text in arg.split(","):
        text = text.strip()
        if not text:
            raise InitArgumentError(f"--init seed={arg}: empty peer name in the list")
        try:
            name = parse_peer_name(text)
        except PeerNameError as exc:
            raise InitArgumentError(f"--init seed={arg}: {exc}") from exc
        if name == UNKNOWN_PEER:
            raise InitArgumentError(f"--init seed={arg}: {text!r} is the unknown peer, not a peer")
        seeds.add(name)
    return tuple(sorted(seeds))


class SeedStrategy(InitStrategy):
    """Build the ring at start-up from the peer names after ``--init seed=``.

    :raises InitArgumentError: when the list is missing, empty or invalid.
    """

    name = "seed"

    def __init__(self, arg: str | None, *, me: int, peers_named: int = 0) -> None:
        super().__init__(arg, me=me, peers_named=peers_named)
        self.seeds = parse_seeds(arg)

    def seeds_at_start(self) -> tuple[int, ...]:
        return self.seeds

    def establish(self, now: float) -> Decision:
        # Reached only when the ring was not built at start-up (a peer whose
        # ring was lost): the same seeds rebuild the same ring, which every
        # other peer still accepts.
        return Decision(seeds=self.seeds)
