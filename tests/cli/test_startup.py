"""The CLI's start-up path loads only what the command uses.

Every command is a fresh process, so every module it imports is paid for on
every run (bench/cli.py measures the time). Each case runs a real command in a
fresh interpreter, the way the console script does (``p2psocial.cli.main:main``),
and reads ``sys.modules`` when it ends: the blocking client never needs trio or
anyio (the async client's), and rich is only for a person's terminal, so
``--help``, ``--json`` and piped output must not load them. No timing here.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from p2psocial.cli import main as cli_main
from tests.daemons import Daemon, cli_env, run_cli, running_daemon

#: Top-level packages no case below may load.
NOT_ON_THE_PATH = ("trio", "anyio", "rich", "cryptography", "textual")

#: Runs ``main()`` with the given arguments, then writes its exit code and the
#: loaded modules to the file named first. ``--preload M`` imports M first (the
#: probe's own check that it sees a loaded module).
PROBE = """
import json, sys
out, argv = sys.argv[1], sys.argv[2:]
while argv[:1] == ["--preload"]:
    __import__(argv[1])
    argv = argv[2:]
sys.argv = ["p2psocial", *argv]
from p2psocial.cli.main import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def probe(tmp_path: Path, *argv: str) -> tuple[Any, set[str]]:
    """Run ``p2psocial ARGV`` in a fresh interpreter: its exit code and the
    top-level packages it had loaded when it finished."""
    code, modules = probe_modules(tmp_path, *argv)
    return code, {name.split(".")[0] for name in modules}


def probe_modules(tmp_path: Path, *argv: str) -> tuple[Any, set[str]]:
    """Run ``p2psocial ARGV`` in a fresh interpreter: its exit code and every
    module it had loaded when it finished."""
    out = tmp_path / "probe.json"
    out.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
    )
    assert out.exists(), proc.stderr
    result = json.loads(out.read_text())
    return result["code"], set(result["modules"])


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("startup") / "node") as d:
        run_cli(d.data_dir, "post", "one entry to read back")
        yield d


def test_probe_sees_a_loaded_package(tmp_path: Path) -> None:
    code, loaded = probe(tmp_path, "--preload", "rich.console", "--help")
    assert code == 0
    assert "rich" in loaded


def test_help_loads_no_event_loop_and_no_rich(tmp_path: Path) -> None:
    code, loaded = probe(tmp_path, "--data-dir", str(tmp_path / "none"), "--help")
    assert code == 0
    assert loaded.isdisjoint(NOT_ON_THE_PATH), sorted(loaded.intersection(NOT_ON_THE_PATH))
    # --help needs no client: it does not even load the frame codec.
    assert "msgpack" not in loaded


def test_a_command_help_loads_no_event_loop_and_no_rich(tmp_path: Path) -> None:
    code, loaded = probe(tmp_path, "--data-dir", str(tmp_path / "none"), "timeline", "--help")
    assert code == 0
    assert loaded.isdisjoint(NOT_ON_THE_PATH), sorted(loaded.intersection(NOT_ON_THE_PATH))


@pytest.mark.parametrize(
    "argv",
    [
        ("--json", "timeline", "--limit", "50"),
        ("timeline",),  # text to a pipe, not a terminal: plain lines
        ("--json", "post", "x"),
        ("--json", "status"),
    ],
    ids=["json-timeline", "piped-timeline", "json-post", "json-status"],
)
def test_daemon_commands_load_no_event_loop_and_no_rich(
    tmp_path: Path, daemon: Daemon, argv: tuple[str, ...]
) -> None:
    code, modules = probe_modules(tmp_path, "--data-dir", str(daemon.data_dir), *argv)
    loaded = {name.split(".")[0] for name in modules}
    assert code == 0
    assert "msgpack" in loaded  # it did talk to the daemon
    assert loaded.isdisjoint(NOT_ON_THE_PATH), sorted(loaded.intersection(NOT_ON_THE_PATH))
    # The result TypedDicts are for editors and mypy; shutil (terminal width)
    # would load the compression modules.
    assert modules.isdisjoint({"p2psocial.client.results", "shutil"})


def test_no_daemon_fails_in_one_line_without_an_event_loop(tmp_path: Path) -> None:
    code, loaded = probe(tmp_path, "--data-dir", str(tmp_path / "none"), "--json", "timeline")
    assert code == 1
    assert loaded.isdisjoint(NOT_ON_THE_PATH), sorted(loaded.intersection(NOT_ON_THE_PATH))


def _command_modules(modules: set[str]) -> set[str]:
    return {m for m in modules if m.startswith("p2psocial.cli.commands_")}


def test_help_loads_no_command_module_and_no_shutil(tmp_path: Path) -> None:
    code, modules = probe_modules(tmp_path, "--data-dir", str(tmp_path / "none"), "--help")
    assert code == 0
    assert _command_modules(modules) == set()
    # shutil (for the terminal's width) would load bz2 and lzma.
    assert modules.isdisjoint({"shutil", "bz2", "lzma"}), sorted(modules & {"shutil", "lzma"})


def test_a_command_loads_only_its_own_module(tmp_path: Path) -> None:
    code, modules = probe_modules(tmp_path, "--data-dir", str(tmp_path / "none"), "post", "--help")
    assert code == 0
    assert _command_modules(modules) == {"p2psocial.cli.commands_publish"}


def _real_commands() -> dict[str, tuple[str, click.Command]]:
    """Every top-level command of every ``commands_*`` module, with its module."""
    found: dict[str, tuple[str, click.Command]] = {}
    for path in sorted(Path(cli_main.__file__).parent.glob("commands_*.py")):
        module = importlib.import_module(f"p2psocial.cli.{path.stem}")
        for command in getattr(module, "COMMANDS", []):
            assert command.name is not None
            found[command.name] = (path.stem, command)
    return found


def test_the_command_index_matches_the_modules() -> None:
    real = _real_commands()
    real["completion"] = ("", cli_main.completion)
    expected = {
        name: (module, (command.help or "").partition("\n\n")[0])
        for name, (module, command) in real.items()
    }
    indexed = dict(cli_main.COMMAND_INDEX)
    rows = "".join(f"    {k!r}: {v!r},\n" for k, v in sorted(expected.items()))
    assert indexed == expected, "COMMAND_INDEX in p2psocial/cli/main.py should be:\n" + rows


def test_lazy_help_lists_what_click_would() -> None:
    ctx = click.Context(cli_main.cli, info_name="p2psocial")
    for width in (50, 80, 200):
        lazy = cli_main.LazyGroup(name="p2psocial")
        lazy.add_command(cli_main.completion)  # the one command main.py defines
        assert lazy.commands.loaded("timeline") is None  # the rest: rows from the index
        from_index = click.HelpFormatter(width=width)
        lazy.format_commands(ctx, from_index)
        eager = click.HelpFormatter(width=width)
        click.Group.format_commands(lazy, ctx, eager)  # loads every module
        assert from_index.getvalue() == eager.getvalue()
        assert "timeline" in eager.getvalue()


def test_every_indexed_command_runs_its_help() -> None:
    result = CliRunner().invoke(cli_main.cli, ["--help"])
    assert result.exit_code == 0
    for name in cli_main.COMMAND_INDEX:
        assert name in result.output
        assert cli_main.cli.commands[name].name == name
