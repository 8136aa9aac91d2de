"""Notifications, the live view, and finding people: notifications, watch, suggest."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import click

from . import output
from .context import Ctx, json_option, page_options, pass_ctx

__all__ = ["COMMANDS", "more", "people_page"]

#: What a home-timeline watch shows (the timeline's kinds).
TIMELINE_KINDS = ["post", "repost"]


def more(c: Ctx, cursor: str | None) -> None:
    """The cursor of the next page: a last ``{"next": CURSOR}`` line, or a hint on stderr."""
    if not cursor:
        return
    if c.json:
        c.out().record({"next": cursor}, str)
    else:
        c.out().note(f"more: --before {cursor}")


def people_page(c: Ctx, page: dict[str, Any]) -> None:
    """Print a page of people (``suggest``, ``search --people``)."""
    out = c.out()
    items = page.get("items", [])
    if not items:
        out.note("nobody to show among the profiles this node holds")
    for p in items:
        out.record(p, output.format_person)
    more(c, page.get("next"))


def _show_notifications(c: Ctx, items: list[dict[str, Any]]) -> None:
    out = c.out()
    if out.json or not items:
        out.entries(items)
        return
    for e in items:
        print(output.notification_label(e))
        out.entries([e])


@click.command()
@click.option("--unread", is_flag=True, help="Only notifications you have not seen.")
@click.option(
    "--mark-read",
    is_flag=True,
    help="Mark every notification read, shown or not (not only those this page shows).",
)
@click.option(
    "--keep-unread", is_flag=True, help="Show without marking anything read (for scripts)."
)
@page_options
@pass_ctx
def notifications(
    c: Ctx, unread: bool, mark_read: bool, keep_unread: bool, limit: int, before: str | None
) -> None:
    """Replies to your posts, mentions, reactions, reposts and new followers, newest first.

    What it shows is then marked read: every notification that reached this
    node no later than the newest one shown. With --json each line carries
    "notification" (reply, mention, react, repost, follow) and "unread".
    """
    if mark_read and keep_unread:
        raise click.UsageError("--mark-read and --keep-unread contradict each other")
    page = c.call("notifications", unread=unread or None, limit=limit, before=before)
    items = page.get("items", [])
    _show_notifications(c, items)
    more(c, page.get("next"))
    if keep_unread or not (items or mark_read):
        return
    # Up to the newest arrival shown (each item's "mark"), or everything.
    upto = None if mark_read else str(max(int(e["mark"]) for e in items))
    left = c.call("mark_notifications_read", upto=upto).get("unread", 0)
    if left:
        c.out().note(f"{left} more unread: p2psocial notifications --unread")


def _events(c: Ctx, notify: bool) -> Iterator[Any]:
    """The watch stream: entries (typed maps) as the daemon stores them."""
    client = c.client()
    if notify:
        return client.watch(kinds=["notification"])
    me = c.call("status")["identity"]
    following = c.call("following").get("items", [])
    return client.watch(kinds=TIMELINE_KINDS, authors=[me, *following])


@click.command()
@click.option("--notifications", "notify", is_flag=True, help="Stream new notifications instead.")
@json_option
@pass_ctx
def watch(c: Ctx, notify: bool) -> None:
    """Print new entries of your home timeline as they arrive, until Ctrl-C.

    The timeline is you and the people you follow when watch starts. With
    --notifications: new replies, mentions, reactions, reposts and followers
    (shown, not marked read). With --json: one JSON object per line.
    """
    try:
        events = _events(c, notify)
        c.out().note("watching; Ctrl-C to stop")
        for event in events:
            if notify:
                _show_notifications(c, [event])
            else:
                c.out().entries([event])
    except KeyboardInterrupt:
        sys.exit(0)


@click.command()
@click.option(
    "--limit", type=click.IntRange(1, 500), default=20, show_default=True, help="How many."
)
@json_option
@pass_ctx
def suggest(c: Ctx, limit: int) -> None:
    """People followed by the people you follow, most-followed first.

    Only what this node holds counts: there is no directory to ask, so the
    suggestions come from the follow lists of the feeds you replicate.
    """
    people_page(c, c.call("suggest", limit=limit))


#: This module's commands, for the root group.
COMMANDS = [notifications, watch, suggest]
