"""Talking to a running peer over its HTTP API (Weave's routes), for the CLI.

The client is synchronous (httpx): a CLI command makes one or two requests
and exits. Every failure becomes a :class:`CommandError` whose message is one
line -- "no peer answering at ...", a timeout, or the peer's own error body
-- which :func:`weavek.cli.main` prints after ``weavek:``.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

if TYPE_CHECKING:  # imported where used: `weavek launch` starts faster without httpx
    import httpx

__all__ = [
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "CommandError",
    "PeerClient",
    "error_text",
    "one_line",
    "path",
]

CONNECT_TIMEOUT: Final = 2.0
"""Seconds to wait for the TCP connection: a peer on loopback answers at once."""
READ_TIMEOUT: Final = 30.0
"""Seconds to wait for an answer by default: allocations may wait for space from peers."""


class CommandError(Exception):
    """A command failed for a reason the user should read: one line, exit ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def one_line(text: str) -> str:
    """Collapse a (possibly multi-line) body into one line."""
    return " ".join(text.split())


def path(*segments: str) -> str:
    """An absolute URL path from raw segments, each percent-encoded (``/`` too)."""
    return "".join("/" + quote(segment, safe=":@") for segment in segments)


class PeerClient:
    """The HTTP API of the peer at ``addr`` (``host:port``, IPv6 hosts in brackets)."""

    def __init__(self, addr: str, *, timeout: float = READ_TIMEOUT) -> None:
        self.addr = addr
        self._timeout = timeout
        self._client: httpx.Client | None = None

    @property
    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(
                base_url=f"http://{self.addr}",
                timeout=httpx.Timeout(self._timeout, connect=CONNECT_TIMEOUT),
                # A proxy from the environment has no business between us and loopback.
                trust_env=False,
            )
        return self._client

    def __enter__(self) -> PeerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        as_json: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request and return the response, whatever its status.

        :param timeout: seconds to wait for the answer, instead of the client's.
        :raises CommandError: when no peer answers, or it does not answer in time.
        """
        import httpx

        headers = {"Accept": "application/json" if as_json else "text/plain"}
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)
        waited = timeout if timeout is not None else (self._http.timeout.read or 0.0)
        try:
            return self._http.request(method, url, params=params, headers=headers, **extra)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise CommandError(f"no peer answering at {self.addr} (is it launched?)") from None
        except httpx.TimeoutException:
            raise CommandError(
                f"the peer at {self.addr} did not answer {method} {url} within {waited:g} s"
            ) from None
        except httpx.HTTPError as err:
            raise CommandError(f"{method} {url} to the peer at {self.addr} failed: {err}") from None

    def call(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        as_json: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Like :meth:`request`, and an error status becomes a :class:`CommandError`.

        Its message is the peer's body on one line, as Weave's script printed it.
        """
        response = self.request(method, url, params=params, as_json=as_json, timeout=timeout)
        if response.status_code >= 400:
            raise CommandError(error_text(response))
        return response

    def answers(self) -> bool:
        """True when something answers HTTP on ``addr`` (any status counts)."""
        # Nothing listening is the common answer (``launch`` asks first): give it
        # without loading the HTTP client.
        host, _, port = self.addr.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
        except (OSError, ValueError):
            return False
        import httpx

        try:
            self._http.get("/status", timeout=httpx.Timeout(1.0, connect=1.0))
        except httpx.HTTPError:
            return False
        return True

    def json(self, url: str) -> Any:
        """GET ``url`` as JSON.

        :raises CommandError: as :meth:`call` does, or when the body is not JSON.
        """
        response = self.call("GET", url, as_json=True)
        try:
            return response.json()
        except json.JSONDecodeError:
            raise CommandError(f"the peer at {self.addr} sent no JSON for {url}") from None


def error_text(response: httpx.Response) -> str:
    """The one line to show for an error response: its body, else its status."""
    return one_line(response.text) or f"HTTP {response.status_code} {response.reason_phrase}"
