"""Run the async tests on asyncio (the backend the shell uses)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
