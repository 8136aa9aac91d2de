"""``p2psocial tui``: the full-screen terminal client (Textual, loaded only here)."""

from __future__ import annotations

import shlex

import click

from ..paths import resolve_data_dir
from .context import Ctx, pass_ctx

__all__ = ["COMMANDS"]


@click.command()
@pass_ctx
def tui(c: Ctx) -> None:
    """A full-screen client: live timeline, threads, compose, notifications, profiles.

    It talks to the running daemon (start one with `p2psocial daemon`); while
    none answers it says so and retries. Press ? inside for the keys.
    """
    # Textual is imported here, so that no other command pays for it.
    from ..tui import run

    if c.data_dir == resolve_data_dir(None):
        start = "p2psocial daemon"
    else:
        start = f"p2psocial --data-dir {shlex.quote(str(c.data_dir))} daemon"
    run(c.data_dir, c.api, start_command=start)


#: This module's commands, for the root group.
COMMANDS = [tui]
