"""Scripting and settings without a daemon: global options after the command,
config and bootstrap on config.toml, init's ports, completion, limits in --help."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2psocial import client as limits  # the limits the CLI states in --help
from p2psocial.cli.main import cli
from p2psocial.cli.output import format_settings, format_value
from p2psocial.client import cli_argv
from p2psocial.errors import LocalUsageError
from p2psocial.node.config import NodeConfig
from p2psocial.node.views import check_limit
from p2psocial.protocol import kinds
from tests.daemons import cli_env, run_cli


def run_bare(*args: str) -> subprocess.CompletedProcess[str]:
    """``p2psocial ARGS`` with no --data-dir put in front."""
    return subprocess.run(
        cli_argv(*args),
        capture_output=True,
        text=True,
        timeout=30,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    d = tmp_path / "home"
    run_cli(d, "init")
    return d


# --- global options after the command ------------------------------------------


def test_global_options_after_the_command(home: Path) -> None:
    [identity] = (home / "identity.txt").read_text().split()
    proc = run_bare("id", "--data-dir", str(home), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"identity": identity}
    down = run_bare("timeline", "--data-dir", str(home), "--wait", "0", "--no-color", "-v")
    assert down.returncode == 1 and down.stderr.count("\n") == 1
    assert str(home / "api.sock") in down.stderr
    # In a subgroup too, and the later of two places wins.
    shown = run_bare("--data-dir", "/nonexistent", "config", "show", "--data-dir", str(home))
    assert shown.returncode == 0, shown.stderr
    port = NodeConfig.load(home).port
    assert f"node.port                     {port}" in shown.stdout


def test_global_options_before_the_command_still_work(home: Path) -> None:
    proc = run_bare("--data-dir", str(home), "--json", "config", "get", "port")
    assert json.loads(proc.stdout) == {"key": "node.port", "value": NodeConfig.load(home).port}


def test_root_help_says_global_options_may_follow() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "may also follow the command" in result.output


# --- init keeps its ports ---------------------------------------------------------


def test_init_picks_and_saves_ports(tmp_path: Path) -> None:
    d = tmp_path / "n"
    rec = json.loads(run_cli(d, "--json", "init").stdout)
    cfg = NodeConfig.load(d)
    assert 0 < cfg.port < 65536 and 0 < cfg.dht_port < 65536
    assert (rec["port"], rec["dht_port"]) == (cfg.port, cfg.dht_port)
    # --force makes a new identity but keeps the node's address.
    run_cli(d, "init", "--force")
    again = NodeConfig.load(d)
    assert (again.port, again.dht_port) == (cfg.port, cfg.dht_port)


def test_init_keeps_ports_and_comments_of_an_existing_config(tmp_path: Path) -> None:
    d = tmp_path / "n"
    d.mkdir()
    (d / "config.toml").write_text("# mine\n[node]\nport = 4101 # peers\ndht_port = 4102\n")
    run_cli(d, "init")
    text = (d / "config.toml").read_text()
    assert "# mine" in text and "port = 4101 # peers" in text
    assert (NodeConfig.load(d).port, NodeConfig.load(d).dht_port) == (4101, 4102)


# --- config and bootstrap -------------------------------------------------------------


def test_config_set_keeps_comments_and_checks_like_load(home: Path) -> None:
    path = home / "config.toml"
    path.write_text("# my node\n" + path.read_text().replace("hops = 1", "hops = 1  # one hop"))
    out = run_cli(home, "config", "set", "policy.hops", "2").stdout
    assert "policy.hops = 2" in out and "starts" in out
    text = path.read_text()
    assert "# my node" in text and "hops = 2  # one hop" in text
    assert NodeConfig.load(home).policy.hops == 2
    run_cli(home, "config", "set", "hide_patterns", "spam+", "scam")
    assert NodeConfig.load(home).policy.hide_patterns == ["spam+", "scam"]
    run_cli(home, "config", "set", "hide_patterns")  # no value clears a list
    assert NodeConfig.load(home).policy.hide_patterns == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["port", "70000"], ["node.port", "0..65535"]),
        (["dht_port", "-1"], ["node.dht_port", "0..65535"]),
        (["hops", "3"], ["policy.hops", "1..2"]),
        (["quota_entries_per_day", "x"], ["policy.quota_entries_per_day", "0 or more"]),
        (["accept_inbound", "maybe"], ["policy.accept_inbound", "true or false"]),
        (["peers", "nohost"], ["node.peers", "HOST:PORT"]),
        (["hide_patterns", "("], ["policy.hide_patterns", "regular expression"]),
        (["blocklists", "p2ps1nope"], ["policy.blocklists", "identity"]),
        (["port"], ["node.port", "one value"]),
        (["colour", "red"], ["unknown setting", "node.port", "policy.hops"]),
        (["muted"], ["policy.muted", "mute/unmute"]),
    ],
)
def test_config_set_refuses_bad_values_in_one_line(
    home: Path, args: list[str], words: list[str]
) -> None:
    before = (home / "config.toml").read_text()
    proc = run_cli(home, "config", "set", "--", *args, check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert all(w in proc.stderr for w in words), proc.stderr
    assert (home / "config.toml").read_text() == before


def test_config_get_and_show(home: Path) -> None:
    cfg = NodeConfig.load(home)
    assert run_cli(home, "config", "get", "dht_port").stdout.strip() == str(cfg.dht_port)
    assert run_cli(home, "config", "get", "accept_inbound").stdout.strip() == "true"
    [shown] = [
        json.loads(x) for x in run_cli(home, "--json", "config", "show").stdout.split("\n") if x
    ]
    assert shown["node.port"] == cfg.port and shown["policy.blocked"] == []
    bad = run_cli(home, "config", "get", "nope", check=False)
    assert bad.returncode == 1 and "unknown setting 'nope'" in bad.stderr


def test_bootstrap_add_list_rm(home: Path) -> None:
    assert run_cli(home, "bootstrap", "list").stdout == ""
    out = run_cli(home, "bootstrap", "add", "192.0.2.1:4001").stdout
    assert "added 192.0.2.1:4001" in out and "restart" not in out  # no daemon runs
    run_cli(home, "bootstrap", "add", "[2001:db8::1]:4001")
    again = json.loads(run_cli(home, "--json", "bootstrap", "add", "192.0.2.1:4001").stdout)
    assert again == {"address": "192.0.2.1:4001", "added": False}
    listed = run_cli(home, "--json", "bootstrap", "list").stdout.splitlines()
    assert [json.loads(x)["address"] for x in listed] == ["192.0.2.1:4001", "[2001:db8::1]:4001"]
    run_cli(home, "bootstrap", "rm", "192.0.2.1:4001")
    assert NodeConfig.load(home).bootstrap == ["[2001:db8::1]:4001"]
    missing = run_cli(home, "bootstrap", "rm", "192.0.2.1:4001", check=False)
    assert missing.returncode == 1 and "not in the bootstrap list" in missing.stderr
    bad = run_cli(home, "bootstrap", "add", "192.0.2.1", check=False)
    assert bad.returncode == 1 and "HOST:PORT" in bad.stderr


def test_a_broken_config_is_one_line(home: Path) -> None:
    (home / "config.toml").write_text("[node]\nport = 'x'\n")
    proc = run_cli(home, "config", "set", "hops", "2", check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "[node] port must be int" in proc.stderr


# --- human output -----------------------------------------------------------------------


def test_settings_print_without_python_reprs() -> None:
    text = format_settings({"blocklists": ["p2ps1a", "p2ps1b"], "muted": [], "accept": True})
    assert "[" not in text and "'" not in text and "True" not in text
    assert "p2ps1a p2ps1b" in text and "(none)" in text and "true" in text
    assert format_value(False) == "false" and format_value(3) == "3"


# --- completion and limits in --help -----------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_naming_the_command(shell: str) -> None:
    proc = run_bare("completion", shell)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) > 5
    assert "_P2PSOCIAL_COMPLETE" in proc.stdout and "p2psocial" in proc.stdout


def test_completion_completes_commands() -> None:
    env = dict(
        cli_env(), _P2PSOCIAL_COMPLETE="bash_complete", COMP_WORDS="p2psocial boo", COMP_CWORD="1"
    )
    proc = subprocess.run(
        ["p2psocial"], capture_output=True, text=True, env=env, timeout=30, stdin=subprocess.DEVNULL
    )
    assert "bootstrap" in proc.stdout


def test_completion_help_says_how_to_install() -> None:
    result = CliRunner().invoke(cli, ["completion", "--help"])
    assert 'eval "$(p2psocial completion bash)"' in result.output
    bad = CliRunner().invoke(cli, ["completion", "tcsh"])
    assert bad.exit_code == 2 and "tcsh" in bad.output


def test_limits_are_the_enforcing_code_s() -> None:
    assert limits.MAX_TEXT_CHARS == kinds.MAX_TEXT_CHARS
    assert limits.MAX_NAME_CHARS == kinds.MAX_NAME_CHARS
    assert limits.MAX_BIO_CHARS == kinds.MAX_BIO_CHARS
    assert limits.MAX_MENTIONS == kinds.MAX_MENTIONS
    assert limits.MAX_TAGS == kinds.MAX_TAGS
    assert limits.MAX_TAG_CHARS == kinds.MAX_TAG_CHARS
    assert limits.MAX_REASON_CHARS == kinds.MAX_REASON_CHARS
    assert check_limit(limits.PAGE_LIMIT_MAX) == limits.PAGE_LIMIT_MAX
    with pytest.raises(LocalUsageError):
        check_limit(limits.PAGE_LIMIT_MAX + 1)


def _help(*command: str) -> str:
    result = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize(
    ("command", "phrases"),
    [
        (["post"], [f"up to {kinds.MAX_TEXT_CHARS} characters", f"up to {kinds.MAX_TAGS}"]),
        (["reply"], [f"up to {kinds.MAX_TEXT_CHARS} characters"]),
        (["profile"], [f"up to {kinds.MAX_NAME_CHARS}", f"up to {kinds.MAX_BIO_CHARS}"]),
        (["block"], [f"up to {kinds.MAX_REASON_CHARS} characters"]),
        (["timeline"], [f"1 to {limits.PAGE_LIMIT_MAX}", '{"next": CURSOR}']),
        (["feed"], [f"1 to {limits.PAGE_LIMIT_MAX}"]),
        (["mentions"], [f"1 to {limits.PAGE_LIMIT_MAX}"]),
        (["search"], [f"1 to {limits.PAGE_LIMIT_MAX}"]),
        (["config"], ["0..65535", "hops 1..2"]),
        (["policy", "set"], ["hops is 1 or 2", "no value clears"]),
    ],
)
def test_help_states_the_limits(command: list[str], phrases: list[str]) -> None:
    text = _help(*command)
    assert all(p in text for p in phrases), text


def test_unmute_beside_mute_and_undo_hidden() -> None:
    assert "unmute" in cli.commands
    assert "--undo" not in _help("mute") and "unmute" in _help("mute")
