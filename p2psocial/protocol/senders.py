"""Which link sends us each feed live: the sender choice of capability ``ebt``.

Theory (spec/sync.md §13). With every link pushing every shared feed, a
follower linked to *n* holders of a feed receives each new entry *n* times.
Over links where both sides listed ``ebt``, :class:`SenderChoice` keeps one
link *active* per feed and puts the others that push it on *standby*:

1. the first link to deliver an entry of the feed becomes active;
2. a link whose live push brought an entry already held goes on standby (a
   catch-up batch never does: its overlap entry is always a duplicate); if
   that link was the active one, the link that delivered the entry first
   becomes active instead;
3. a standby peer whose ``have`` shows it ahead of our head, and still ahead
   ``switch_after`` seconds later, becomes the sender, and the previous
   sender goes on standby;
4. when the active link ends, a standby link of the feed becomes active at once.

Links without the capability push as before and are never asked anything.

Like the rest of this package the choice does no I/O and reads no clock: the
caller passes ``now`` and answers four questions about its links through the
callables given to the constructor. A link is any hashable handle the caller
picks (the node's :class:`~p2psocial.node.replication.link.Link`, a
simulator's link end). The state is a few maps keyed by feed, bounded by the
wanted feeds times the open links, and cleaned by :meth:`link_gone`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SenderChoice"]

L = TypeVar("L", bound=Hashable)


class SenderChoice(Generic[L]):
    """The live sender of each feed, across the open links (rules 1-4 above).

    Args:
        head_of: our contiguous head seq of a feed (0 if none held).
        is_open: whether a link is up (not ending).
        has_ebt: whether both sides of a link listed capability ``ebt``.
        set_mode: send the link's peer ``mode`` for a feed (active or
            standby); returns whether anything was sent (the session sends
            nothing when the mode is unchanged, the feed is not shared yet,
            or a standby is held back by its pacing).
        switch_after: seconds a standby peer may stay ahead of us before it
            becomes the feed's sender (rule 3).
        enabled: False keeps every link pushing: no mode is ever sent.
    """

    def __init__(
        self,
        head_of: Callable[[bytes], int],
        is_open: Callable[[L], bool],
        has_ebt: Callable[[L], bool],
        set_mode: Callable[[L, bytes, bool], bool],
        *,
        switch_after: float = 1.0,
        enabled: bool = True,
    ) -> None:
        self.head_of = head_of
        self.is_open = is_open
        self.has_ebt = has_ebt
        self.set_mode = set_mode
        self.switch_after = switch_after
        self.enabled = enabled
        #: feed -> the link it is taken from live
        self._active: dict[bytes, L] = {}
        #: feed -> the link that last gave us a new entry of it first
        self._first: dict[bytes, L] = {}
        #: feed -> links we put on standby for it (insertion order)
        self._standby: dict[bytes, dict[L, None]] = {}
        #: (feed, standby link) -> (its stated head, since when it is ahead of ours)
        self._ahead: dict[tuple[bytes, L], tuple[int, float]] = {}
        self._stats: Counter[str] = Counter()

    def usable(self, link: L) -> bool:
        """Whether modes may be sent over ``link``: enabled, open, both sides ``ebt``."""
        return self.enabled and self.has_ebt(link) and self.is_open(link)

    def active(self, author: bytes) -> L | None:
        """The link ``author``'s feed is taken from live, if one was chosen."""
        return self._active.get(author)

    def standby(self, author: bytes) -> list[L]:
        """The links put on standby for ``author``'s feed, oldest first."""
        return list(self._standby.get(author, ()))

    def waiting(self) -> bool:
        """Whether a standby peer is ahead of us: :meth:`tick` has work soon."""
        return bool(self._ahead)

    def delivered(self, link: L, author: bytes, *, new: bool, live: bool) -> None:
        """``link`` handed us entries of ``author``'s feed (rules 1 and 2).

        Args:
            new: whether any of them was stored (not held before).
            live: whether they came as a push (catch-up batches overlap by design).
        """
        if new:
            self._first[author] = link
        if not self.usable(link):
            return
        active = self._active.get(author)
        if active is None or not self.is_open(active):
            self._active[author] = link
            return
        if new or not live:
            return
        # A live push of what another link gave us first: this one stands by.
        if active != link:
            self._set(link, author, active=False)
            return
        # The sender was slower than another link: that one sends from now on.
        first = self._first.get(author)
        if first is None or first == link or not self.is_open(first):
            return
        if self._set(link, author, active=False):
            if self.usable(first):
                self._active[author] = first
            else:
                del self._active[author]  # a link without ebt pushes anyway

    def ahead(self, link: L, author: bytes, seq: int, now: float) -> None:
        """A ``have`` over ``link`` says its peer holds ``author`` up to ``seq``, past us."""
        if not self.usable(link) or link not in self._standby.get(author, {}):
            return
        key = (author, link)
        known = self._ahead.get(key)
        self._ahead[key] = (seq, now if known is None else known[1])

    def tick(self, now: float) -> None:
        """Switch every feed whose standby peer stayed ahead for ``switch_after`` (rule 3)."""
        for key, (seq, since) in list(self._ahead.items()):
            author, link = key
            if key not in self._ahead:
                continue  # gone with an earlier switch of this feed
            if not self.is_open(link) or self.head_of(author) >= seq:
                del self._ahead[key]
                continue
            if now - since < self.switch_after:
                continue
            old = self._active.get(author)
            self._promote(link, author)
            if old is not None and old != link and self.usable(old):
                self._set(old, author, active=False)
            self._stats["senders_switched"] += 1

    def _set(self, link: L, author: bytes, *, active: bool) -> bool:
        if not self.set_mode(link, author, active):
            return False
        if active:
            self._standby.get(author, {}).pop(link, None)
            self._stats["mode_active_sent"] += 1
        else:
            self._standby.setdefault(author, {})[link] = None
            self._stats["mode_standby_sent"] += 1
        return True

    def _promote(self, link: L, author: bytes) -> None:
        self._set(link, author, active=True)
        self._standby.get(author, {}).pop(link, None)
        if not self._standby.get(author, True):
            del self._standby[author]
        self._active[author] = link
        for key in [k for k in self._ahead if k[0] == author]:
            del self._ahead[key]

    def link_gone(self, link: L) -> None:
        """``link`` ended: a standby link takes over each feed it sent us (rule 4)."""
        for key in [k for k in self._ahead if k[1] == link]:
            del self._ahead[key]
        for author in [a for a, lk in self._first.items() if lk == link]:
            del self._first[author]
        for author in [a for a, links in self._standby.items() if link in links]:
            links = self._standby[author]
            del links[link]
            if not links:
                del self._standby[author]
        for author in [a for a, lk in self._active.items() if lk == link]:
            del self._active[author]
            for candidate in list(self._standby.get(author, ())):
                if self.usable(candidate):
                    self._promote(candidate, author)
                    self._stats["senders_replaced"] += 1
                    break

    def statistics(self) -> dict[str, int]:
        """Modes sent, switches and replacements; feeds with a sender, links on standby."""
        return {
            "mode_standby_sent": self._stats["mode_standby_sent"],
            "mode_active_sent": self._stats["mode_active_sent"],
            "senders_switched": self._stats["senders_switched"],
            "senders_replaced": self._stats["senders_replaced"],
            "feeds_with_sender": len(self._active),
            "standby_links": sum(len(v) for v in self._standby.values()),
        }
