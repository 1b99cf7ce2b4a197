"""What a peer loads at start: ``weavek launch`` must not pay for the client commands.

Every peer process starts with ``weavek launch --foreground``, so its imports
are part of how long five peers take to agree on a ring (benchmarks/README.md).
This checks which modules load, not how long anything takes.
"""

from __future__ import annotations

import os
import subprocess
import sys


def _imported(*args: str) -> set[str]:
    env = dict(os.environ, WEAVEK_PLUGINS="tcp,consensus")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "weavek", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip() for line in lines}


def test_launch_loads_neither_the_http_client_nor_other_commands() -> None:
    modules = _imported("launch", "--help")
    # (importlib.import_module, as the CLI loads a command, goes unlisted; its imports do not)
    assert "weavek.cli._daemon" in modules
    assert not {"httpx", "weavek.cli.ip", "weavek.cli.attach", "weavek.cli.prime"} & modules


def test_the_tcp_transport_loads_cryptography_only_for_a_password() -> None:
    modules = _imported("launch", "--help")
    assert "weavek_tcp.transport" in modules
    assert not any(name.startswith("cryptography") for name in modules)


def test_help_still_lists_every_command() -> None:
    env = dict(os.environ, WEAVEK_PLUGINS="tcp,consensus", COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-m", "weavek", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for command in ("launch", "stop", "prime", "status", "ip", "attach", "plugins", "simulate"):
        assert f" {command} " in done.stdout


def test_a_peer_on_its_defaults_loads_no_other_plugins_heavy_libraries() -> None:
    # Every first-party plugin is installed here (the py env), as after the README's
    # quick start: finding their hooks and resolving the default store, transport and
    # init strategy must not import the Docker SDK, grpc, aetcd or pyroute2, which
    # only the runtimes and stores that use them need (about 0.3 s of start-up).
    script = (
        "import sys\n"
        "from weavek.plugins import make_plugin_manager, resolve\n"
        "pm = make_plugin_manager()\n"
        "loaded = {name for name, _ in pm.list_name_plugin()}\n"
        "assert {'docker', 'containerd', 'netns', 'etcd', 'volume'} <= loaded, loaded\n"
        "for family, name in [('store', 'weavedb'), ('transport', 'tcp'), ('init', 'consensus')]:\n"
        "    resolve(pm, family, name)\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEAVEK_")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    heavy = ("docker", "grpc", "aetcd", "pyroute2", "google.protobuf")
    loaded = [m for m in done.stdout.split() if m.split(".")[0] in heavy or m.startswith(heavy)]
    assert not loaded, loaded
