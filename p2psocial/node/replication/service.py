"""The replication service: :class:`Replicator` composes the components.

It builds the recent cache, the wanted heads, the link pool with its feed
server, the ingest pipeline and swarm discovery, runs the pool and discovery
in its nursery, and keeps the public surface the node uses: ``run``,
``connect``, ``notify_local``, ``peek``, ``peers``, ``statistics`` and the
run-time policy (``hops``, ``accept_inbound``). It is also the pool's
:class:`~p2psocial.node.replication.pool.LinkHandler`: batches and fork proofs
go to the ingest pipeline, finished peeks wake the peek waiting for them.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import trio

from ...protocol.entries import Entry
from ...protocol.errors import LocalUsageError, P2PSocialError
from ...protocol.identity import SigningKey, node_id_from_public_key
from ...protocol.punch import candidate_addrs
from ...protocol.relay import RELAY_FEED
from ...protocol.sync import Ingest, SyncLimits
from ..activity import LimitedLog
from ..foreground import Foreground
from ..relay.client import RelayAddress, RelayClient
from ..relay.server import RelayLimits, RelayServer
from ..scores import ScoreLimits
from .heads import Heads
from .ingest import IngestPipeline
from .link import Link, head_moved
from .pool import LinkPool, PoolLimits
from .punch import Puncher
from .recent import RecentCache
from .senders import Senders
from .serve import FeedServer
from .store import ReplicationStore
from .swarm import SwarmDiscovery

__all__ = ["Replicator"]

#: The service's logger name, the same for every module of the package.
log = logging.getLogger("p2psocial.node.replication")

#: The keys of :meth:`Replicator.statistics`, in order, merged from the components'.
_STATISTICS = (
    "peers",
    "feeds",
    "frames_in",
    "frames_out",
    "bytes_in",
    "bytes_out",
    "entries_received",
    "entries_stored",
    "entries_duplicate",
    "entries_rejected",
    "entries_served",
    "inbound_refused",
    "peers_refused",
    "links_dropped",
    "links_opened",
    "forks_detected",
    "dials_failed",
    "links_evicted",
    "inbound_rate_limited",
    "internal_errors",
    "keepalives_sent",
    "handshaking",
    "peer_scores",
    "catch_ups",
    "catch_ups_stalled",
    "entries_delivered",
    "haves_sent",
    "head_puts",
    "head_puts_coalesced",
    "swarm_lookups",
    "swarm_lookups_deferred",
    "swarm_islands",
    "relayed_dials",
)


def _newest_first_default() -> bool:
    """Newest-first catch-up is on unless ``P2PSOCIAL_SYNC_NEWEST_FIRST=0``.

    A private switch, for bench/firstsync.py's reference run (the classic,
    oldest-first catch-up); not a setting users are meant to change.
    """
    return os.environ.get("P2PSOCIAL_SYNC_NEWEST_FIRST", "1") != "0"


def _ebt_default() -> bool:
    """EBT-style sender selection is on unless ``P2PSOCIAL_SYNC_EBT=0``.

    A private switch, for bench/propagation.py's reference run (every link
    pushing every shared feed); not a setting users are meant to change.
    """
    return os.environ.get("P2PSOCIAL_SYNC_EBT", "1") != "0"


class _Reporting(Protocol):
    def statistics(self) -> dict[str, Any]: ...


class Replicator:
    """Replicates wanted feeds with peers over TCP links.

    Args:
        store: the node's async store (``p2psocial.storage.AsyncStore``).
        node_key: key proving this node on links.
        dht: a ``DHTNode`` for swarm membership and feed heads, or None.
        host, port: where to listen for peer links (port 0: any).
        identity: the user identity hosted here (its feed is always wanted).
        on_stored: called with the entries stored from peers, after each batch.
        max_peers: the connection pool size, inbound and outbound together.
        hops: 1 replicates follows; 2 adds follows of follows.
        accept_inbound: keep posts from authors not followed that mention or
            reply to ``identity`` (the owner's policy; may change at run time).
        limits: per-peer protocol limits.
        batch_size: entries per catch-up batch.
        foreground: the owner's API requests in flight: work for peers (a
            received frame, a chunk of a batch) waits for them
            (node/foreground.py). Default: one of its own, never busy.
        scores: penalties and graylisting of misbehaving peers (scores.py).
        refresh_interval: seconds between interest refreshes and redials.

    Relays (spec/sync.md §11):

        relay_limits: what this node relays for others, read at each use
            (the ``relay_*`` policy settings); the default relays with
            :class:`~p2psocial.node.relay.RelayLimits`' defaults.
        relay_observer: sees every chunk this node relays (tests, accounting).
        use_relays: ``"auto"`` holds reservations while the DHT finds this
            node behind a NAT, ``"always"`` and ``"never"`` say so outright.
        announce_relay: ``"auto"`` lists this node in the DHT's relay swarm
            while it relays and the DHT finds it reachable; ``"always"``,
            ``"never"`` as above.
        relays: relays to reserve at besides those the DHT names.

    ebt: list capability ``ebt`` and take each feed live from one link
        (spec/sync.md §13; :class:`~p2psocial.node.replication.senders.Senders`).
        Default: on, unless ``P2PSOCIAL_SYNC_EBT=0``.

    The other arguments are the link pool's bounds
    (:class:`~p2psocial.node.replication.pool.PoolLimits`), the keepalive
    interval (at most a third of ``idle_timeout``), the peek timeout, and the
    inbound policy's rate (see
    :class:`~p2psocial.node.replication.ingest.IngestPipeline`).
    """

    def __init__(
        self,
        store: ReplicationStore,
        node_key: SigningKey,
        *,
        dht: Any = None,
        host: str = "127.0.0.1",
        port: int = 0,
        identity: bytes,
        on_stored: Callable[[list[Entry]], None] | None = None,
        max_peers: int = 32,
        hops: int = 1,
        accept_inbound: bool = True,
        limits: SyncLimits | None = None,
        batch_size: int = 500,
        refresh_interval: float = 2.0,
        handshake_timeout: float = 10.0,
        swarm_interval: float = 30.0,
        peek_timeout: float = 5.0,
        idle_timeout: float = 90.0,
        keepalive_interval: float = 30.0,
        eviction_grace: float = 5.0,
        max_per_address: int = 4,
        max_per_network: int = 8,
        max_handshaking: int = 256,
        max_handshaking_per_address: int = 8,
        max_handshaking_per_network: int = 16,
        inbound_burst: float = 16.0,
        inbound_rate: float = 0.5,
        foreground: Foreground | None = None,
        relay_limits: Callable[[], RelayLimits] = RelayLimits,
        relay_observer: Callable[[bytes], None] | None = None,
        use_relays: str = "auto",
        announce_relay: str = "auto",
        relays: Sequence[RelayAddress] = (),
        scores: ScoreLimits | None = None,
        ebt: bool | None = None,
    ) -> None:
        for mode in (use_relays, announce_relay):
            if mode not in ("auto", "always", "never"):
                raise LocalUsageError("relay modes are auto, always or never", reason="bad_relays")
        self.store = store
        self.foreground = foreground or Foreground()
        self.node_key = node_key
        self.node_id = node_id_from_public_key(node_key.public_key)
        self.dht = dht
        self.identity = identity
        self.limits = limits or SyncLimits(newest_first=_newest_first_default())
        self.peek_timeout = peek_timeout
        self.cache = RecentCache()
        self.heads = Heads(store, identity, hops=hops)
        self.senders = Senders(
            lambda a: self.heads[a][0] if a in self.heads else 0,
            enabled=_ebt_default() if ebt is None else ebt,
        )
        server = FeedServer(
            store,
            self.heads,
            self.cache,
            limits=self.limits,
            batch_size=max(1, min(batch_size, self.limits.wire.max_batch)),
            keepalive_interval=min(keepalive_interval, idle_timeout / 3),
        )
        self.relay = RelayServer(node_key, relay_limits, observer=relay_observer)
        self.use_relays = use_relays
        self.announce_relay = announce_relay
        self.static_relays = list(relays)
        self._relay_announced = False
        self._nursery: trio.Nursery | None = None
        self.pool = LinkPool(
            self,
            server,
            self.heads,
            node_key,
            host=host,
            port=port,
            limits=self.limits,
            foreground=self.foreground,
            relay=self.relay,
            scores=scores,
            ebt=self.senders.enabled,
            bounds=PoolLimits(
                max_peers=max_peers,
                handshake_timeout=handshake_timeout,
                idle_timeout=idle_timeout,
                eviction_grace=eviction_grace,
                max_per_address=max_per_address,
                max_per_network=max_per_network,
                max_handshaking=max_handshaking,
                max_handshaking_per_address=max_handshaking_per_address,
                max_handshaking_per_network=max_handshaking_per_network,
            ),
        )
        self.ingest = IngestPipeline(
            store,
            self.heads,
            self.cache,
            self.pool,
            identity=identity,
            on_stored=on_stored,
            accept_inbound=accept_inbound,
            foreground=self.foreground,
            inbound_burst=inbound_burst,
            inbound_rate=inbound_rate,
        )
        self.discovery = SwarmDiscovery(
            dht,
            self.pool,
            self.heads,
            store,
            identity=identity,
            refresh_interval=refresh_interval,
            swarm_interval=swarm_interval,
        )
        self.relay_client = RelayClient(
            node_key,
            find_relays=self._find_relays,
            on_stream=self.pool.serve_relayed,
            needed=self._needs_relays,
            on_change=self._relays_changed,
        )
        self.pool.puncher = Puncher(self.pool, self._punch_addresses, mapping=self._nat_mapping)
        self._peek_events: dict[bytes, trio.Event] = {}
        self._stats: Counter[str] = Counter()
        self._events = LimitedLog(log)

    # ------------------------------------------------------------------ policy

    @property
    def host(self) -> str:
        """The address links are accepted on."""
        return self.pool.host

    @property
    def port(self) -> int:
        """The TCP port links are accepted on (the bound one once running)."""
        return self.pool.port

    @property
    def hops(self) -> int:
        """1 replicates follows; 2 adds follows of follows (call ``interest_changed`` after)."""
        return self.heads.hops

    @hops.setter
    def hops(self, value: int) -> None:
        self.heads.hops = value

    @property
    def accept_inbound(self) -> bool:
        """Whether unsolicited posts that mention or reply to us are kept."""
        return self.ingest.accept_inbound

    @accept_inbound.setter
    def accept_inbound(self, value: bool) -> None:
        self.ingest.accept_inbound = value

    # ------------------------------------------------------------------ lifecycle

    async def run(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, accept, dial and replicate until cancelled.

        Calls ``task_status.started((host, port))`` once the listener is up.

        Raises:
            NodeError: the TCP port cannot be bound.
        """
        # Bound here, outside the nursery, so a port in use raises as itself.
        await self.pool.listen()
        try:
            await self.discovery.refresh()
            async with trio.open_nursery() as nursery:
                address = await nursery.start(self.pool.run)
                await nursery.start(self.discovery.run)
                await nursery.start(self.relay_client.run)
                self._nursery = nursery
                nursery.start_soon(self.senders.run)
                if self.dht is not None:
                    nursery.start_soon(self._relay_announcer)
                task_status.started(address)
        finally:
            await self.pool.close_listeners()

    # ------------------------------------------------------------------ relays

    def _needs_relays(self) -> bool:
        """Whether to hold reservations now: told so, or the DHT sees a NAT."""
        if self.use_relays != "auto":
            return self.use_relays == "always"
        if self.dht is None:
            return False
        r = self.dht.reachability()
        # Dial-back's verdict when there is one (a forwarded port is dialable
        # behind a NAT); else what the observed addresses say.
        if r.get("reachable", "unknown") != "unknown":
            return bool(r["reachable"] == "no")
        return bool(r.get("reachability") == "behind_nat")

    def _punch_addresses(self) -> tuple[tuple[tuple[str, int], ...], bool]:
        """Where a punch or a reversal can reach us, and whether dial-back succeeded (§12.2)."""
        if self.dht is None:
            return (), False
        r = self.dht.reachability()
        addrs = candidate_addrs(r.get("observed_ips", []), self.pool.port)
        return addrs, self._reachable()

    def _nat_mapping(self) -> str:
        """This node's NAT mapping behaviour (spec/dht.md §4.4), for a spray (§12.9)."""
        if self.dht is None:
            return "unknown"
        return str(self.dht.reachability().get("nat_mapping", "unknown"))

    def _reachable(self) -> bool:
        if self.dht is None:
            return False
        r = self.dht.reachability()
        return bool(r.get("reachable") == "yes" or r.get("reachability") == "public")

    async def _relay_announcer(self) -> None:
        """List this node in the relay swarm (spec/sync.md §11.5) once it may relay.

        The DHT keeps an announce placed once made; a relay switched off
        later refuses with ``link_unsupported``, and its listing expires.
        """
        while not self._relay_announced:
            wanted = self.announce_relay == "always" or (
                self.announce_relay == "auto" and self._reachable()
            )
            if wanted and self.relay.enabled():
                with trio.move_on_after(10):
                    try:
                        await self.dht.announce(RELAY_FEED, self.pool.port)
                    except (P2PSocialError, OSError) as exc:
                        log.debug("listing in the relay swarm failed: %s", exc)
                    else:
                        self._relay_announced = True
                    log.info("relaying for nodes behind NATs; listed in the relay swarm")
            if not self._relay_announced:
                await trio.sleep(5.0)

    async def _find_relays(self) -> list[RelayAddress]:
        """Relay candidates: the configured ones, then the DHT's relay swarm."""
        found = list(self.static_relays)
        if self.dht is not None:
            for node_id, host, port in await self.dht.get_peers(RELAY_FEED):
                relay = RelayAddress(node_id, host, port)
                if relay not in found:
                    found.append(relay)
        return found

    def _relays_changed(self) -> None:
        """Our reservations changed: name the first in our swarm announces."""
        if self.dht is None or self._nursery is None:
            return
        held = self.relay_client.relays()
        first = (held[0].node_id, held[0].host, held[0].port) if held else None
        if first != self.dht.relay:
            self._nursery.start_soon(self._set_relay, first)

    async def _set_relay(self, relay: tuple[bytes, str, int] | None) -> None:
        try:
            with trio.move_on_after(30):
                await self.dht.set_relay(relay)
        except (P2PSocialError, OSError) as exc:  # the DHT is best effort here
            log.debug("re-announcing with a new relay failed: %s", exc)

    def add_relay(self, relay: RelayAddress) -> None:
        """Reserve at ``relay`` too (when reservations are needed)."""
        if relay not in self.static_relays:
            self.static_relays.append(relay)
        self.relay_client.wake()

    def relays(self) -> list[dict[str, Any]]:
        """The relays holding a reservation for this node."""
        return [r.to_dict() for r in self.relay_client.relays()]

    # ------------------------------------------------------------------ public API

    async def connect(self, host: str, port: int) -> bool:
        """Dial ``host:port`` now and keep redialling it with backoff if it drops.

        Returns:
            True once the link is up (hello done), False if the first attempt
            failed; either way the address is retried in the background.
        """
        return await self.discovery.connect(host, port)

    def notify_local(self, entry: Entry, payload: bytes | None) -> None:
        """A new own entry was stored: push it, publish the head, deliver mentions.

        Non-blocking: pushes are queued on each link's outbox; the DHT work
        and the deliveries run as tasks in the discovery nursery.
        """
        if entry.kind == "delete":
            # Its target's payload is gone from the store; so from the cache.
            self.cache.forget()
        self.cache.remember(entry.author, entry.seq, (entry.to_bytes(), payload))
        head = (entry.seq, entry.id)
        if self.heads.advance(entry.author, head):
            self.pool.broadcast(head_moved(entry.author, head))
        if not self.discovery.publish(entry, payload):
            # Not running (starting or stopping): the entry is in the store
            # and reaches peers at the next sync; only the head record and
            # mention deliveries of this entry are skipped. Said, not silent.
            self._stats["notify_while_stopped"] += 1
            self._events.info(
                "notify_while_stopped",
                trio.current_time(),
                "replication not running: entry %s syncs on the next link",
                entry.id.hex()[:12],
            )

    def payloads_purged(self, author: bytes | None = None) -> None:
        """The store dropped payloads (a block; all authors if None): forget
        cached copies, so they are never served again."""
        self.cache.forget(author)

    def interest_changed(self) -> None:
        """Follows (or policy) changed: re-read interest and tell peers soon."""
        self.discovery.interest_changed()

    async def refresh(self) -> None:
        """Re-read interest from the store now and update every link (tests, node)."""
        await self.discovery.refresh()

    async def peek(self, author: bytes, limit: int = 50) -> int:
        """Read the latest ``limit`` entries of a feed we do not follow.

        Asks connected peers that want the feed (or, with a DHT, its swarm) and
        stores what arrives with interest ``peek``.

        Returns:
            How many of the feed's entries the store holds afterwards, at most
            ``limit`` counted from its newest.
        """
        await self.store.set_interest(author, "peek")
        links = self._wanting(author)
        if not links:
            with trio.move_on_after(self.peek_timeout):
                await self.discovery.dial_holders(author)
            links = self._wanting(author)
        if not links:
            links = self.pool.open_links()
        event = self._peek_events.setdefault(author, trio.Event())
        asked = 0
        for link in links[:3]:
            if not link.is_open():
                continue
            try:
                link.perform_local(link.session.peek(author, limit))
                asked += 1
            except LocalUsageError:  # too many peeks outstanding on that link
                self._stats["peek_skipped"] += 1
        if asked:
            with trio.move_on_after(self.peek_timeout):
                await event.wait()
        self._peek_events.pop(author, None)
        page = await self.store.feed(author, limit=limit, kinds=None)
        return len(page.items)

    def known_heads(self, authors: Iterable[bytes]) -> dict[bytes, tuple[int, bool]]:
        """author -> (highest seq a linked peer is known to hold, caught up
        newest-first on some link now), for ``sync_progress``."""
        links = self.pool.open_links()
        out: dict[bytes, tuple[int, bool]] = {}
        for a in authors:
            top, catching = 0, False
            for lk in links:
                top = max(top, lk.session.peer_head(a))
                catching = catching or a in lk.session.catching()
            out[a] = (top, catching)
        return out

    @property
    def recent(self) -> int:
        """The size of a feed's recent part, caught up first (spec/sync.md 5.6)."""
        return self.limits.recent

    def wanted_feeds(self) -> list[bytes]:
        """The feeds this node replicates now."""
        return list(self.heads)

    def _wanting(self, author: bytes) -> list[Link]:
        return [lk for lk in self.pool.open_links() if lk.session.peer_wants(author)]

    def peers(self) -> list[dict[str, Any]]:
        """Connected peers: node id (hex), host, port, direction, feeds shared."""
        return self.pool.peers()

    def statistics(self) -> dict[str, Any]:
        """Traffic, entries and drops; counters only grow."""
        merged: dict[str, Any] = {}
        parts: tuple[_Reporting, ...] = (self.heads, self.pool, self.ingest, self.discovery)
        for part in parts:
            for key, value in part.statistics().items():
                # A counter kept by two components (internal_errors) is summed.
                merged[key] = merged[key] + value if key in merged else value
        out = {key: merged[key] for key in _STATISTICS}
        out["relay"] = self.relay.statistics()
        out["relay_client"] = self.relay_client.statistics()
        if self.pool.puncher is not None:
            out["punch"] = self.pool.puncher.statistics()
        out["ebt"] = self.senders.statistics()
        return out

    # ------------------------------------------------------------------ LinkHandler

    async def on_batch(self, link: Link, batch: Ingest) -> None:
        """A link's session accepted a batch: the ingest pipeline stores it,
        and the live sender of its feed is kept or changed."""
        stored = await self.ingest.on_batch(link, batch)
        if batch.origin in ("sync", "push"):
            self.senders.delivered(link, batch.author, new=stored > 0, live=batch.origin == "push")

    def on_peer_ahead(self, link: Link, author: bytes, seq: int) -> None:
        """A standby peer holds a feed past our head (capability ebt)."""
        self.senders.ahead(link, author, seq)

    def on_duplicate(self, link: Link, author: bytes) -> None:
        """A peer pushed what another link gave us first (capability ebt)."""
        self.senders.delivered(link, author, new=False, live=True)

    def on_link_gone(self, link: Link) -> None:
        """A link ended: another takes over the feeds it sent live."""
        self.senders.link_gone(link)

    async def on_fork_proof(self, link: Link, proof: bytes) -> None:
        """A peer sent a fork proof: the ingest pipeline checks and gossips it."""
        await self.ingest.on_fork_proof(link, proof)

    def on_peek_done(self, author: bytes) -> None:
        """A peer answered a peek in full: wake the peek waiting for it."""
        event = self._peek_events.get(author)
        if event is not None:
            event.set()
