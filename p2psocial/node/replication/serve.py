"""The writer side of a link: :class:`FeedServer` drains a link's outbox.

Control messages go first, then one-shot serves (peeks, wants outside the
shared set), then feed ranges, one batch per feed in turn, read from the
recent cache or the store. A link we said nothing on for a while gets an
empty clock, so the peer knows we are alive (spec/sync.md §7).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import trio

from ...protocol.sync import Head, SyncLimits
from ...protocol.wire import Clock, Entries, Item, Push, encode_message
from .link import Link, Range
from .recent import RecentCache
from .store import ReplicationStore

__all__ = ["FeedServer"]


class FeedServer:
    """Sends what links' outboxes hold.

    Args:
        store: where entries not in the cache are read.
        heads: our clock (the head announced with each batch).
        cache: recent entries, served without a store query.
        limits: per-peer protocol limits (the frame size bounds a batch).
        batch_size: entries per catch-up batch.
        keepalive_interval: seconds of silence after which an empty clock is sent.
    """

    def __init__(
        self,
        store: ReplicationStore,
        heads: Mapping[bytes, Head],
        cache: RecentCache,
        *,
        limits: SyncLimits,
        batch_size: int,
        keepalive_interval: float,
    ) -> None:
        self.store, self.heads, self.cache = store, heads, cache
        self.limits = limits
        self.batch_size = batch_size
        self.keepalive_interval = keepalive_interval
        self._stats: Counter[str] = Counter()

    async def drain(self, link: Link) -> None:
        """The writer task of one link: send what its outbox holds, until cancelled."""
        out = link.outbox
        while True:
            if out.empty():
                wait = link.last_out + self.keepalive_interval - trio.current_time()
                with trio.move_on_after(max(0.0, wait)) as quiet:
                    await out.kick.receive()
                if quiet.cancelled_caught:
                    # Nothing to say for a while: an empty clock (a delta with
                    # no changes) tells the peer we are alive (spec/sync.md 7).
                    await link.stream.send_frame(encode_message(Clock(())))
                    link.last_out = trio.current_time()
                    self._stats["keepalives_sent"] += 1
                continue
            link.last_out = trio.current_time()
            if out.control:
                await link.stream.send_frame(encode_message(out.control.popleft()))
                continue
            if out.oneshots:
                author, rng = out.oneshots.popleft()
                await self._send_oneshot(link, author, rng)
                continue
            author, rng = out.ranges.popitem(last=False)
            rest = await self._send_range_batch(link, author, rng)
            if rest is not None:
                # Round robin: other feeds get a turn before this one continues.
                cur = out.ranges.pop(author, None)
                if cur is not None:
                    rest.from_seq = min(rest.from_seq, cur.from_seq)
                    rest.to_seq = max(rest.to_seq or 0, cur.to_seq or 0)
                    rest.live = False
                out.ranges[author] = rest

    async def _read(self, author: bytes, from_seq: int, count: int) -> list[Item]:
        """Entries from_seq .. from_seq+count-1, from the recent cache or the store."""
        items = self.cache.run_from(author, from_seq, count)
        if len(items) < count:
            after = from_seq + len(items) - 1
            items.extend(await self.store.entries_after(author, after, count - len(items)))
        return items

    def _cut(self, items: list[Item]) -> list[Item]:
        """Keep a batch under the frame limit (payloads can be 16 KiB each)."""
        budget = self.limits.wire.max_frame - 4096
        total = 0
        for i, (entry, payload) in enumerate(items):
            total += len(entry) + (len(payload) if payload else 0) + 16
            if total > budget:
                return items[: max(1, i)]
        return items

    async def _send_range_batch(self, link: Link, author: bytes, rng: Range) -> Range | None:
        assert rng.to_seq is not None
        head = self.heads.get(author, (rng.to_seq, None))[0]
        count = min(self.batch_size, rng.to_seq - rng.from_seq + 1)
        if count <= 0:
            # A want beyond our head: say so, so the asker's want completes.
            await link.stream.send_frame(encode_message(Entries(author, rng.from_seq, head, ())))
            return None
        if rng.live and count == 1:
            items = await self._read(author, rng.from_seq, 1)
            if items:
                await link.stream.send_frame(encode_message(Push(author, rng.from_seq, items[0])))
                self._stats["entries_served"] += 1
            return None
        items = self._cut(await self._read(author, rng.from_seq, count))
        top = rng.from_seq + len(items) - 1
        batch = Entries(author, rng.from_seq, max(head, top), tuple(items))
        await link.stream.send_frame(encode_message(batch))
        self._stats["entries_served"] += len(items)
        if not items:
            return None
        nxt = rng.from_seq + len(items)
        if nxt > rng.to_seq:
            return None
        return Range(nxt, rng.to_seq)

    async def _send_oneshot(self, link: Link, author: bytes, rng: Range) -> None:
        head_t = await self.store.head(author)
        head = head_t[0] if head_t else 0
        limit = rng.limit or self.batch_size
        first = rng.from_seq
        if first == 0:
            first = max(1, head - limit + 1)
        last = head if rng.to_seq is None else min(head, rng.to_seq)
        last = min(last, first + limit - 1)
        sent_any = False
        while first <= last:
            items = self._cut(
                await self._read(author, first, min(self.batch_size, last - first + 1))
            )
            if not items:
                break
            batch = Entries(author, first, max(head, first + len(items) - 1), tuple(items))
            await link.stream.send_frame(encode_message(batch))
            self._stats["entries_served"] += len(items)
            sent_any = True
            first += len(items)
        if not sent_any:
            await link.stream.send_frame(
                encode_message(Entries(author, 0 if head == 0 else first, head, ()))
            )

    def statistics(self) -> dict[str, Any]:
        """Entries served and keepalives sent, over all links."""
        return {
            "entries_served": self._stats["entries_served"],
            "keepalives_sent": self._stats["keepalives_sent"],
        }
