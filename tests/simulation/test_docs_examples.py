"""The examples in docs/ run as written."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)


def test_simulator_howto_example_passes(cluster_factory: object) -> None:
    (block,) = python_blocks("howto/test-with-the-simulator.md")
    namespace: dict[str, object] = {}
    exec(compile(block, "test-with-the-simulator.md", "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_") and callable(f)]
    assert tests, "the how-to's example defines no test"
    for test in tests:
        test(cluster_factory)
