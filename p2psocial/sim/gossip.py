"""A seeded, deterministic simulation of post propagation over gossip links.

Every link end is the real :class:`~p2psocial.protocol.sync.SyncSession`
(one per side), and every node's choice of live senders the real
:class:`~p2psocial.protocol.senders.SenderChoice` (spec/sync.md §13). What is
simulated is everything around them, in virtual time:

- **the network**: each link gets a one-way delay, half a round trip drawn
  from a log-normal distribution (median ``rtt_median``, as the DHT
  simulation's :class:`~p2psocial.sim.dht.NetModel`); both directions are
  FIFO. Messages travel as the decoded :class:`~p2psocial.protocol.wire.Message`
  objects: the msgpack encoding, the framing and the encrypted transport are
  skipped (they change no decision of the machines, only their cost). No loss:
  the links are reliable streams.
- **the store**: a feed is its contiguous head seq; the entry at (author,
  seq) is a fixed byte string, and "verification" is comparing against it.
  A node that *sends invalid entries* serves altered bytes, which the
  receiver rejects as a real store would a bad signature: it drops the link
  (``invalid_entry``), graylists the peer for the rest of the run (never
  dials it nor takes a link from it again: ``node/scores.py`` graylists such
  a peer for 60 s at first, doubling after, longer than a run's posts), and
  dials a replacement ``redial_after`` seconds later.
- **the topology**: each node follows ``follows`` authors, most of them in
  its own community of ``community`` nodes (a social graph is clustered;
  ``local`` is the share), the rest anywhere. Like the node's swarm
  discovery it dials holders of its wanted feeds (the author or another
  follower): a holder for every wanted feed that has none linked, always the
  feed with the fewest linked holders first, and within its first ``dials``
  dials up to ``per_feed`` holders of each; then ``random_dials`` to anyone,
  all within a pool of ``max_links``. A share ``no_inbound`` of nodes cannot
  accept links (behind NAT). As the real node does (spec/sync.md §11-12),
  each of them holds a reservation at a relay (an online node that accepts
  links, at most ``relay_reservations`` each), so a dial to it goes through
  that relay while the relay has room for another spliced link
  (``relay_links``); the link then becomes direct by connection reversal
  when the dialler accepts links, or by a hole punch, which succeeds with
  probability ``punch_success``, and otherwise stays relayed, its delay the
  sum of the two legs through the relay. With ``relays`` off (the baseline)
  nobody can dial such a node: it only dials out. A relayed link's byte and
  time limits (§11.1: 16 MiB, 600 s) are never reached in a run, so they
  are not modelled. A share ``offline`` takes no part.
- **swarm lookups**: as the real node does, every node looks up each wanted
  feed's swarm every ``swarm_interval`` (from a random phase) and dials
  holders while it has fewer than 2 linked; with 2 or more, for a followed
  feed, it reads the feed's head record and, when that is ahead of its own
  head and of every linked peer's clock, dials 2 more (an island of the
  swarm, spec/sync.md §6; a clock above ours defers that for one lookup
  only, and rounds that bring nothing back off, 30, 60, 120 s ...). The record is the author's head at that moment
  (a put takes milliseconds, the interval 30 s). ``islands`` off is the
  baseline without that check.
- **the posts**: every feed starts with one entry that its followers hold
  (the steady state: propagation, not first sync, is measured); then sampled
  authors post ``posts_per_author`` entries each, ``post_interval`` apart.

Two shortcuts keep 10,000 nodes within the bench's budget, and neither
changes a decision: a session is given only the feeds both ends want (its
clock names those alone; a full clock would add records for feeds the
receiver does not want, which never lead to an action), and nobody changes
interest during a run.

Nothing reads a clock, a socket or global randomness: one
``random.Random(seed)`` drives everything, and nothing iterates a set of
byte strings (whose order follows the per-process hash seed), so the same
seed gives the same figures in any process.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..protocol.errors import ProtocolError
from ..protocol.senders import SenderChoice
from ..protocol.sync import (
    Action,
    Ahead,
    Close,
    Duplicate,
    Ingest,
    Send,
    Serve,
    SyncLimits,
    SyncSession,
)
from ..protocol.wire import Entries, Item, Message, Push

__all__ = ["GossipModel", "GossipNode", "GossipSim", "LinkEnd"]

#: entries per catch-up batch (spec/sync.md §4.5)
_BATCH = 500

# event kinds
_DELIVER, _POLL, _TICK, _POST, _REDIAL, _SWARM = range(6)


@dataclass(slots=True)
class GossipModel:
    """The simulated population and network (times in seconds)."""

    follows: int = 20
    community: int = 100
    local: float = 0.8
    dials: int = 12
    per_feed: int = 2
    random_dials: int = 1
    max_links: int = 32
    no_inbound: float = 0.3
    #: nodes without inbound links reachable through relays (spec/sync.md §11)
    relays: bool = True
    #: a relay's reservations and spliced links at once (the §11.1 defaults)
    relay_reservations: int = 16
    relay_links: int = 32
    #: the chance a hole punch between two nodes without inbound links
    #: succeeds (§12; libp2p's measurement campaign of its DCUtR found about
    #: 70 %); a failed one leaves the link relayed
    punch_success: float = 0.7
    offline: float = 0.1
    #: share of nodes that serve invalid entries
    invalid: float = 0.0
    rtt_median: float = 0.08
    rtt_sigma: float = 0.5
    #: sender selection (capability ebt) on every link; off: every link pushes
    ebt: bool = True
    switch_after: float = 1.0
    #: how often a node checks for lagging senders (the node's Senders.run)
    tick: float = 0.25
    redial_after: float = 1.0
    #: seconds between two swarm lookups of one feed (the node's swarm_interval)
    swarm_interval: float = 30.0
    #: the island check at each swarm lookup (spec/sync.md §6); off: the baseline
    islands: bool = True
    authors: int = 40
    posts_per_author: int = 5
    post_interval: float = 2.0
    #: the first post, after the links' first clocks have crossed
    start: float = 5.0
    #: how long the run may go on after the last post
    settle: float = 60.0


def _key(index: int) -> bytes:
    return index.to_bytes(4, "big") * 8


def _entry(author: bytes, seq: int) -> bytes:
    return author + seq.to_bytes(8, "big")


def _eid(author: bytes, seq: int) -> bytes:
    return hashlib.sha256(_entry(author, seq)).digest()


@dataclass(eq=False, slots=True)
class LinkEnd:
    """One node's end of a link: its session, and the way to the other end."""

    node: GossipNode
    session: SyncSession
    #: one-way delay to the other end
    delay: float
    #: the feeds both ends want: the session's interest
    feeds: list[bytes]
    peer: LinkEnd | None = None
    open: bool = True
    #: the time of the poll scheduled for the session, if any
    poll_at: float | None = None
    #: the relay this link runs through, on the dialler's end of a relayed link
    relay: GossipNode | None = None


