"""The read side: timelines, feeds, threads, search, profiles, and ``explain``.

Every answer is JSON-friendly (ids as hex, identities in text form), the shape
the local API sends. The owner's display rules (muted authors, hide patterns)
apply to timelines, mentions and search; a feed or thread asked for by name
shows everything held.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import trio

from ..api.notes import fork_note
from ..protocol.errors import LocalUsageError
from ..protocol.identity import identity_to_text
from ..storage import AsyncStore, Page
from .config import NodeConfig, Policy
from .moderation import Blocklists, PolicyGate
from .render import render_views, view_json
from .replication import Replicator
from .views import check_limit, held_entry, parse_identity, resolve_entry_id

__all__ = ["PEEK_TIMEOUT", "Reader", "shown", "visible"]

#: Seconds a feed read waits for swarm peers when this node does not replicate the feed.
PEEK_TIMEOUT = 5


def visible(policy: Policy, view: dict[str, Any]) -> bool:
    """Whether the owner's display rules (mutes, hide patterns) show ``view``."""
    if view["author"] in policy.muted:
        return False
    text = view.get("text")
    if text:
        for pattern in policy.hide_patterns:
            try:
                if re.search(pattern, text, re.IGNORECASE):
                    return False
            except re.error:
                continue
    return True


def shown(policy: Policy, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The views of ``items`` that the owner's display rules show, in order.

    With no mutes and no hide patterns (the usual case) that is ``items``
    itself, with no pass over the page.
    """
    if not policy.muted and not policy.hide_patterns:
        return items
    return [v for v in items if visible(policy, v)]


def _fork_why(seq: int, fork_seq: int) -> list[str]:
    """``explain``'s lines for an entry of a forked feed."""
    lines = [f"the author's feed is forked and frozen at seq {fork_seq}: " + fork_note(fork_seq)]
    if seq < fork_seq:
        lines.append(f"this entry (seq {seq}) is before the fork: every history of the feed has it")
    elif seq == fork_seq:
        lines.append(
            f"this entry is one of two rival entries at seq {fork_seq}; "
            "other nodes may show the other one"
        )
    else:
        lines.append(
            f"this entry (seq {seq}) is above the fork, on one of the rival histories "
            "(held before the fork was found)"
        )
    return lines


@dataclass(eq=False)
class Reader:
    """Queries over the store, as the owner sees them.

    The policy is read from ``config`` at each call, so changes apply at once;
    ``blocklists`` and ``gate`` say why payloads were refused, for ``explain``.
    """

    config: NodeConfig
    store: AsyncStore
    #: The owner's identity (32 bytes).
    identity: bytes
    blocklists: Blocklists
    gate: PolicyGate
    #: Asked for feeds this node does not replicate, once replication runs.
    replicator: Replicator | None = None

    async def _page(self, page: Page, *, filter_visible: bool) -> dict[str, Any]:
        if page.forks is not None:
            # The store read the authors' fork state with the page: no second
            # query (and thread hop) per page.
            items = [view_json(v, fork_seq=page.forks.get(v.author)) for v in page.items]
        else:
            items = await render_views(self.store, page.items)
        if filter_visible:
            items = shown(self.config.policy, items)
        return {"items": items, "next": page.next_cursor}

    async def _fork_seq(self, author: bytes) -> int | None:
        return (await self.store.forked_feeds([author])).get(author)

    def _who(self, identity: str | bytes | None) -> bytes:
        return self.identity if identity is None else parse_identity(identity)

    async def timeline(self, limit: int, before: str | None) -> dict[str, Any]:
        """Own and followed authors' entries, newest first, display rules applied."""
        # The store makes the entries' maps straight from its rows (the
        # home timeline is the page read most): no EntryViews in between.
        page = await self.store.timeline_maps(
            self.identity, limit=check_limit(limit), before=before
        )
        return {"items": shown(self.config.policy, page.items), "next": page.next_cursor}

    async def feed(
        self,
        identity: str | bytes | None,
        limit: int,
        before: str | None,
        kinds: list[str] | None,
    ) -> dict[str, Any]:
        """One author's entries; see :meth:`p2psocial.Node.feed`."""
        author = self._who(identity)
        if kinds is None:
            kind_filter: tuple[str, ...] | None = ("post", "repost")
        elif kinds == ["*"]:
            kind_filter = None
        else:
            kind_filter = tuple(kinds)
        page = await self.store.feed(
            author, limit=check_limit(limit), before=before, kinds=kind_filter
        )
        if (
            not page.items
            and before is None
            and self.replicator is not None
            and not (await self.store.interests()).get(author)
        ):
            # Not replicated here: read its recent entries from swarm peers.
            with trio.move_on_after(PEEK_TIMEOUT):
                await self.replicator.peek(author, limit=check_limit(limit))
            page = await self.store.feed(
                author, limit=check_limit(limit), before=before, kinds=kind_filter
            )
        result = await self._page(page, filter_visible=False)
        fork_seq = await self._fork_seq(author)
        result.update({"forked": fork_seq is not None, "fork_seq": fork_seq})
        return result

    async def thread(self, id: str | bytes) -> dict[str, Any]:
        """A post with its nested replies, in tree order; see :meth:`p2psocial.Node.thread`."""
        entry_id = await resolve_entry_id(self.store, id)
        views = await self.store.thread(entry_id)
        if not views:
            # The thread of a held entry holds at least that entry.
            raise LocalUsageError(f"this node holds no entry {entry_id.hex()}", reason="unknown_id")
        return {"items": await render_views(self.store, views)}

    async def mentions(self, limit: int, before: str | None) -> dict[str, Any]:
        """Replies to the owner's posts and posts mentioning the owner, newest first."""
        page = await self.store.mentions(self.identity, limit=check_limit(limit), before=before)
        return await self._page(page, filter_visible=True)

    async def search(
        self, query: str, author: str | bytes | None, limit: int, before: str | None
    ) -> dict[str, Any]:
        """Full-text search over held posts, display rules applied."""
        key = None if author is None else parse_identity(author)
        page = await self.store.search(query, author=key, limit=check_limit(limit), before=before)
        return await self._page(page, filter_visible=True)

    async def profile(self, identity: str | bytes | None) -> dict[str, Any]:
        """An identity's latest profile, with follow counts as seen here."""
        author = self._who(identity)
        prof = await self.store.profile(author) or {}
        following = await self.store.following(author)
        followers = await self.store.followers(author)
        fork_seq = await self._fork_seq(author)
        policy = self.config.policy
        return {
            "identity": identity_to_text(author),
            "name": prof.get("name"),
            "bio": prof.get("bio"),
            "following": len(following),
            "followers": len(followers),
            "blocked": identity_to_text(author) in policy.blocked,
            "muted": identity_to_text(author) in policy.muted,
            "forked": fork_seq is not None,
            "fork_seq": fork_seq,
        }

    async def following(self, identity: str | bytes | None) -> dict[str, Any]:
        """Identities this identity follows."""
        keys = await self.store.following(self._who(identity))
        return {"items": [identity_to_text(k) for k in keys]}

    async def followers(self, identity: str | bytes | None) -> dict[str, Any]:
        """Identities seen following this identity."""
        keys = await self.store.followers(self._who(identity))
        return {"items": [identity_to_text(k) for k in keys]}

    async def explain(self, id: str | bytes) -> dict[str, Any]:
        """Why this node holds, hides or refused an entry; see :meth:`p2psocial.Node.explain`."""
        view = await held_entry(self.store, id)
        result: dict[str, Any] = {"id": view.id.hex(), "held": True}
        fork_seq = await self._fork_seq(view.author)
        js = view_json(view, fork_seq=fork_seq)
        why = await self._held_why(view.author)
        why.extend(self._refused_why(view.id, view.author, js))
        if js.get("deleted"):
            why.append("payload purged: the author deleted this entry")
        elif js.get("payload") is None and len(why) == 1:
            why.append("payload not held (not received yet, or dropped by an earlier policy)")
        if js["author"] in self.config.policy.muted:
            why.append("hidden: the author is muted by this node's owner")
        elif js.get("text") and not visible(self.config.policy, js):
            why.append("hidden: the text matches a hide pattern")
        if fork_seq is not None:
            why.extend(_fork_why(view.seq, fork_seq))
        result.update(
            {
                "author": js["author"],
                "kind": js["kind"],
                "deleted": js.get("deleted", False),
                "author_forked": js["author_forked"],
                "author_fork_seq": fork_seq,
                "why": why,
            }
        )
        return result

    async def _held_why(self, author: bytes) -> list[str]:
        interests = (await self.store.interests()).get(author, set())
        return [
            "held because: "
            + (", ".join(sorted(interests)) if interests else "no current interest")
        ]

    def _refused_why(self, entry_id: bytes, author: bytes, js: dict[str, Any]) -> list[str]:
        """``explain``'s lines for the blocks and limits that apply to an entry."""
        why: list[str] = []
        for source in sorted(self.blocklists.sources.get(author, set()), key=str):
            if source == "self":
                why.append("payload refused: the author is blocked by this node's owner")
            else:
                assert isinstance(source, bytes)
                why.append(
                    f"payload refused: the author is on the blocklist of {identity_to_text(source)}, "
                    "which this node subscribes to"
                )
        refused = self.gate.refused.get(entry_id)
        # A payload refused once may have been stored since (the quota freed up).
        if refused is not None and js["payload_state"] != "present":
            policy = self.config.policy
            rule = {
                "too_large": "payload refused: larger than max_payload_bytes "
                f"({policy.max_payload_bytes})",
                "quota_entries": "payload refused: the author exceeded quota_entries_per_day "
                f"({policy.quota_entries_per_day})",
                "quota_bytes": "payload refused: the author exceeded quota_bytes_per_day "
                f"({policy.quota_bytes_per_day})",
            }[refused]
            why.append(rule)
        return why
