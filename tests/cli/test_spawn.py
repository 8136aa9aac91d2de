"""The daemon-spawning helper: its command lines, environment and failures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from p2psocial.client import DaemonProcessError, daemon_argv, daemon_env, spawn_daemon

BASE = [sys.executable, "-m", "p2psocial"]
LOCAL = ["--listen", "127.0.0.1", "--port", "0", "--dht-port", "0"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, ["--data-dir", "d", "daemon", *LOCAL]),
        (
            {"listen": None, "port": None, "dht_port": None},
            ["--data-dir", "d", "daemon"],
        ),
        (
            {"bootstrap": ["h:1", "h:2"], "peers": ["p:3"], "log_level": "warning"},
            [
                *["--data-dir", "d", "daemon", *LOCAL],
                *["--bootstrap", "h:1", "--bootstrap", "h:2", "--peer", "p:3"],
                *["--log-level", "warning"],
            ],
        ),
        (
            {"listen": None, "port": 4001, "extra_args": ["--passphrase-file", "pw"]},
            [
                *["--data-dir", "d", "daemon", "--port", "4001", "--dht-port", "0"],
                *["--passphrase-file", "pw"],
            ],
        ),
    ],
)
def test_daemon_argv(kwargs: dict[str, object], expected: list[str]) -> None:
    assert daemon_argv("d", **kwargs) == [*BASE, *expected]  # type: ignore[arg-type]


def test_daemon_argv_without_data_dir_is_the_users() -> None:
    assert daemon_argv(None, listen=None, port=None, dht_port=None) == [*BASE, "daemon"]


def test_daemon_env_drops_every_p2psocial_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("P2PSOCIAL_HOME", "P2PSOCIAL_PASSPHRASE", "P2PSOCIAL_API", "P2PSOCIAL_WAIT"):
        monkeypatch.setenv(key, "x")
    monkeypatch.setenv("KEEP_ME", "1")
    env = daemon_env(NO_COLOR="1")
    assert not [k for k in env if k.startswith("P2PSOCIAL_")]
    assert env["KEEP_ME"] == "1" and env["NO_COLOR"] == "1"


def test_a_daemon_that_exits_early_is_reported_and_reaped(tmp_path: Path) -> None:
    # No identity in an empty data dir: the daemon exits at once.
    d = tmp_path / "empty"
    d.mkdir()
    with pytest.raises(DaemonProcessError) as info:
        spawn_daemon(d)
    assert info.value.reason == "exited"
    assert "init" in (d / "daemon.log").read_text()
