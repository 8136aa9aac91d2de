"""How an entry looks on screen: one block of rich text per entry.

A block is a head line (who, when, markers), the body, and a line of counts.
Markers say plainly what the text cannot: ``[deleted]`` (its author deleted
it), ``[withheld]`` (this node holds the envelope but not the payload, or
drops it by its own policy), ``[forked]`` (the author signed two entries at
one seq; the feed is frozen there) and ``●`` for an entry not seen yet.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.text import Text

from ..api.notes import NOTIFICATION_LABELS
from .names import Names

__all__ = ["ago", "entry_text", "notification_text"]


def ago(timestamp_ms: int | None, now_s: float | None = None) -> str:
    """A timestamp relative to now: ``now``, ``42s``, ``5m``, ``3h``, ``6d``, else the date.

    A claimed time in the future (clocks disagree) reads ``now``.
    """
    if not timestamp_ms:
        return "?"
    now = time.time() if now_s is None else now_s
    secs = int(now - timestamp_ms / 1000)
    if secs < 10:
        return "now"
    for unit, size in (("s", 60), ("m", 60), ("h", 24)):
        if secs < size:
            return f"{secs}{unit}"
        secs //= size
    if secs < 30:
        return f"{secs}d"
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp_ms / 1000))


def _short_ref(target: Any, names: Names) -> str:
    if isinstance(target, str) and len(target) == 64:
        return target[:12]
    return names.show(target if isinstance(target, str) else None)


def body_of(e: Mapping[str, Any], names: Names) -> str:
    """What an entry says, as one string (its text for a post)."""
    kind = e.get("kind")
    state = e.get("payload_state")
    if e.get("deleted") or state == "deleted":
        return "deleted by its author"
    if state == "absent":
        return "the payload is not held here yet"
    if state == "dropped":
        return "withheld by this node's policy"
    if kind == "post":
        return str(e.get("text") or "")
    target = e.get("target")
    if kind == "react":
        return f"reacted {e.get('emoji') or ''} to {_short_ref(target, names)}"
    if kind == "repost":
        return f"reposted {_short_ref(target, names)}"
    if kind == "profile":
        return "updated their profile"
    return f"{kind} {_short_ref(target, names)}"


def markers(e: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The markers of an entry: ``(label, style)`` pairs."""
    out = []
    state = e.get("payload_state")
    if e.get("deleted") or state == "deleted":
        out.append(("[deleted]", "bold red"))
    elif state in ("absent", "dropped"):
        out.append(("[withheld]", "bold yellow"))
    if e.get("author_forked"):
        out.append((f"[forked @{e.get('author_fork_seq')}]", "bold magenta"))
    return out


def entry_text(
    e: Mapping[str, Any],
    names: Names,
    *,
    now_s: float | None = None,
    unread: bool = False,
    indent: int = 0,
    label: str = "",
) -> Text:
    """The block of text that shows entry ``e``.

    Args:
        e: the entry, as the API shows it.
        names: who is who.
        now_s: the clock timestamps are relative to (None: the wall clock).
        unread: show the unread marker.
        indent: levels of reply depth (two columns each).
        label: a line above the head, e.g. what a notification is about.

    Returns:
        The block, its lines ending without a newline.
    """
    pad = "  " * indent
    t = Text(no_wrap=False, overflow="fold")
    if label:
        t.append(f"{pad}{label}\n", style="italic")
    t.append(pad)
    t.append("● " if unread else "  ", style="bold green")
    author = e.get("author")
    mine = bool(names.me) and author == names.me
    t.append(names.show(author if isinstance(author, str) else None), style="bold cyan")
    if mine:
        t.append(" (you)", style="cyan")
    t.append(f"  {ago(e.get('timestamp'), now_s)}", style="dim")
    if e.get("reply_to") or e.get("reply_parent"):
        t.append("  ↳ reply", style="dim")
    for text, style in markers(e):
        t.append(f"  {text}", style=style)
    body = body_of(e, names)
    style = "" if e.get("kind") == "post" and e.get("payload_state") == "present" else "dim italic"
    for line in body.splitlines() or [""]:
        t.append(f"\n{pad}    ")
        t.append(line, style=style)
    counts = []
    if e.get("replies"):
        counts.append(f"↩ {e['replies']}")
    if e.get("reposts"):
        counts.append(f"⟳ {e['reposts']}")
    reactions = e.get("reactions") or {}
    if isinstance(reactions, Mapping):
        counts.extend(f"{k} {v}" for k, v in reactions.items())
    tags = [f"#{x}" for x in e.get("tags") or () if isinstance(x, str)]
    if counts or tags:
        t.append(f"\n{pad}    ")
        t.append("  ".join(counts), style="dim")
        if tags:
            t.append(("  " if counts else "") + " ".join(tags), style="magenta")
    # A blank line after each entry keeps the blocks apart.
    t.append("\n ")
    return t


def notification_text(e: Mapping[str, Any], names: Names, *, now_s: float | None = None) -> Text:
    """A notification: who did what (``new`` when unread), then the entry."""
    what = NOTIFICATION_LABELS.get(str(e.get("notification")), str(e.get("notification")))
    author = e.get("author")
    who = names.show(author if isinstance(author, str) else None)
    return entry_text(e, names, now_s=now_s, unread=bool(e.get("unread")), label=f"{who} {what}")
