"""Init strategies for tests, so the kernel's own tests need no init plugin.

:class:`FixedSeeds` is the ``seed`` strategy without argument parsing: every
peer is handed the same list of peer names and divides the universe among
exactly those peers.
"""

from __future__ import annotations

from collections.abc import Iterable

from weavek.core.strategy import Decision, InitStrategy

__all__ = ["FixedSeeds"]


class FixedSeeds(InitStrategy):
    """Divide the ring among ``seeds``, at start-up (default) or when first needed.

    :param seeds: the peer names to divide the universe among (order and
        duplicates do not matter).
    :param me: this peer's name.
    :param at_start: build the ring in :meth:`seeds_at_start`; False defers it
        to :meth:`establish`, which exercises the allocator's deferred path.
    """

    name = "fixed"

    def __init__(self, seeds: Iterable[int], *, me: int, at_start: bool = True) -> None:
        super().__init__(None, me=me)
        self.seeds = tuple(sorted(set(seeds)))
        if not self.seeds:
            raise ValueError("FixedSeeds needs at least one seed")
        self.at_start = at_start

    def seeds_at_start(self) -> tuple[int, ...] | None:
        return self.seeds if self.at_start else None

    def establish(self, now: float) -> Decision:
        return Decision(seeds=self.seeds)
