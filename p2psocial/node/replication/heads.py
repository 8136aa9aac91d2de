"""Wanted feeds and our clock for each: :class:`Heads`.

Which feeds this node replicates follows from the store: the own feed,
follows, ``hops = 2`` adds follows of follows, plus any other lasting
interest, minus blocks. For each, the clock is the head we hold (seq and id),
which every link announces to its peer. A forked feed is frozen: it leaves
the wanted set and is never asked for again.

:class:`Heads` only answers; the caller tells the links. ``advance`` says
whether a head moved, and ``refresh`` says what changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from ...protocol.sync import Head
from .store import ReplicationStore

__all__ = ["Heads", "Refresh"]


@dataclass(slots=True)
class Refresh:
    """What a :meth:`Heads.refresh` changed."""

    #: Feeds were added to or removed from the wanted set.
    changed: bool = False
    #: Heads that moved in the store without replication (imports, the API).
    moved: list[tuple[bytes, Head]] = field(default_factory=list)


class Heads(Mapping[bytes, Head]):
    """The wanted feeds, each with the head this node holds.

    A read-only mapping ``author -> (seq, id)``; :class:`SyncSession`
    takes it as its interest.

    Args:
        store: where follows, interests, blocks and heads are read.
        identity: the user identity hosted here (its feed is always wanted).
        hops: 1 replicates follows; 2 adds follows of follows (may change at run time).
    """

    def __init__(self, store: ReplicationStore, identity: bytes, *, hops: int = 1) -> None:
        self.store = store
        self.identity = identity
        self.hops = hops
        self._clock: dict[bytes, Head] = {}
        self._forked: set[bytes] = set()
        self._lock = trio.Lock()

    def __getitem__(self, author: bytes) -> Head:
        return self._clock[author]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._clock)

    def __len__(self) -> int:
        return len(self._clock)

    def advance(self, author: bytes, head: Head) -> bool:
        """Record that we hold a wanted feed up to ``head``.

        Returns:
            True if the head moved forward (the caller tells the links), False
            if the feed is not wanted or we already held that far.
        """
        cur = self._clock.get(author)
        if cur is None or head[0] <= cur[0]:
            return False
        self._clock[author] = head
        return True

    def is_forked(self, author: bytes) -> bool:
        """Whether the feed was found forked (it is frozen here)."""
        return author in self._forked

    def freeze(self, author: bytes) -> None:
        """Mark a feed forked. It stays in the clock (the store refuses
        anything above the fork, as "forked", which is not the relaying
        peer's fault) and is never added again."""
        self._forked.add(author)

    async def wanted(self) -> set[bytes]:
        """The feeds to replicate, as the store says now."""
        follows = set(await self.store.following(self.identity))
        wanted = {self.identity} | follows
        if self.hops >= 2:
            for f in list(follows):
                wanted.update(await self.store.following(f))
        for author, reasons in (await self.store.interests()).items():
            if reasons - {"peek", "inbound"}:
                wanted.add(author)
        blocked = await self.store.blocked()
        wanted -= blocked - {self.identity}
        return wanted

    async def refresh(self) -> Refresh:
        """Re-read the wanted set and the heads from the store.

        Returns:
            Whether the set changed, and which heads moved (already advanced here).
        """
        out = Refresh()
        async with self._lock:
            wanted = await self.wanted()
            for author in wanted - set(self._clock):
                if author in self._forked:
                    continue
                if await self.store.feed_status(author) == "forked":
                    self._forked.add(author)
                    continue
                head = await self.store.head(author)
                self._clock[author] = (head[0], head[1]) if head else (0, None)
                out.changed = True
            for author in set(self._clock) - wanted:
                del self._clock[author]
                out.changed = True
            # Entries may reach the store by other paths (imports, the API):
            # pick up any head that moved without us.
            seqs = await self.store.heads(list(self._clock))
            for author, seq in seqs.items():
                cur = self._clock.get(author)
                if cur is not None and seq > cur[0] and author not in self._forked:
                    head = await self.store.head(author)
                    if head is not None and self.advance(author, (head[0], head[1])):
                        out.moved.append((author, (head[0], head[1])))
        return out

    def statistics(self) -> dict[str, Any]:
        """Wanted feeds, and how many of them are frozen by a fork."""
        return {"feeds": len(self._clock), "forked": len(self._forked)}
