"""The ``p2psocial`` command: run a daemon, and post and read through it.

Every command except ``init``, ``daemon``, ``id`` and ``demo`` talks to a
running daemon through the local API (``p2psocial.client``). Read commands
accept ``--json`` and then print one JSON object per line.

This module holds the root group and the entry point; the commands live in
the ``commands_*`` modules, one per group of related commands.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any

import click

from .. import __version__
from ..client import DaemonNotRunning
from ..errors import APIError, P2PSocialError
from .context import Ctx, add_trailing_globals, fail

__all__ = ["cli", "main"]


#: Each top-level command: the ``commands_*`` module whose ``COMMANDS`` holds
#: it, and the first paragraph of its help (what ``p2psocial --help`` lists).
#: A command's module is imported only when that command runs (or is
#: completed), so a command pays for its own dependencies alone and ``--help``
#: for none. To add a command, add its row here; tests/cli/test_startup.py
#: checks this table against the modules and prints the rows it expects.
COMMAND_INDEX: dict[str, tuple[str, str]] = {
    "init": ("commands_node", "Create an identity, a node key and config.toml in the data dir."),
    "daemon": (
        "commands_node",
        "Run this data dir's node in the foreground until Ctrl-C (logs on stderr).",
    ),
    "id": ("commands_node", "Print this data dir's identity."),
    "status": (
        "commands_node",
        "Show the daemon's identity, addresses, peers and feeds, and list forked feeds.",
    ),
    "statistics": (
        "commands_node",
        "Show the daemon's counters: DHT, replication, local API and store.",
    ),
    "peers": ("commands_node", "Peers this node is linked with."),
    "connect": ("commands_node", "Link with a peer at HOST:PORT (its peer address) right now."),
    "demo": (
        "commands_node",
        "Start a real network of daemons on 127.0.0.1 and watch posts propagate.",
    ),
    "config": (
        "commands_config",
        "Show and change this node's settings (config.toml in the data dir).",
    ),
    "bootstrap": (
        "commands_config",
        "List, add and remove the DHT addresses this node joins the network through.",
    ),
    "post": (
        "commands_publish",
        "Publish a post of up to 2000 characters. TEXT '-' reads it from stdin.",
    ),
    "reply": (
        "commands_publish",
        "Reply to the entry ID with TEXT, up to 2000 characters ('-': from stdin).",
    ),
    "react": (
        "commands_publish",
        "React to the entry ID (in full, or a unique prefix of 8+ hex digits) with an EMOJI.",
    ),
    "repost": ("commands_publish", "Repost the entry ID to your followers."),
    "delete": (
        "commands_publish",
        "Delete your entry ID everywhere (its payload is purged; the feed still verifies).",
    ),
    "timeline": ("commands_read", "Your home timeline: you and everyone you follow, newest first."),
    "feed": (
        "commands_read",
        "One identity's feed (yours by default); peeks at the network when not followed.",
    ),
    "thread": (
        "commands_read",
        "A post and its replies, as a tree. An id this node has never seen is an error.",
    ),
    "mentions": ("commands_read", "Replies to your posts and posts that mention you."),
    "search": (
        "commands_read",
        'Full-text search over the posts this node holds (words, "exact phrases").',
    ),
    "invite": (
        "commands_social",
        "Print an invite: one line with your identity and your node's addresses, signed.",
    ),
    "follow": (
        "commands_social",
        "Follow IDENTITY: replicate its feed and show it in your timeline.",
    ),
    "unfollow": ("commands_social", "Stop following IDENTITY."),
    "following": ("commands_social", "Identities that IDENTITY (you by default) follows."),
    "followers": ("commands_social", "Identities seen following IDENTITY (you by default)."),
    "profile": ("commands_social", "Show a profile, or change yours."),
    "block": (
        "commands_moderation",
        "Block IDENTITY: its payloads are purged, refused and never relayed by this node.",
    ),
    "unblock": ("commands_moderation", "Lift a block."),
    "mute": (
        "commands_moderation",
        "Hide IDENTITY from your timelines (still stored and relayed); undo with unmute.",
    ),
    "unmute": ("commands_moderation", "Show IDENTITY in your timelines again (undo mute)."),
    "policy": ("commands_moderation", "Show or change what this node stores, relays and shows."),
    "explain": ("commands_moderation", "Say why this node holds, hides or refused the entry ID."),
    "name": (
        "commands_names",
        "Your own names for identities (local and private: never published).",
    ),
    "notifications": (
        "commands_notify",
        "Replies to your posts, mentions, reactions, reposts and new followers, newest first.",
    ),
    "watch": (
        "commands_notify",
        "Print new entries of your home timeline as they arrive, until Ctrl-C.",
    ),
    "suggest": (
        "commands_notify",
        "People followed by the people you follow, most-followed first.",
    ),
    "tui": (
        "commands_tui",
        "A full-screen client: live timeline, threads, compose, notifications, profiles.",
    ),
    "completion": ("", "Print the shell completion script for SHELL (bash, zsh or fish)."),
}


def _terminal_columns() -> int:
    """The terminal's width as shutil.get_terminal_size reports it, without
    importing shutil (and the compression modules it loads)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _HelpFormatter(click.HelpFormatter):
    """click's help formatter, at the width it would choose itself."""

    def __init__(
        self, indent_increment: int = 2, width: int | None = None, max_width: int | None = None
    ) -> None:
        if width is None:
            from click import formatting  # loaded with click: CliRunner forces a width here

            width = formatting.FORCED_WIDTH
            if width is None:
                width = max(min(_terminal_columns(), max_width or 80) - 2, 50)
        super().__init__(indent_increment, width, max_width)