@dataclass(eq=False, slots=True)
class GossipNode:
    """One simulated node: what it wants and holds, and its links."""

    index: int
    key: bytes
    #: own feed first, then the followed ones (a list: a fixed order)
    wants: list[bytes]
    inbound: bool = True
    online: bool = True
    bad: bool = False
    head: dict[bytes, int] = field(default_factory=dict)
    #: open link ends by feed shared over them
    by_feed: dict[bytes, list[LinkEnd]] = field(default_factory=dict)
    #: peers (by index) linked to, and those graylisted
    linked: set[int] = field(default_factory=set)
    gray: set[int] = field(default_factory=set)
    links: int = 0
    #: the relay holding this node's reservation (nodes without inbound links)
    relay: GossipNode | None = None
    #: as a relay: reservations held and links spliced now
    reservations: int = 0
    spliced: int = 0
    #: island rounds (spec/sync.md §6): feed -> (our head then, rounds since it
    #: moved, when the next may be)
    islands: dict[bytes, tuple[int, int, float]] = field(default_factory=dict)
    choice: SenderChoice[LinkEnd] | None = None
    tick_at: float | None = None


class _Port:
    """One node's links and heads, as its :class:`SenderChoice` sees them."""

    def __init__(self, sim: GossipSim, node: GossipNode) -> None:
        self.sim, self.node = sim, node

    def usable(self, end: LinkEnd) -> bool:
        return end.open and end.session.ebt

    def is_open(self, end: LinkEnd) -> bool:
        return end.open

    def standing_by(self, end: LinkEnd, author: bytes) -> bool:
        return end.session.standing_by(author)

    def set_mode(self, end: LinkEnd, author: bytes, active: bool) -> bool:
        return self.sim._set_mode(end, author, active)

    def head(self, author: bytes) -> int:
        return self.node.head.get(author, 0)


