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
