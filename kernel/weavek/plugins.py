"""The plugin manager: which plugins load, and the classes they provide, by name.

:func:`make_plugin_manager` builds a fresh :class:`pluggy.PluginManager` for
one peer or one CLI run (never a global one, so a test can run five peers in
one process): it adds the hookspecs, loads the ``weavek`` entry points,
registers the plugins it was given, and checks that every hook implemented
exists. Three environment variables steer it:

``WEAVEK_PLUGINS=a,b``
    Load only these entry points (by convention an entry point is named
    after the plugin it provides: ``seed = "weavek_seed.hooks"``). Set but
    empty, it loads none.
``WEAVEK_DISABLE_PLUGINS=a,b``
    Load none of these entry points, and offer no plugin of these names in
    any family, wherever it comes from.
``WEAVEK_TRACE_HOOKS=1``
    Print the plugins registered, then every hook call with its arguments
    and results, to stderr.

:func:`registry` turns a family's registration hook into ``{name: class}``
and :func:`resolve` picks the one a user named; :func:`installed_plugins` is
what ``weavek plugins`` shows.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final, Literal, overload

import pluggy

from . import hookspecs
from .interfaces import InitStrategy, Runtime, Store, Transport
from .plugin import PROJECT

__all__ = [
    "ENV_ALLOW",
    "ENV_BLOCK",
    "ENV_TRACE",
    "FAMILIES",
    "DuplicatePluginError",
    "Family",
    "PluginError",
    "PluginInfo",
    "UnknownPluginError",
    "installed_plugins",
    "make_plugin_manager",
    "parse_plugin_arg",
    "registry",
    "resolve",
]

ENV_ALLOW: Final = "WEAVEK_PLUGINS"
ENV_BLOCK: Final = "WEAVEK_DISABLE_PLUGINS"
ENV_TRACE: Final = "WEAVEK_TRACE_HOOKS"

Family = Literal["transport", "init", "store", "runtime"]
"""A plugin family, named as on the command line (``--init``) where it can be."""

FAMILIES: Final[tuple[Family, ...]] = ("transport", "init", "store", "runtime")


@dataclass(frozen=True, slots=True)
class _FamilySpec:
    hook: str
    label: str
    base: type[Any]


_SPECS: Final[dict[str, _FamilySpec]] = {
    "transport": _FamilySpec("weavek_transports", "transport", Transport),
    "init": _FamilySpec("weavek_init_strategies", "init strategy", InitStrategy),
    "store": _FamilySpec("weavek_stores", "store", Store),
    "runtime": _FamilySpec("weavek_runtimes", "runtime", Runtime),
}


class PluginError(Exception):
    """A plugin is broken or two plugins conflict; the message is one line for the user."""


class DuplicatePluginError(PluginError):
    """Two plugins provide the same name in one family."""


class UnknownPluginError(PluginError, LookupError):
    """No installed plugin of the family has the name the user typed."""

    def __init__(self, family: str, name: str, installed: Iterable[str]) -> None:
        self.family = family
        self.name = name
        self.installed = tuple(sorted(installed))
        listed = ", ".join(self.installed) or "none"
        super().__init__(f"unknown {_spec(family).label} {name!r} (installed: {listed})")


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One installed plugin class, as ``weavek plugins`` lists it."""

    family: Family
    name: str
    distribution: str | None
    """The distribution that registered it; None when that cannot be told."""
    version: str | None


