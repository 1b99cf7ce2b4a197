"""What changed between two views of a daemon's containers, as runtime events.

The event stream says what happens while we are connected; after a
disconnection (the daemon stopped, restarted, or the socket broke) we compare
what we saw last with what exists now, so a container that died or was
removed meanwhile is still reported.
"""

from __future__ import annotations

from collections.abc import Mapping

from weavek.core.events import ContainerDestroyed, ContainerDied, ContainerStarted
from weavek.interfaces import RuntimeEvent

__all__ = ["changes"]


def changes(before: Mapping[str, bool] | None, now: Mapping[str, bool]) -> list[RuntimeEvent]:
    """Events turning view ``before`` into ``now`` (ident -> running).

    With no earlier view (the first connection), every container that exists
    but does not run is reported dead: an allocation made for it while it
    was running, or with the check-alive flag after it died, is then released
    after the grace period instead of leaking.
    """
    if before is None:
        return [ContainerDied(ident) for ident, running in sorted(now.items()) if not running]
    events: list[RuntimeEvent] = [
        ContainerDestroyed(ident) for ident in sorted(before.keys() - now.keys())
    ]
    for ident, running in sorted(now.items()):
        was = before.get(ident)
        if running and was is False:
            events.append(ContainerStarted(ident))
        elif not running and was is not False:
            events.append(ContainerDied(ident))
    return events
