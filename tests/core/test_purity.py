"""The kernel stays pure: nothing under weavek/core touches I/O, clocks, randomness or threads.

Two checks. The static one reads every ``.py`` file under ``kernel/weavek/core`` with :mod:`ast`
and refuses any ``import x``/``from x import`` of a forbidden module or one of its submodules
(``os.path`` counts as ``os``). The runtime one imports every core module in a fresh interpreter
in which the forbidden modules are poisoned (``sys.modules[name] = None``), so an import hidden
from the static check (``importlib.import_module("os")`` at module level, or a non-core module
that core imports and that imports a forbidden one) fails too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import weavek

FORBIDDEN = frozenset(
    {
        "anyio",
        "pluggy",
        "socket",
        "time",
        "random",
        "os",
        "asyncio",
        "threading",
        "subprocess",
        "logging",
    }
)

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "kernel" / "weavek" / "core"
CORE_FILES = sorted(CORE.rglob("*.py"))


def module_name(path: Path, package_dir: Path) -> str:
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def absolute_imports(source: str, filename: str) -> list[tuple[int, str]]:
    """``(line, dotted module)`` for every absolute import in the source; relative ones skipped."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def forbidden_imports(source: str, filename: str) -> list[str]:
    return [
        f"{filename}:{line}: imports {name!r} (forbidden in weavek.core: {name.split('.')[0]})"
        for line, name in sorted(absolute_imports(source, filename))
        if name.split(".")[0] in FORBIDDEN
    ]


def test_core_files_are_found() -> None:
    assert CORE / "__init__.py" in CORE_FILES
    assert CORE / "address.py" in CORE_FILES
    assert CORE / "peer.py" in CORE_FILES


def test_static_check_sees_every_form() -> None:
    source = textwrap.dedent(
        """
        import os.path
        import json, socket as s
        from time import monotonic
        from asyncio.subprocess import PIPE
        from . import address
        from .random import thing
        from dataclasses import dataclass
        def f():
            import threading
        if True:
            from logging import getLogger
        """
    )
    assert forbidden_imports(source, "x.py") == [
        "x.py:2: imports 'os.path' (forbidden in weavek.core: os)",
        "x.py:3: imports 'socket' (forbidden in weavek.core: socket)",
        "x.py:4: imports 'time' (forbidden in weavek.core: time)",
        "x.py:5: imports 'asyncio.subprocess' (forbidden in weavek.core: asyncio)",
        "x.py:10: imports 'threading' (forbidden in weavek.core: threading)",
        "x.py:12: imports 'logging' (forbidden in weavek.core: logging)",
    ]


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(CORE)))
def test_no_forbidden_import_in_source(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    found = forbidden_imports(path.read_text(encoding="utf-8"), rel)
    assert not found, "weavek.core must stay pure:\n" + "\n".join(found)


# Run in a fresh interpreter: argv[1] is JSON [package, package dir, forbidden, preload, modules].
_PROBE = """
import importlib, json, sys, traceback, types
package, package_dir, forbidden, preload, modules = json.loads(sys.argv[1])
for name, optional in preload:  # what core imports legitimately; it may import os or time
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        if not optional:  # "from pkg import name": name need not be a submodule
            raise
# weavek/__init__.py is not core: stand in for it so that only core's own imports are judged.
stub = types.ModuleType(package)
stub.__path__ = [package_dir]
sys.modules[package] = stub
for name in forbidden:
    sys.modules[name] = None
failures = []
for name in modules:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = [f"{f.filename}:{f.lineno}" for f in frames if f.filename.startswith(package_dir)]
        blocked = (exc.name or "").split(".")[0] in forbidden
        what = f"imports {exc.name}, forbidden" if blocked else "does not import at all"
        failures.append(f"{name} ({(where or ['?'])[-1]}) {what}: {exc}")
print(json.dumps(failures))
"""


def runtime_failures(package_dir: Path, files: list[Path]) -> list[str]:
    """Import every module of ``files`` (under ``package_dir``) with the forbidden ones poisoned."""
    wanted: set[tuple[str, bool]] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                wanted.update((alias.name, False) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                wanted.add((node.module, False))
                wanted.update((f"{node.module}.{alias.name}", True) for alias in node.names)
    package = package_dir.name
    preload = sorted(
        (name, optional)
        for name, optional in wanted
        if name.split(".")[0] not in FORBIDDEN | {package, "__future__"}
    )
    modules = sorted(module_name(path, package_dir) for path in files)
    arg = json.dumps([package, str(package_dir), sorted(FORBIDDEN), preload, modules])
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, arg],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    failures: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return failures


def test_core_imports_nothing_forbidden_at_runtime() -> None:
    package_dir = Path(weavek.__file__).resolve().parent
    files = sorted((package_dir / "core").rglob("*.py"))
    assert files, f"no weavek.core modules under {package_dir}"
    failures = runtime_failures(package_dir, files)
    assert not failures, (
        "weavek.core must import with the forbidden modules poisoned:\n" + "\n".join(failures)
    )


def test_runtime_check_sees_a_hidden_import(tmp_path: Path) -> None:
    core = tmp_path / "fakepkg" / "core"
    core.mkdir(parents=True)
    (core / "__init__.py").write_text("")
    (core / "clean.py").write_text("import dataclasses\nfrom . import sneaky as _\n")
    (core / "sneaky.py").write_text('import importlib\nimportlib.import_module("socket")\n')
    (core / "timer.py").write_text("from time import monotonic\n")
    failures = runtime_failures(tmp_path / "fakepkg", sorted(core.glob("*.py")))
    assert len(failures) == 3, failures
    clean, sneaky, timer = failures
    assert clean.startswith("fakepkg.core.clean (") and "imports socket, forbidden" in clean
    assert sneaky.startswith("fakepkg.core.sneaky (") and "sneaky.py:2)" in sneaky
    assert timer.startswith("fakepkg.core.timer (") and "timer.py:1) imports time" in timer
