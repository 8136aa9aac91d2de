"""Which link sends each feed live: the rules of spec/sync.md §13 (sans-IO).

With every link pushing every shared feed, a node linked to several holders
of a feed gets each new entry once per link. Over links where both sides
listed capability ``ebt``, :class:`SenderChoice` keeps one *active* link per
feed and puts links whose live push was a duplicate on *standby* (their peer
then sends ``have`` notes instead of entries):

1. the first link to deliver an entry of a feed becomes its sender;
2. a link whose live push brings an entry already held stands by; if it was
   the sender, the link that delivered the entry first becomes the sender
   (and is told to push, if it was standing by);
3. a standby peer whose ``have`` shows it ahead of us becomes the sender if
   our head has not reached that seq ``switch_after`` seconds later. It has
   *promised* that seq: if our head does not reach it within another
   ``switch_after``, the promise is broken, the link stands by again, and its
   ``have`` notes are not believed for that feed for ``distrust_for``
   seconds (so a liar cannot keep a feed from its honest holders);
4. a feed whose sender's link ends, or whose promotion could not be sent yet
   (the peer's limits pace our ``mode`` messages), is an *orphan*: each tick
   promotes one of its standby links until one takes it.

The machine does no I/O and reads no clock: links are opaque handles, and
what it needs to know of them, or to do to them, goes through a
:class:`SenderPort`. State is bounded by the wanted feeds times the open
links, and cleaned when a link ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

__all__ = ["SenderChoice", "SenderPort"]

L = TypeVar("L", bound=Hashable)
L_contra = TypeVar("L_contra", bound=Hashable, contravariant=True)


class SenderPort(Protocol[L_contra]):
    """What :class:`SenderChoice` asks of the links and the store."""

    def usable(self, link: L_contra) -> bool:
        """Whether ``link`` is open and both ends listed ``ebt``."""
        ...

    def is_open(self, link: L_contra) -> bool:
        """Whether ``link`` is up (with or without ``ebt``)."""
        ...

    def standing_by(self, link: L_contra, author: bytes) -> bool:
        """Whether we asked ``link``'s peer not to push ``author``'s feed."""
        ...

    def set_mode(self, link: L_contra, author: bytes, active: bool) -> bool:
        """Send ``mode``; False if nothing was sent (no change, a feed not shared
        on that link now, or our own pacing of modes)."""
        ...

    def head(self, author: bytes) -> int:
        """Our contiguous head seq of ``author``'s feed (0: none held)."""
        ...


