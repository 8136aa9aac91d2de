"""contrib/p2psocial.service: a systemd user unit that runs the daemon."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemons import cli_env

UNIT = Path(__file__).resolve().parent.parent / "contrib" / "p2psocial.service"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values, as systemd reads them (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a setting outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def fake_home(tmp_path: Path) -> Path:
    """A home whose ~/.local/bin/p2psocial is this checkout's command, as pipx puts it."""
    home = tmp_path / "home"
    bindir = home / ".local" / "bin"
    bindir.mkdir(parents=True)
    command = bindir / "p2psocial"
    command.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m p2psocial "$@"\n')
    command.chmod(0o755)
    return home


def test_the_unit_runs_the_daemon_and_restarts_it_on_failure(
    unit: dict[str, dict[str, list[str]]],
) -> None:
    service = unit["Service"]
    assert service["ExecStart"] == ["%h/.local/bin/p2psocial daemon"]
    assert service["Restart"] == ["on-failure"]
    assert service["Type"] == ["simple"]
    # Logs go to the journal, not to a file of our own.
    assert service["StandardError"] == ["journal"]
    # Starting at login: `systemctl --user enable` links it into default.target.
    assert unit["Install"]["WantedBy"] == ["default.target"]
    # A start that can never work (no identity) is not retried forever.
    assert int(unit["Unit"]["StartLimitBurst"][0]) >= 1


def test_exec_start_is_the_daemon_command(
    unit: dict[str, dict[str, list[str]]], tmp_path: Path
) -> None:
    home = fake_home(tmp_path)
    argv = shlex.split(unit["Service"]["ExecStart"][0].replace("%h", str(home)))
    proc = subprocess.run(
        [*argv, "--help"], capture_output=True, text=True, timeout=60, env=cli_env()
    )
    assert proc.returncode == 0, proc.stderr
    usage = proc.stdout.splitlines()[0]
    assert usage.startswith("Usage: ") and usage.split()[-2:] == ["daemon", "[OPTIONS]"], usage


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    home = fake_home(tmp_path)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {**cli_env(), "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    proc = subprocess.run(
        ["systemd-analyze", "--user", "verify", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    # verify exits 0 on unknown keys too, with a warning: any word about the
    # unit is a finding.
    said = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 and "Failed to initialize manager" in said:
        pytest.skip(f"systemd-analyze cannot run a user manager here: {said}")
    assert proc.returncode == 0 and UNIT.name not in said, said
