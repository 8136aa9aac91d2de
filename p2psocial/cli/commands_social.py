"""The social graph and profiles: invite, follow, unfollow, following, followers, profile."""

from __future__ import annotations

import re
import sys
from datetime import datetime
from typing import Any

import click

from ..client import MAX_BIO_CHARS, MAX_NAME_CHARS
from . import output
from .context import Ctx, fail, json_option, pass_ctx, published
from .progress import wait_for_recent

__all__ = ["COMMANDS"]


#: The text form's prefix (spec/invite.md §2); any case, as a QR code gives it.
INVITE_PREFIX = "p2psinv1"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def _duration(text: str) -> int:
    """Seconds in ``30m``, ``12h``, ``7d``, ``2w`` or a bare number of seconds."""
    m = re.fullmatch(r"\s*(\d{1,9})\s*([smhdw]?)\s*", text.lower())
    if m is None:
        raise click.BadParameter(f"{text!r} is not a duration like 30m, 12h, 7d or 2w")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


def _print_qr(text: str) -> None:
    """The invite as a QR code drawn with text characters (upper case: alphanumeric mode)."""
    import segno

    segno.make(text.upper(), error="l", boost_error=False).terminal(out=sys.stdout, compact=True)


@click.command()
@click.option(
    "--expires",
    metavar="DURATION",
    help="Refuse the invite after this long: 30m, 12h, 7d, 2w (default: never).",
)
@click.option(
    "--recommend",
    "recommend",
    multiple=True,
    metavar="ID",
    help="An identity to recommend to whoever accepts it (repeatable, at most 8).",
)
@click.option("--no-qr", is_flag=True, help="Print only the line, no QR code.")
@json_option
@pass_ctx
def invite(c: Ctx, expires: str | None, recommend: tuple[str, ...], no_qr: bool) -> None:
    """Print an invite: one line with your identity and your node's addresses, signed.

    Whoever runs `p2psocial follow INVITE` follows you, connects to your node
    and joins the network through it. On a terminal a QR code is printed too.
    The invite shows anyone who holds it your identity and your node's IP
    addresses and ports.
    """
    expires_in = _duration(expires) if expires is not None else None
    result = c.call("invite", expires_in=expires_in, recommend=list(recommend) or None)
    printer = c.out()
    if printer.json:
        printer.record(result, str)
        return
    print(result["invite"], flush=True)
    if not no_qr and sys.stdout.isatty():
        _print_qr(result["invite"])
    where = ", ".join(result["peer_addrs"]) or "no peer address"
    printer.note(f"invite for {result['identity']} at {where}")
    if result["expires"] is not None:
        when = datetime.fromtimestamp(result["expires"] / 1000).astimezone()
        printer.note(f"expires {when:%Y-%m-%d %H:%M %Z}")
    if result["peer_addrs"] and all(a.startswith(("127.", "[::1]")) for a in result["peer_addrs"]):
        printer.warn("only loopback addresses: this invite works on this machine only")
    printer.note("they run: p2psocial follow INVITE")


def _accepted(c: Ctx, r: dict[str, Any]) -> None:
    printer = c.out()
    if printer.json:
        printer.record(r, str)
        return
    who = r["identity"]
    print(f"following {who}" if r["followed"] else f"already following {who}")
    if r["connected"]:
        print(f"connected to {r['connected']}")
    else:
        print(f"not connected: {r['connect_error']}")
        hint = "its posts arrive once its node is found through the DHT"
        if not r["dht_contacts"]:
            hint += " (this node knows no other node yet: give it a --bootstrap address)"
        printer.warn(hint)
    if r["recommended"]:
        print(f"{output.short_identity(who)} recommends:")
        for ident in r["recommended"]:
            print(f"  p2psocial follow {ident}")


@click.command()
@click.argument("identity")
@click.option(
    "--wait/--no-wait",
    default=None,
    help="Wait (up to 30 s) until the feed's latest 50 entries are here, showing "
    "progress [default: on a terminal only]. Under --json each change is a "
    '{"sync_progress": ...} line.',
)
@json_option
@pass_ctx
def follow(c: Ctx, identity: str, wait: bool | None) -> None:
    """Follow IDENTITY: replicate its feed and show it in your timeline.

    IDENTITY may be an invite (p2psinv1...): then it is checked, and this node
    also connects to the inviting node and joins the network through it.
    """
    if identity.strip().lower().startswith(INVITE_PREFIX):
        accepted = c.call("accept_invite", invite=identity.strip())
        _accepted(c, accepted)
        identity = accepted["identity"]
    else:
        published(c, c.call("follow", identity=identity), f"following {identity}:")
    if wait is None:
        wait = sys.stdout.isatty()
    if wait:
        wait_for_recent(c.call, identity, json_mode=c.json, color=c.color)


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
COMMANDS = [invite, follow, unfollow, following, followers, profile]
