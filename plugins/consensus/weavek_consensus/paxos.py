"""Single-decree Paxos over gossip: how electors agree, once, on whom the ring is divided among.

This is Weave's ``ipam/paxos`` (reference/weave-ipam.md §3), pure: no I/O,
no clock, no randomness (the caller passes the uid).

**Who is who.** Every peer is a *node*, identified by (peer name, uid); the
uid is drawn afresh at every process start, so a restarted peer is a new node
and never contradicts a promise it has forgotten. A *ballot* (ProposalID) is
(round, proposer name, proposer uid), ordered in that order; round 0 is "no
ballot". Each node keeps a record of *claims* for every node it has heard of
(its own included): the highest ballot it promised, the ballot it last
accepted, and that ballot's value (the peer names, and the ballot that first
chose them: the value's *origin*).

**What is sent, and when.** There are no addressed messages: a node
broadcasts records from its map, and a receiver merges them in
(:meth:`Node.update`: per record, keep the higher promise and the higher
accepted ballot) and then *thinks* (:meth:`Node.think`). The textbook
messages are all changes to a node's own record, seen by others:

* prepare -- a proposer sets its promise to a new ballot above every round it
  has seen (:data:`Event.PROPOSE`: when the ring is first needed, then on
  any retry tick that finds the election stalled, until the ring exists);
* promise -- a node that sees a higher promise than its own copies it
  (:data:`Event.PREPARE`);
* accept-request -- a proposer that sees a quorum of records promising its
  ballot accepts its own ballot, with the value of the highest ballot those
  records accepted, or, if none accepted anything, the names of every node in
  its map (:data:`Event.PROMISES`);
* accepted -- a node that sees its promised ballot accepted copies the
  acceptance (:data:`Event.ACCEPT`).

The strategy has our whole map broadcast when we propose and on retry
ticks, and gossiped periodically; when a vote from a peer changed our own
record, it broadcasts that record alone. Every elector broadcasts its own
votes, so a vote needs to travel only from its voter: resending whole maps
made an election of N electors move N^2 copies of N records, and the whole
maps in ticks and gossip still repair what was lost. *Consensus* is a quorum
of records that accepted the same ballot; only a node that proposed (so has
a quorum) looks for it, builds the ring from the value, and broadcasts the
ring, which ends the election everywhere.

**Why a quorum of floor(N/2)+1 never agrees on two values.** Any two sets of
that size among N voters share a node. A node's promise only rises, and it
only ever accepts the ballot it currently promises, so it never accepts below
a promise. Any copy of a node's record is the node's own record as it was
at some moment, merged with later ones (both fields only rise), so a record
promising ballot b' shows at least what the node had accepted before it
promised b'. A ballot's value is picked once. Now suppose a quorum accepted
ballot b with value v, and take the lowest ballot b' > b given a different
value. Its proposer saw a quorum promise b'; one of them, s, also accepted
b, and did so before promising b' (after, it would have refused b < b'), so
s's record shows an acceptance at b or above. The highest acceptance among
the promisers is then some h with b <= h < b', and h's value is v (h = b, or
b < h < b' and b' was the lowest exception), so b' took v after all. Only v
can ever be agreed. Nothing here depends on how many records a message
carries: receiving part of a map is the same as not having heard of the
rest yet, which is the same as a message lost, and every record it does carry
is still a copy of that node's own record at some moment.

Two departures from Weave, both for safety and neither visible to users:

* Weave counts consensus by value *origin* across ballots. A quorum of
  records whose values share an origin but were accepted in different ballots
  is not a decision: a later ballot can adopt an acceptance that none of
  them saw, and a second ring forms (``tests/test_consensus_paxos.py``
  replays such a trace). We count records that accepted the same ballot.
* Nobody else writes our own record: :meth:`Node.update` skips it, and a
  ballot in our name above our own promise (which we never made) is ignored.

The quorum argument needs at most N voters. A peer restarted mid-election is
a new voter, so restarts during the election can break it (Weave's own model
test turns restarts off for this reason); after the ring exists nothing here
runs again.

Bounds, so a peer's payload cannot grow us without limit: at most
:data:`MAX_NODES` records (our own always fits), and records carrying a value
whose origin we do not know yet are set aside once :data:`MAX_VALUES`
origins are known. Setting a record aside is the same as not having heard of
it yet, which Paxos tolerates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from operator import attrgetter

__all__ = [
    "MAX_NODES",
    "MAX_ROUND",
    "MAX_VALUES",
    "NO_BALLOT",
    "TRANSITIONS",
    "Ballot",
    "Claims",
    "Event",
    "Node",
    "NodeID",
    "Phase",
    "Value",
    "phase_of",
]

Ballot = tuple[int, int, int]
"""A ProposalID: (round, proposer name, proposer uid), compared in that order."""
NodeID = tuple[int, int]
"""(peer name, uid)."""
NO_BALLOT: Ballot = (0, 0, 0)
MAX_NODES = 1024
MAX_VALUES = 16
MAX_ROUND = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Value:
    """What is agreed: the peer names the ring is divided among, and the ballot that chose them."""

    origin: Ballot
    names: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Claims:
    """One node's record: its highest promise, and the ballot (with value) it last accepted."""

    promise: Ballot = NO_BALLOT
    accepted: Ballot = NO_BALLOT
    value: Value | None = None


