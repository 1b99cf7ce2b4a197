"""Options shared by the commands that talk to a peer, and the ``host:port`` parser behind them.

Reusable options are ``Annotated`` aliases, so every command spells
``--http-addr`` and ``--json`` the same way, with the same help and default.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Final

import typer

__all__ = [
    "DEFAULT_HTTP_ADDR",
    "DEFAULT_LISTEN_ADDR",
    "DEFAULT_PEER_PORT",
    "ENV_HTTP_ADDR",
    "AsJson",
    "HttpAddr",
    "HostPortError",
    "format_hostport",
    "parse_hostport",
]

DEFAULT_PEER_PORT: Final = 6783
DEFAULT_HTTP_ADDR: Final = "127.0.0.1:6784"
DEFAULT_LISTEN_ADDR: Final = f"0.0.0.0:{DEFAULT_PEER_PORT}"
ENV_HTTP_ADDR: Final = "WEAVEK_HTTP_ADDR"

_HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$")


class HostPortError(ValueError):
    """A ``host:port`` written by the user could not be understood."""


def parse_hostport(
    text: str, *, default_port: int | None = None, any_host: str | None = None
) -> tuple[str, int]:
    """Split ``host:port``, ``[v6]:port`` or ``:port`` into ``(host, port)``.

    :param default_port: the port when the text has none (``host``, ``fd00::1``);
        None makes the port compulsory.
    :param any_host: the host that ``:port`` stands for; None forbids it.
    :raises HostPortError: naming what is wrong.
    """
    raw = text.strip()
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise HostPortError(f"invalid address {text!r}: expected [IPv6]:PORT")
        port_text: str | None = rest[1:] if rest else None
        _check_ip(host, text, version=6)
    elif raw.count(":") > 1:
        host, port_text = raw, None  # a bare IPv6 address
        _check_ip(host, text, version=6)
    else:
        host, sep, after = raw.partition(":")
        port_text = after if sep else None
        if not host:
            if any_host is None or not sep:
                raise HostPortError(f"invalid address {text!r}: missing host")
            host = any_host
        elif not _HOSTNAME.match(host):
            raise HostPortError(f"invalid address {text!r}: bad host {host!r}")
    if port_text is None:
        if default_port is None:
            raise HostPortError(f"invalid address {text!r}: expected HOST:PORT")
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise HostPortError(f"invalid address {text!r}: port must be 1-65535")
    return host, int(port_text)


def format_hostport(host: str, port: int) -> str:
    """``("::1", 6784)`` -> ``"[::1]:6784"``; ``("127.0.0.1", 6784)`` -> ``"127.0.0.1:6784"``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_ip(host: str, text: str, *, version: int) -> None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise HostPortError(f"invalid address {text!r}: bad IP address {host!r}") from None
    if ip.version != version:
        raise HostPortError(f"invalid address {text!r}: brackets are for IPv6 addresses only")


def _http_addr(value: str) -> str:
    try:
        return format_hostport(*parse_hostport(value, any_host="127.0.0.1"))
    except HostPortError as err:
        raise typer.BadParameter(str(err)) from None


HttpAddr = Annotated[
    str,
    typer.Option(
        "--http-addr",
        envvar=ENV_HTTP_ADDR,
        callback=_http_addr,
        show_envvar=True,
        metavar="HOST:PORT",
        help="Where the peer's HTTP API listens.",
    ),
]
"""``--http-addr``, also read from ``WEAVEK_HTTP_ADDR``, normalised to ``host:port``."""

AsJson = Annotated[
    bool,
    typer.Option("--json", help="Print the peer's JSON instead of text (default: text)."),
]
