"""The ``--persist etcd=...`` argument: the endpoints to reach etcd at, and the key root."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["DEFAULT_ROOT", "EtcdTarget", "parse_target"]

DEFAULT_ROOT = "/weavek"


@dataclass(frozen=True)
class EtcdTarget:
    """Where the store keeps its data: etcd client endpoints and the key root under them."""

    endpoints: tuple[tuple[str, int], ...]
    """(host, port) of each member, tried in this order."""
    root: str = DEFAULT_ROOT
    """Keys go under ``ROOT/<peer name>/``; another root separates weavek networks."""

    def urls(self) -> str:
        return ",".join(f"http://{_host(h)}:{p}" for h, p in self.endpoints)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_target(arg: str | None) -> EtcdTarget:
    """``http://HOST:PORT[,http://HOST:PORT...][/ROOT]``; :class:`ValueError` with the reason.

    A path on the URLs (the same on each, or on the first only) sets the key
    root, e.g. ``http://10.0.0.5:2379/weavek-prod``. TLS and authentication
    are not supported yet: an ``https`` URL or a user name is refused.
    """
    if not arg:
        raise ValueError("--persist etcd needs endpoints: etcd=http://HOST:PORT[,http://HOST:PORT]")
    endpoints: list[tuple[str, int]] = []
    roots: set[str] = set()
    for text in arg.split(","):
        url = urlsplit(text.strip())
        if url.scheme != "http":
            raise ValueError(f"etcd endpoint {text!r}: only http://HOST:PORT is supported")
        if url.username or url.password or url.query or url.fragment:
            raise ValueError(f"etcd endpoint {text!r}: user names, queries are not supported")
        try:
            port = url.port
        except ValueError as exc:
            raise ValueError(f"etcd endpoint {text!r}: {exc}") from None
        if not url.hostname or port is None:
            raise ValueError(f"etcd endpoint {text!r} needs a host and a port")
        endpoints.append((url.hostname, port))
        if url.path not in ("", "/"):
            roots.add(url.path.rstrip("/"))
    if len(roots) > 1:
        raise ValueError(f"etcd endpoints name different key roots: {sorted(roots)}")
    root = roots.pop() if roots else DEFAULT_ROOT
    return EtcdTarget(tuple(dict.fromkeys(endpoints)), root)