NO_CLAIMS = Claims()


class Phase(Enum):
    """Where a node's own record stands, given its promise and acceptance (:func:`phase_of`)."""

    IDLE = "idle"
    """Promised nothing yet."""
    PROMISED = "promised"
    """Promised another node's ballot, not (yet) accepted it."""
    ACCEPTED = "accepted"
    """Accepted the other node's ballot it promised."""
    PREPARING = "preparing"
    """Its promise is its own ballot: waiting for a quorum of promises."""
    PROPOSED = "proposed"
    """Accepted its own ballot: the accept-request is out, waiting for a quorum to copy it."""


class Event(Enum):
    """What can move a node's own record, in the order :meth:`Node.think` looks for them."""

    PROPOSE = "propose"
    """Local: start a new ballot above every round seen (prepare)."""
    PREPARE = "prepare"
    """Some record promises a higher ballot than ours: promise it too."""
    PROMISES = "promises"
    """A quorum of records promise our ballot: accept it with the right value."""
    ACCEPT = "accept"
    """Some record accepted the ballot we promised: accept it too."""


P, E = Phase, Event
TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    (P.IDLE, E.PROPOSE): P.PREPARING,
    (P.IDLE, E.PREPARE): P.PROMISED,
    (P.PROMISED, E.PROPOSE): P.PREPARING,
    (P.PROMISED, E.PREPARE): P.PROMISED,
    (P.PROMISED, E.ACCEPT): P.ACCEPTED,
    (P.ACCEPTED, E.PROPOSE): P.PREPARING,
    (P.ACCEPTED, E.PREPARE): P.PROMISED,
    (P.PREPARING, E.PROPOSE): P.PREPARING,
    (P.PREPARING, E.PREPARE): P.PROMISED,
    (P.PREPARING, E.PROMISES): P.PROPOSED,
    (P.PROPOSED, E.PROPOSE): P.PREPARING,
    (P.PROPOSED, E.PREPARE): P.PROMISED,
}
"""(phase, event) -> the phase after it. A pair not listed is ignored in that phase:
promises only count for our own ballot, and an acceptance is copied only of a
ballot promised to someone else, once."""
del P, E


_PROMISE = attrgetter("promise")


def _same_origin(value: Value, ours: Claims | None, mine: Value | None) -> bool:
    """Whether ``value``'s origin is surely known already: the record it replaces, or our own."""
    if ours is not None and ours.value is not None and ours.value.origin == value.origin:
        return True
    return mine is not None and mine.origin == value.origin


def phase_of(claims: Claims, me: NodeID) -> Phase:
    """The phase a record is in, for node ``me``."""
    promise = claims.promise
    if promise[0] == 0:
        return Phase.IDLE
    ours = (promise[1], promise[2]) == me
    if claims.accepted == promise:
        return Phase.PROPOSED if ours else Phase.ACCEPTED
    return Phase.PREPARING if ours else Phase.PROMISED


