"""Every hook in weavek.hookspecs is documented, in its docstring and in docs/reference/hooks.md."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import weavek.hookspecs

HOOKS_MD = Path(__file__).resolve().parents[2] / "docs" / "reference" / "hooks.md"

Spec = Callable[..., object]


def hookspecs() -> dict[str, Spec]:
    return {
        name: function
        for name, function in vars(weavek.hookspecs).items()
        if name.startswith("weavek_") and hasattr(function, "weavek_spec")
    }


def signature(spec: Spec) -> str:
    """How the docs head a hook's section: ``weavek_ring_changed(peer, before, after)``."""
    return f"{spec.__name__}({', '.join(inspect.signature(spec).parameters)})"


def headings(text: str) -> set[str]:
    return {
        line.lstrip("#").strip().strip("`") for line in text.splitlines() if line.startswith("#")
    }


def undocumented(specs: dict[str, Spec], text: str) -> list[str]:
    """The hook signatures that no heading of ``text`` carries."""
    found = headings(text)
    return sorted(signature(spec) for spec in specs.values() if signature(spec) not in found)


def stale(specs: dict[str, Spec], text: str) -> list[str]:
    """Hooks the docs head a section with that do not exist."""
    named = (re.match(r"(weavek_\w+)\(", heading) for heading in headings(text))
    return sorted(match[1] for match in named if match and match[1] not in specs)


@pytest.fixture(scope="module")
def docs() -> str:
    return HOOKS_MD.read_text(encoding="utf-8")


def test_hookspecs_has_the_hooks_of_the_design() -> None:
    assert set(hookspecs()) == set(weavek.hookspecs.__all__)
    assert {
        "weavek_transports",
        "weavek_init_strategies",
        "weavek_stores",
        "weavek_runtimes",
        "weavek_add_commands",
        "weavek_peer_started",
        "weavek_peer_stopping",
        "weavek_ring_changed",
        "weavek_address_allocated",
        "weavek_address_released",
    } <= set(hookspecs())


@pytest.mark.parametrize("name", sorted(hookspecs()))
def test_every_hook_has_a_docstring_with_its_params(name: str) -> None:
    spec = hookspecs()[name]
    doc = inspect.getdoc(spec) or ""
    assert doc.strip(), f"{name} has no docstring"
    for param in inspect.signature(spec).parameters:
        assert f":param {param}:" in doc, f"{name}'s docstring does not document {param!r}"
    if inspect.signature(spec).return_annotation not in ("None", None):
        assert ":returns:" in doc, f"{name}'s docstring does not say what it returns"


def test_every_hook_is_in_the_reference_with_its_arguments(docs: str) -> None:
    missing = undocumented(hookspecs(), docs)
    assert not missing, f"add a heading for each of these to {HOOKS_MD}: {missing}"


def test_the_reference_names_no_hook_that_does_not_exist(docs: str) -> None:
    assert not stale(hookspecs(), docs)


def test_the_check_fails_when_a_hook_is_missing_or_its_arguments_differ(docs: str) -> None:
    specs = hookspecs()
    without = docs.replace("`weavek_address_released(peer, ident, cidr)`", "`something else`")
    assert undocumented(specs, without) == ["weavek_address_released(peer, ident, cidr)"]
    wrong = docs.replace("weavek_ring_changed(peer, before, after)", "weavek_ring_changed(peer)")
    assert undocumented(specs, wrong) == ["weavek_ring_changed(peer, before, after)"]
    extra = docs + "\n### `weavek_gone(peer)`\n"
    assert stale(specs, extra) == ["weavek_gone"]
