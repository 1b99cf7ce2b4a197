"""Fixtures of this plugin's tests; weavek's pytest plugin gives the rest.

The daemons (``dockerd``, ``dockerd_factory``) and ``peer_host`` (a peer in a network namespace of
its own) come from :mod:`weavek.testing.pytest_plugin`. Nothing is skipped:
without root or a daemon the fixtures fail the test with the reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

_names = itertools.count()


@pytest.fixture
def name() -> Callable[[], str]:
    """A new container name each call (the session shares one daemon)."""
    return lambda: f"wkc{next(_names)}"
