"""Petnames: ``name set``, ``name list``, ``name rm``.

A petname is your own name for an identity. It lives in your node's database
only: it is never published, and no peer ever sees it.
"""

from __future__ import annotations

from typing import Any

import click

from . import output
from .context import Ctx, json_option, pass_ctx

__all__ = ["COMMANDS"]


@click.group()
def name() -> None:
    """Your own names for identities (local and private: never published).

    \b
      p2psocial name set alice p2ps1...    call this identity alice
      p2psocial name list
      p2psocial name rm alice

    A petname is 1 to 32 of a-z, 0-9, _ . - (starting and ending with a
    letter or digit). Each identity has at most one; setting another renames
    it. Every command that takes an identity takes a petname too, and
    `@alice` in a post's text mentions it.
    """


@name.command("set")
@click.argument("petname", metavar="NAME")
@click.argument("identity")
@json_option
@pass_ctx
def set_(c: Ctx, petname: str, identity: str) -> None:
    """Call IDENTITY by NAME on this node."""

    def human(r: dict[str, Any]) -> str:
        line = f"{r['name']} = {r['identity']}"
        return line + (f" (was {r['previous']})" if r.get("previous") else "")

    c.out().record(c.call("set_petname", name=petname, identity=identity), human)


@name.command("list")
@json_option
@pass_ctx
def list_(c: Ctx) -> None:
    """Every petname, with the profile name its identity chose for itself."""
    items = c.call("petnames")["items"]
    printer = c.out()
    if not items:
        printer.note("no petnames yet: p2psocial name set NAME IDENTITY")
    for item in items:
        printer.record(item, output.format_petname)


@name.command("rm")
@click.argument("petname", metavar="NAME")
@json_option
@pass_ctx
def rm(c: Ctx, petname: str) -> None:
    """Forget the petname NAME (the identity itself is not affected)."""
    c.out().record(
        c.call("remove_petname", name=petname),
        lambda r: f"removed {r['removed']} ({r['identity']})",
    )


#: This module's commands, for the root group.
COMMANDS = [name]
