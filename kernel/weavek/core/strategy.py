"""Init strategies: how peers agree on the seeds the ring is first divided among.

A ring is created once, by dividing the universe among a list of peers (the
*seeds*). Who decides that list, and when, is the init strategy's job, and the
strategies are plugins (``seed``, ``consensus``, ``observer``). They are pure
policy objects, like the allocator that calls them: no I/O, no clocks of their
own; the allocator feeds them what they need and acts on their
:class:`Decision`.

The allocator drives a strategy like this:

* At start, with no persisted ring, :meth:`InitStrategy.seeds_at_start` may
  return seeds: the ring is built at once with no network at all (``seed``).
* Otherwise the ring is *deferred* until something needs it (an allocation, a
  claim inside the range, a prime, or a ring request from a peer). Then
  :meth:`~InitStrategy.establish` is called once; while waiting, every retry
  tick calls :meth:`~InitStrategy.tick`, and every peer state that carries
  election data (and no ring) is passed to :meth:`~InitStrategy.receive`.
* A decision with ``seeds`` builds the ring; ``broadcast`` sends our state
  (which includes :meth:`~InitStrategy.payload`) to every peer.
* As soon as a ring exists -- built here or merged from a peer -- the
  allocator calls :meth:`~InitStrategy.ring_formed` and never asks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["NO_DECISION", "Decision", "InitArgumentError", "InitStrategy"]


class InitArgumentError(ValueError):
    """The argument after ``--init NAME=`` is not valid for that strategy."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the allocator should do after asking a strategy."""

    seeds: tuple[int, ...] | None = None
    """Build the ring now, divided among these peers."""
    broadcast: bool = False
    """Broadcast our state (with the strategy's payload) to every reachable peer."""


NO_DECISION = Decision()


class InitStrategy:
    """Base class of init strategies; plugins subclass it and set :attr:`name`.

    :param arg: the text after ``=`` in ``--init NAME=ARG``, or None.
    :param me: this peer's name.
    :param peers_named: how many peers were named on the command line.
    :raises InitArgumentError: when ``arg`` is not valid for the strategy.
    """

    name: ClassVar[str] = ""
    """What a user types after ``--init``."""
    elector: ClassVar[bool] = True
    """False for strategies that never vote and never start an election on a peer's behalf."""

    def __init__(self, arg: str | None, *, me: int, peers_named: int = 0) -> None:
        self.arg = arg
        self.me = me
        self.peers_named = peers_named

    def seeds_at_start(self) -> tuple[int, ...] | None:
        """Seeds to build the ring from at start-up, without any network; None to defer."""
        return None

    def establish(self, now: float) -> Decision:
        """The ring is needed now: start agreeing on it."""
        return Decision(broadcast=True)

    def receive(self, sender: int, payload: Any) -> Decision:
        """A peer without a ring sent its election state ``payload``."""
        return NO_DECISION

    def tick(self, now: float) -> Decision:
        """Called on every retry tick while we wait for the ring."""
        return NO_DECISION

    def payload(self) -> Any:
        """Our election state, gossiped while we have no ring; None when we have none."""
        return None

    def ring_formed(self) -> None:
        """A ring exists now; forget any election state."""

    def status(self, waiting: bool) -> str:
        """How the wait for a ring reads in ``weavek status``.

        ``waiting`` is True once :meth:`establish` has been called.
        """
        return "priming" if waiting else "idle"

    def report(self) -> dict[str, Any] | None:
        """The election part of ``/report`` (Weave's ``Paxos`` object), or None."""
        return None
