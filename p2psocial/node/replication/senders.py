"""Which link sends us each feed live: EBT-style sender selection (spec/sync.md §13).

With every link pushing every shared feed, a follower linked to several
holders of a feed gets each new entry once per link. Over links where both
sides listed capability ``ebt``, :class:`Senders` keeps one link *active* per
feed and puts a link whose live push was a duplicate on *standby* for that
feed (when the active link's push is the duplicate, the link that was first
becomes the active one): that peer stops pushing the feed
and sends ``have`` notes of its head instead. A standby peer that stays ahead
of our head for ``switch_after`` seconds becomes the feed's sender (the
active one lagged or went quiet), and when the active link ends, a standby
one takes over at once. Links without the capability push as before.

The state is a few maps keyed by feed, bounded by the wanted feeds times the
open links, and cleaned when a link ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import trio

from .link import Link

__all__ = ["Senders"]


class Senders:
    """The live sender of each feed, across the open links.

    Args:
        head_of: our contiguous head seq of a feed (0 if none held).
        switch_after: seconds a standby peer may stay ahead of us before it
            becomes the feed's sender.
        enabled: False keeps every link pushing (no ``mode`` is ever sent).
    """

    def __init__(
        self,
        head_of: Callable[[bytes], int],
        *,
        switch_after: float = 1.0,
        enabled: bool = True,
    ) -> None:
        self.head_of = head_of
        self.switch_after = switch_after
        self.enabled = enabled
        #: feed -> the link it is taken from live
        self._active: dict[bytes, Link] = {}
        #: feed -> the link that last gave us a new entry of it first
        self._first: dict[bytes, Link] = {}
        #: feed -> links we put on standby for it (insertion order)
        self._standby: dict[bytes, dict[Link, None]] = {}
        #: (feed, standby link) -> (its stated head, since when it is ahead of ours)
        self._ahead: dict[tuple[bytes, Link], tuple[int, float]] = {}
        self._stats: Counter[str] = Counter()

    def _usable(self, link: Link) -> bool:
        return self.enabled and link.session.ebt and link.is_open()

    def delivered(self, link: Link, author: bytes, *, new: bool, live: bool) -> None:
        """``link`` handed us entries of ``author``'s feed: ``new`` if any was
        stored, ``live`` for a push (catch-up batches overlap by design)."""
        if new:
            self._first[author] = link
        if not self._usable(link):
            return
        active = self._active.get(author)
        if active is None or not active.is_open():
            self._active[author] = link
            return
        if new or not live:
            return
        # A live push of what another link gave us first: this one stands by.
        if active is not link:
            self._set(link, author, active=False)
            return
        # The sender was slower than another link: that one sends from now on.
        first = self._first.get(author)
        if first is None or first is link or not first.is_open():
            return
        if self._set(link, author, active=False):
            if self._usable(first):
                self._active[author] = first
            else:
                del self._active[author]  # a link without ebt pushes anyway

    def ahead(self, link: Link, author: bytes, seq: int) -> None:
        """A ``have`` from ``link`` says its peer holds ``author`` up to ``seq``, past us."""
        if not self._usable(link) or link not in self._standby.get(author, {}):
            return
        key = (author, link)
        known = self._ahead.get(key)
        self._ahead[key] = (seq, trio.current_time() if known is None else known[1])

    def tick(self) -> None:
        """Switch every feed whose standby peer stayed ahead for ``switch_after``."""
        now = trio.current_time()
        for key, (seq, since) in list(self._ahead.items()):
            author, link = key
            if key not in self._ahead:
                continue  # gone with an earlier switch of this feed
            if not link.is_open() or self.head_of(author) >= seq:
                del self._ahead[key]
                continue
            if now - since < self.switch_after:
                continue
            old = self._active.get(author)
            self._promote(link, author)
            if old is not None and old is not link and self._usable(old):
                self._set(old, author, active=False)
            self._stats["senders_switched"] += 1

    def _set(self, link: Link, author: bytes, *, active: bool) -> bool:
        """Send ``link``'s peer the mode; False if the session had nothing to
        send (no change, or a feed not both announced there yet)."""
        actions = link.session.set_mode(author, active)
        if not actions:
            return False
        link.perform_local(actions)
        if active:
            self._standby.get(author, {}).pop(link, None)
            self._stats["mode_active_sent"] += 1
        else:
            self._standby.setdefault(author, {})[link] = None
            self._stats["mode_standby_sent"] += 1
        return True

    def _promote(self, link: Link, author: bytes) -> None:
        self._set(link, author, active=True)
        self._standby.get(author, {}).pop(link, None)
        if not self._standby.get(author, True):
            del self._standby[author]
        self._active[author] = link
        for key in [k for k in self._ahead if k[0] == author]:
            del self._ahead[key]

    def link_gone(self, link: Link) -> None:
        """``link`` ended: a standby link takes over each feed it sent us."""
        for key in [k for k in self._ahead if k[1] is link]:
            del self._ahead[key]
        for author in [a for a, lk in self._first.items() if lk is link]:
            del self._first[author]
        for author in [a for a, links in self._standby.items() if link in links]:
            links = self._standby[author]
            del links[link]
            if not links:
                del self._standby[author]
        for author in [a for a, lk in self._active.items() if lk is link]:
            del self._active[author]
            for candidate in list(self._standby.get(author, ())):
                if self._usable(candidate):
                    self._promote(candidate, author)
                    self._stats["senders_replaced"] += 1
                    break

    async def run(self, *, interval: float = 0.25) -> None:
        """Check for lagging senders every ``interval`` seconds, until cancelled."""
        while True:
            await trio.sleep(interval)
            if self._ahead:
                self.tick()

    def statistics(self) -> dict[str, Any]:
        """Modes sent, switches and replacements; feeds with a sender, links on standby."""
        return {
            "mode_standby_sent": self._stats["mode_standby_sent"],
            "mode_active_sent": self._stats["mode_active_sent"],
            "senders_switched": self._stats["senders_switched"],
            "senders_replaced": self._stats["senders_replaced"],
            "feeds_with_sender": len(self._active),
            "standby_links": sum(len(v) for v in self._standby.values()),
        }
