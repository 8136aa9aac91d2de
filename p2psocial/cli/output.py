"""How the command prints: JSON lines for scripts, readable text for people.

JSON mode prints exactly one object per line and nothing else on stdout.
Text mode uses rich when stdout is a terminal and plain lines otherwise.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..api.notes import NOTIFICATION_LABELS, fork_note

if TYPE_CHECKING:
    # rich is imported only when a person's terminal is printed to: scripts
    # (--json, pipes) and --help never load it.
    from rich.console import Console

__all__ = [
    "Printer",
    "display_identity",
    "fork_warning",
    "format_peer",
    "format_person",
    "format_petname",
    "format_profile",
    "format_settings",
    "format_status",
    "format_value",
    "notification_label",
    "short_identity",
]


def _json_line(obj: Any, *, ensure_ascii: bool = False) -> str:
    # json is imported on first use: a command printing text does not load it.
    import json

    return json.dumps(obj, ensure_ascii=ensure_ascii)


def short_identity(text: str | None) -> str:
    if not text:
        return "?"
    return f"{text[:10]}…{text[-4:]}"


#: The most of a self-chosen profile name shown.
PROFILE_NAME_SHOWN = 32


def _profile_shown(name: str) -> str:
    """A self-chosen name made safe to print: no control or format characters
    (a bidi override could reorder the line), blanks collapsed, truncated."""
    spaced = "".join(" " if ch.isspace() else ch for ch in name)
    kept = " ".join("".join(c for c in spaced if unicodedata.category(c)[0] != "C").split())
    if len(kept) > PROFILE_NAME_SHOWN:
        kept = kept[: PROFILE_NAME_SHOWN - 1] + "…"
    return kept


def display_identity(identity: str | None, names: dict[str, Any] | None = None) -> str:
    """How an identity is shown: your petname bare (``alice``); else the name it
    chose itself, marked with ``~`` and followed by its short key
    (``~alice (p2ps1abcde…wxyz)``); else the short key.

    Only a petname is ever shown without ``~`` and a key, so an identity that
    calls itself "alice" never looks like the one you named alice.
    """
    if not identity:
        return "?"
    known = (names or {}).get(identity) or {}
    petname = known.get("petname")
    if isinstance(petname, str) and petname:
        return petname
    profile = known.get("profile")
    shown = _profile_shown(profile) if isinstance(profile, str) else ""
    if shown:
        return f"~{shown} ({short_identity(identity)})"
    return short_identity(identity)


def format_petname(p: dict[str, Any]) -> str:
    """A ``name list`` line: the petname, the identity, and the name it chose itself."""
    line = f"{p.get('name')}  {p.get('identity')}"
    profile = p.get("profile")
    if isinstance(profile, str) and _profile_shown(profile):
        line += f"  (calls itself ~{_profile_shown(profile)})"
    return line


def _when(ms: int | None) -> str:
    if not ms:
        return "?"
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def format_value(value: Any) -> str:
    """A setting's value as a person reads it: ``true``/``false``, lists joined
    with spaces (``(none)`` when empty), never a Python repr."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(format_value(v) for v in value) or "(none)"
    return "" if value is None else str(value)


def format_settings(settings: dict[str, Any]) -> str:
    """``name  value`` lines, the names aligned."""
    width = max((len(k) for k in settings), default=0)
    return "\n".join(f"{k:<{width}}  {format_value(v)}" for k, v in settings.items())


#: What the ``dialable`` line of ``status`` adds to the dial-back verdict.
_DIALABLE = {
    "yes": "other nodes opened links to this node's peer port",
    "no": "other nodes cannot open links to this node; its own links out still work",
    "unknown": "not enough nodes have tried yet",
}


def _paths(by_path: Any) -> str:
    """`` (2 direct, 1 punched)``: how the links were made, or nothing."""
    if not isinstance(by_path, dict) or not by_path:
        return ""
    return " (" + ", ".join(f"{n} {path}" for path, n in sorted(by_path.items())) + ")"


