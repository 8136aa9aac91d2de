"""Failures a user can cause at start-up: one line naming the thing at fault, a
non-zero exit, no traceback, and no advice that would destroy the identity."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2psocial.client import cli_argv, daemon_argv
from tests.daemons import cli_env, run_cli

pytestmark = pytest.mark.slow


def run_daemon(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        # Only the options each test gives: it is the daemon's own checks under test.
        daemon_argv(data_dir, listen=None, port=None, dht_port=None, extra_args=args),
        capture_output=True,
        text=True,
        timeout=30,
        env=env or cli_env(),
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode, proc.stderr


def problem_lines(stderr: str) -> list[str]:
    """The lines the command itself printed (not the daemon's log records)."""
    return [ln for ln in stderr.splitlines() if ln.startswith("p2psocial:")]


@pytest.fixture
def held_ports() -> Iterator[tuple[int, int]]:
    """A TCP and a UDP port on 127.0.0.1 held by another program."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        yield tcp.getsockname()[1], udp.getsockname()[1]
    finally:
        tcp.close()
        udp.close()


@pytest.mark.parametrize("which", ["tcp", "udp"])
def test_port_in_use_is_one_line_naming_the_port(
    tmp_path: Path, held_ports: tuple[int, int], which: str
) -> None:
    d = tmp_path / "node"
    run_cli(d, "init")
    tcp, udp = held_ports
    args = ["--listen", "127.0.0.1"]
    args += ["--port", str(tcp), "--dht-port", "0"] if which == "tcp" else []
    args += ["--port", "0", "--dht-port", str(udp)] if which == "udp" else []
    rc, err = run_daemon(d, *args)
    assert rc != 0
    assert "Traceback" not in err and "ExceptionGroup" not in err, err
    [line] = problem_lines(err)
    port = tcp if which == "tcp" else udp
    assert f"127.0.0.1:{port}" in line and "in use" in line, line
    assert ("TCP" if which == "tcp" else "UDP") in line


def test_wrong_passphrase_is_one_line_and_never_suggests_init_force(tmp_path: Path) -> None:
    d = tmp_path / "node"
    env = cli_env()
    env["P2PSOCIAL_PASSPHRASE"] = "the right one"
    subprocess.run(
        cli_argv("init", data_dir=d),
        env=env,
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert b"ENCRYPTED" in (d / "identity.pem").read_bytes()
    env["P2PSOCIAL_PASSPHRASE"] = "a wrong one"
    rc, err = run_daemon(d, "--listen", "127.0.0.1", "--port", "0", "--dht-port", "0", env=env)
    assert rc != 0
    assert "Traceback" not in err and "ExceptionGroup" not in err, err
    [line] = problem_lines(err)
    assert "passphrase" in line and "identity.pem" in line
    assert "--force" not in line


@pytest.mark.parametrize(
    "toml",
    [
        "[node]\nport = 70000\n",  # was wrapped to 70000 mod 65536 = 4464 without a word
        "[node]\ndht_port = 99999999999999999999999\n",  # was 3 OverflowError tracebacks
        "[policy]\nmax_payload_bytes = -5\n",  # was accepted
    ],
)
def test_out_of_range_config_values_are_one_line(tmp_path: Path, toml: str) -> None:
    d = tmp_path / "node"
    run_cli(d, "init")
    (d / "config.toml").write_text(toml, encoding="utf-8")
    rc, err = run_daemon(d)
    assert rc != 0
    assert "Traceback" not in err, err
    [line] = problem_lines(err)
    assert "config.toml" in line
