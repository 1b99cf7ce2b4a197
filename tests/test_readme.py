"""README's quick start and .ci/run must not drift: CI runs what the README tells people to."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"


def quick_start_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Quick start\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert section, "README.md has no '## Quick start' section"
    blocks = re.findall(r"^```sh\n(.*?)^```$", section.group(1), re.MULTILINE | re.DOTALL)
    return [block.strip() for block in blocks]


def test_quick_start_has_two_sh_blocks() -> None:
    commands = quick_start_commands()
    assert len(commands) >= 2, commands
    assert all(commands), commands


def test_first_command_runs_weavek() -> None:
    assert "weavek" in quick_start_commands()[0]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    command = quick_start_commands()[1]
    assert "\n" not in command, f"the test command should be one line: {command!r}"
    lines = [line.strip() for line in CI_RUN.read_text(encoding="utf-8").splitlines()]
    assert command in lines, f".ci/run must run README's test command verbatim: {command!r}"
    # It must be the command the script ends on, so that the script's exit code is its.
    last = [line for line in lines if line and not line.startswith("#")][-1]
    assert last == command, f".ci/run should end with {command!r}, not {last!r}"


def test_ci_run_is_strict_bash() -> None:
    text = CI_RUN.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n") or text.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in text