class GossipSim:
    """A population of simulated nodes, linked, running posts to completion.

    Args:
        n: nodes, adversaries included.
        seed: the one source of randomness.
        model: the population and the network.
    """

    def __init__(self, n: int, seed: int, model: GossipModel | None = None) -> None:
        self.model = model or GossipModel()
        self.rng = random.Random(seed)
        self.now = 0.0
        self.limits = SyncLimits()
        self._heap: list[tuple[float, int, int, Any, Any]] = []
        self._count = 0
        #: when the run stops (set by run; periodic events end there)
        self._deadline = math.inf
        self.stats: Counter[str] = Counter()
        #: every link end made, closed ones included (their counters count)
        self.ends: list[LinkEnd] = []
        #: (author, seq) -> when it was posted
        self.posted: dict[tuple[bytes, int], float] = {}
        #: (author, seq) -> delays to each honest follower that stored it
        self.arrived: dict[tuple[bytes, int], list[float]] = {}
        #: (author, seq) -> entries of it honest followers were sent, duplicates included
        self.delivered: Counter[tuple[bytes, int]] = Counter()
        self.nodes = [GossipNode(i, _key(i), []) for i in range(n)]
        self.by_key = {x.key: x for x in self.nodes}
        self._populate()
        self._link_all()

    # -- population ---------------------------------------------------------------

    def _populate(self) -> None:
        m, r, n = self.model, self.rng, len(self.nodes)
        for x in self.nodes:
            x.inbound = r.random() >= m.no_inbound
            x.online = r.random() >= m.offline
            x.bad = r.random() < m.invalid
            base = (x.index // m.community) * m.community
            size = min(m.community, n - base)
            chosen: dict[int, None] = {}
            while len(chosen) < min(m.follows, n - 1):
                if r.random() < m.local and size > 1:
                    i = base + r.randrange(size)
                else:
                    i = r.randrange(n)
                if i != x.index:
                    chosen[i] = None
            x.wants = [x.key] + [_key(i) for i in chosen]
            x.head = dict.fromkeys(x.wants, 1)
        if m.relays:
            self._reserve()
        #: feed -> the nodes wanting it (its swarm), in index order
        self.swarm: dict[bytes, list[GossipNode]] = {}
        for x in self.nodes:
            for f in x.wants:
                self.swarm.setdefault(f, []).append(x)
        for x in self.nodes:
            if self.model.ebt and x.online:
                x.choice = self._choice(x)

    def _reserve(self) -> None:
        """Give each online node without inbound links a relay with room for it."""
        m, r = self.model, self.rng
        relays = [x for x in self.nodes if x.online and x.inbound]
        for x in self.nodes:
            if not x.online or x.inbound or not relays:
                continue
            for _ in range(16):  # bounded: a full relay is passed over, as a real node does
                y = relays[r.randrange(len(relays))]
                if y.reservations < m.relay_reservations:
                    y.reservations += 1
                    x.relay = y
                    break
            else:
                self.stats["relay_reservations_failed"] += 1

    def _choice(self, x: GossipNode) -> SenderChoice[LinkEnd]:
        return SenderChoice(_Port(self, x), switch_after=self.model.switch_after)

    def _set_mode(self, end: LinkEnd, author: bytes, active: bool) -> bool:
        actions = end.session.set_mode(author, active)
        self._perform(end, actions)
        return bool(actions)

    # -- links --------------------------------------------------------------------

    def _cover(self, x: GossipNode, feed: bytes) -> int:
        return len(x.by_feed.get(feed, ()))

    def _can_take(self, x: GossipNode, y: GossipNode) -> bool:
        """Whether ``x`` may dial ``y`` now."""
        return (
            y is not x
            and y.online
            and (y.inbound or (y.relay is not None and y.relay.spliced < self.model.relay_links))
            and y.index not in x.linked
            and y.index not in x.gray
            and y.links < self.model.max_links
        )

    def _pick(self, x: GossipNode, want: int) -> GossipNode | None:
        """A holder of the wanted feed with the fewest linked holders, if below ``want``."""
        order = sorted(range(len(x.wants)), key=lambda i: (self._cover(x, x.wants[i]), i))
        for i in order:
            feed = x.wants[i]
            if self._cover(x, feed) >= want:
                return None
            holders = [y for y in self.swarm[feed] if self._can_take(x, y)]
            if holders:
                return holders[self.rng.randrange(len(holders))]
        return None

    def _dial(self, x: GossipNode, target: GossipNode) -> None:
        if x.index in target.gray:
            self.stats["dials_refused_graylisted"] += 1
            return
        if target.inbound:
            self._link(x, target)
            return
        # Through the target's relay (spec/sync.md §11.7), then direct if §12 can.
        relay = target.relay
        assert relay is not None
        if x.inbound:
            self.stats["links_reversed"] += 1
            self._link(x, target)
        elif self.rng.random() < self.model.punch_success:
            self.stats["links_punched"] += 1
            self._link(x, target)
        else:
            self.stats["links_relayed"] += 1
            relay.spliced += 1
            self._link(x, target, relay=relay)

    def _link_all(self) -> None:
        m, r = self.model, self.rng
        order = [x for x in self.nodes if x.online]
        r.shuffle(order)
        online_inbound = [x for x in order if x.inbound]
        for x in order:
            # Like swarm discovery: a holder for every wanted feed that has
            # none linked, and up to ``dials`` dials for ``per_feed`` each.
            made = 0
            while x.links < m.max_links:
                target = self._pick(x, m.per_feed if made < m.dials else 1)
                if target is None:
                    break
                self._dial(x, target)
                made += 1
            for _ in range(m.random_dials):
                y = online_inbound[r.randrange(len(online_inbound))]
                if x.links < m.max_links and self._can_take(x, y):
                    self._dial(x, y)

    def _half_rtt(self) -> float:
        m = self.model
        return m.rtt_median * math.exp(self.rng.gauss(0.0, m.rtt_sigma)) / 2

    def _link(self, a: GossipNode, b: GossipNode, *, relay: GossipNode | None = None) -> None:
        # A relayed link's delay: the two legs, dialler to relay and relay to target.
        delay = self._half_rtt() + (self._half_rtt() if relay is not None else 0.0)
        wanted = set(b.wants)
        shared = [f for f in a.wants if f in wanted]
        ea = self._end(a, shared, delay)
        eb = self._end(b, shared, delay)
        ea.peer, eb.peer = eb, ea
        ea.relay = relay
        self.stats["links"] += 1
        for end, other in ((ea, b), (eb, a)):
            end.node.linked.add(other.index)
            end.node.links += 1
            for f in shared:
                end.node.by_feed.setdefault(f, []).append(end)
        for end in (ea, eb):
            self._perform(end, end.session.start(self.now))

    def _end(self, x: GossipNode, shared: list[bytes], delay: float) -> LinkEnd:
        session = SyncSession(
            {f: (x.head[f], _eid(f, x.head[f])) for f in shared}, limits=self.limits
        )
        if self.model.ebt:
            session.enable_ebt()
        end = LinkEnd(x, session, delay, shared)
        self.ends.append(end)
        return end

    def _close(self, end: LinkEnd, reason: str, *, tell: bool) -> None:
        if not end.open:
            return
        end.open = False
        x, peer = end.node, end.peer
        x.links -= 1
        if end.relay is not None:
            end.relay.spliced -= 1
        if peer is not None:
            x.linked.discard(peer.node.index)
        for f in end.feeds:
            x.by_feed[f].remove(end)
        if tell:
            for act in end.session.close(reason):
                if isinstance(act, Send):
                    self._send(end, act.message)
        if x.choice is not None:
            x.choice.link_gone(end, self.now)
            if x.choice.busy() and x.tick_at is None:
                x.tick_at = self.now + self.model.tick
                self._at(x.tick_at, _TICK, x, None)
        if x.online:
            self._at(self.now + self.model.redial_after, _REDIAL, x, None)

    def _drop(self, end: LinkEnd, reason: str) -> None:
        self.stats[f"dropped_{reason}"] += 1
        self._close(end, reason, tell=True)

    # -- events -------------------------------------------------------------------

    def _at(self, t: float, kind: int, a: Any, b: Any) -> None:
        self._count += 1
        heapq.heappush(self._heap, (t, self._count, kind, a, b))

    def _send(self, end: LinkEnd, msg: Message) -> None:
        self.stats[f"sent_{type(msg).__name__.lower()}"] += 1
        self._at(self.now + end.delay, _DELIVER, end.peer, msg)

    def _perform(self, end: LinkEnd, actions: list[Action]) -> None:
        x = end.node
        for act in actions:
            if not end.open:
                return
            if isinstance(act, Send):
                self._send(end, act.message)
            elif isinstance(act, Serve):
                for msg in self._serve(x, act):
                    self._send(end, msg)
            elif isinstance(act, Ingest):
                self._ingest(end, act)
            elif isinstance(act, Duplicate):
                if x.choice is not None:
                    x.choice.delivered(end, act.author, new=False, live=True, now=self.now)
            elif isinstance(act, Ahead):
                if x.choice is not None:
                    x.choice.ahead(end, act.author, act.seq, self.now)
                    if x.tick_at is None:
                        x.tick_at = self.now + self.model.tick
                        self._at(x.tick_at, _TICK, x, None)
            elif isinstance(act, Close):
                self._close(end, act.reason, tell=False)
            else:  # fork proofs and peeks: none in this simulation
                self.stats["other_actions"] += 1
        at = end.session.next_poll()
        if end.open and at is not None and (end.poll_at is None or at < end.poll_at):
            end.poll_at = max(at, self.now)
            self._at(end.poll_at, _POLL, end, None)

    def _item(self, x: GossipNode, author: bytes, seq: int) -> Item:
        entry = _entry(author, seq)
        return (entry + b"!" if x.bad else entry, None)

    def _serve(self, x: GossipNode, s: Serve) -> list[Entries | Push]:
        """The store's answer to a Serve (as tests/protocol/test_sync.py's FakeStore)."""
        head = x.head.get(s.author, 0)
        first, last = s.span(head)
        if s.live and first == last:
            return [Push(s.author, last, self._item(x, s.author, last))]
        if first > last:
            return [Entries(s.author, first if head else 0, head, ())]
        return [
            Entries(
                s.author,
                lo,
                head,
                tuple(
                    self._item(x, s.author, q) for q in range(lo, min(lo + _BATCH - 1, last) + 1)
                ),
            )
            for lo in range(first, last + 1, _BATCH)
        ]

    def _ingest(self, end: LinkEnd, ing: Ingest) -> None:
        x, author = end.node, ing.author
        held = x.head.get(author, 0)
        valid = 0
        for i, item in enumerate(ing.items):
            if item[0] != _entry(author, ing.start + i):
                break
            valid += 1
        top = ing.start + valid - 1
        new = max(0, top - held)
        if new:
            x.head[author] = top
            if not x.bad:
                self.stats["stored"] += new
                for seq in range(held + 1, top + 1):
                    at = self.posted.get((author, seq))
                    if at is not None:
                        self.arrived[author, seq].append(self.now - at)
            for other in list(x.by_feed.get(author, ())):
                self._perform(other, other.session.local_update(author, (top, _eid(author, top))))
        if valid < len(ing.items):
            x.gray.add(end.peer.node.index if end.peer is not None else -1)
            self._drop(end, "invalid_entry")
            return
        if x.choice is not None and end.open:
            x.choice.delivered(end, author, new=new > 0, live=ing.origin == "push", now=self.now)

    def _deliver(self, end: LinkEnd, msg: Message) -> None:
        if not end.open:
            self.stats["arrived_after_close"] += 1
            return
        if not end.node.bad:
            if isinstance(msg, Push):
                self.delivered[msg.author, msg.seq] += 1
            elif isinstance(msg, Entries):
                for seq in range(msg.start, msg.start + len(msg.items)):
                    self.delivered[msg.author, seq] += 1
        try:
            actions = end.session.receive(msg, self.now)
        except ProtocolError as exc:
            self._drop(end, f"protocol_{exc.reason}")
            return
        self._perform(end, actions)

    def _post(self, x: GossipNode) -> None:
        seq = x.head[x.key] + 1
        x.head[x.key] = seq
        self.posted[x.key, seq] = self.now
        self.arrived[x.key, seq] = []
        head = (seq, _eid(x.key, seq))
        for end in list(x.by_feed.get(x.key, ())):
            self._perform(end, end.session.local_update(x.key, head))

    def _step(self, kind: int, a: Any, b: Any) -> None:
        if kind == _DELIVER:
            self._deliver(a, b)
        elif kind == _POLL:
            if a.open:
                a.poll_at = None
                self._perform(a, a.session.poll(self.now))
        elif kind == _TICK:
            a.tick_at = None
            choice = a.choice
            choice.tick(self.now)
            if choice.busy():
                a.tick_at = self.now + self.model.tick
                self._at(a.tick_at, _TICK, a, None)
        elif kind == _POST:
            self._post(a)
        elif kind == _SWARM:
            self._swarm_round(a)
            if self.now + self.model.swarm_interval <= self._deadline:
                self._at(self.now + self.model.swarm_interval, _SWARM, a, None)
        elif kind == _REDIAL:
            target = self._pick(a, self.model.per_feed)
            if target is not None and a.links < self.model.max_links:
                self.stats["redials"] += 1
                self._dial(a, target)

    def _swarm_round(self, x: GossipNode) -> None:
        """One round of ``x``'s swarm lookups: every wanted feed, as the node's
        swarm loop does (replication/swarm.py ``_swarm_lookup``)."""
        m = self.model
        for feed in x.wants:
            ends = x.by_feed.get(feed, ())
            have, want = len(ends), 2
            if have >= want and feed != x.key and m.islands and self._island_round(x, feed):
                self.stats["swarm_islands"] += 1
                want = have + 2
            while have < want and x.links < m.max_links:
                holders = [y for y in self.swarm[feed] if self._can_take(x, y)]
                if not holders:
                    break
                self.stats["swarm_dials"] += 1
                self._dial(x, holders[self.rng.randrange(len(holders))])
                have += 1

    def _island_round(self, x: GossipNode, feed: bytes) -> bool:
        """Whether ``x``'s lookup of ``feed`` now makes an island round, by the
        node's rules (replication/swarm.py ``_stranded``, spec/sync.md §6): the
        head record is ahead of x's head; a linked peer's clock above it defers
        the first round by one lookup; rounds while x's head stands still are
        spaced swarm_interval, twice that, ... (at most an hour)."""
        record = self.by_key[feed].head[feed]  # the author's last head put
        ours = x.head[feed]
        if record <= ours:
            x.islands.pop(feed, None)
            return False
        prev = x.islands.get(feed)
        if prev is None or prev[0] != ours:
            x.islands[feed] = (ours, 0, self.now)
            if any(e.session.peer_head(feed) > ours for e in x.by_feed.get(feed, ())):
                return False
        _, rounds, due = x.islands[feed]
        if self.now < due:
            return False
        spacing = min(3600.0, self.model.swarm_interval * 2 ** min(rounds, 16))
        x.islands[feed] = (ours, rounds + 1, self.now + spacing)
        return True

    def authors(self) -> list[GossipNode]:
        """The sampled authors: honest online nodes with at least one honest online follower."""
        m = self.model
        pool = [
            x
            for x in self.nodes
            if x.online and not x.bad and any(self._follower(y, x.key) for y in self.swarm[x.key])
        ]
        return self.rng.sample(pool, min(m.authors, len(pool)))

    def _follower(self, y: GossipNode, author: bytes) -> bool:
        return y.key != author and y.online and not y.bad

    def run(self) -> dict[str, Any]:
        """Post, run to quiet (or ``settle`` seconds past the last post), and measure.

        Returns:
            The figures (see :meth:`figures`).
        """
        m = self.model
        authors = self.authors()
        last = 0.0
        for x in authors:
            offset = self.rng.uniform(0.0, m.post_interval)
            for k in range(m.posts_per_author):
                last = max(last, m.start + offset + k * m.post_interval)
                self._at(m.start + offset + k * m.post_interval, _POST, x, None)
        for x in self.nodes:
            if x.online:
                self._at(self.rng.uniform(0.0, m.swarm_interval), _SWARM, x, None)
        deadline = self._deadline = last + m.settle
        heap = self._heap
        while heap and heap[0][0] <= deadline:
            t, _, kind, a, b = heapq.heappop(heap)
            self.now = t
            self._step(kind, a, b)
        self.stats["events_left"] = len(heap)
        return self.figures(authors)

    def _reachable(self, author: GossipNode) -> set[int]:
        """Honest online followers joined to the author by open links between honest
        nodes that want the feed (the only paths a post can take)."""
        seen = {author.index}
        todo = [author]
        while todo:
            x = todo.pop()
            for end in x.by_feed.get(author.key, ()):
                peer = end.peer
                if peer is None or not peer.open or peer.node.bad:
                    continue
                y = peer.node
                if y.index not in seen:
                    seen.add(y.index)
                    todo.append(y)
        seen.discard(author.index)
        return seen

    def figures(self, authors: list[GossipNode]) -> dict[str, Any]:
        """Reach, latency and redundancy of the posts made, and the cost."""
        followers = reachable = reached = 0
        # After an author's first post the senders are chosen: what it costs then.
        later_sent = later_reached = 0
        delays: list[float] = []
        for x in authors:
            online = sum(1 for y in self.swarm[x.key] if self._follower(y, x.key))
            can = len(self._reachable(x))
            for seq in range(2, x.head[x.key] + 1):
                got = self.arrived[x.key, seq]
                followers += online
                reachable += can
                reached += len(got)
                delays.extend(got)
                if seq > 2:
                    later_sent += self.delivered[x.key, seq]
                    later_reached += len(got)
        delays.sort()
        stored = self.stats["stored"]
        sent = sum(self.delivered.values())
        counted = sum(e.session.entries_delivered for e in self.ends if not e.node.bad)
        ebt: Counter[str] = Counter()
        for x in self.nodes:
            if x.choice is not None:
                ebt.update(x.choice.statistics())
        return {
            "posts": len(self.posted),
            "followers_per_post": round(followers / max(len(self.posted), 1), 1),
            "reached": round(reached / max(followers, 1), 4),
            "reached_of_reachable": round(reached / max(reachable, 1), 4),
            "reachable": round(reachable / max(followers, 1), 4),
            "latency_s_p50": round(statistics.median(delays), 3) if delays else None,
            "latency_s_p99": round(delays[int(0.99 * (len(delays) - 1))], 3) if delays else None,
            "redundancy": round(counted / max(stored, 1), 2),
            "redundancy_later_posts": round(later_sent / max(later_reached, 1), 2),
            "deliveries_counted": sent,
            "links": self.stats["links"],
            "links_by_path": {
                "direct": self.stats["links"]
                - self.stats["links_reversed"]
                - self.stats["links_punched"]
                - self.stats["links_relayed"],
                **{k: self.stats[f"links_{k}"] for k in ("reversed", "punched", "relayed")},
            },
            "invalid_links_dropped": self.stats["dropped_invalid_entry"],
            "swarm_dials": self.stats["swarm_dials"],
            "swarm_islands": self.stats["swarm_islands"],
            "bad_nodes": sum(1 for x in self.nodes if x.bad),
            "messages": sum(v for k, v in self.stats.items() if k.startswith("sent_")),
            "ebt": {
                k: ebt[k] for k in ("mode_standby_sent", "senders_switched", "senders_replaced")
            },
            "events_left": self.stats["events_left"],
        }
