"""Which link sends us each feed live: EBT-style sender selection (spec/sync.md §13).

The rules are the pure :class:`~p2psocial.protocol.senders.SenderChoice`;
:class:`Senders` runs them over the pool's links, on trio's clock, and ticks
them while switches, promises or orphaned feeds are pending.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from ...protocol.senders import SenderChoice
from .link import Link

__all__ = ["Senders"]


class _Port:
    """The links as :class:`SenderChoice` sees them."""

    def __init__(self, head_of: Callable[[bytes], int], enabled: bool) -> None:
        self.head = head_of
        self.enabled = enabled

    def usable(self, link: Link) -> bool:
        return self.enabled and link.session.ebt and link.is_open()

    def is_open(self, link: Link) -> bool:
        return link.is_open()

    def standing_by(self, link: Link, author: bytes) -> bool:
        return link.session.standing_by(author)

    def set_mode(self, link: Link, author: bytes, active: bool) -> bool:
        if not link.is_open():
            return False
        actions = link.session.set_mode(author, active)
        link.perform_local(actions)
        return bool(actions)


class Senders:
    """The live sender of each feed, across the open links.

    Args:
        head_of: our contiguous head seq of a feed (0 if none held).
        switch_after: seconds a standby peer may stay ahead of us before it
            becomes the feed's sender (and a new sender has to deliver).
        enabled: False keeps every link pushing (no ``mode`` is ever sent).
    """

    def __init__(
        self, head_of: Callable[[bytes], int], *, switch_after: float = 1.0, enabled: bool = True
    ) -> None:
        self.enabled = enabled
        self.choice: SenderChoice[Link] = SenderChoice(
            _Port(head_of, enabled), switch_after=switch_after
        )

    def delivered(self, link: Link, author: bytes, *, new: bool, live: bool) -> None:
        """``link`` handed us entries of ``author``'s feed: ``new`` if any was
        stored, ``live`` for a push (catch-up batches overlap by design)."""
        if self.enabled:
            self.choice.delivered(link, author, new=new, live=live, now=trio.current_time())

    def ahead(self, link: Link, author: bytes, seq: int) -> None:
        """A ``have`` from ``link`` says its peer holds ``author`` up to ``seq``, past us."""
        if self.enabled:
            self.choice.ahead(link, author, seq, trio.current_time())

    def tick(self) -> None:
        """Switches, broken promises and orphaned feeds (spec/sync.md §13 rules 3-4)."""
        self.choice.tick(trio.current_time())

    def link_gone(self, link: Link) -> None:
        """``link`` ended: a standby link takes over each feed it sent us."""
        if self.enabled:
            self.choice.link_gone(link, trio.current_time())

    async def run(self, *, interval: float = 0.25) -> None:
        """Tick every ``interval`` seconds while there is work, until cancelled."""
        while True:
            await trio.sleep(interval)
            if self.choice.busy():
                self.tick()

    def statistics(self) -> dict[str, Any]:
        """Modes sent, switches, replacements and broken promises; feeds with a
        sender, links on standby, orphaned feeds."""
        return dict(self.choice.statistics())
