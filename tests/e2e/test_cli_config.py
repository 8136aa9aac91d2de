"""A real daemon driven by the ``p2psocial`` command: JSON cursors, policy and
config changes applied live, unknown ids, unmute, and the ports init saved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2psocial.client import DaemonProcess, spawn_daemon
from p2psocial.node.config import NodeConfig
from tests.cli.test_cli_scripting import run_bare
from tests.daemons import cli_env, cli_json, run_cli

pytestmark = pytest.mark.slow

TEXTS = ["first about apples", "second about apples", "third about apples"]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, DaemonProcess]]:
    home = tmp_path_factory.mktemp("cfg") / "home"
    run_cli(home, "init")
    text = (home / "config.toml").read_text()
    (home / "config.toml").write_text("# kept by every save\n" + text)
    # No --port or --dht-port: the ports init saved apply.
    with spawn_daemon(
        home, listen="127.0.0.1", port=None, dht_port=None, env=cli_env(), log=home.parent / "log"
    ) as daemon:
        for t in TEXTS:
            run_cli(home, "post", t)
        yield home, daemon


def lines(home: Path, *args: str) -> list[dict[str, Any]]:
    return cli_json(home, *args)


def test_the_daemon_listens_on_the_ports_init_saved(node: tuple[Path, DaemonProcess]) -> None:
    home, daemon = node
    cfg = NodeConfig.load(home)
    assert daemon.info["dht"] == f"127.0.0.1:{cfg.dht_port}"
    assert daemon.info["peer"] == f"127.0.0.1:{cfg.port}"


@pytest.mark.parametrize(
    "command", [["timeline"], ["feed"], ["search", "apples"]], ids=lambda c: c[0]
)
def test_json_pages_end_with_a_cursor_that_before_takes(
    node: tuple[Path, DaemonProcess], command: list[str]
) -> None:
    home, _ = node
    first = lines(home, *command, "--limit", "2")
    assert len(first) == 3 and set(first[-1]) == {"next"}
    rest = lines(home, *command, "--limit", "2", "--before", first[-1]["next"])
    assert all("next" not in r for r in rest)
    texts = [r["text"] for r in first[:-1] + rest]
    assert sorted(texts) == sorted(TEXTS) and len(texts) == 3
    human = run_cli(home, *command, "--limit", "2")
    assert f"more: --before {first[-1]['next']}" in human.stderr
    assert "next" not in human.stdout


def test_unknown_id_exits_non_zero_in_one_line(node: tuple[Path, DaemonProcess]) -> None:
    home, _ = node
    proc = run_cli(home, "thread", "ab" * 32, check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stdout == ""


def test_policy_show_and_clearing_a_list(node: tuple[Path, DaemonProcess]) -> None:
    home, _ = node
    run_cli(home, "policy", "set", "hide_patterns", "spam+", "scam")
    [pol] = lines(home, "policy", "show")
    assert pol["hide_patterns"] == ["spam+", "scam"] and pol["accept_inbound"] is True
    human = run_cli(home, "policy", "show").stdout
    assert "spam+ scam" in human and "true" in human
    assert "[" not in human and "'" not in human and "True" not in human
    out = run_cli(home, "policy", "set", "hide_patterns").stdout
    assert out.strip() == "hide_patterns = (none)"
    [pol] = lines(home, "policy", "show")
    assert pol["hide_patterns"] == []
    bad = run_cli(home, "policy", "set", "hops", check=False)
    assert bad.returncode == 1 and "hops takes a value" in bad.stderr


def test_config_set_policy_applies_live(node: tuple[Path, DaemonProcess]) -> None:
    home, _ = node
    [res] = lines(home, "config", "set", "policy.hops", "2")
    assert res == {"key": "policy.hops", "value": 2, "applied": "live", "restart_needed": False}
    [pol] = lines(home, "policy", "show")
    assert pol["hops"] == 2
    assert NodeConfig.load(home).policy.hops == 2
    assert (home / "config.toml").read_text().startswith("# kept by every save\n")
    run_cli(home, "config", "set", "hops", "1")


def test_node_settings_say_a_restart_is_needed(node: tuple[Path, DaemonProcess]) -> None:
    home, _ = node
    cfg = NodeConfig.load(home)
    out = run_cli(home, "config", "set", "listen", "127.0.0.1").stdout
    assert "restart the daemon" in out
    [res] = lines(home, "bootstrap", "add", "127.0.0.1:9")
    assert res["restart_needed"] is True
    [res] = lines(home, "bootstrap", "rm", "127.0.0.1:9")
    assert res["restart_needed"] is True
    assert NodeConfig.load(home).port == cfg.port  # the daemon's own saves keep [node]


def test_a_new_peer_is_dialled_at_once(node: tuple[Path, DaemonProcess], tmp_path: Path) -> None:
    home, _ = node
    other = tmp_path / "other"
    run_cli(other, "init")
    with spawn_daemon(other, env=cli_env(), log=tmp_path / "other.log") as peer:
        [res] = lines(home, "config", "set", "peers", peer.addr("peer"))
        assert res["applied"] == "live"
        linked = {p["node_id"] for p in lines(home, "peers")}
        assert peer.info["node_id"] in linked
    run_cli(home, "config", "set", "peers")


def test_unmute_and_mute_undo(node: tuple[Path, DaemonProcess], tmp_path: Path) -> None:
    home, _ = node
    someone = json.loads(run_cli(tmp_path / "x", "--json", "init").stdout)["identity"]
    assert run_cli(home, "mute", someone).stdout.strip() == f"muted {someone}"
    assert run_cli(home, "unmute", someone).stdout.strip() == f"unmuted {someone}"
    run_cli(home, "mute", someone)
    assert run_cli(home, "mute", "--undo", someone).stdout.strip() == f"unmuted {someone}"
    [pol] = lines(home, "policy", "show")
    assert someone not in pol["muted"]


def test_global_options_after_the_command_reach_the_daemon(
    node: tuple[Path, DaemonProcess],
) -> None:
    home, _ = node
    proc = run_bare("timeline", "--limit", "1", "--data-dir", str(home), "--json")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(records) == 2 and "next" in records[-1]


def test_a_data_dir_without_saved_ports_keeps_its_first_ones(tmp_path: Path) -> None:
    # Data dirs made before init saved ports: the daemon keeps what it bound.
    home = tmp_path / "old"
    run_cli(home, "init")
    run_cli(home, "config", "set", "port", "0")
    run_cli(home, "config", "set", "dht_port", "0")
    with spawn_daemon(
        home, listen="127.0.0.1", port=None, dht_port=None, env=cli_env(), log=tmp_path / "log"
    ) as daemon:
        info = dict(daemon.info)
    cfg = NodeConfig.load(home)
    assert info["peer"] == f"127.0.0.1:{cfg.port}" and info["dht"] == f"127.0.0.1:{cfg.dht_port}"
