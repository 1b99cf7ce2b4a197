"""The data plane: a bridge on the host, a veth pair per container, addresses and a route.

Every runtime (netns, docker, containerd) ends up here with a path to the
container's network namespace (``/run/netns/NAME`` or ``/proc/PID/ns/net``):
the host end of the veth pair (named from a hash of the container's ident)
is a port of the bridge, the container end is ``ethwe`` inside the
namespace, with the allocated addresses and a route to the whole allocation
range (Weave's layout). ``expose`` and ``hide`` give the bridge itself
addresses from the range, so the host can talk to its containers.

The bridge and host ends live in the network namespace of the calling
process. Talking to a container's namespace needs a netlink socket opened
inside it: we open the namespace file once, hold the descriptor for the
whole operation (so the kernel keeps the namespace alive while we work), and
make the socket in a short-lived thread that enters the namespace with
``setns(2)``. Only that thread changes namespace, and it ends right after,
so nothing else in the process is affected; pyroute2's own ``netns=`` would
fork a child process per socket instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import socket
import threading
from collections.abc import AsyncIterator, Iterator, Sequence

from pyroute2 import AsyncIPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from weavek.core.address import CIDR, format_address
from weavek.interfaces import ContainerNotFound

__all__ = [
    "attach_netns",
    "attached",
    "detach_netns",
    "ensure_bridge",
    "expose",
    "hide",
    "host_ifname",
    "interface_addresses",
    "remove_veth",
]

_CLONE_NEWNET = 0x40000000
_IFA_F_NODAD = 0x02  # IPv6: usable at once, no duplicate detection (the allocator owns uniqueness)
_RT_SCOPE_UNIVERSE = 0
_NETLINK_ROUTE = 0
_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
# What opening or entering a namespace that is gone looks like: the file or
# process vanished (ENOENT, ESRCH), or the path is no longer a namespace (EINVAL).
_GONE = frozenset({errno.ENOENT, errno.ESRCH, errno.EINVAL})

_libc = ctypes.CDLL(None, use_errno=True)


def host_ifname(ident: str) -> str:
    """The host end of a container's veth pair: ``vwk`` and 10 hex digits of the ident's hash.

    Stable, so a detach after a peer restart finds it, and 13 characters
    (the kernel allows 15).
    """
    return "vwk" + hashlib.blake2b(ident.encode(), digest_size=5).hexdigest()


async def ensure_bridge(bridge: str) -> None:
    """Create ``bridge`` in this process's namespace if it is absent, and set it up. Idempotent."""
    async with AsyncIPRoute() as host:
        await _bridge_index(host, bridge)


async def attach_netns(
    netns: str,
    *,
    ident: str,
    cidrs: Sequence[CIDR],
    bridge: str,
    universe: CIDR | None,
    ifname: str = "ethwe",
) -> None:
    """Connect the namespace at path ``netns`` to ``bridge`` with ``cidrs`` on ``ifname``.

    A second attach of the same container only adds the new addresses.

    :raises ContainerNotFound: the namespace does not exist or vanished while
        we worked; whatever this call created is removed again.
    """
    with _namespace_fd(netns) as fd:
        created: str | None = None
        try:
            async with _inside(fd) as inside:
                index = await _link_index(inside, ifname)
                if index is None:
                    created = host_ifname(ident)
                    await _add_veth(created, ifname, fd, bridge, ident)
                    index = await _link_index(inside, ifname)
                    if index is None:  # the namespace was replaced under us
                        raise ContainerNotFound(f"{netns}: no {ifname} after creating it")
                await _configure(inside, index, cidrs, universe)
            if not _same_namespace(netns, fd):
                raise ContainerNotFound(f"{netns}: the network namespace vanished during attach")
        except BaseException:
            if created is not None:
                with contextlib.suppress(NetlinkError, OSError):
                    await _delete_host_end(created)
            raise


