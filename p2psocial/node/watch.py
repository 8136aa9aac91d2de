"""Watchers: entries fanned out to local subscribers as they are stored.

Storing never waits for a watcher. New entry ids go into one bounded channel
(``notify`` is synchronous and drops, counted, when it is full); one task
renders them and offers each view to every matching watcher's own bounded
channel, so a slow watcher misses events instead of slowing the node down.

Notifications. A filter whose kinds include the pseudo-kind
:data:`NOTIFICATION_KIND` also gets every new entry that notifies the owner
(a reply, mention, reaction, repost or follow, as ``notifications`` lists
them), with ``notification`` set to what it is. The store says whether an
entry notifies, so a watch and the ``notifications`` list always agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..protocol.entries import Entry
from ..storage import AsyncStore
from .names import Names
from .render import render_views
from .views import WatchFilter, parse_identity

__all__ = ["NOTIFICATION_KIND", "STORED_BUFFER", "WATCH_BUFFER", "Watchers", "wants_notifications"]

#: The pseudo-kind a watch filter names to receive the owner's notifications.
NOTIFICATION_KIND = "notification"

#: Events buffered per watcher before the slowest watcher starts missing events.
WATCH_BUFFER = 256
#: Batches of stored entry ids waiting to be rendered for the watchers.
STORED_BUFFER = 1024


def wants_notifications(flt: WatchFilter) -> bool:
    """Whether ``flt`` asks for the owner's notifications (:data:`NOTIFICATION_KIND`)."""
    return NOTIFICATION_KIND in flt.kinds


def _matches(flt: WatchFilter, event: dict[str, Any], me: str, why: str | None) -> bool:
    if not wants_notifications(flt):
        return flt.matches(event, me)
    if why is not None and (not flt.authors or parse_identity(event["author"]) in flt.authors):
        return True
    # Other kinds named beside the pseudo-kind match as usual.
    rest = flt.kinds - {NOTIFICATION_KIND}
    return bool(rest) and WatchFilter(rest, flt.authors, flt.mentions_me).matches(event, me)


class Watchers:
    """The node's watch subscriptions and the task that feeds them.

    Args:
        store: where stored entries are read back from, to render them.
        identity_text: the owner's identity, for ``mentions_me`` filters.
        names: adds the names to each event, as to every entry view.
    """

    def __init__(self, store: AsyncStore, identity_text: str, names: Names | None = None) -> None:
        self._store = store
        self._names = names
        self._me = identity_text
        self._me_key = parse_identity(identity_text)
        self._watchers: list[tuple[trio.MemorySendChannel[dict[str, Any]], WatchFilter]] = []
        self._stored_send, self._stored_recv = trio.open_memory_channel[list[bytes]](STORED_BUFFER)
        #: ``watch_events_dropped``, ``stored_notifications_dropped``.
        self.stats = {"watch_events_dropped": 0, "stored_notifications_dropped": 0}

    def notify(self, entries: list[Entry]) -> None:
        """Entries were just stored (own or replicated); never blocks."""
        if not self._watchers:
            return
        try:
            self._stored_send.send_nowait([e.id for e in entries])
        except trio.WouldBlock:
            self.stats["stored_notifications_dropped"] += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Render stored entries and offer them to the watchers, until cancelled."""
        task_status.started()
        async for ids in self._stored_recv:
            if not self._watchers:
                continue
            for entry_id in ids:
                view = await self._store.get_entry(entry_id)
                if view is None:
                    continue
                [event] = await render_views(self._store, [view])
                if self._names is not None:
                    await self._names.annotate([event])
                why = None
                if any(wants_notifications(flt) for _, flt in self._watchers):
                    why = await self._store.notification_kind(self._me_key, entry_id)
                for send, flt in list(self._watchers):
                    if _matches(flt, event, self._me, why):
                        out = event
                        if why is not None and wants_notifications(flt):
                            out = {**event, "notification": why}
                        try:
                            send.send_nowait(out)
                        except (
                            trio.WouldBlock,
                            trio.BrokenResourceError,
                            trio.ClosedResourceError,
                        ):
                            self.stats["watch_events_dropped"] += 1

    @asynccontextmanager
    async def subscribe(
        self, flt: WatchFilter
    ) -> AsyncIterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
        """A channel of the views of new entries matching ``flt``, while the block runs."""
        send, recv = trio.open_memory_channel[dict[str, Any]](WATCH_BUFFER)
        item = (send, flt)
        self._watchers.append(item)
        try:
            yield recv
        finally:
            self._watchers.remove(item)
            send.close()