class _Context(click.Context):
    formatter_class = _HelpFormatter


def _use_lean_context(command: click.Command) -> None:
    command.context_class = _Context
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _use_lean_context(sub)


class _Commands(MutableMapping[str, click.Command]):
    """The root group's commands, by name: a command's module is imported on
    first lookup (every command of that module is registered then)."""

    def __init__(self, index: dict[str, tuple[str, str]]) -> None:
        self._index = index
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded and self._index.get(name, ("", ""))[0]:
            module = importlib.import_module(f".{self._index[name][0]}", __package__)
            for command in module.COMMANDS:
                add_trailing_globals(command)
                _use_lean_context(command)
                self._loaded.setdefault(command.name or "", command)
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._index.keys() | self._loaded.keys()))

    def __len__(self) -> int:
        return len(self._index.keys() | self._loaded.keys())

    def loaded(self, name: str) -> click.Command | None:
        """The command if its module is already imported, without importing it."""
        return self._loaded.get(name)


class LazyGroup(click.Group):
    """The root group: commands load on use, and ``--help`` lists them from
    :data:`COMMAND_INDEX` without importing their modules."""

    context_class = _Context

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: _Commands = _Commands(COMMAND_INDEX)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from click.utils import _make_default_short_help

        rows: list[tuple[str, str | None]] = []
        for name in self.list_commands(ctx):
            command = self.commands.loaded(name)
            if command is None and name in COMMAND_INDEX:
                rows.append((name, COMMAND_INDEX[name][1]))
            elif command is not None and not command.hidden:
                rows.append((name, None))
        if not rows:
            return
        # The same rows click's own format_commands writes (3x the spacing).
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        lines = []
        for name, head in rows:
            if head is None:
                text = self.commands[name].get_short_help_str(limit)
            else:
                text = _make_default_short_help(head, limit).strip()
            lines.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(lines)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "P2PSOCIAL"},
)
@click.version_option(__version__, prog_name="p2psocial")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    envvar="P2PSOCIAL_HOME",
    help="Node data directory [env: P2PSOCIAL_HOME; default: the platform's user data dir].",
)
@click.option(
    "--api",
    metavar="SOCKET",
    help="Talk to the daemon on this socket instead of DATA_DIR/api.sock.",
)
@click.option(
    "--json", "json_out", is_flag=True, help="Machine-readable output: one JSON object per line."
)
@click.option("--no-color", is_flag=True, help="Plain output without colour.")
@click.option("-v", "--verbose", count=True, help="More log output (daemon, demo).")
@click.option(
    "--wait",
    type=float,
    default=0.0,
    metavar="SECS",
    help="Wait up to SECS for the daemon to come up before failing.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    data_dir: str | None,
    api: str | None,
    json_out: bool,
    no_color: bool,
    verbose: int,
    wait: float,
) -> None:
    """p2psocial: a peer-to-peer social network node and its terminal client.

    \b
    Start here:
      p2psocial init              create your identity
      p2psocial daemon            run your node (foreground)
      p2psocial post "hello"      publish, in another terminal
      p2psocial demo              watch a real 4-node network on this machine

    The options below may also follow the command: `p2psocial timeline
    --json` is `p2psocial --json timeline`.
    """
    color = not no_color and "NO_COLOR" not in os.environ
    ctx.obj = Ctx(data_dir, api, json_out, color, verbose, wait)


#: The shells ``completion`` writes a script for.
SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    Load it in the current shell:
      eval "$(p2psocial completion bash)"      bash
      eval "$(p2psocial completion zsh)"       zsh
      p2psocial completion fish | source       fish
    \b
    Or keep it for every new shell:
      p2psocial completion bash > ~/.local/share/bash-completion/completions/p2psocial
      p2psocial completion zsh > "${fpath[1]}/_p2psocial"
      p2psocial completion fish > ~/.config/fish/completions/p2psocial.fish

    The script calls p2psocial itself (with _P2PSOCIAL_COMPLETE set) to
    complete commands and options, so it stays right after an upgrade.
    """
    from click.shell_completion import get_completion_class

    comp_cls = get_completion_class(shell)
    assert comp_cls is not None  # click ships all three
    click.echo(comp_cls(cli, {}, "p2psocial", "_P2PSOCIAL_COMPLETE").source())


add_trailing_globals(completion)
_use_lean_context(completion)
cli.add_command(completion)


def _one_line(message: str) -> str:
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def main() -> None:
    """Console-script entry point: every failure is one line on stderr, exit code 1."""
    try:
        cli(standalone_mode=True, complete_var="_P2PSOCIAL_COMPLETE")
    except DaemonNotRunning as exc:
        fail(_one_line(exc.message))
    except APIError as exc:
        fail(_one_line(exc.message))
    except P2PSocialError as exc:
        fail(_one_line(exc.message))
    except BrokenPipeError:
        sys.exit(1)