async def detach_netns(
    netns: str, *, ident: str, cidrs: Sequence[CIDR], ifname: str = "ethwe"
) -> None:
    """Remove ``cidrs`` from ``ifname`` in ``netns``, and the veth pair once no address is left.

    A namespace or interface that is already gone is not an error: the host
    end is removed if it is still there.
    """
    try:
        with _namespace_fd(netns) as fd:
            async with _inside(fd) as inside:
                index = await _link_index(inside, ifname)
                if index is not None:
                    keep = await _remove_addresses(inside, index, cidrs)
                    if not keep:
                        # Deleting one end of a veth pair deletes both.
                        with _ignoring(errno.ENODEV, errno.ENOENT):
                            await inside.link("del", index=index)
                    return
    except ContainerNotFound:
        pass
    # No namespace or no interface: the host end may still be there.
    await remove_veth(ident)


async def remove_veth(ident: str) -> None:
    """Delete the host end of ``ident``'s veth pair if it is there, and with it the pair.

    For a container that died while something else keeps its namespace alive.
    """
    await _delete_host_end(host_ifname(ident))


async def expose(bridge: str, cidrs: Sequence[CIDR]) -> None:
    """Give ``bridge`` (created if need be) these addresses, so the host reaches its containers."""
    async with AsyncIPRoute() as host:
        index = await _bridge_index(host, bridge)
        for cidr in cidrs:
            with _ignoring(errno.EEXIST):
                await host.addr("add", index=index, **_addr_args(cidr))


async def hide(bridge: str, cidrs: Sequence[CIDR]) -> None:
    """Take these addresses off ``bridge``; addresses or a bridge already gone are fine."""
    async with AsyncIPRoute() as host:
        index = await _link_index(host, bridge)
        if index is None:
            return
        await _remove_addresses(host, index, cidrs)


async def attached(bridge: str) -> list[str]:
    """The idents of the containers whose veth pairs are on ``bridge`` (from the host ends' alias).

    What a runtime watches again after the peer restarts.
    """
    async with AsyncIPRoute() as host:
        index = await _link_index(host, bridge)
        if index is None:
            return []
        found = []
        async for msg in await host.link("dump"):
            alias = msg.get("ifalias")
            name = msg.get("ifname") or ""
            if msg.get("master") == index and alias and name.startswith("vwk"):
                found.append(alias)
        return found


async def interface_addresses(ipr: AsyncIPRoute, index: int) -> list[CIDR]:
    """The global-scope addresses on interface ``index`` (link-local IPv6 ones do not count)."""
    found = []
    async for msg in await ipr.addr("dump", index=index):
        if msg["scope"] != _RT_SCOPE_UNIVERSE or msg["index"] != index:
            continue
        version = 4 if msg["family"] == socket.AF_INET else 6
        value = int.from_bytes(socket.inet_pton(msg["family"], msg.get("address")), "big")
        found.append(CIDR(value, msg["prefixlen"], version))
    return found


# ---------------------------------------------------------------------------
# Namespaces and sockets


@contextlib.contextmanager
def _namespace_fd(netns: str) -> Iterator[int]:
    """An open descriptor of the namespace at ``netns``; it keeps the namespace alive while held."""
    try:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        if error.errno in _GONE or isinstance(error, FileNotFoundError):
            raise ContainerNotFound(f"{netns}: no such network namespace") from None
        raise
    try:
        yield fd
    finally:
        os.close(fd)


def _same_namespace(netns: str, fd: int) -> bool:
    """Whether the path still names the namespace we hold (it was not deleted or replaced)."""
    try:
        now = os.stat(netns)
    except OSError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def _netlink_socket_in(fd: int) -> socket.socket:
    """A route netlink socket created inside the namespace ``fd`` (by a throwaway thread)."""
    made: list[socket.socket] = []
    failed: list[int] = []

    def enter_and_open() -> None:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            failed.append(ctypes.get_errno())
            return
        made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE))

    worker = threading.Thread(target=enter_and_open, name="weavek-netns-setns")
    worker.start()
    worker.join()
    if failed:
        code = failed[0]
        if code in _GONE:
            raise ContainerNotFound("not a network namespace (any more)")
        raise OSError(code, f"setns: {os.strerror(code)}")
    return made[0]


@contextlib.asynccontextmanager
async def _inside(fd: int) -> AsyncIterator[AsyncIPRoute]:
    """An rtnetlink connection to the namespace ``fd``."""
    sock = _netlink_socket_in(fd)
    async with AsyncIPRoute(fileno=sock.detach()) as ipr:
        yield ipr


