"""Which link sends us each feed live: EBT-style sender selection (spec/sync.md §13).

The decisions are :class:`~p2psocial.protocol.senders.SenderChoice`'s (pure,
and shared with the simulator). :class:`Senders` binds it to the node: its
links are :class:`Link` objects, a mode goes out through the link's outbox,
the time is trio's clock, and :meth:`Senders.run` checks for lagging senders
on a timer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from ...protocol.senders import SenderChoice
from .link import Link

__all__ = ["Senders"]


def _send_mode(link: Link, author: bytes, active: bool) -> bool:
    actions = link.session.set_mode(author, active)
    if not actions:
        return False
    link.perform_local(actions)
    return True


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
        self.choice: SenderChoice[Link] = SenderChoice(
            head_of,
            Link.is_open,
            lambda link: link.session.ebt,
            _send_mode,
            switch_after=switch_after,
            enabled=enabled,
        )

    @property
    def head_of(self) -> Callable[[bytes], int]:
        return self.choice.head_of

    @property
    def switch_after(self) -> float:
        return self.choice.switch_after

    @property
    def enabled(self) -> bool:
        return self.choice.enabled

    def delivered(self, link: Link, author: bytes, *, new: bool, live: bool) -> None:
        """``link`` handed us entries of ``author``'s feed: ``new`` if any was
        stored, ``live`` for a push (catch-up batches overlap by design)."""
        self.choice.delivered(link, author, new=new, live=live)

    def ahead(self, link: Link, author: bytes, seq: int) -> None:
        """A ``have`` from ``link`` says its peer holds ``author`` up to ``seq``, past us."""
        self.choice.ahead(link, author, seq, trio.current_time())

    def tick(self) -> None:
        """Switch every feed whose standby peer stayed ahead for ``switch_after``."""
        self.choice.tick(trio.current_time())

    def link_gone(self, link: Link) -> None:
        """``link`` ended: a standby link takes over each feed it sent us."""
        self.choice.link_gone(link)

    async def run(self, *, interval: float = 0.25) -> None:
        """Check for lagging senders every ``interval`` seconds, until cancelled."""
        while True:
            await trio.sleep(interval)
            if self.choice.waiting():
                self.tick()

    def statistics(self) -> dict[str, Any]:
        """Modes sent, switches and replacements; feeds with a sender, links on standby."""
        return dict(self.choice.statistics())