class Node:
    """One peer's Paxos participant: its map of every node's claims, and the rules above.

    :param name: this peer's name.
    :param uid: a non-zero number drawn at process start (see the module docstring).
    :param quorum: 0 until this node proposes: a passive node accepts, but never
        proposes or looks for consensus.
    """

    def __init__(self, name: int, uid: int, quorum: int = 0) -> None:
        self.id: NodeID = (name, uid)
        self.quorum = quorum
        self.knows: dict[NodeID, Claims] = {}
        self._steps: dict[Event, Callable[[Claims], Claims | None]] = {
            Event.PROPOSE: self._propose,
            Event.PREPARE: self._prepare,
            Event.PROMISES: self._promises,
            Event.ACCEPT: self._accept,
        }

    @property
    def claims(self) -> Claims:
        """Our own record."""
        return self.knows.get(self.id, NO_CLAIMS)

    @property
    def phase(self) -> Phase:
        return phase_of(self.claims, self.id)

    # -- the three operations the strategy uses ------------------------------

    def update(self, received: Mapping[NodeID, Claims]) -> bool:
        """Merge another node's map into ours; True if we learned anything."""
        knows, changed = self.knows, False
        origins: set[Ballot] | None = None  # the values' origins we know, found when needed
        mine = knows.get(self.id, NO_CLAIMS).value
        room = MAX_NODES - len(knows) - (self.id not in knows)
        for nid, theirs in received.items():
            if nid == self.id:
                continue  # our own record is ours to write
            ours = knows.get(nid)
            if ours is None:
                if room <= 0:
                    continue
                new = theirs
            else:
                promise = max(ours.promise, theirs.promise)
                if theirs.accepted > ours.accepted:
                    new = Claims(promise, theirs.accepted, theirs.value)
                else:
                    new = Claims(promise, ours.accepted, ours.value)
                if new == ours:
                    continue
            value = new.value
            if value is not None and not _same_origin(value, ours, mine):
                if origins is None:
                    origins = {c.value.origin for c in knows.values() if c.value is not None}
                if value.origin not in origins:
                    if len(origins) >= MAX_VALUES:
                        continue  # as if not heard of yet
                    origins.add(value.origin)
            room -= ours is None
            knows[nid] = new
            changed = True
        return changed

    def propose(self) -> None:
        """Start a new ballot (prepare); with a quorum of one it is accepted at once."""
        if self.quorum <= 0:
            raise ValueError("a node needs a quorum before it can propose")
        self.fire(Event.PROPOSE)
        if self.quorum == 1:
            self.think()

    def think(self) -> bool:
        """Act on what we know: promise, accept-request, accept. True if our record changed."""
        before = self.claims
        for event in (Event.PREPARE, Event.PROMISES, Event.ACCEPT):
            self.fire(event)
        return self.claims != before

    def consensus(self) -> Value | None:
        """The agreed value, once a quorum of records accepted one ballot; None before.

        A passive node (quorum 0) never answers: it learns the outcome as a ring.
        """
        if self.quorum <= 0:
            return None
        counts: dict[Ballot, int] = {}
        best: Claims | None = None
        for claims in self.knows.values():
            ballot = claims.accepted
            if ballot[0] > 0:
                count = counts[ballot] = counts.get(ballot, 0) + 1
                if count >= self.quorum and (best is None or ballot > best.accepted):
                    best = claims
        return None if best is None else best.value

    # -- the table -----------------------------------------------------------

    def fire(self, event: Event) -> bool:
        """Apply ``event`` to our record if the table admits it now and it applies; True if so."""
        before = self.phase
        after = TRANSITIONS.get((before, event))
        if after is None:
            return False
        new = self._steps[event](self.claims)
        if new is None:
            return False
        self.knows[self.id] = new
        if phase_of(new, self.id) is not after:  # the table and the steps must agree
            raise AssertionError(f"{event} took {before} to {phase_of(new, self.id)}, not {after}")
        return True

    def _propose(self, ours: Claims) -> Claims | None:
        top = max((max(c.promise[0], c.accepted[0]) for c in self.knows.values()), default=0)
        ballot = (min(top + 1, MAX_ROUND), *self.id)
        # Out of rounds (only a peer sending absurd ones gets us here), a ballot
        # that does not outbid our promise would break it: do not propose.
        if ballot <= ours.promise:
            return None
        return Claims(ballot, ours.accepted, ours.value)

    def _prepare(self, ours: Claims) -> Claims | None:
        # A ballot of ours above our own promise was never made by us (our
        # promise follows every proposal we make): someone's garbage, ignored.
        me = self.id
        top = max(map(_PROMISE, self.knows.values()), default=NO_BALLOT)  # in C: most often right
        if (top[1], top[2]) == me:
            top = max(
                (c.promise for c in self.knows.values() if (c.promise[1], c.promise[2]) != me),
                default=NO_BALLOT,
            )
        return Claims(top, ours.accepted, ours.value) if top > ours.promise else None

    def _promises(self, ours: Claims) -> Claims | None:
        if self.quorum <= 0:
            return None
        ballot, count, best = ours.promise, 0, NO_CLAIMS
        for claims in self.knows.values():
            if claims.promise == ballot:
                count += 1
                if claims.accepted > best.accepted:
                    best = claims
        if count < self.quorum:
            return None
        value = best.value
        if value is None:  # nobody among them accepted anything: our pick
            value = Value(ballot, tuple(sorted({name for name, _ in self.knows})))
        return Claims(ballot, ballot, value)

    def _accept(self, ours: Claims) -> Claims | None:
        for claims in self.knows.values():
            if claims.accepted == ours.promise:
                return Claims(ours.promise, claims.accepted, claims.value)
        return None
