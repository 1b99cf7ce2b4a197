"""``weavek launch``: check every flag, then run a peer here or in the background.

Everything is validated before anything starts -- addresses, the range and
default subnet (Weave's rules: aligned, at least four addresses, overlapping),
the peer name, and that a plugin of every name typed is installed -- so a
typo is one line and exit 2, not a peer that dies in its log.

``--foreground`` runs the peer in this process until SIGTERM or SIGINT. Without
it, launch starts ``python -m weavek launch --foreground`` with the same
settings as a detached process (see :mod:`weavek.cli._daemon`) and returns
once the peer answers on ``--http-addr``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Annotated, Final

import pluggy
import typer

from weavek.core.address import CIDR, AddressError, parse_cidr
from weavek.core.peer import PeerNameError, format_peer_name, parse_peer_name
from weavek.core.strategy import InitArgumentError
from weavek.node.config import DEFAULT_BRIDGE, DEFAULT_RANGE, PeerConfig
from weavek.plugins import UnknownPluginError, make_plugin_manager, parse_plugin_arg, resolve

from . import _daemon
from ._client import CommandError, PeerClient
from ._options import (
    DEFAULT_HTTP_ADDR,
    DEFAULT_LISTEN_ADDR,
    DEFAULT_PEER_PORT,
    HostPortError,
    HttpAddr,
    format_hostport,
    parse_hostport,
)

__all__ = ["ENV_PASSWORD", "launch"]

ENV_PASSWORD: Final = "WEAVEK_PASSWORD"
DEFAULT_GRACE_PERIOD: Final = PeerConfig.grace_period


def launch(
    peers: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PEER",
            help=f"Peers to connect to, HOST[:PORT] (port default: {DEFAULT_PEER_PORT}; "
            "default: none).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="Our peer name, like 01:23:45:67:89:ab or ::1 "
            "(default: the persisted name, else one derived from this machine).",
            show_default=False,
        ),
    ] = None,
    nickname: Annotated[
        str | None,
        typer.Option(
            help="A name for humans in status output (default: the host name).", show_default=False
        ),
    ] = None,
    init: Annotated[
        str,
        typer.Option(
            metavar="NAME[=ARG]",
            help="Init strategy plugin, NAME[=ARG]: consensus[=N], seed=PEER,PEER..., observer.",
        ),
    ] = "consensus",
    ipalloc_range: Annotated[
        str,
        typer.Option(
            "--ipalloc-range", metavar="CIDR", help="The range all peers share (IPv4 or IPv6)."
        ),
    ] = DEFAULT_RANGE,
    ipalloc_default_subnet: Annotated[
        str | None,
        typer.Option(
            "--ipalloc-default-subnet",
            metavar="CIDR",
            help="Where allocations without a subnet go (default: the whole range).",
            show_default=False,
        ),
    ] = None,
    persist: Annotated[
        str,
        typer.Option(
            metavar="NAME[=ARG]", help="Persistence plugin, NAME[=ARG], e.g. weavedb=/path/to/file."
        ),
    ] = "weavedb",
    transport: Annotated[
        str,
        typer.Option(
            metavar="NAME[=ARG]", help="Transport plugin, NAME[=ARG], that peers talk over."
        ),
    ] = "tcp",
    runtime: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME[=ARG]",
            help="Container runtime plugin, NAME[=ARG]; repeat for several (default: none).",
            show_default=False,
        ),
    ] = None,
    bridge: Annotated[
        str,
        typer.Option(
            metavar="NAME", help="The host bridge runtimes attach containers to (created on use)."
        ),
    ] = DEFAULT_BRIDGE,
    grace_period: Annotated[
        float,
        typer.Option(
            "--grace-period",
            metavar="SECONDS",
            min=0.0,
            help="How long a dead container keeps its addresses, in case it restarts.",
        ),
    ] = DEFAULT_GRACE_PERIOD,
    listen: Annotated[
        str, typer.Option(metavar="HOST:PORT", help="Where the transport listens for peers.")
    ] = DEFAULT_LISTEN_ADDR,
    http_addr: HttpAddr = DEFAULT_HTTP_ADDR,
    password: Annotated[
        str | None,
        typer.Option(
            envvar=ENV_PASSWORD,
            show_envvar=True,
            show_default=False,
            help="Shared secret: connections are authenticated and encrypted "
            "(default: none, plain connections). Never shown or put on a command line.",
        ),
    ] = None,
    foreground: Annotated[
        bool,
        typer.Option(
            "--foreground",
            help="Run the peer in this process until SIGTERM or SIGINT "
            "(default: in the background).",
        ),
    ] = False,
) -> None:
    """Start a peer, connecting to PEERs, and return once its HTTP API answers."""
    settings = _Settings(
        peers=tuple(peers or ()),
        name=name,
        nickname=nickname,
        init=init,
        ipalloc_range=ipalloc_range,
        default_subnet=ipalloc_default_subnet,
        persist=persist,
        transport=transport,
        runtimes=tuple(runtime or ()),
        bridge=bridge,
        grace_period=grace_period,
        listen=listen,
        http_addr=http_addr,
        password=password or None,
    )
    pm = make_plugin_manager()
    config = settings.to_config(pm)
    with PeerClient(http_addr) as client:
        if client.answers():
            raise CommandError(f"a peer is already running on {http_addr}")
    if foreground:
        _daemon.run_foreground(config, pm, http_addr=http_addr, persist=persist)
    else:
        _daemon.start_background(
            settings.child_args(config), http_addr=http_addr, password=settings.password
        )


@dataclass(frozen=True, slots=True)
class _Settings:
    """The flags as typed; :meth:`to_config` checks them all."""

    peers: tuple[str, ...]
    name: str | None
    nickname: str | None
    init: str
    ipalloc_range: str
    default_subnet: str | None
    persist: str
    transport: str
    runtimes: tuple[str, ...]
    bridge: str
    grace_period: float
    listen: str
    http_addr: str
    password: str | None

    def to_config(self, pm: pluggy.PluginManager) -> PeerConfig:
        """A :class:`PeerConfig`, or :class:`typer.BadParameter` naming the flag at fault."""
        universe = _block(self.ipalloc_range, "--ipalloc-range")
        subnet = None
        if self.default_subnet is not None:
            subnet = _block(self.default_subnet, "--ipalloc-default-subnet")
            if subnet.version != universe.version or not subnet.overlaps(universe.range):
                raise typer.BadParameter(
                    f"{subnet} does not overlap the range {universe}",
                    param_hint="--ipalloc-default-subnet",
                )
        me = _peer_name(self.name)
        peers = tuple(_address(p, "PEER", default_port=DEFAULT_PEER_PORT) for p in self.peers)
        listen = parse_hostport_or_fail(
            self.listen, "--listen", default_port=DEFAULT_PEER_PORT, any_host="0.0.0.0"
        )
        http = parse_hostport_or_fail(self.http_addr, "--http-addr", any_host="127.0.0.1")
        self._check_plugins(pm, me, len(peers))
        return PeerConfig(
            name=me,
            nickname=self.nickname or socket.gethostname(),
            peers=peers,
            universe=universe,
            default_subnet=subnet,
            init=self.init,
            persist=self.persist,
            transport=self.transport,
            runtimes=self.runtimes,
            bridge=_bridge_name(self.bridge),
            grace_period=self.grace_period,
            listen=listen,
            http=http,
            password=self.password.encode() if self.password else None,
        )

    def child_args(self, config: PeerConfig) -> list[str]:
        """``weavek launch --foreground`` arguments for ``config``; the password goes by env."""
        args = ["launch", "--foreground", "--nickname", config.nickname, "--init", self.init]
        if config.name is not None:
            args += ["--name", format_peer_name(config.name)]
        args += ["--ipalloc-range", str(config.universe)]
        if config.default_subnet is not None:
            args += ["--ipalloc-default-subnet", str(config.default_subnet)]
        args += ["--persist", config.persist, "--transport", config.transport]
        for name in config.runtimes:
            args += ["--runtime", name]
        args += ["--bridge", config.bridge, "--grace-period", repr(config.grace_period)]
        args += ["--listen", format_hostport(*config.listen)]
        args += ["--http-addr", format_hostport(*config.http)]
        return [*args, "--", *config.peers]

    def _check_plugins(self, pm: pluggy.PluginManager, me: int | None, named: int) -> None:
        # The init strategy first: it is pure, so its argument can be checked too.
        strategy_cls = _plugin(pm, "init", "--init", self.init)
        _, arg = parse_plugin_arg(self.init)
        try:
            strategy_cls(arg, me=me or 1, peers_named=named)
        except InitArgumentError as err:
            raise typer.BadParameter(str(err), param_hint="--init") from None
        _plugin(pm, "store", "--persist", self.persist)
        for text in self.runtimes:
            _plugin(pm, "runtime", "--runtime", text)
        _plugin(pm, "transport", "--transport", self.transport)


def _plugin(pm: pluggy.PluginManager, family: str, flag: str, text: str) -> type:
    try:
        name, _ = parse_plugin_arg(text)
        return resolve(pm, family, name)
    except (UnknownPluginError, ValueError) as err:
        raise typer.BadParameter(str(err), param_hint=flag) from None


def _block(text: str, flag: str) -> CIDR:
    """A CIDR that can be a range or a subnet: aligned, with at least four addresses."""
    try:
        cidr = parse_cidr(text)
    except AddressError as err:
        raise typer.BadParameter(str(err), param_hint=flag) from None
    if "/" not in text:
        raise typer.BadParameter(f"{text!r} has no prefix length (like /12)", param_hint=flag)
    if not cidr.is_aligned:
        raise typer.BadParameter(
            f"{cidr} is not aligned (did you mean {cidr.network()}?)", param_hint=flag
        )
    if cidr.size < 4:
        raise typer.BadParameter(f"{cidr} has fewer than 4 addresses", param_hint=flag)
    return cidr


def _bridge_name(text: str) -> str:
    """A Linux interface name: 1-15 characters, no ``/``, blanks or ``:``."""
    if not 0 < len(text) <= 15 or any(c in text for c in "/: \t\n") or text in (".", ".."):
        raise typer.BadParameter(
            f"{text!r} is not a valid interface name (1-15 characters, no '/', ':' or blanks)",
            param_hint="--bridge",
        )
    return text


def _peer_name(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        name = parse_peer_name(text)
    except PeerNameError as err:
        raise typer.BadParameter(str(err), param_hint="--name") from None
    if name == 0:
        raise typer.BadParameter("peer name 0 means 'unknown'; choose another", param_hint="--name")
    return name


def _address(text: str, hint: str, *, default_port: int) -> str:
    return format_hostport(*parse_hostport_or_fail(text, hint, default_port=default_port))


def parse_hostport_or_fail(
    text: str, hint: str, *, default_port: int | None = None, any_host: str | None = None
) -> tuple[str, int]:
    """:func:`parse_hostport`, failing as a bad ``hint`` parameter."""
    try:
        return parse_hostport(text, default_port=default_port, any_host=any_host)
    except HostPortError as err:
        raise typer.BadParameter(str(err), param_hint=hint) from None
