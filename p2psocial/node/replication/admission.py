"""Who may join the link pool: :class:`Admission` decides, the pool acts.

The pool's bounds (:class:`PoolLimits`) in one place: connections still in
the hello, per address and per network; links in all, and inbound links (a
quarter of the pool is kept for our own dials); and which idle inbound link
makes way when the pool is full. The decisions read the pool's links and
counters and never touch a socket; an eviction drops the victim link, and
the pool's tasks do the rest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container
from dataclasses import dataclass

import trio

from ..scores import PeerScores
from .link import Link, address_group
from .transport import PeerIdentity

__all__ = ["Admission", "PoolLimits"]


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """The link pool's bounds. The defaults suit a home node with 32 links."""

    #: Links at most, inbound and outbound together.
    max_peers: int = 32
    #: Seconds for the hello (and for a dial to connect).
    handshake_timeout: float = 10.0
    #: A link on which nothing arrives for this long is dropped.
    idle_timeout: float = 90.0
    #: An inbound link younger than this is never evicted for a newcomer.
    eviction_grace: float = 5.0
    #: Inbound links from one IP address, and from one /24 (IPv4) or /48 (IPv6).
    max_per_address: int = 4
    max_per_network: int = 8
    #: Connections still in the hello: in all, per address, per network.
    max_handshaking: int = 256
    max_handshaking_per_address: int = 8
    max_handshaking_per_network: int = 16


class Admission:
    """The pool's admission rules over its live state.

    Args:
        node_id, own_key: this node (a link to itself is refused).
        bounds: the limits.
        scores: graylisted peers are refused.
        links: the pool's links by node id (read; an eviction drops one).
        handshaking: the pool's connections in the hello, by address.
        heads: the feeds we want (an inbound link sharing one is kept).
        stats: the pool's counters (``links_evicted``).
    """

    def __init__(
        self,
        node_id: bytes,
        own_key: bytes,
        bounds: PoolLimits,
        scores: PeerScores,
        links: dict[bytes, Link],
        handshaking: Counter[str],
        heads: Container[bytes],
        stats: Counter[str],
    ) -> None:
        self.node_id = node_id
        self.own_key = own_key
        self.bounds = bounds
        self.scores = scores
        self.links = links
        self.handshaking = handshaking
        self.heads = heads
        self._stats = stats

    def max_inbound(self) -> int:
        """Inbound links at most: a quarter of the pool stays for our own dials."""
        return max(1, self.bounds.max_peers - max(1, self.bounds.max_peers // 4))

    def has_room(self) -> bool:
        """Whether a dial of ours could get a link (with room, or by evicting)."""
        live = sum(1 for lk in self.links.values() if lk.reason is None)
        return live < self.bounds.max_peers or self._outbound_victim() is not None

    def too_many_handshakes(self, host: str) -> bool:
        """Connections that have not proven a key yet cost memory and a timer
        each: bound them, in all and per address, before reading a byte."""
        group = address_group(host)
        return (
            sum(self.handshaking.values()) >= self.bounds.max_handshaking
            or self.handshaking[host] >= self.bounds.max_handshaking_per_address
            or (
                group is not None
                and sum(n for h, n in self.handshaking.items() if address_group(h) == group)
                >= self.bounds.max_handshaking_per_network
            )
        )

    def admit(
        self, peer: PeerIdentity, direction: str, host: str, path: str = "direct"
    ) -> str | None:
        """Why a link just authenticated may not join the pool, or None.

        May evict a link to make room: when the pool is full, the least
        useful inbound link past its grace period that shares no wanted feed
        makes way, so idle links cannot keep an honest newcomer out.
        """
        if peer.key == self.own_key:
            return "self"
        scored_host = host if path != "relayed" else ""
        if self.scores.graylisted(peer.node_id, scored_host, trio.current_time()):
            return "graylisted"
        old = self.links.get(peer.node_id)
        if old is not None and old.path == "relayed" and path != "relayed":
            return None  # the direct link replaces it (_register)
        if old is not None:
            # Both sides keep the link dialled by the lower node id, so a
            # simultaneous dial leaves exactly one link, not zero.
            dialer = self.node_id if direction == "outbound" else peer.node_id
            if dialer >= old.dialer_id:
                return "duplicate_link"
            return None
        # Links being dropped (evicted, say) leave the dict a moment later.
        live = [lk for lk in self.links.values() if lk.reason is None]
        if direction == "inbound" and path == "direct":
            # A relayed link comes from the relay's address: the relay bounds
            # those (its max_links), and our pool size bounds the rest.
            group = address_group(host)
            if group is not None:
                if sum(1 for lk in live if lk.host == host) >= self.bounds.max_per_address:
                    return "address_limit"
                if (
                    sum(1 for lk in live if address_group(lk.host) == group)
                    >= self.bounds.max_per_network
                ):
                    return "network_limit"
        inbound = [lk for lk in live if lk.direction == "inbound"]
        if direction == "outbound":
            # A link we chose gets a place: inbound links, which anyone can
            # open and fill with claimed interest, must not eclipse us.
            if len(live) < self.bounds.max_peers:
                return None
            victim = self._outbound_victim()
            if victim is None:
                return "pool_full"
        elif len(live) >= self.bounds.max_peers or len(inbound) >= self.max_inbound():
            victim = self._eviction_candidate()
            if victim is None:
                return "pool_full"
        else:
            return None
        self._stats["links_evicted"] += 1
        victim.drop("evicted")
        return None

    def _inbound_past_grace(self) -> list[Link]:
        now = trio.current_time()
        return [
            lk
            for lk in self.links.values()
            if lk.direction == "inbound"
            and lk.reason is None
            and now - lk.started >= self.bounds.eviction_grace
        ]

    @staticmethod
    def _least_useful(links: list[Link]) -> Link | None:
        """Fewest entries received, then longest silent."""
        return min(links, key=lambda lk: (lk.items_in, lk.last_in), default=None)

    def _outbound_victim(self) -> Link | None:
        """The inbound link to drop for a dial of ours when the pool is full:
        the least useful past its grace period, whatever it claims to want."""
        return self._least_useful(self._inbound_past_grace())

    def _eviction_candidate(self) -> Link | None:
        """The inbound link an inbound newcomer may replace: past its grace
        period, sharing no feed we want, and the least useful of those."""
        return self._least_useful(
            [lk for lk in self._inbound_past_grace() if lk.shares(self.heads) == 0]
        )
