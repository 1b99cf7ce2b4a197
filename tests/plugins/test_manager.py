"""The plugin manager: loading, allow and block lists, registries, errors, tracing."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
import pytest

from weavek.interfaces import InitStrategy, Transport
from weavek.plugin import hookimpl
from weavek.plugins import (
    DuplicatePluginError,
    PluginError,
    PluginInfo,
    UnknownPluginError,
    installed_plugins,
    make_plugin_manager,
    parse_plugin_arg,
    registry,
    resolve,
)


def strategy(name: str) -> type[InitStrategy]:
    return type(f"{name.title()}Strategy", (InitStrategy,), {"name": name})


def plugin(module_name: str, **impls: Callable[..., object]) -> ModuleType:
    """A plugin module, as a built-in plugin passed through ``plugins=`` would be."""
    module = ModuleType(module_name)
    for hook, function in impls.items():
        setattr(module, hook, hookimpl(function))
    return module


Alpha, Beta = strategy("alpha"), strategy("beta")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WEAVEK_PLUGINS", "WEAVEK_DISABLE_PLUGINS", "WEAVEK_TRACE_HOOKS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Install a real distribution with a ``weavek`` entry point on a temporary sys.path entry.

    Each provides init strategies named by ``provides``; returns the module name.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    modules: list[str] = []

    def install(dist: str, entry_point: str, provides: tuple[str, ...]) -> str:
        module = f"{dist.replace('-', '_')}_{tmp_path.name}"
        classes = "\n".join(
            f"class S{i}(InitStrategy):\n    name = {name!r}\n" for i, name in enumerate(provides)
        )
        source = f"""\
            from weavek.interfaces import InitStrategy
            from weavek.plugin import hookimpl

            {{classes}}

            @hookimpl
            def weavek_init_strategies():
                return [{", ".join(f"S{i}" for i in range(len(provides)))}]
            """
        (tmp_path / f"{module}.py").write_text(
            textwrap.dedent(source).replace("{classes}", classes)
        )
        info = tmp_path / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[weavek]\n{entry_point} = {module}\n")
        modules.append(module)
        return module

    yield install
    for module in modules:
        sys.modules.pop(module, None)


@pytest.fixture
def alpha_and_beta(install: Callable[..., str]) -> None:
    install("weavek-alpha", "alpha", ("alpha",))
    install("weavek-beta", "beta", ("beta",))


# -- the manager -----------------------------------------------------------


def test_each_call_makes_a_fresh_manager_with_the_hooks() -> None:
    one = make_plugin_manager(load_entry_points=False)
    two = make_plugin_manager(load_entry_points=False)
    assert one is not two
    assert one.project_name == "weavek"
    assert one.hook.weavek_ring_changed.has_spec()


def test_plugins_passed_in_register_their_classes() -> None:
    pm = make_plugin_manager(
        load_entry_points=False,
        plugins=[plugin("builtin", weavek_init_strategies=lambda: [Beta, Alpha])],
    )
    assert registry(pm, "init") == {"alpha": Alpha, "beta": Beta}
    assert list(registry(pm, "init")) == ["alpha", "beta"]
    assert registry(pm, "transport") == {}


def test_a_registry_holds_only_its_family() -> None:
    class Tcp(Transport):
        name = "tcp"

    pm = make_plugin_manager(
        load_entry_points=False,
        plugins=[plugin("p", weavek_transports=lambda: [Tcp], weavek_init_strategies=lambda: [])],
    )
    transport: type[Transport] = resolve(pm, "transport", "tcp")
    assert transport is Tcp
    assert registry(pm, "init") == {}


# -- allow and block lists -------------------------------------------------


@pytest.mark.usefixtures("alpha_and_beta")
def test_allow_env_loads_only_the_named_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEAVEK_PLUGINS", " alpha , ")
    pm = make_plugin_manager()
    assert [name for name, _ in pm.list_name_plugin()] == ["alpha"]
    assert list(registry(pm, "init")) == ["alpha"]


@pytest.mark.usefixtures("alpha_and_beta")
def test_allow_env_set_but_empty_loads_no_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEAVEK_PLUGINS", "")
    pm = make_plugin_manager()
    assert pm.list_plugin_distinfo() == []


@pytest.mark.usefixtures("alpha_and_beta")
def test_block_env_keeps_an_entry_point_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEAVEK_PLUGINS", "alpha,beta")
    monkeypatch.setenv("WEAVEK_DISABLE_PLUGINS", "beta")
    pm = make_plugin_manager()
    assert not pm.has_plugin("beta")
    assert list(registry(pm, "init")) == ["alpha"]


def test_block_env_hides_a_plugin_name_whatever_provides_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEAVEK_DISABLE_PLUGINS", "alpha")
    pm = make_plugin_manager(
        load_entry_points=False,
        plugins=[plugin("builtin", weavek_init_strategies=lambda: [Alpha, Beta])],
    )
    assert list(registry(pm, "init")) == ["beta"]
    with pytest.raises(UnknownPluginError, match=r"'alpha' \(installed: beta\)"):
        resolve(pm, "init", "alpha")


@pytest.mark.usefixtures("alpha_and_beta")
def test_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEAVEK_PLUGINS", "beta")
    monkeypatch.setenv("WEAVEK_DISABLE_PLUGINS", "alpha")
    pm = make_plugin_manager(allow=["alpha", "beta"], block=[])
    assert list(registry(pm, "init")) == ["alpha", "beta"]


@pytest.mark.usefixtures("alpha_and_beta")
def test_no_entry_points_when_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEAVEK_PLUGINS", "alpha")
    pm = make_plugin_manager(load_entry_points=False)
    assert pm.get_plugins() == set()


def test_a_plugin_both_passed_in_and_loaded_registers_once(
    install: Callable[..., str],
) -> None:
    module = __import__(install("weavek-alpha", "alpha", ("alpha",)))
    pm = make_plugin_manager(allow=["alpha"], plugins=[module])
    assert pm.get_plugins() == {module}
    assert pm.get_name(module) == "alpha"


# -- resolving names -------------------------------------------------------


def test_an_unknown_name_lists_the_installed_ones() -> None:
    pm = make_plugin_manager(
        load_entry_points=False,
        plugins=[
            plugin("a", weavek_init_strategies=lambda: [strategy("seed")]),
            plugin("b", weavek_init_strategies=lambda: [strategy("consensus")]),
        ],
    )
    with pytest.raises(UnknownPluginError) as info:
        resolve(pm, "init", "foo")
    assert str(info.value) == "unknown init strategy 'foo' (installed: consensus, seed)"
    assert (info.value.family, info.value.name) == ("init", "foo")
    assert info.value.installed == ("consensus", "seed")
    assert isinstance(info.value, LookupError)


def test_an_unknown_name_in_an_empty_family() -> None:
    pm = make_plugin_manager(load_entry_points=False)
    with pytest.raises(UnknownPluginError, match=r"^unknown runtime 'docker' \(installed: none\)$"):
        resolve(pm, "runtime", "docker")


def test_an_unknown_family_is_a_programming_error() -> None:
    pm = make_plugin_manager(load_entry_points=False)
    with pytest.raises(ValueError, match="unknown plugin family 'persist'"):
        registry(pm, "persist")


# -- conflicts and broken plugins ------------------------------------------


def test_duplicate_names_name_both_plugins() -> None:
    other_alpha = strategy("alpha")
    pm = make_plugin_manager(
        load_entry_points=False,
        plugins=[
            plugin("first", weavek_init_strategies=lambda: [Alpha]),
            plugin("second", weavek_init_strategies=lambda: [other_alpha]),
        ],
    )
    with pytest.raises(DuplicatePluginError) as info:
        registry(pm, "init")
    message = str(info.value)
    assert message.startswith("init strategy 'alpha' is provided by both plugin 'first' (")
    assert " and plugin 'second' (" in message


def test_duplicate_names_name_both_distributions(install: Callable[..., str]) -> None:
    install("weavek-one", "one", ("alpha",))
    install("weavek-two", "two", ("alpha", "beta"))
    pm = make_plugin_manager(allow=["one", "two"])
    with pytest.raises(DuplicatePluginError) as info:
        resolve(pm, "init", "beta")
    message = str(info.value)
    assert "init strategy 'alpha' is provided by both weavek-one 1.0 (" in message
    assert " and weavek-two 1.0 (" in message


def test_one_class_registered_twice_is_no_conflict() -> None:
    pm = make_plugin_manager(
        load_entry_points=False,
        plugins=[
            plugin("first", weavek_init_strategies=lambda: [Alpha]),
            plugin("second", weavek_init_strategies=lambda: [Alpha]),
        ],
    )
    assert registry(pm, "init") == {"alpha": Alpha}


def test_check_pending_catches_a_misspelled_hook() -> None:
    typo = plugin("typo", weavek_init_strategy=lambda: [Alpha])
    with pytest.raises(PluginError) as info:
        make_plugin_manager(load_entry_points=False, plugins=[typo])
    assert str(info.value) == (
        "plugin 'typo' implements unknown hook 'weavek_init_strategy';"
        " did you mean 'weavek_init_strategies'?"
    )
    assert isinstance(info.value.__cause__, pluggy.PluginValidationError)


def test_an_optional_hook_of_another_plugin_is_allowed() -> None:
    module = ModuleType("extension")
    module.weavek_gossip_sent = hookimpl(optionalhook=True)(lambda: None)  # type: ignore[attr-defined]
    make_plugin_manager(load_entry_points=False, plugins=[module])


def test_a_wrong_argument_name_is_refused_at_registration() -> None:
    bad = plugin("bad", weavek_address_allocated=lambda peer, ident, address: None)
    with pytest.raises(pluggy.PluginValidationError, match="address"):
        make_plugin_manager(load_entry_points=False, plugins=[bad])


@pytest.mark.parametrize(
    ("returned", "complaint"),
    [
        (Alpha, "weavek_init_strategies() must return a list of classes"),
        (["alpha"], "returned 'alpha', not a subclass of InitStrategy"),
        ([int], "not a subclass of InitStrategy"),
        ([strategy("")], "has no name"),
    ],
)
def test_a_bad_registration_is_a_clear_error(returned: Any, complaint: str) -> None:
    pm = make_plugin_manager(
        load_entry_points=False,
        plugins=[plugin("broken", weavek_init_strategies=lambda: returned)],
    )
    with pytest.raises(PluginError) as info:
        registry(pm, "init")
    assert str(info.value).startswith("plugin 'broken': ")
    assert complaint in str(info.value)


# -- what is installed ------------------------------------------------------


def test_installed_plugins_name_their_distribution(install: Callable[..., str]) -> None:
    class Tcp(Transport):
        name = "tcp"

    install("weavek-alpha", "alpha", ("alpha",))
    pm = make_plugin_manager(
        allow=["alpha"], plugins=[plugin("local", weavek_transports=lambda: [Tcp])]
    )
    assert installed_plugins(pm) == [
        PluginInfo("transport", "tcp", None, None),
        PluginInfo("init", "alpha", "weavek-alpha", "1.0"),
    ]


# -- tracing ----------------------------------------------------------------


def test_trace_hooks_prints_calls_to_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEAVEK_TRACE_HOOKS", "1")
    pm = make_plugin_manager(
        load_entry_points=False, plugins=[plugin("p", weavek_init_strategies=lambda: [Alpha])]
    )
    registry(pm, "init")
    err = capsys.readouterr().err
    assert "registered p (passed in) [pluginmanage]" in err
    assert "weavek_init_strategies [hook]" in err
    assert "finish weavek_init_strategies" in err


@pytest.mark.parametrize("value", [None, "", "0"])
def test_no_trace_unless_asked(
    value: str | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if value is not None:
        monkeypatch.setenv("WEAVEK_TRACE_HOOKS", value)
    pm = make_plugin_manager(
        load_entry_points=False, plugins=[plugin("p", weavek_init_strategies=lambda: [Alpha])]
    )
    registry(pm, "init")
    assert capsys.readouterr().err == ""


# -- NAME[=ARG] -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("seed=::1,::2", ("seed", "::1,::2")),
        ("consensus", ("consensus", None)),
        ("consensus=3", ("consensus", "3")),
        ("seed=", ("seed", "")),
        ("etcd=http://a:2379/?x=1", ("etcd", "http://a:2379/?x=1")),
        (" tcp ", ("tcp", None)),
    ],
)
def test_parse_plugin_arg(text: str, parsed: tuple[str, str | None]) -> None:
    assert parse_plugin_arg(text) == parsed


@pytest.mark.parametrize("text", ["", "=3", " =x"])
def test_parse_plugin_arg_needs_a_name(text: str) -> None:
    with pytest.raises(ValueError, match="missing plugin name"):
        parse_plugin_arg(text)
