"""The replication service: peer links, EBT-style sync, push, peeks, mentions.

This is the I/O half of :mod:`p2psocial.protocol.sync` (the h11-style machine
decides, this package performs). :class:`Replicator` composes components that
each own their state and talk through small typed interfaces:

* :class:`LinkPool` (:mod:`.pool`): a TCP listener and a bounded pool of
  links (``max_peers``), one per remote node, each running a
  :class:`~p2psocial.protocol.sync.SyncSession`: admission, per-link tasks,
  deadlines, traffic counters. What a session hands up goes to its
  :class:`LinkHandler`.
* :class:`FeedServer` (:mod:`.serve`): each link's writer task, draining an
  :class:`~.link.Outbox` of control messages and *ranges* to serve, coalesced
  per feed, so a live push never blocks the code that announced it and
  memory is bounded by the number of feeds, not entries.
* :class:`Heads` (:mod:`.heads`): the wanted feeds (own feed, follows,
  ``hops = 2`` adds follows of follows, minus blocks) and our clock for each.
* :class:`IngestPipeline` (:mod:`.ingest`): received batches into the store,
  inbound policy, fork gossip. The reader task awaits it before reading the
  next frame: that is the backpressure.
* :class:`SwarmDiscovery` (:mod:`.swarm`): interest refreshes, explicit
  peers redialled with backoff, DHT announce and lookup, head publishing,
  mention delivery.
* :class:`RecentCache` (:mod:`.recent`): the newest entries, served from memory.

Imports run one way: store, transport, recent < link, heads < serve < pool;
link, heads < ingest, swarm; all of them < service (:class:`Replicator`).

A peer that breaks the protocol (bad frame, invalid entry, unsolicited
batch, want flood) gets its link dropped and counted under a reason; nothing
it sent is kept except entries that verified. Nothing a peer sends can raise
out of a link task.
"""

from __future__ import annotations

from .heads import Heads as Heads
from .ingest import IngestPipeline as IngestPipeline
from .link import Link as Link
from .link import LinkSet as LinkSet
from .link import address_group as address_group
from .pool import LinkHandler as LinkHandler
from .pool import LinkPool as LinkPool
from .recent import RecentCache as RecentCache
from .senders import Senders as Senders
from .serve import FeedServer as FeedServer
from .service import Replicator as Replicator
from .store import ReplicationStore as ReplicationStore
from .swarm import SwarmDiscovery as SwarmDiscovery
from .transport import FramedStream as FramedStream
from .transport import LinkClosed as LinkClosed
from .transport import PeerIdentity as PeerIdentity
from .transport import TCPFramedStream as TCPFramedStream
from .transport import handshake as handshake

__all__ = [
    "FeedServer",
    "FramedStream",
    "Heads",
    "IngestPipeline",
    "Link",
    "LinkClosed",
    "LinkHandler",
    "LinkPool",
    "LinkSet",
    "PeerIdentity",
    "RecentCache",
    "ReplicationStore",
    "Replicator",
    "Senders",
    "SwarmDiscovery",
    "TCPFramedStream",
    "address_group",
    "handshake",
]