def format_status(st: dict[str, Any]) -> str:
    lines = [
        f"identity  {st.get('identity')}",
        f"node id   {st.get('node_id')}",
        f"dht       {st.get('dht_addr')}",
        f"peers at  {st.get('peer_addr')}",
        f"api       {st.get('api')}",
        f"peers     {st.get('peers')}{_paths(st.get('links_by_path'))}",
        f"lan peers {st.get('lan_peers', 0)}",
        f"feeds     {st.get('feeds')}",
        f"unread    {st.get('unread_notifications', 0)}",
        f"forked    {st.get('forked_feeds', 0)}",
    ]
    if "reachability" in st:
        seen = ", ".join(st.get("observed_addrs") or []) or "-"
        lines.append(
            f"reach     {st['reachability']} (seen as {seen}; mapping {st.get('nat_mapping')})"
        )
    if "reachable" in st:
        lines.append(f"dialable  {st['reachable']} ({_DIALABLE.get(st['reachable'], '?')})")
    if "port_mapping" in st:
        lines.append(f"portmap   {_portmap_line(st['port_mapping'])}")
    forks = st.get("forks") or []
    lines.extend(f"  {f['identity']} frozen at seq {f['fork_seq']}" for f in forks)
    more = int(st.get("forked_feeds") or 0) - len(forks)
    if more > 0:
        lines.append(f"  ... and {more} more")
    return "\n".join(lines)


def _portmap_line(pm: dict[str, Any]) -> str:
    """The ``portmap`` line of ``status`` (spec/portmap.md)."""
    state = pm.get("state")
    if state == "mapped":
        return (
            f"{pm.get('external')} by {pm.get('protocol')} at {pm.get('gateway')} "
            f"(udp {pm.get('udp_external')}; renewed before it expires in {pm.get('expires_in')} s)"
        )
    if state == "failed":
        return f"none: gateway {pm.get('gateway')} did not map (next try in {pm.get('retry_in')} s)"
    return str(state)


def fork_warning(identity: str, fork_seq: int) -> str:
    """The line ``feed`` prints above a forked feed."""
    head = f"warning: the feed of {identity} is forked and frozen at seq {fork_seq}"
    return f"{head}: {fork_note(fork_seq)}"


def format_profile(p: dict[str, Any]) -> str:
    lines = [p.get("identity", "")]
    if p.get("petname"):
        lines.append(f"petname    {p['petname']}")
    if p.get("name"):
        lines.append(f"name       ~{_profile_shown(str(p['name']))} (self-chosen)")
    if p.get("bio"):
        lines.append(f"bio        {p['bio']}")
    lines.append(f"following  {p.get('following', 0)}   followers {p.get('followers', 0)}")
    flags = [f for f in ("blocked", "muted") if p.get(f)]
    if flags:
        lines.append("(" + ", ".join(flags) + " by you)")
    if p.get("forked"):
        lines.append(f"feed forked: frozen at seq {p.get('fork_seq')}")
    return "\n".join(lines)


def format_person(p: dict[str, Any]) -> str:
    """A ``suggest`` or ``search --people`` result: the profile name (chosen by its
    owner, so marked as self-chosen) and the short key, then why it is suggested."""
    name = p.get("name")
    who = f'"{name}" (self-chosen)  ' if name else ""
    line = f"{who}{short_identity(p.get('identity'))}"
    if p.get("followed_by"):
        via = ", ".join(short_identity(v) for v in p.get("via") or [])
        line += f"  followed by {p['followed_by']} you follow ({via})"
    bio = p.get("bio")
    if bio:
        line += f"\n  {bio}"
    return f"{line}\n  {p.get('identity')}"


def notification_label(e: dict[str, Any]) -> str:
    """The line above a notification's entry: who did what, and whether it is new."""
    what = NOTIFICATION_LABELS.get(str(e.get("notification")), str(e.get("notification")))
    new = "new  " if e.get("unread") else ""
    return f"{new}{short_identity(e.get('author'))} {what}"


def format_peer(p: dict[str, Any]) -> str:
    path = f"  {p['path']}" if p.get("path") else ""
    return f"{p.get('host')}:{p.get('port')}  {p.get('direction', '')}{path}  node {str(p.get('node_id', ''))[:16]}"


