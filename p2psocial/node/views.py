"""Values at the node's edge: identities and ids parsed from text, watch filters,
and entries in the JSON-friendly shape the Node, the local API and the CLI share.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..protocol.errors import DecodeError, LocalUsageError
from ..protocol.identity import identity_from_text

if TYPE_CHECKING:
    # Types only: importing this module (for WatchFilter) stays light.
    from ..storage import AsyncStore, EntryView

__all__ = [
    "WatchFilter",
    "check_limit",
    "fmt_addr",
    "parse_entry_id",
    "parse_identity",
    "render_views",
    "view_json",
]


def parse_identity(value: str | bytes) -> bytes:
    """An identity from its text form (or raw 32 bytes).

    Raises:
        LocalUsageError: saying what is wrong with the text.
    """
    if isinstance(value, bytes):
        if len(value) != 32:
            raise LocalUsageError("an identity is 32 bytes")
        return value
    try:
        return identity_from_text(value)
    except DecodeError as exc:
        raise LocalUsageError(exc.message, reason="bad_identity") from None


def parse_entry_id(value: str | bytes) -> bytes:
    """An entry id from 64 hex characters (or raw 32 bytes).

    Raises:
        LocalUsageError: not a valid id.
    """
    if isinstance(value, bytes):
        if len(value) != 32:
            raise LocalUsageError("an entry id is 32 bytes")
        return value
    text = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise LocalUsageError(
            f"not a valid entry id: expected 64 hex characters, got {len(text)} characters",
            reason="bad_id",
        )
    return bytes.fromhex(text)


@dataclass
class WatchFilter:
    """Which new entries a watcher wants. Empty sets mean "any"."""

    kinds: set[str] = field(default_factory=set)
    authors: set[bytes] = field(default_factory=set)
    #: Only entries that mention or reply to this node's identity.
    mentions_me: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> WatchFilter:
        kinds = params.get("kinds") or []
        authors = params.get("authors") or []
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise LocalUsageError("kinds must be a list of kind names")
        if not isinstance(authors, list):
            raise LocalUsageError("authors must be a list of identities")
        return cls(
            kinds=set(kinds),
            authors={parse_identity(a) for a in authors},
            mentions_me=bool(params.get("mentions_me", False)),
        )

    def matches(self, view: dict[str, Any], me: str) -> bool:
        if self.kinds and view.get("kind") not in self.kinds:
            return False
        if self.authors and parse_identity(view["author"]) not in self.authors:
            return False
        # A reply always names the parent's author in its mentions (Node.post
        # does so), so this also catches replies to this identity's posts.
        return not self.mentions_me or me in (view.get("mentions") or [])


def view_json(view: Any, *, fork_seq: int | None) -> dict[str, Any]:
    """An EntryView as the API shows it.

    Adds ``reply_to`` (the parent id), and ``author_forked`` and
    ``author_fork_seq``: whether the author's feed is forked on this node, and
    the seq it is frozen at (spec/client-api.md §5).

    Args:
        fork_seq: the author's fork seq (``Store.forked_feeds``), or None when
            the feed is not forked. Required, so no view leaves it out by accident.
    """
    js: dict[str, Any] = view.to_json()
    js["reply_to"] = js.get("reply_parent")
    js["author_forked"] = fork_seq is not None
    js["author_fork_seq"] = fork_seq
    return js


async def render_views(store: AsyncStore, views: Iterable[EntryView]) -> list[dict[str, Any]]:
    """EntryViews as the API shows them, each saying whether its author's feed is forked."""
    views = list(views)
    forks = await store.forked_feeds({v.author for v in views}) if views else {}
    return [view_json(v, fork_seq=forks.get(v.author)) for v in views]


def check_limit(limit: int) -> int:
    """``limit`` itself, when it is a page size the node serves (1 to 500).

    Raises:
        LocalUsageError: any other value.
    """
    if not isinstance(limit, int) or not 1 <= limit <= 500:
        raise LocalUsageError("limit must be between 1 and 500")
    return limit


def fmt_addr(addr: tuple[str, int] | None) -> str | None:
    """``host:port``, or None for no address."""
    return None if addr is None else f"{addr[0]}:{addr[1]}"
