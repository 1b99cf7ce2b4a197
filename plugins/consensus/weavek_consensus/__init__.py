"""weavek init strategy ``consensus``: electors agree once, with Paxos, on the ring's first owners.

``weavek launch --init consensus=3``: the first allocation anywhere starts an
election; once a quorum of floor(N/2)+1 peers can talk, the range is divided
among the peers the winning proposer knew.
"""

from __future__ import annotations

from .strategy import ConsensusStrategy

__all__ = ["ConsensusStrategy"]
