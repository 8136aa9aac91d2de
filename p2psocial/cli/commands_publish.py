"""Commands that publish an entry in your feed: post, reply, react, repost, delete."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..client import MAX_MENTIONS, MAX_TAG_CHARS, MAX_TAGS, MAX_TEXT_CHARS
from .context import Ctx, fail, json_option, pass_ctx, published

__all__ = ["COMMANDS"]


def _text_arg(text: str | None, edit: bool) -> str:
    if edit:
        edited = click.edit("")
        if not edited or not edited.strip():
            fail("empty post; nothing published")
        return edited.strip()
    if text is None:
        fail("give the text to post, '-' to read it from stdin, or --edit")
    if text == "-":
        text = sys.stdin.read().strip()
    if not text.strip():
        fail("empty post; nothing published")
    # The daemon refuses over-long text too; checking here first says so
    # without a round trip, and even when no daemon runs.
    if len(text) > MAX_TEXT_CHARS:
        fail(f"post is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    return text


@click.command()
@click.argument("text", required=False)
@click.option("--edit", is_flag=True, help="Write the post in $EDITOR.")
@click.option(
    "--mention",
    "mentions",
    multiple=True,
    metavar="IDENTITY",
    help=f"Mention an identity or petname (repeatable; up to {MAX_MENTIONS} in all, "
    "with those in the text).",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    help=f"Add a tag (repeatable; up to {MAX_TAGS} in all, with those in the text, "
    f"each up to {MAX_TAG_CHARS} characters).",
)
@json_option
@pass_ctx
def post(
    c: Ctx, text: str | None, edit: bool, mentions: tuple[str, ...], tags: tuple[str, ...]
) -> None:
    """Publish a post of up to {max} characters. TEXT '-' reads it from stdin.

    In the text, @petname and @p2ps1... mention someone and #word tags the
    post (tags match ignoring case). An @name that is not one of your
    petnames stays plain text, with a warning.
    """
    body = _text_arg(text, edit)
    _posted(
        c,
        c.call("post", text=body, mentions=list(mentions) or None, tags=list(tags) or None),
        "posted",
    )


def _posted(c: Ctx, result: dict[str, Any], what: str) -> None:
    """Print a published post, warning about inline @names that named no one."""
    published(c, result, what)
    for token in result.get("unresolved") or []:
        c.out().warn(f"{token} is not one of your petnames: left as text, not a mention")


@click.command()
@click.argument("id")
@click.argument("text", required=False)
@click.option("--edit", is_flag=True, help="Write the reply in $EDITOR.")
@json_option
@pass_ctx
def reply(c: Ctx, id: str, text: str | None, edit: bool) -> None:
    """Reply to the entry ID with TEXT, up to {max} characters ('-': from stdin)."""
    body = _text_arg(text, edit)
    _posted(c, c.call("post", text=body, reply_to=id), "replied")


@click.command()
@click.argument("id")
@click.argument("emoji")
@click.option(
    "--force",
    is_flag=True,
    help="React even though this node has never seen the entry "
    "(an id known to exist elsewhere; give it in full).",
)
@json_option
@pass_ctx
def react(c: Ctx, id: str, emoji: str, force: bool) -> None:
    """React to the entry ID (in full, or a unique prefix of 8+ hex digits) with an EMOJI.

    EMOJI is exactly one emoji: a single one, one with a skin tone, a flag, a
    keycap, or a joined sequence such as a family (spec/protocol.md §5.4).
    The entry must be one this node holds, unless --force.
    """
    # Sent only when set, so a daemon that predates the flag still takes the call.
    published(c, c.call("react", target=id, emoji=emoji, force=True if force else None), "reacted")


@click.command()
@click.argument("id")
@json_option
@pass_ctx
def repost(c: Ctx, id: str) -> None:
    """Repost the entry ID to your followers."""
    published(c, c.call("repost", target=id), "reposted")


@click.command()
@click.argument("id")
@json_option
@pass_ctx
def delete(c: Ctx, id: str) -> None:
    """Delete your entry ID everywhere (its payload is purged; the feed still verifies)."""
    published(c, c.call("delete", target=id), "deleted")


# The limit in --help is the daemon's (a docstring cannot be an f-string).
for _command in (post, reply):
    _command.help = (_command.help or "").format(max=MAX_TEXT_CHARS)

#: This module's commands, for the root group.
COMMANDS = [post, reply, react, repost, delete]