def make_plugin_manager(
    *,
    load_entry_points: bool = True,
    allow: Iterable[str] | None = None,
    block: Iterable[str] | None = None,
    plugins: Iterable[object] = (),
) -> pluggy.PluginManager:
    """A new plugin manager with the weavek hooks, the entry-point plugins and ``plugins``.

    :param load_entry_points: load plugins from the ``weavek`` entry-point group.
    :param allow: entry-point names to load; None reads ``WEAVEK_PLUGINS``,
        and when that is unset too, every entry point loads.
    :param block: names to block; None reads ``WEAVEK_DISABLE_PLUGINS``.
    :param plugins: plugin objects (modules, classes, instances) to register
        after the entry points, whatever ``allow`` says; one that an entry
        point already registered is skipped.
    :raises PluginError: when a plugin implements a hook that does not exist.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    tracing = _flag(os.environ.get(ENV_TRACE))
    if tracing:
        pm.trace.root.setwriter(_write_stderr)
        pm.enable_tracing()
    for name in _names(block, ENV_BLOCK) or ():
        pm.set_blocked(name)
    if load_entry_points:
        allowed = _names(allow, ENV_ALLOW)
        if allowed is None:
            pm.load_setuptools_entrypoints(PROJECT)
        else:
            for name in sorted(allowed):
                pm.load_setuptools_entrypoints(PROJECT, name=name)
    for plugin in plugins:
        if not pm.is_registered(plugin):
            pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(_explain_pending(pm) or str(exc)) from exc
    if tracing:
        # pluggy traces calls only; which plugins loaded, and from where, is
        # the first question when hooks misbehave.
        distributions = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
        for name, plugin in pm.list_name_plugin():
            dist = distributions.get(id(plugin))
            origin = f"{dist.project_name} {dist.version}" if dist is not None else "passed in"
            pm.trace("registered", name, f"({origin})")
    return pm


@overload
def registry(
    pm: pluggy.PluginManager, family: Literal["transport"]
) -> dict[str, type[Transport]]: ...
@overload
def registry(
    pm: pluggy.PluginManager, family: Literal["init"]
) -> dict[str, type[InitStrategy]]: ...
@overload
def registry(pm: pluggy.PluginManager, family: Literal["store"]) -> dict[str, type[Store]]: ...
@overload
def registry(pm: pluggy.PluginManager, family: Literal["runtime"]) -> dict[str, type[Runtime]]: ...
@overload
def registry(pm: pluggy.PluginManager, family: str) -> dict[str, type[Any]]: ...
def registry(pm: pluggy.PluginManager, family: str) -> dict[str, type[Any]]:
    """Every plugin class of ``family`` that is not blocked, by name, sorted by name.

    :raises DuplicatePluginError: when two plugins use one name, naming both.
    :raises PluginError: when a registration hook returns something that is not
        a list of the family's classes with a non-empty ``name``.
    """
    return {name: cls for name, (cls, _) in _collect(pm, family).items()}


@overload
def resolve(
    pm: pluggy.PluginManager, family: Literal["transport"], name: str
) -> type[Transport]: ...
@overload
def resolve(pm: pluggy.PluginManager, family: Literal["init"], name: str) -> type[InitStrategy]: ...
@overload
def resolve(pm: pluggy.PluginManager, family: Literal["store"], name: str) -> type[Store]: ...
@overload
def resolve(pm: pluggy.PluginManager, family: Literal["runtime"], name: str) -> type[Runtime]: ...
@overload
def resolve(pm: pluggy.PluginManager, family: str, name: str) -> type[Any]: ...
def resolve(pm: pluggy.PluginManager, family: str, name: str) -> type[Any]:
    """The class of ``family`` named ``name``.

    :raises UnknownPluginError: listing the installed names when there is none.
    """
    found = registry(pm, family)
    try:
        return found[name]
    except KeyError:
        raise UnknownPluginError(family, name, found) from None


def installed_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every plugin class of every family, with the distribution that registered it."""
    return [
        PluginInfo(family, name, source.distribution, source.version)
        for family in FAMILIES
        for name, (_, source) in _collect(pm, family).items()
    ]


def parse_plugin_arg(text: str) -> tuple[str, str | None]:
    """Split ``--init``-style ``NAME[=ARG]`` text into the name and the argument.

    ``"seed=::1,::2"`` -> ``("seed", "::1,::2")``; ``"consensus"`` -> ``("consensus", None)``.

    :raises ValueError: when the name is empty.
    """
    name, sep, arg = text.partition("=")
    name = name.strip()
    if not name:
        raise ValueError(f"missing plugin name in {text!r}; expected NAME or NAME=ARG")
    return name, (arg if sep else None)


# -------------------------------------------------------------------------
# Where registered classes come from
# -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Source:
    plugin: str
    distribution: str | None
    version: str | None

    def __str__(self) -> str:
        if self.distribution is None:
            return f"plugin {self.plugin!r}"
        return f"{self.distribution} {self.version}"


