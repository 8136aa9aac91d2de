"""The ``p2psocial`` command without a network: init, keys, help and errors."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2psocial.cli.main import cli
from p2psocial.client import DaemonProcessError, spawn_daemon
from p2psocial.protocol.identity import identity_from_text
from tests.cli.forks import make_fork, seed
from tests.daemons import Daemon, cli_env, run_cli


def test_init_creates_keys_config_and_prints_next_step(tmp_path: Path) -> None:
    d = tmp_path / "home"
    proc = run_cli(d, "init")
    assert "Created identity p2ps1" in proc.stdout
    assert f"p2psocial --data-dir {d} daemon" in proc.stdout
    for name in ("identity.pem", "node.pem"):
        assert stat.S_IMODE(os.stat(d / name).st_mode) == 0o600
    assert (d / "config.toml").is_file()
    text = proc.stdout.split("Created identity ")[1].split()[0]
    identity_from_text(text)
    assert json.loads(run_cli(d, "--json", "id").stdout) == {"identity": text}


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    d = tmp_path / "home"
    first = json.loads(run_cli(d, "--json", "init").stdout)["identity"]
    again = run_cli(d, "init", check=False)
    assert again.returncode != 0 and "--force" in again.stderr
    assert json.loads(run_cli(d, "--json", "id").stdout)["identity"] == first
    forced = json.loads(run_cli(d, "--json", "init", "--force").stdout)["identity"]
    assert forced != first


def test_passphrase_file_encrypts_and_the_daemon_needs_it(tmp_path: Path) -> None:
    d = tmp_path / "home"
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    run_cli(d, "init", "--passphrase-file", str(pw))
    assert b"ENCRYPTED" in (d / "identity.pem").read_bytes()
    # Without the passphrase the daemon refuses with a clear message.
    proc = run_cli(
        d, "daemon", "--listen", "127.0.0.1", "--port", "0", "--dht-port", "0", check=False
    )
    assert proc.returncode != 0 and "passphrase" in proc.stderr.lower()
    # With it (from the environment), the daemon starts.
    env = dict(cli_env(), P2PSOCIAL_PASSPHRASE="correct horse")
    with spawn_daemon(d, env=env, log=tmp_path / "daemon.log", wait=False) as daemon:
        # Not ready (or exited): the assertion below shows the log.
        with contextlib.suppress(DaemonProcessError):
            daemon.wait_ready()
        line = daemon.ready_line or daemon.log()
        assert line.startswith("p2psocial ready"), line


def test_data_dir_from_environment(tmp_path: Path) -> None:
    env = dict(cli_env(), P2PSOCIAL_HOME=str(tmp_path / "envhome"))
    out = subprocess.run(
        [sys.executable, "-m", "p2psocial", "--json", "init"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    assert (tmp_path / "envhome" / "identity.pem").exists()
    assert json.loads(out.stdout)["data_dir"] == str(tmp_path / "envhome")


COMMANDS = sorted(cli.commands)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


@pytest.mark.parametrize(
    "args",
    [["timeline"], ["status"], ["post", "hi"], ["follow", "p2ps1x"], ["search", "x"], ["peers"]],
)
def test_daemon_down_error_names_socket_and_command(tmp_path: Path, args: list[str]) -> None:
    proc = run_cli(tmp_path, *args, check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert str(tmp_path / "api.sock") in proc.stderr
    assert f"p2psocial --data-dir {tmp_path} daemon" in proc.stderr


def test_post_too_long_names_the_limit_before_contacting_a_daemon(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "post", "x" * 2001, check=False)
    assert proc.returncode == 1 and "2000" in proc.stderr


def test_post_reads_stdin_and_wait_for_daemon(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "node")
    d.init()
    with d:
        d.start()
        out = run_cli(d.data_dir, "--json", "--wait", "5", "post", "-", input="from stdin\n").stdout
        posted = json.loads(out)
        [entry] = [json.loads(x) for x in run_cli(d.data_dir, "--json", "feed").stdout.splitlines()]
        assert entry["id"] == posted["id"] and entry["text"] == "from stdin"
        human = run_cli(d.data_dir, "timeline").stdout
        assert "from stdin" in human and posted["id"] in human


def test_forked_feed_in_status_feed_and_explain(tmp_path: Path) -> None:
    fork = make_fork()
    d = Daemon(tmp_path / "node")
    d.init()
    seed(d.data_dir / "node.db", fork.common + fork.x, fork.y)
    with d:
        d.start()
        [st] = [json.loads(x) for x in run_cli(d.data_dir, "--json", "status").stdout.splitlines()]
        assert st["forked_feeds"] == 1
        assert st["forks"] == [{"identity": fork.identity, "fork_seq": 3}]
        human = run_cli(d.data_dir, "status").stdout
        assert "forked    1" in human
        assert f"{fork.identity} frozen at seq 3" in human

        records = [
            json.loads(x)
            for x in run_cli(d.data_dir, "--json", "feed", fork.identity).stdout.splitlines()
        ]
        assert [r["id"] for r in records] == [*fork.common_ids, *fork.x_ids][::-1]
        assert all(r["author_forked"] is True and r["author_fork_seq"] == 3 for r in records)
        shown = run_cli(d.data_dir, "feed", fork.identity)
        warning = [line for line in shown.stderr.splitlines() if "forked" in line]
        assert len(warning) == 1, shown.stderr
        assert "signed two different entries at seq 3" in warning[0]
        assert "frozen" in warning[0]
        assert shown.stdout.count("forked feed") == len(records)

        [why] = [
            json.loads(x)
            for x in run_cli(d.data_dir, "--json", "explain", fork.x_ids[0]).stdout.splitlines()
        ]
        assert (why["author_forked"], why["author_fork_seq"]) == (True, 3)
        text = run_cli(d.data_dir, "explain", fork.x_ids[0]).stdout
        assert "forked" in text and "frozen at seq 3" in text and "one of two" in text
