"""Moderation: block, unblock, mute, the node's policy, and explain."""

from __future__ import annotations

from typing import Any

import click

from .context import Ctx, fail, json_option, pass_ctx

__all__ = ["COMMANDS"]


@click.command()
@click.argument("identity")
@click.option(
    "--private", is_flag=True, help="Keep the block in local policy only (no public block entry)."
)
@click.option("--reason", help="Why (published with a public block).")
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
@click.option("--undo", is_flag=True, help="Unmute instead.")
@json_option
@pass_ctx
def mute(c: Ctx, identity: str, undo: bool) -> None:
    """Hide IDENTITY from your timelines (still stored and relayed)."""
    if undo:
        c.out().record(c.call("unmute", identity=identity), lambda r: f"unmuted {r['unmuted']}")
    else:
        c.out().record(c.call("mute", identity=identity), lambda r: f"muted {r['muted']}")


@click.group()
def policy() -> None:
    """Show or change what this node stores, relays and shows."""


@policy.command("show")
@json_option
@pass_ctx
def policy_show(c: Ctx) -> None:
    """Print the moderation policy."""
    c.out().record(c.call("policy"), lambda r: "\n".join(f"{k:<22} {v}" for k, v in r.items()))


@policy.command("set")
@click.argument("key")
@click.argument("value", nargs=-1, required=True)
@json_option
@pass_ctx
def policy_set(c: Ctx, key: str, value: tuple[str, ...]) -> None:
    """Set KEY to VALUE (lists take several values; 'true'/'false' for flags).

    \b
    Examples:
      p2psocial policy set hops 2
      p2psocial policy set blocklists p2ps1... p2ps1...
      p2psocial policy set hide_patterns 'crypto ?scam'
    """
    current = c.call("policy")
    if key not in current:
        fail(f"unknown policy setting {key!r}; known: {', '.join(sorted(current))}")
    old = current[key]
    parsed: Any
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
    c.out().record(c.call("set_policy", key=key, value=parsed), lambda r: f"{key} = {r[key]}")


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
COMMANDS = [block, unblock, mute, policy, explain]
