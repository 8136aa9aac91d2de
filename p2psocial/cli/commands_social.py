"""The social graph and profiles: follow, unfollow, following, followers, profile."""

from __future__ import annotations

from typing import Any

import click

from ..client import MAX_BIO_CHARS, MAX_NAME_CHARS
from . import output
from .context import Ctx, fail, json_option, pass_ctx, published

__all__ = ["COMMANDS"]


@click.command()
@click.argument("identity")
@json_option
@pass_ctx
def follow(c: Ctx, identity: str) -> None:
    """Follow IDENTITY: replicate its feed and show it in your timeline."""
    published(c, c.call("follow", identity=identity), f"following {identity}:")


@click.command()
@click.argument("identity")
@json_option
@pass_ctx
def unfollow(c: Ctx, identity: str) -> None:
    """Stop following IDENTITY."""
    published(c, c.call("unfollow", identity=identity), f"unfollowed {identity}:")


def _identities(c: Ctx, result: dict[str, Any]) -> None:
    printer = c.out()
    for ident in result["items"]:
        printer.record({"identity": ident}, lambda r: r["identity"])


@click.command()
@click.argument("identity", required=False)
@json_option
@pass_ctx
def following(c: Ctx, identity: str | None) -> None:
    """Identities that IDENTITY (you by default) follows."""
    _identities(c, c.call("following", identity=identity))


@click.command()
@click.argument("identity", required=False)
@json_option
@pass_ctx
def followers(c: Ctx, identity: str | None) -> None:
    """Identities seen following IDENTITY (you by default)."""
    _identities(c, c.call("followers", identity=identity))


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("words", nargs=-1, metavar="[IDENTITY] | set")
@click.option("--name", help=f"With 'set': display name, up to {MAX_NAME_CHARS} characters.")
@click.option("--bio", help=f"With 'set': a short bio, up to {MAX_BIO_CHARS} characters.")
@json_option
@pass_ctx
def profile(c: Ctx, words: tuple[str, ...], name: str | None, bio: str | None) -> None:
    """Show a profile, or change yours.

    \b
      p2psocial profile                    your profile
      p2psocial profile p2ps1...           someone else's
      p2psocial profile set --name Ada --bio "runs her own node"
    """
    if words[:1] == ("set",):
        if len(words) > 1:
            fail("'profile set' takes only --name and --bio")
        if name is None and bio is None:
            fail("give --name and/or --bio")
        published(c, c.call("set_profile", name=name, bio=bio), "profile updated:")
        return
    if name is not None or bio is not None:
        fail("to change your profile: p2psocial profile set --name ... --bio ...")
    if len(words) > 1:
        fail("give at most one identity")
    identity = words[0] if words else None
    c.out().record(c.call("profile", identity=identity), output.format_profile)


#: This module's commands, for the root group.
COMMANDS = [follow, unfollow, following, followers, profile]
