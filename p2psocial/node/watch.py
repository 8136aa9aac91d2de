"""Watchers: entries fanned out to local subscribers as they are stored.

Storing never waits for a watcher. New entry ids go into one bounded channel
(``notify`` is synchronous and drops, counted, when it is full); one task
renders them and offers each view to every matching watcher's own bounded
channel, so a slow watcher misses events instead of slowing the node down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..protocol.entries import Entry
from ..storage import AsyncStore
from .views import WatchFilter, render_views

__all__ = ["STORED_BUFFER", "WATCH_BUFFER", "Watchers"]

#: Events buffered per watcher before the slowest watcher starts missing events.
WATCH_BUFFER = 256
#: Batches of stored entry ids waiting to be rendered for the watchers.
STORED_BUFFER = 1024


class Watchers:
    """The node's watch subscriptions and the task that feeds them.

    Args:
        store: where stored entries are read back from, to render them.
        identity_text: the owner's identity, for ``mentions_me`` filters.
    """

    def __init__(self, store: AsyncStore, identity_text: str) -> None:
        self._store = store
        self._me = identity_text
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
                for send, flt in list(self._watchers):
                    if flt.matches(event, self._me):
                        try:
                            send.send_nowait(event)
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
