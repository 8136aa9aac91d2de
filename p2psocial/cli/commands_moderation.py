"""Moderation: block, unblock, mute, unmute, the node's policy, and explain."""

from __future__ import annotations

from typing import Any

import click

from ..client import MAX_REASON_CHARS
from . import output
from .context import Ctx, fail, json_option, pass_ctx

__all__ = ["COMMANDS"]


@click.command()
@click.argument("identity")
@click.option(
    "--private", is_flag=True, help="Keep the block in local policy only (no public block entry)."
)
@click.option(
    "--reason", help=f"Why (published with a public block; up to {MAX_REASON_CHARS} characters)."
)
@json_option
@pass_ctx
def block(c: Ctx, identity: str, private: bool, reason: str | None) -> None:
    """Block IDENTITY: its payloads are purged, refused and never relayed by this node."""
    result = c.call("block", identity=identity, public=not private, reason=reason)
    c.out().record(
        result,
        lambda r: f"blocked {r['blocked']}" + (" (public)" if r.get("public") else " (private)"),
    )


@click.command()
@click.argument("identity")
@json_option
@pass_ctx
def unblock(c: Ctx, identity: str) -> None:
    """Lift a block."""
    c.out().record(c.call("unblock", identity=identity), lambda r: f"unblocked {r['unblocked']}")


@click.command()
@click.argument("identity")
# Kept for scripts written before `unmute` existed.
@click.option("--undo", is_flag=True, hidden=True, help="Unmute instead (same as unmute).")
@json_option
@pass_ctx
def mute(c: Ctx, identity: str, undo: bool) -> None:
    """Hide IDENTITY from your timelines (still stored and relayed); undo with unmute."""
    if undo:
        _unmute(c, identity)
    else:
        c.out().record(c.call("mute", identity=identity), lambda r: f"muted {r['muted']}")


def _unmute(c: Ctx, identity: str) -> None:
    c.out().record(c.call("unmute", identity=identity), lambda r: f"unmuted {r['unmuted']}")


@click.command()
@click.argument("identity")
@json_option
@pass_ctx
def unmute(c: Ctx, identity: str) -> None:
    """Show IDENTITY in your timelines again (undo mute)."""
    _unmute(c, identity)


@click.group()
def policy() -> None:
    """Show or change what this node stores, relays and shows."""


@policy.command("show")
@json_option
@pass_ctx
def policy_show(c: Ctx) -> None:
    """Print the moderation policy (with --json: one object, the setting names as keys)."""
    c.out().record(c.call("policy"), output.format_settings)


@policy.command("set")
@click.argument("key")
@click.argument("value", nargs=-1)
@json_option
@pass_ctx
def policy_set(c: Ctx, key: str, value: tuple[str, ...]) -> None:
    """Set KEY to VALUE in the running daemon and its config.toml.

    Lists take several values, and no value clears them; flags take true or
    false; hops is 1 or 2; the other numbers are 0 or more (0: no quota).

    \b
    Examples:
      p2psocial policy set hops 2
      p2psocial policy set blocklists p2ps1... p2ps1...
      p2psocial policy set hide_patterns 'crypto ?scam'
      p2psocial policy set hide_patterns          (clears the list)
    """
    current = c.call("policy")
    if key not in current:
        fail(f"unknown policy setting {key!r}; known: {', '.join(sorted(current))}")
    old = current[key]
    parsed: Any
    if not value and not isinstance(old, list):
        fail(f"{key} takes a value")
    if isinstance(old, bool):
        if value[0].lower() not in ("true", "false", "yes", "no", "1", "0"):
            fail(f"{key} takes true or false")
        parsed = value[0].lower() in ("true", "yes", "1")
    elif isinstance(old, int):
        if not value[0].lstrip("-").isdigit():
            fail(f"{key} takes a whole number")
        parsed = int(value[0])
    elif isinstance(old, list):
        parsed = [] if value == ("",) else list(value)
    else:
        parsed = value[0]
    c.out().record(
        c.call("set_policy", key=key, value=parsed),
        lambda r: f"{key} = {output.format_value(r[key])}",
    )


@click.command()
@click.argument("id")
@json_option
@pass_ctx
def explain(c: Ctx, id: str) -> None:
    """Say why this node holds, hides or refused the entry ID."""
    c.out().record(
        c.call("explain", id=id), lambda r: "\n".join([r["id"], *("  " + w for w in r["why"])])
    )


#: This module's commands, for the root group.
COMMANDS = [block, unblock, mute, unmute, policy, explain]