def _entry_refs(e: dict[str, Any]) -> str:
    """The line under a post naming its mentions (by name) and tags, or ``""``."""
    parts = []
    mentions = [m for m in e.get("mentions") or [] if isinstance(m, str)]
    if mentions:
        names = e.get("names")
        parts.append("mentions " + ", ".join(display_identity(m, names) for m in mentions))
    tags = [t for t in e.get("tags") or [] if isinstance(t, str)]
    if tags:
        parts.append("tags " + " ".join(f"#{t}" for t in tags))
    return "  ".join(parts)


def _entry_body(e: dict[str, Any]) -> str:
    kind = e.get("kind")
    if e.get("deleted"):
        return "[deleted]"
    if kind == "post":
        return e.get("text") or "[payload not held]"
    target = e.get("target")
    short = (
        target[:12]
        if isinstance(target, str) and len(target) == 64
        else display_identity(target, e.get("names"))
    )
    if kind == "react":
        return f"reacted {e.get('emoji', '')} to {short}"
    if kind in ("follow", "unfollow", "block", "unblock", "repost", "delete"):
        return f"{kind} {short}"
    if kind == "profile":
        return "updated their profile"
    return f"[{kind}]"


class Printer:
    def __init__(self, *, json_mode: bool, color: bool) -> None:
        self.json = json_mode
        self.color = color
        self.rich = sys.stdout.isatty()
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """The rich console for stdout, created (and rich imported) on first use."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                no_color=not self.color,
                highlight=False,
                force_terminal=self.rich and self.color,
                soft_wrap=True,
            )
        return self._console

    def record(self, obj: dict[str, Any], human: Callable[[dict[str, Any]], str]) -> None:
        if self.json:
            print(_json_line(obj), flush=True)
        else:
            print(human(obj))

    def note(self, text: str) -> None:
        if not self.json:
            print(text, file=sys.stderr)

    def warn(self, text: str) -> None:
        """Like :meth:`note`, in yellow on a terminal."""
        if self.json:
            return
        if self.color and sys.stderr.isatty():
            print(f"\x1b[33m{text}\x1b[0m", file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def page(self, items: list[dict[str, Any]], next_cursor: str | None) -> None:
        """A page of entries; then, when there is more, the cursor for ``--before``:
        a last ``{"next": CURSOR}`` line in JSON mode, a hint on stderr otherwise."""
        self.entries(items)
        if not next_cursor:
            return
        if self.json:
            print(_json_line({"next": next_cursor}, ensure_ascii=True), flush=True)
        else:
            self.note(f"more: --before {next_cursor}")

    def entries(self, items: list[dict[str, Any]], *, tree: bool = False) -> None:
        if self.json:
            # One write for the page, not a flush per line.
            if items:
                print("\n".join(_json_line(e) for e in items), flush=True)
            return
        if not items:
            self.note("nothing to show")
            return
        for e in items:
            indent = "  " * int(e.get("depth") or 0) if tree else ""
            who = display_identity(e.get("author"), e.get("names"))
            head = f"{_when(e.get('timestamp'))}  {who}  #{e.get('seq')}"
            extras = []
            if e.get("reply_to"):
                extras.append(f"reply to {str(e['reply_to'])[:12]}")
            reactions = e.get("reactions") or {}
            if reactions:
                extras.append(" ".join(f"{k}{v}" for k, v in reactions.items()))
            if e.get("replies"):
                extras.append(f"{e['replies']} replies")
            if e.get("author_forked"):
                extras.append(f"forked feed (frozen at #{e.get('author_fork_seq')})")
            body = _entry_body(e)
            refs = _entry_refs(e) if e.get("kind") == "post" and not e.get("deleted") else ""
            if self.rich:
                from rich.markup import escape

                self.console.print(
                    f"{indent}[bold cyan]{escape(head)}[/]  [dim]{escape(' · '.join(extras))}[/]"
                )
                self.console.print(f"{indent}  {escape(body)}")
                if refs:
                    self.console.print(f"{indent}  [magenta]{escape(refs)}[/]")
                self.console.print(f"{indent}  [dim]{e.get('id')}[/]")
            else:
                print(f"{indent}{head}  {' · '.join(extras)}".rstrip())
                print(f"{indent}  {body}")
                if refs:
                    print(f"{indent}  {refs}")
                print(f"{indent}  {e.get('id')}")
