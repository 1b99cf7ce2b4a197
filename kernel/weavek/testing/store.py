"""An in-memory store: what a peer persisted, kept across a simulated crash.

A real persistence plugin carries out the storage effects an allocator
returns; :class:`MemoryStore` does the same in a dict, and hands back the
:class:`~weavek.core.snapshot.Snapshot` a restarted allocator starts from.
The ring is kept as bytes written by :func:`weavek.core.codec.encode_ring`,
so every save and every restart also exercises the codec.
"""

from __future__ import annotations

from collections.abc import Sequence

from weavek.core import codec
from weavek.core.address import CIDR
from weavek.core.effects import Allocated, ClearStore, Effect, Released, SaveRing
from weavek.core.snapshot import Holding, Snapshot
from weavek.interfaces import Store

__all__ = ["STORAGE_EFFECTS", "AsyncMemoryStore", "MemoryStore"]

STORAGE_EFFECTS = (SaveRing, Allocated, Released, ClearStore)
"""The effect types a store carries out; the rest are for the network and the caller."""


class MemoryStore:
    """One peer's persisted state: its name, its encoded ring and what its idents hold.

    :param peer: the peer name the data belongs to (a store remembers it, as
        Weave's ``peername`` key does, so a restart under another name is noticed).
    """

    def __init__(self, peer: int) -> None:
        self.peer = peer
        self.ring_bytes: bytes | None = None
        self.owned: dict[str, tuple[list[CIDR], bool]] = {}
        self.saves = 0
        self.clears = 0

    def apply(self, effect: Effect) -> bool:
        """Carry out ``effect`` if it is a storage effect; True if it was one."""
        if isinstance(effect, SaveRing):
            self.ring_bytes = codec.encode_ring(effect.ring)
            self.saves += 1
        elif isinstance(effect, Allocated):
            cidrs, _ = self.owned.get(effect.ident, ([], False))
            if all(c.addr != effect.cidr.addr for c in cidrs):
                cidrs.append(effect.cidr)
            self.owned[effect.ident] = (cidrs, effect.is_container)
        elif isinstance(effect, Released):
            held = self.owned.get(effect.ident)
            if held is not None:
                rest = [c for c in held[0] if c.addr != effect.cidr.addr]
                if rest:
                    self.owned[effect.ident] = (rest, held[1])
                else:
                    del self.owned[effect.ident]
        elif isinstance(effect, ClearStore):
            self.ring_bytes = None
            self.owned.clear()
            self.clears += 1
        else:
            return False
        return True

    def addresses(self) -> dict[int, list[str]]:
        """Address -> the idents persisted as holding it (more than one is a bug)."""
        out: dict[int, list[str]] = {}
        for ident, (cidrs, _) in self.owned.items():
            for cidr in cidrs:
                out.setdefault(cidr.addr, []).append(ident)
        return out

    def snapshot(self) -> Snapshot | None:
        """What a restarted peer loads; None when nothing was ever persisted."""
        if self.ring_bytes is None and not self.owned:
            return None
        ring = codec.decode_ring(self.ring_bytes) if self.ring_bytes is not None else None
        owned = {
            ident: Holding(tuple(cidrs), is_container)
            for ident, (cidrs, is_container) in self.owned.items()
        }
        return Snapshot(self.peer, ring, owned)


class AsyncMemoryStore(Store):
    """A :class:`MemoryStore` behind the async :class:`~weavek.interfaces.Store` interface.

    Several instances over one ``backing`` store are restarts of one peer,
    which is how :class:`~weavek.testing.store_contract.StoreContract` tests it.
    """

    name = "memory"

    def __init__(self, arg: str | None = None, *, backing: MemoryStore | None = None) -> None:
        super().__init__(arg)
        self.backing = MemoryStore(0) if backing is None else backing

    async def load(self) -> Snapshot | None:
        return self.backing.snapshot()

    async def apply(self, effects: Sequence[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, SaveRing):
                # The name saved with the ring is the one a restart must compare against.
                self.backing.peer = effect.peer
            self.backing.apply(effect)
