"""Commands that read entries: timeline, feed, thread, mentions, search."""

from __future__ import annotations

from typing import Any

import click

from . import output
from .commands_notify import people_page
from .context import Ctx, fail, json_option, page_options, pass_ctx

__all__ = ["COMMANDS"]


def _print_page(c: Ctx, page: Any) -> None:
    c.out().page(page.get("items", []), page.get("next"))


@click.command()
@page_options
@pass_ctx
def timeline(c: Ctx, limit: int, before: str | None) -> None:
    """Your home timeline: you and everyone you follow, newest first."""
    _print_page(c, c.call("timeline", limit=limit, before=before))


@click.command()
@click.argument("identity", required=False)
@click.option(
    "--kind", "kinds", multiple=True, help="Only these kinds (repeatable; default post and repost)."
)
@click.option(
    "--all", "all_kinds", is_flag=True, help="Every kind: follows, reactions, profile updates, ..."
)
@page_options
@pass_ctx
def feed(
    c: Ctx,
    identity: str | None,
    kinds: tuple[str, ...],
    all_kinds: bool,
    limit: int,
    before: str | None,
) -> None:
    """One identity's feed (yours by default); peeks at the network when not followed.

    A forked feed (its author signed two different entries at one seq) gets a
    warning on stderr; with --json each entry says so (author_forked).
    """
    wanted = ["*"] if all_kinds else (list(kinds) or None)
    page = c.call("feed", identity=identity, kinds=wanted, limit=limit, before=before)
    if page.get("forked"):
        # In --json every record says so too (author_forked, author_fork_seq).
        shown = identity or c.call("status")["identity"]
        c.out().warn(output.fork_warning(shown, page["fork_seq"]))
    _print_page(c, page)


@click.command()
@click.argument("id")
@json_option
@pass_ctx
def thread(c: Ctx, id: str) -> None:
    """A post and its replies, as a tree. An id this node has never seen is an error."""
    items = c.call("thread", id=id)["items"]
    if not items:
        fail(f"no entry {id} on this node")
    c.out().entries(items, tree=True)


@click.command()
@page_options
@pass_ctx
def mentions(c: Ctx, limit: int, before: str | None) -> None:
    """Replies to your posts and posts that mention you."""
    _print_page(c, c.call("mentions", limit=limit, before=before))


@click.command()
@click.argument("query")
@click.option("--author", metavar="IDENTITY", help="Only posts by this identity.")
@click.option(
    "--people", is_flag=True, help="Search the profiles held here (name and bio) instead."
)
@page_options
@pass_ctx
def search(
    c: Ctx, query: str, author: str | None, people: bool, limit: int, before: str | None
) -> None:
    """Full-text search over the posts this node holds (words, "exact phrases").

    With --people: the profiles this node holds whose name or bio contains
    QUERY (any case). There is no global directory: only people whose feeds
    reach this node can be found.
    """
    if people:
        if author is not None:
            raise click.UsageError("--people searches profiles; --author is for posts")
        people_page(c, c.call("search_people", query=query, limit=limit, before=before))
        return
    _print_page(c, c.call("search", query=query, author=author, limit=limit, before=before))


#: This module's commands, for the root group.
COMMANDS = [timeline, feed, thread, mentions, search]