@contextlib.contextmanager
def _ignoring(*codes: int) -> Iterator[None]:
    """Swallow netlink errors with these errno codes (the state we wanted is already there)."""
    try:
        yield
    except NetlinkError as error:
        if error.code not in codes:
            raise


# ---------------------------------------------------------------------------
# Links, addresses, routes


async def _link_index(ipr: AsyncIPRoute, name: str) -> int | None:
    found = await ipr.link_lookup(ifname=name)
    return found[0] if found else None


async def _bridge_index(host: AsyncIPRoute, bridge: str) -> int:
    """The bridge's index, creating it and setting it up when needed."""
    index = await _link_index(host, bridge)
    if index is None:
        with _ignoring(errno.EEXIST):  # another attach made it meanwhile
            await host.link("add", ifname=bridge, kind="bridge")
        index = await _link_index(host, bridge)
        if index is None:
            raise OSError(errno.ENODEV, f"bridge {bridge} vanished right after creation")
    await host.link("set", index=index, state="up")
    return index


async def _add_veth(host_end: str, ifname: str, fd: int, bridge: str, ident: str) -> None:
    """A veth pair: ``host_end`` on ``bridge`` here, ``ifname`` straight inside namespace ``fd``.

    The host end's alias is the ident, so :func:`attached` can list who is attached.
    """
    async with AsyncIPRoute() as host:
        bridge_index = await _bridge_index(host, bridge)
        stale = await _link_index(host, host_end)
        if stale is not None:  # left by an attach that died half-way
            with _ignoring(errno.ENODEV):
                await host.link("del", index=stale)
        await host.link(
            "add", ifname=host_end, kind="veth", peer={"ifname": ifname, "net_ns_fd": fd}
        )
        index = await _link_index(host, host_end)
        if index is None:
            raise OSError(errno.ENODEV, f"{host_end} vanished right after creation")
        await host.link("set", index=index, master=bridge_index, state="up", ifalias=ident)


async def _delete_host_end(name: str) -> None:
    async with AsyncIPRoute() as host:
        index = await _link_index(host, name)
        if index is not None:
            with _ignoring(errno.ENODEV):
                await host.link("del", index=index)


async def _configure(
    inside: AsyncIPRoute, index: int, cidrs: Sequence[CIDR], universe: CIDR | None
) -> None:
    """Addresses, link up, then the route to the range (a route needs the link up)."""
    for cidr in cidrs:
        with _ignoring(errno.EEXIST):
            await inside.addr("add", index=index, **_addr_args(cidr))
    await inside.link("set", index=index, state="up")
    if universe is not None:
        # EEXIST: the subnet is the whole range, so the address's own route covers it.
        with _ignoring(errno.EEXIST):
            await inside.route(
                "add",
                dst=format_address(universe.start, universe.version),
                dst_len=universe.prefix,
                oif=index,
                family=_FAMILY[universe.version],
            )


async def _remove_addresses(ipr: AsyncIPRoute, index: int, cidrs: Sequence[CIDR]) -> list[CIDR]:
    """Take ``cidrs`` off interface ``index``, matched by address alone; the addresses left."""
    before = await interface_addresses(ipr, index)
    gone = {(cidr.addr, cidr.version) for cidr in cidrs}
    keep = [c for c in before if (c.addr, c.version) not in gone]
    for cidr in before:
        if (cidr.addr, cidr.version) in gone:  # with the prefix the interface has
            with _ignoring(errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV):
                await ipr.addr("del", index=index, **_addr_args(cidr))
    # Removing an IPv4 primary address takes its subnet's secondaries with it
    # (promote_secondaries is off by default): put those back.
    after = await interface_addresses(ipr, index)
    for cidr in keep:
        if cidr not in after:
            with _ignoring(errno.EEXIST):
                await ipr.addr("add", index=index, **_addr_args(cidr))
    return keep


def _addr_args(cidr: CIDR) -> dict[str, object]:
    args: dict[str, object] = {
        "address": cidr.address_text(),
        "prefixlen": cidr.prefix,
        "family": _FAMILY[cidr.version],
    }
    if cidr.version == 6:
        args["flags"] = _IFA_F_NODAD
    return args
