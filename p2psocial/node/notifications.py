"""Notifications, the unread mark, follow suggestions and people search, as the owner sees them.

The store derives who is notified of what (:mod:`p2psocial.storage.notifications`);
this part applies the owner's display rules (muted authors and hide patterns
are not shown, and muted authors do not count as unread), keeps the read
mark in the settings table, and puts names on identities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio

from ..protocol.identity import identity_to_text
from ..storage import AsyncStore
from ..storage.notifications import READ_MARK_KEY, NotificationPage, parse_mark
from ..storage.people import MAX_PEOPLE_QUERY, Person
from .config import NodeConfig
from .reads import visible
from .render import render_views
from .views import check_limit, parse_identity

__all__ = ["MAX_PEOPLE_QUERY", "Notifier", "person_json"]

#: Suggestions listed by default.
SUGGEST_DEFAULT = 20


def person_json(p: Person) -> dict[str, Any]:
    """A :class:`~p2psocial.storage.people.Person` as the API shows it."""
    out: dict[str, Any] = {"identity": identity_to_text(p.author), "name": p.name, "bio": p.bio}
    if p.via or p.followed_by:
        out["followed_by"] = p.followed_by
        out["via"] = [identity_to_text(v) for v in p.via]
    return out


@dataclass(eq=False)
class Notifier:
    """The owner's notifications and the read mark; suggestions and people search.

    The mark is read from and written to the store's settings, so it survives
    restarts; a lock keeps two ``mark_read`` calls from moving it backwards.
    """

    config: NodeConfig
    store: AsyncStore
    #: The owner's identity (32 bytes).
    identity: bytes

    def __post_init__(self) -> None:
        self._lock = trio.Lock()

    async def read_mark(self) -> int:
        """The highest arrival order (``eid``) the owner has seen; 0 when nothing."""
        value = await self.store.get_setting(READ_MARK_KEY, 0)
        return value if type(value) is int and value >= 0 else 0

    def _muted(self) -> list[bytes]:
        return [parse_identity(m) for m in self.config.policy.muted]

    async def notifications(
        self, limit: int, before: str | None, unread: bool = False
    ) -> dict[str, Any]:
        """A page of notifications, newest first; see :meth:`p2psocial.Node.notifications`."""
        mark = await self.read_mark()
        newest = await self.store.newest_notification_mark(self.identity)
        page: NotificationPage = await self.store.notifications(
            self.identity,
            limit=check_limit(limit),
            before=before,
            after_mark=mark if unread else None,
        )
        views = await render_views(self.store, [n.view for n in page.items])
        items = []
        for n, js in zip(page.items, views, strict=True):
            if not visible(self.config.policy, js):
                continue
            js["notification"] = n.kind
            js["unread"] = n.eid > mark
            js["mark"] = str(n.eid)
            items.append(js)
        unread_n = await self.store.unread_notifications(self.identity, mark, self._muted())
        return {"items": items, "next": page.next_cursor, "unread": unread_n, "mark": str(newest)}

    async def unread_count(self) -> int:
        """Unread notifications, not counting muted authors'."""
        mark = await self.read_mark()
        return await self.store.unread_notifications(self.identity, mark, self._muted())

    async def mark_read(self, upto: str | None = None) -> dict[str, Any]:
        """Mark notifications read up to ``upto`` (a ``mark`` a page returned), or all.

        The mark never moves backwards: an older ``upto`` changes nothing.
        """
        async with self._lock:
            current = await self.read_mark()
            newest = await self.store.newest_notification_mark(self.identity)
            # Never beyond what is held: a later notification must arrive unread.
            wanted = newest if upto is None else min(parse_mark(upto), newest)
            if wanted > current:
                await self.store.set_setting(READ_MARK_KEY, wanted)
                current = wanted
        return {"mark": str(current), "unread": await self.unread_count()}

    async def suggest(self, limit: int = SUGGEST_DEFAULT) -> dict[str, Any]:
        """People followed by those the owner follows, most-followed first.

        Leaves out the owner, those already followed, and the blocked and muted.
        """
        policy = self.config.policy
        shut = set(await self.store.blocked())
        shut.update(parse_identity(t) for t in (*policy.blocked, *policy.muted))
        people = await self.store.suggest(self.identity, exclude=shut, limit=check_limit(limit))
        return {"items": [person_json(p) for p in people]}

    async def search_people(self, query: str, limit: int, before: str | None) -> dict[str, Any]:
        """Profiles held here whose name or bio contains ``query`` (case-insensitive)."""
        page = await self.store.search_people(query, limit=check_limit(limit), before=before)
        return {"items": [person_json(p) for p in page.items], "next": page.next_cursor}
