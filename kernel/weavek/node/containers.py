"""Attach, detach, expose and hide: allocator requests joined to a runtime's plumbing.

These are Weave's ``weave attach|detach|expose|hide`` (reference §4.7), done
by the peer itself so that an address is never left allocated for a
container that did not get it:

* **attach** CONTAINER with targets -- ``net:default`` (the default subnet),
  ``net:CIDR`` (a subnet), ``ip:CIDR`` (a claim; a bare CIDR too), none meaning
  ``net:default`` -- resolves the container with the active runtimes (the
  first that knows it, or the one named), obtains each address under the
  runtime's ident as a container (its death releases them), then has the
  runtime plumb them. If the container is unknown nothing is allocated; if
  it vanishes or the plumbing fails, the addresses this call obtained are
  released before the error is returned.
* **detach** takes the container's addresses (all, or those the targets
  select) off its interface, then releases them.
* **expose** and **hide** do the same for the host's bridge, under the ident
  ``weave:expose``, which is not a container.

Calls for one ident run one at a time, so a failing attach never releases
an address a concurrent attach of the same container just handed out.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import anyio

from weavek.core import events as ev
from weavek.core.address import CIDR, AddressError, parse_cidr
from weavek.core.effects import Failed
from weavek.interfaces import ContainerNotFound, Runtime, RuntimeUnsupported

if TYPE_CHECKING:
    from .peer import Peer

__all__ = [
    "EXPOSE_IDENT",
    "Attached",
    "ContainerError",
    "Containers",
    "Target",
    "parse_targets",
]

EXPOSE_IDENT = "weave:expose"
"""The ident of the host's own addresses on the bridge (Weave's)."""

MIN_SUBNET = 4
"""Fewest addresses a subnet to allocate in may have (Weave's rule, as ``POST /ip``)."""

log = logging.getLogger("weavek")

Abandon = Callable[[], Awaitable[object]]
"""Returns when the client behind a request went away (see :meth:`Peer.request`)."""


class ContainerError(Exception):
    """An attach, detach, expose or hide that did not happen: one line, and an HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Target:
    """One address request: allocate in a subnet (``net``; None: the default) or claim (``ip``)."""

    kind: str
    cidr: CIDR | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.cidr if self.cidr is not None else 'default'}"


@dataclass(frozen=True, slots=True)
class Attached:
    """What an operation did: whose addresses, through which runtime, and which addresses."""

    container: str
    ident: str
    runtime: str
    cidrs: tuple[CIDR, ...]


def parse_targets(texts: Sequence[str]) -> list[Target]:
    """``net:default``, ``net:CIDR``, ``ip:CIDR`` or a bare CIDR; none at all is ``net:default``.

    :raises ContainerError: naming the first target that is not understood.
    """
    targets = [_target(text) for text in texts]
    return targets or [Target("net")]


def _target(text: str) -> Target:
    kind, sep, rest = text.strip().partition(":")
    if sep and kind == "net":
        if rest == "default":
            return Target("net")
        cidr = _cidr(rest, text)
        if not cidr.is_aligned:
            raise ContainerError(
                f"invalid target {text!r}: {cidr} is not aligned (did you mean {cidr.network()}?)"
            )
        if cidr.size < MIN_SUBNET:
            raise ContainerError(f"invalid target {text!r}: fewer than {MIN_SUBNET} addresses")
        return Target("net", cidr)
    if sep and kind == "ip":
        return Target("ip", _cidr(rest, text))
    if "/" in text and not (sep and kind.isalpha()):  # a bare CIDR (IPv6 has colons too)
        return Target("ip", _cidr(text, text))
    raise ContainerError(
        f"invalid target {text!r}: expected net:default, net:CIDR, ip:CIDR or CIDR"
    )


def _cidr(text: str, target: str) -> CIDR:
    if "/" not in text:
        raise ContainerError(f"invalid target {target!r}: {text!r} has no prefix length")
    try:
        return parse_cidr(text)
    except AddressError as exc:
        raise ContainerError(f"invalid target {target!r}: {exc}") from None


class Containers:
    """The attach/detach/expose/hide operations of one running peer."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self._locks: dict[str, tuple[anyio.Lock, int]] = {}
        # Containers attached (by this run of the peer or, still plumbed, by the last):
        # only those are re-attached when they restart. One that got addresses through
        # /ip alone (another tool does its networking) must not find a weavek interface
        # in it after a restart.
        self._attached: set[str] = set()

    # -- operations --------------------------------------------------------

    async def attach(
        self,
        container: str,
        targets: Sequence[Target],
        runtime: str | None = None,
        abandon: Abandon | None = None,
    ) -> Attached:
        """Give ``container`` an address per target on an interface of its own.

        :param abandon: returns when the client went away; an allocation still
            waiting (for space, for the ring) is then cancelled.
        """
        chosen, ident = await self._resolve(container, runtime)
        async with self._serial(ident):
            cidrs = await self._obtain(ident, targets, abandon, is_container=True)
            try:
                await chosen.attach(ident, cidrs.all)
            except BaseException as exc:
                await self._undo(ident, cidrs.new)
                released = _listing(cidrs.new)
                if isinstance(exc, ContainerNotFound):
                    raise ContainerError(
                        f"container {container} vanished during attach ({exc}); "
                        f"released {released}",
                        404,
                    ) from None
                if isinstance(exc, Exception):
                    log.exception("attaching %s (%s)", container, ident)
                    raise ContainerError(
                        f"attaching {container} failed: {_one_line(exc)}; released {released}",
                        500,
                    ) from None
                raise
            self._attached.add(ident)
        return Attached(container, ident, chosen.name, tuple(cidrs.all))

    async def detach(
        self, container: str, targets: Sequence[Target] = (), runtime: str | None = None
    ) -> Attached:
        """Take ``container``'s addresses (all, or the targets') off it, then release them.

        A container that no runtime knows any more but whose ident still holds
        addresses (``pid:123`` after the process died) is released without
        touching the data plane.
        """
        try:
            chosen: Runtime | None
            chosen, ident = await self._resolve(container, runtime)
        except ContainerError as exc:
            if exc.status != 404 or not await self._addresses(container):
                raise
            chosen, ident = None, container
        async with self._serial(ident):
            cidrs = await self._selected(ident, targets)
            if chosen is not None:
                try:
                    await chosen.detach(ident, cidrs)
                except ContainerNotFound:
                    pass  # gone with its interface
                except Exception as exc:
                    log.exception("detaching %s (%s)", container, ident)
                    raise ContainerError(
                        f"detaching {container} failed: {_one_line(exc)}", 500
                    ) from None
            await self._release(ident, cidrs)
            if not await self._addresses(ident):
                self._attached.discard(ident)
        return Attached(container, ident, chosen.name if chosen else "", tuple(cidrs))

    async def expose(
        self,
        targets: Sequence[Target],
        runtime: str | None = None,
        abandon: Abandon | None = None,
    ) -> Attached:
        """Give the host's bridge an address per target (``weave:expose``, not a container)."""
        async with self._serial(EXPOSE_IDENT):
            cidrs = await self._obtain(EXPOSE_IDENT, targets, abandon, is_container=False)
            try:
                used = await self._on_bridge(runtime, "expose", cidrs.all)
            except BaseException:
                await self._undo(EXPOSE_IDENT, cidrs.new)
                raise
        return Attached("host", EXPOSE_IDENT, used, tuple(cidrs.all))

    async def hide(self, targets: Sequence[Target] = (), runtime: str | None = None) -> Attached:
        """Take the bridge's addresses (all, or the targets') off it, then release them."""
        async with self._serial(EXPOSE_IDENT):
            cidrs = await self._selected(EXPOSE_IDENT, targets)
            used = await self._on_bridge(runtime, "hide", cidrs)
            await self._release(EXPOSE_IDENT, cidrs)
        return Attached("host", EXPOSE_IDENT, used, tuple(cidrs))

    async def reattach(self, runtime: Runtime, ident: str) -> None:
        """Plumb the addresses ``ident`` still holds into it again, if it was attached.

        For a container that started again: its addresses survived its death
        (the grace period), its interface did not. One attached already only
        has its addresses confirmed (a runtime's attach adds what is missing).
        Only containers attached since this peer started, or still on the
        bridge when it started (:meth:`adopt`), are re-attached.
        """
        if ident not in self._attached:
            return
        async with self._serial(ident):
            cidrs = await self._selected(ident, ())
            if not cidrs:
                return
            try:
                await runtime.attach(ident, cidrs)
            except ContainerNotFound:
                return  # gone again; its death releases it
            except Exception:
                log.exception("re-attaching %s %s after its restart", runtime.name, ident)
                return
        log.info("Re-attached %s %s after its restart: %s", runtime.name, ident, _listing(cidrs))

    def adopt(self, idents: frozenset[str]) -> None:
        """Containers a previous run of the peer attached: re-attach them too on restart."""
        self._attached |= idents

    def forget(self, ident: str) -> None:
        """A container is gone for good: it will not be re-attached."""
        self._attached.discard(ident)

    # -- runtimes ----------------------------------------------------------

    def _candidates(self, runtime: str | None) -> tuple[Runtime, ...]:
        active = self.peer.runtimes
        if not active:
            raise ContainerError(
                "no container runtime is active: launch the peer with --runtime NAME"
            )
        if runtime is None:
            return active
        for candidate in active:
            if candidate.name == runtime:
                return (candidate,)
        names = ", ".join(r.name for r in active)
        raise ContainerError(f"runtime {runtime!r} is not active on this peer (active: {names})")

    async def _resolve(self, container: str, runtime: str | None) -> tuple[Runtime, str]:
        candidates = self._candidates(runtime)
        for candidate in candidates:
            try:
                ident = await candidate.resolve(container)
            except ContainerNotFound as exc:
                raise ContainerError(f"container {container}: {exc}", 404) from None
            except Exception as exc:
                problem = candidate.health() or _one_line(exc)
                raise ContainerError(
                    f"runtime {candidate.name} cannot look up {container}: {problem}", 503
                ) from None
            if ident is not None:
                return candidate, ident
        names = " or ".join(r.name for r in candidates)
        raise ContainerError(f"no container {container!r} known to runtime {names}", 404)

    async def _on_bridge(self, runtime: str | None, verb: str, cidrs: Sequence[CIDR]) -> str:
        """Run ``expose``/``hide`` on the first runtime that offers it; return its name."""
        reasons = []
        for candidate in self._candidates(runtime):
            try:
                await getattr(candidate, verb)(cidrs)
            except RuntimeUnsupported as exc:
                reasons.append(str(exc))
                continue
            except Exception as exc:
                log.exception("%s on runtime %s", verb, candidate.name)
                raise ContainerError(f"{verb} failed: {_one_line(exc)}", 500) from None
            return candidate.name
        raise ContainerError("; ".join(reasons))

    # -- the allocator -----------------------------------------------------

    async def _obtain(
        self,
        ident: str,
        targets: Sequence[Target],
        abandon: Abandon | None,
        *,
        is_container: bool,
    ) -> _Obtained:
        """An address per target; on any failure the ones newly obtained are released."""
        held = set(await self._addresses(ident))
        got = _Obtained()
        try:
            for target in targets:
                got.add(await self._one(ident, target, abandon, is_container), held)
        except BaseException:
            await self._undo(ident, got.new)
            raise
        return got

    async def _one(
        self, ident: str, target: Target, abandon: Abandon | None, is_container: bool
    ) -> CIDR:
        if target.kind == "ip":
            cidr = target.cidr
            assert cidr is not None
            result = await self.peer.request(
                lambda t: ev.ClaimRequested(t, ident, cidr, is_container), abandon
            )
            if result is None:
                return cidr
        else:
            subnet = target.cidr
            result = await self.peer.request(
                lambda t: ev.AllocateRequested(t, ident, subnet, is_container), abandon
            )
            if isinstance(result, CIDR):
                return result
        if isinstance(result, Failed):
            raise ContainerError(f"{target}: {result.message}", 400)
        raise ContainerError(f"{target}: unexpected answer from the allocator: {result!r}", 500)

    async def _addresses(self, ident: str) -> tuple[int, ...]:
        return await self.peer.query(lambda alloc: alloc.ledger.addresses(ident))

    async def _selected(self, ident: str, targets: Sequence[Target]) -> list[CIDR]:
        """The ident's addresses that the targets select (all without targets), as allocated."""
        config = self.peer.config
        default = config.default_subnet or config.universe
        held = await self.peer.query(
            lambda alloc: [alloc.cidr_of(addr) for addr in alloc.ledger.addresses(ident)]
        )
        if not targets:
            return held
        return [c for c in held if any(_selects(t, c.addr, default) for t in targets)]

    async def _release(self, ident: str, cidrs: Sequence[CIDR]) -> None:
        for cidr in cidrs:
            # Failed: already released (a concurrent detach, or the container's death).
            await self.peer.request(partial(_free, ident=ident, addr=cidr.addr))

    async def _undo(self, ident: str, cidrs: Sequence[CIDR]) -> None:
        """Release what a failed call obtained, even while the call is being cancelled."""
        with anyio.CancelScope(shield=True):
            try:
                await self._release(ident, cidrs)
            except Exception:  # the peer is stopping: nothing more to do
                log.exception("releasing %s after a failed attach", ident)

    @asynccontextmanager
    async def _serial(self, ident: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(ident, (None, 0))
        if lock is None:
            lock = anyio.Lock()
        self._locks[ident] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[ident]
            if users == 1:
                del self._locks[ident]
            else:
                self._locks[ident] = (lock, users - 1)


class _Obtained:
    """The addresses of one call, and which of them the call itself created."""

    def __init__(self) -> None:
        self.all: list[CIDR] = []
        self.new: list[CIDR] = []

    def add(self, cidr: CIDR, held: set[int]) -> None:
        self.all.append(cidr)
        if cidr.addr not in held:
            self.new.append(cidr)
            held.add(cidr.addr)


def _free(token: object, *, ident: str, addr: int) -> ev.Event:
    return ev.FreeRequested(token, ident, addr)


def _selects(target: Target, addr: int, default: CIDR) -> bool:
    if target.kind == "ip":
        return target.cidr is not None and target.cidr.addr == addr
    lo, hi = (target.cidr or default).host_range
    return lo <= addr < hi


def _listing(cidrs: Sequence[CIDR]) -> str:
    return " ".join(str(c) for c in cidrs) or "nothing"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
