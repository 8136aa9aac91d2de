"""The recent-entries cache: :class:`RecentCache`.

Entries just stored (or published here) are what links are asked for next,
by every peer that follows the feed; serving them from memory spares the
store one query per push. The cache must never serve what the store no
longer holds, so a purge of payloads (a block, a delete) forgets them here.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ...protocol.wire import Item

__all__ = ["RecentCache"]


class RecentCache:
    """The newest entries seen, by ``(author, seq)``, oldest evicted first.

    Args:
        max_items: how many entries to keep (each may carry a 16 KiB payload).
    """

    def __init__(self, max_items: int = 4096) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple[bytes, int], Item] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[bytes, int]) -> Item | None:
        """The cached item at ``(author, seq)``, or None."""
        return self._items.get(key)

    def run_from(self, author: bytes, from_seq: int, count: int) -> list[Item]:
        """The cached items ``from_seq``, ``from_seq + 1``, ... up to ``count``,
        stopping at the first one not cached."""
        items: list[Item] = []
        seq = from_seq
        while len(items) < count:
            item = self._items.get((author, seq))
            if item is None:
                break
            items.append(item)
            seq += 1
        return items

    def remember(self, author: bytes, seq: int, item: Item) -> None:
        """Cache one entry (with its payload, if any)."""
        self._items[(author, seq)] = item
        if len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def forget(self, author: bytes | None = None) -> None:
        """Drop cached items (all, or one author's) after payloads were purged
        from the store: the cache must never serve what the store no longer
        holds (a blocked author's or a deleted post's payload)."""
        if author is None:
            self._items.clear()
            return
        for key in [k for k in self._items if k[0] == author]:
            del self._items[key]

    def statistics(self) -> dict[str, Any]:
        """How many entries are cached."""
        return {"cached": len(self._items)}
