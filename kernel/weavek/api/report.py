"""What the status routes print: Weave's text layouts and report JSON, from a PeerStatus.

Pure functions, so the CLI can print the same thing from the same JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

from weavek import __version__
from weavek.core.address import format_address
from weavek.node.status import PeerStatus

__all__ = [
    "TemplateError",
    "ipam_peers",
    "render_template",
    "report",
    "services",
    "status_fields",
    "status_text",
]


class TemplateError(ValueError):
    """A ``/report?format=`` template uses something this subset does not know."""


def status_fields(status: PeerStatus) -> list[tuple[str, str]]:
    """The IPAM section of ``weave status``, (label, value) in Weave's order.

    A service with a problem (a store that is unavailable, a runtime that
    cannot reach its daemon) adds a line after Weave's four; a healthy peer
    prints exactly what Weave printed.
    """
    fields = [
        ("Service", "ipam"),
        ("Status", status.state),
        ("Range", str(status.universe)),
        ("DefaultSubnet", str(status.default_subnet)),
    ]
    for service in status.services:
        if service.problem is not None:
            value = f"{service.name}: {service.problem}"
            if service.waiting:
                value += f" ({service.waiting} changes not yet stored)"
            fields.append((service.family.capitalize(), value))
    return fields


def status_text(status: PeerStatus) -> str:
    """The section as Weave printed it: labels right-aligned in a 15-character column."""
    return "".join(f"{label:>15}: {value}\n" for label, value in status_fields(status))


def services(status: PeerStatus) -> list[dict[str, Any]]:
    """The store, transport and runtimes with their health, as ``/report`` lists them."""
    return [
        {
            "Family": service.family,
            "Name": service.name,
            "Healthy": service.problem is None,
            "Problem": service.problem,
            "Waiting": service.waiting,
        }
        for service in status.services
    ]


def ipam_peers(status: PeerStatus) -> list[dict[str, Any]]:
    """``status ipam`` as data: one object per peer in the ring, ours first."""
    sizes: dict[str, int] = {}
    known: dict[str, bool] = {}
    nicks: dict[str, str] = {}
    for entry in status.entries:
        sizes[entry.peer] = sizes.get(entry.peer, 0) + entry.size
        known[entry.peer] = entry.is_known_peer
        nicks[entry.peer] = entry.nickname
    order = sorted(sizes, key=lambda peer: (peer != status.name, peer))
    return [
        {
            "Peer": peer,
            "Nickname": nicks[peer],
            "IPs": sizes[peer],
            "Percentage": round(100.0 * sizes[peer] / status.universe.size, 1),
            "Active": status.active if peer == status.name else None,
            "Reachable": known[peer],
        }
        for peer in order
    ]


def report(status: PeerStatus) -> dict[str, Any]:
    """``weave report``'s structure (§8.3), plus the peer's identity and its services' health."""
    version = status.universe.version
    return {
        "Peer": {"Name": status.name, "NickName": status.nickname, "Version": __version__},
        "IPAM": {
            "Paxos": status.paxos,
            "Range": str(status.universe),
            "RangeNumIPs": status.universe.size,
            "ActiveIPs": status.active,
            "DefaultSubnet": str(status.default_subnet),
            "Entries": [
                {
                    "Token": e.token,
                    "Size": e.size,
                    "Peer": e.peer,
                    "Nickname": e.nickname,
                    "IsKnownPeer": e.is_known_peer,
                    "Version": e.version,
                }
                for e in status.entries
            ],
            "PendingClaims": [
                {
                    "Ident": ident,
                    "CIDR": {"Addr": format_address(c.addr, version), "PrefixLen": c.prefix},
                }
                for ident, c in status.pending_claims
            ],
            "PendingAllocates": [f"{ident} {subnet}" for ident, subnet in status.pending_allocates],
        },
        "Services": services(status),
    }


_ACTION = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_PATH = re.compile(r"^\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?$")


def render_template(template: str, data: dict[str, Any]) -> str:
    """The subset of Go templates scripts use with ``weave report -f``.

    ``{{.IPAM.DefaultSubnet}}`` prints a field (``{{.}}`` the whole report)
    and ``{{json .IPAM.Entries}}`` prints it as JSON.
    """

    def action(match: re.Match[str]) -> str:
        words = match.group(1).split()
        as_json = len(words) == 2 and words[0] == "json"
        path = words[-1] if words else ""
        if not (len(words) == 1 or as_json) or not _PATH.match(path):
            raise TemplateError(f"unsupported template action {match.group(0)!r}")
        value: Any = data
        for name in filter(None, path.split(".")):
            if not isinstance(value, dict) or name not in value:
                raise TemplateError(f"no field {name!r} in {path!r}")
            value = value[name]
        if as_json or isinstance(value, dict | list):
            return json.dumps(value)
        if value is None:
            return "<nil>"
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return _ACTION.sub(action, template)
