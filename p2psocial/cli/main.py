"""The ``p2psocial`` command: run a daemon, and post and read through it.

Every command except ``init``, ``daemon``, ``id`` and ``demo`` talks to a
running daemon through the local API (``p2psocial.client``). Read commands
accept ``--json`` and then print one JSON object per line.

This module holds the root group and the entry point; the commands live in
the ``commands_*`` modules, one per group of related commands.
"""

from __future__ import annotations

import os
import sys

import click
from click.shell_completion import get_completion_class

from .. import __version__
from ..client import DaemonNotRunning
from ..errors import APIError, P2PSocialError
from . import (
    commands_config,
    commands_moderation,
    commands_names,
    commands_node,
    commands_notify,
    commands_publish,
    commands_read,
    commands_social,
)
from .context import Ctx, add_trailing_globals, fail

__all__ = ["cli", "main"]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "P2PSOCIAL"}
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
    comp_cls = get_completion_class(shell)
    assert comp_cls is not None  # click ships all three
    click.echo(comp_cls(cli, {}, "p2psocial", "_P2PSOCIAL_COMPLETE").source())


for command in [
    *commands_node.COMMANDS,
    *commands_config.COMMANDS,
    *commands_publish.COMMANDS,
    *commands_read.COMMANDS,
    *commands_social.COMMANDS,
    *commands_moderation.COMMANDS,
    *commands_names.COMMANDS,
    *commands_notify.COMMANDS,
    completion,
]:
    add_trailing_globals(command)
    cli.add_command(command)


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