class SenderChoice(Generic[L]):
    """The live sender of each feed, across the links (see the module rules).

    Args:
        port: the links and our heads.
        switch_after: seconds a standby peer may stay ahead of us before it
            becomes the sender, and a new sender gets to keep its promise.
        distrust_for: seconds a link that broke a promise for a feed is not
            promoted for it on its word.
    """

    def __init__(
        self, port: SenderPort[L], *, switch_after: float = 1.0, distrust_for: float = 60.0
    ) -> None:
        self.port = port
        self.switch_after = switch_after
        self.distrust_for = distrust_for
        #: feed -> the link it is taken from live
        self._active: dict[bytes, L] = {}
        #: feed -> the link that last gave us a new entry of it first
        self._first: dict[bytes, L] = {}
        #: feed -> links we put on standby for it (insertion order)
        self._standby: dict[bytes, dict[L, None]] = {}
        #: (feed, standby link) -> (the seq its have claimed first, since when)
        self._ahead: dict[tuple[bytes, L], tuple[int, float]] = {}
        #: feed -> (the link promoted on its word, the seq it claimed, by when)
        self._promised: dict[bytes, tuple[L, int, float]] = {}
        #: (feed, link) -> until when that link's haves for that feed are not believed
        self._distrust: dict[tuple[bytes, L], float] = {}
        #: feeds with no sender that have standby links to promote
        self._orphans: set[bytes] = set()
        self._stats: Counter[str] = Counter()

    # -- events ------------------------------------------------------------------

    def delivered(self, link: L, author: bytes, *, new: bool, live: bool, now: float) -> None:
        """``link`` handed us entries of ``author``'s feed: ``new`` if any was
        stored, ``live`` for a push (catch-up batches overlap by design)."""
        port = self.port
        if new:
            self._first[author] = link
        if not port.usable(link):
            return
        active = self._active.get(author)
        if active is None or not port.is_open(active):
            if not port.standing_by(link, author):
                self._active[author] = link
                self._orphans.discard(author)
            return
        if new or not live or (active is not link and port.standing_by(link, author)):
            return
        if active is not link:
            # Rule 2: a live push of what another link gave us first.
            self._demote(link, author)
            return
        # The sender was slower than another link: that one sends from now on.
        first = self._first.get(author)
        if first is None or first is link or not port.is_open(first):
            return
        if port.usable(first):
            if port.standing_by(first, author) and not self._promote(first, author):
                return  # it could not be told to push: keep the one that does
            self._demote(link, author)
            self._active[author] = first
        elif self._demote(link, author):
            del self._active[author]  # a link without ebt pushes anyway

    def ahead(self, link: L, author: bytes, seq: int, now: float) -> None:
        """A ``have`` from ``link`` says its peer holds ``author`` up to ``seq``, past us."""
        key = (author, link)
        if not self.port.usable(link) or link not in self._standby.get(author, {}):
            return
        until = self._distrust.get(key)
        if until is not None:
            if until > now:
                self._stats["haves_distrusted"] += 1
                return
            del self._distrust[key]
        # Rule 3 times the first claim: later notes do not move it along.
        self._ahead.setdefault(key, (seq, now))

    def link_gone(self, link: L, now: float) -> None:
        """``link`` ended: each feed it sent us goes to one of its standby links."""
        for key in [k for k in self._ahead if k[1] == link]:
            del self._ahead[key]
        for key in [k for k in self._distrust if k[1] == link]:
            del self._distrust[key]
        for author in [a for a, p in self._promised.items() if p[0] == link]:
            del self._promised[author]
        for author in [a for a, lk in self._first.items() if lk == link]:
            del self._first[author]
        for author in [a for a, links in self._standby.items() if link in links]:
            links = self._standby[author]
            del links[link]
            if not links:
                del self._standby[author]
        for author in [a for a, lk in self._active.items() if lk == link]:
            del self._active[author]
            if author in self._standby:
                self._orphans.add(author)
        self._adopt_orphans(now, replaced=True)

    def tick(self, now: float) -> None:
        """Rules 3 and 4: switches, broken promises, orphans."""
        port = self.port
        for author, (link, seq, deadline) in list(self._promised.items()):
            if port.head(author) >= seq or not port.is_open(link):
                del self._promised[author]
            elif now >= deadline:
                del self._promised[author]
                self._stats["promises_broken"] += 1
                self._distrust[(author, link)] = now + self.distrust_for
                if self._active.get(author) == link:
                    del self._active[author]
                    self._orphans.add(author)
                self._demote(link, author)
        for key, (seq, since) in list(self._ahead.items()):
            if key not in self._ahead:
                continue
            author, link = key
            if not port.usable(link) or port.head(author) >= seq:
                del self._ahead[key]
                continue
            if now - since < self.switch_after or author in self._promised:
                continue
            old = self._active.get(author)
            if not self._promote(link, author):
                continue  # paced or no longer shared: tried again next tick
            del self._ahead[key]
            self._promised[author] = (link, seq, now + self.switch_after)
            self._orphans.discard(author)
            self._stats["senders_switched"] += 1
            if old is not None and old != link and port.usable(old):
                self._demote(old, author)
        self._adopt_orphans(now, replaced=False)
        if len(self._distrust) > 4096:
            for key in [k for k, until in self._distrust.items() if until <= now]:
                del self._distrust[key]

    def active(self, author: bytes) -> L | None:
        """The link ``author``'s feed is taken from live (None: no sender chosen)."""
        return self._active.get(author)

    def standby(self, author: bytes) -> list[L]:
        """The links put on standby for ``author``'s feed, oldest first."""
        return list(self._standby.get(author, ()))

    def busy(self) -> bool:
        """Whether :meth:`tick` has work (switches, promises or orphans pending)."""
        return bool(self._ahead or self._promised or self._orphans)

    # -- internals ---------------------------------------------------------------

    def _adopt_orphans(self, now: float, *, replaced: bool) -> None:
        port = self.port
        for author in list(self._orphans):
            active = self._active.get(author)
            if active is not None and port.is_open(active):
                self._orphans.discard(author)
                continue
            candidates = [
                lk
                for lk in self._standby.get(author, ())
                if port.usable(lk) and self._distrust.get((author, lk), 0.0) <= now
            ]
            if not candidates:
                self._orphans.discard(author)  # the next delivery picks a sender
                continue
            for lk in candidates:
                if self._promote(lk, author):
                    self._orphans.discard(author)
                    self._stats["senders_replaced" if replaced else "senders_adopted"] += 1
                    break

    def _demote(self, link: L, author: bytes) -> bool:
        if not self.port.set_mode(link, author, False):
            return False
        self._standby.setdefault(author, {})[link] = None
        self._stats["mode_standby_sent"] += 1
        return True

    def _promote(self, link: L, author: bytes) -> bool:
        """Make ``link`` the sender; False if it could not be told to push."""
        if self.port.standing_by(link, author):
            if not self.port.set_mode(link, author, True):
                return False
            self._stats["mode_active_sent"] += 1
        links = self._standby.get(author)
        if links is not None:
            links.pop(link, None)
            if not links:
                del self._standby[author]
        self._active[author] = link
        return True

    def statistics(self) -> dict[str, int]:
        """Modes sent, switches, replacements, broken promises; feeds with a
        sender, links on standby, orphans."""
        return {
            "mode_standby_sent": self._stats["mode_standby_sent"],
            "mode_active_sent": self._stats["mode_active_sent"],
            "senders_switched": self._stats["senders_switched"],
            "senders_replaced": self._stats["senders_replaced"],
            "senders_adopted": self._stats["senders_adopted"],
            "promises_broken": self._stats["promises_broken"],
            "haves_distrusted": self._stats["haves_distrusted"],
            "feeds_with_sender": len(self._active),
            "standby_links": sum(len(v) for v in self._standby.values()),
            "orphans": len(self._orphans),
        }