def _spec(family: str) -> _FamilySpec:
    try:
        return _SPECS[family]
    except KeyError:
        raise ValueError(
            f"unknown plugin family {family!r} (one of: {', '.join(_SPECS)})"
        ) from None


def _collect(pm: pluggy.PluginManager, family: str) -> dict[str, tuple[type[Any], _Source]]:
    spec = _spec(family)
    hook: pluggy.HookCaller = getattr(pm.hook, spec.hook)
    entry_points = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    found: dict[str, tuple[type[Any], _Source]] = {}
    for impl in hook.get_hookimpls():
        if impl.wrapper or impl.hookwrapper:
            continue
        dist = entry_points.get(id(impl.plugin))
        if dist is not None:
            source = _Source(impl.plugin_name, dist.project_name, str(dist.version))
        else:
            source = _Source(impl.plugin_name, *_guess_distribution(impl.plugin))
        # Call each plugin on its own, through pluggy so tracing sees it, to
        # know which distribution returned which class.
        others = [p for p in pm.get_plugins() if p is not impl.plugin]
        for result in pm.subset_hook_caller(spec.hook, others)():
            for cls in _classes(result, spec, source):
                if pm.is_blocked(cls.name):
                    continue
                seen = found.get(cls.name)
                if seen is not None and seen[0] is not cls:
                    first, second = sorted([_describe(*seen), _describe(cls, source)])
                    raise DuplicatePluginError(
                        f"{spec.label} {cls.name!r} is provided by both {first} and {second}"
                    )
                found[cls.name] = (cls, source)
    return dict(sorted(found.items()))


def _classes(result: object, spec: _FamilySpec, source: _Source) -> list[type[Any]]:
    if not isinstance(result, list | tuple):
        raise PluginError(f"{source}: {spec.hook}() must return a list of classes, not {result!r}")
    for cls in result:
        if not (isinstance(cls, type) and issubclass(cls, spec.base)):
            raise PluginError(
                f"{source}: {spec.hook}() returned {cls!r}, not a subclass of {spec.base.__name__}"
            )
        name = getattr(cls, "name", None)
        if not (isinstance(name, str) and name):
            raise PluginError(f"{source}: {cls.__qualname__} has no name (set the class's `name`)")
    return list(result)


def _describe(cls: type[Any], source: _Source) -> str:
    return f"{source} ({cls.__module__}.{cls.__qualname__})"


def _guess_distribution(plugin: object) -> tuple[str | None, str | None]:
    """The installed distribution a plugin not loaded from an entry point comes from, if any."""
    module = (
        plugin.__name__ if isinstance(plugin, ModuleType) else getattr(plugin, "__module__", "")
    )
    top = str(module).partition(".")[0]
    if not top:
        return None, None
    # An editable install's RECORD lists a .pth file, not the package, so
    # fall back to a distribution named like the package (weavek, weavek_seed).
    candidates = [*importlib.metadata.packages_distributions().get(top, []), top]
    for name in candidates:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        return dist.metadata["Name"], dist.version
    return None, None


# -------------------------------------------------------------------------
# Environment and diagnostics
# -------------------------------------------------------------------------


def _names(given: Iterable[str] | None, env: str) -> frozenset[str] | None:
    raw: Iterable[str] | None = given
    if raw is None:
        value = os.environ.get(env)
        if value is None:
            return None
        raw = value.split(",")
    return frozenset(name.strip() for name in raw if name.strip())


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in ("", "0", "false", "no", "off")


def _write_stderr(text: str) -> None:
    # Looked up on each call, so redirected or captured stderr is honoured.
    sys.stderr.write(text)


def _explain_pending(pm: pluggy.PluginManager) -> str | None:
    """Which plugin implements which unknown hook, and the hook it probably meant."""
    known = [name for name in dir(hookspecs) if name.startswith(f"{PROJECT}_")]
    for name, hook in vars(pm.hook).items():
        if name.startswith("_") or hook.has_spec():
            continue
        for impl in hook.get_hookimpls():
            if impl.optionalhook:
                continue
            message = f"plugin {impl.plugin_name!r} implements unknown hook {name!r}"
            close = difflib.get_close_matches(name, known, n=1)
            return f"{message}; did you mean {close[0]!r}?" if close else message
    return None
