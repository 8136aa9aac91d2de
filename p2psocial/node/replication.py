"""The replication service: peer links, EBT-style sync, push, peeks, mentions.

This is the I/O half of :mod:`p2psocial.protocol.sync` (the h11-style machine
decides, this module performs). One :class:`Replicator` owns:

* a TCP listener and an accept loop; a bounded pool of links (``max_peers``),
  one per remote node, each running a :class:`~p2psocial.protocol.sync.SyncSession`;
* a dialer loop that refreshes interest from the store (own feed, follows,
  ``hops = 2`` adds follows of follows), announces the wanted feeds in the DHT
  and dials swarm peers, and redials explicit peers with backoff.

Per link, a reader task decodes frames, feeds the machine and ingests received
batches inline (the next frame is not read until the store has taken the
last batch: that is the backpressure), and a writer task drains an
:class:`_Outbox`. The outbox holds control messages (bounded) and *ranges* to
serve, coalesced per feed, so a live push never blocks the code that
announced it and memory is bounded by the number of feeds, not entries.

A peer that breaks the protocol (bad frame, invalid entry, unsolicited
batch, want flood) gets its link dropped and counted under a reason; nothing
it sent is kept except entries that verified. Nothing a peer sends can raise
out of a link task.

The service is built in layers, one module each, that :class:`Replicator`
stacks: :mod:`~p2psocial.node.peerlink` (the link pool, outbox, reader and
writer tasks), :mod:`~p2psocial.node.swarm` (interest, dialling, DHT swarms,
head publishing, mention delivery) and :mod:`~p2psocial.node.ingest` (storing
received batches, inbound policy, fork gossip). This module keeps the public
surface: the store protocol, the constructor, ``run`` and the public methods.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import trio

from ..errors import cannot_listen
from ..protocol.entries import Entry
from ..protocol.errors import LocalUsageError, P2PSocialError
from ..protocol.identity import SigningKey, node_id_from_public_key
from ..protocol.ratelimit import RateTable
from ..protocol.sync import Head, SyncLimits
from ..protocol.wire import Item
from .ingest import _Ingest
from .peerlink import _Link

__all__ = ["ReplicationStore", "Replicator"]

log = logging.getLogger(__name__)


class ReplicationStore(Protocol):
    """The store methods replication uses (``p2psocial.storage.AsyncStore``)."""

    async def ingest(
        self, items: list[tuple[bytes, bytes | None]], *, now_ms: int, author: bytes | None = None
    ) -> list[Any]: ...
    async def head(self, author: bytes) -> tuple[int, bytes] | None: ...
    async def heads(self, authors: list[bytes] | None = None) -> dict[bytes, int]: ...
    async def entries_after(
        self, author: bytes, seq: int, limit: int
    ) -> list[tuple[bytes, bytes | None]]: ...
    async def get_raw(self, id_: bytes) -> tuple[bytes, bytes | None] | None: ...
    async def set_interest(self, author: bytes, reason: str) -> None: ...
    async def clear_interest(self, author: bytes, reason: str) -> None: ...
    async def interests(self) -> dict[bytes, set[str]]: ...
    async def feed_status(self, author: bytes) -> str: ...
    async def fork_proofs(self, author: bytes) -> list[bytes]: ...
    async def feed(self, author: bytes, *, limit: int = 50, kinds: Any = ...) -> Any: ...
    async def following(self, author: bytes) -> list[bytes]: ...
    async def blocked(self) -> set[bytes]: ...


class Replicator(_Ingest):
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
        refresh_interval: seconds between interest refreshes and redials.
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
    ) -> None:
        self.store = store
        self.node_key = node_key
        self.node_id = node_id_from_public_key(node_key.public_key)
        self.dht = dht
        self.host = host
        self.port = port
        self.identity = identity
        self.on_stored = on_stored
        self.max_peers = max_peers
        self.hops = hops
        self.accept_inbound = accept_inbound
        self.limits = limits or SyncLimits()
        self.batch_size = max(1, min(batch_size, self.limits.wire.max_batch))
        self.refresh_interval = refresh_interval
        self.handshake_timeout = handshake_timeout
        self.swarm_interval = swarm_interval
        self.peek_timeout = peek_timeout
        self.idle_timeout = idle_timeout
        self.keepalive_interval = min(keepalive_interval, idle_timeout / 3)
        self.eviction_grace = eviction_grace
        self.max_per_address = max_per_address
        self.max_per_network = max_per_network
        self.max_handshaking = max_handshaking
        self.max_handshaking_per_address = max_handshaking_per_address
        self.max_handshaking_per_network = max_handshaking_per_network
        self._handshaking: Counter[str] = Counter()
        # Unsolicited posts kept (each may start a feed here), per remote
        # node key and per address; these outlive links (spec/sync.md 7).
        self._inbound_by_key = RateTable(inbound_burst, inbound_rate)
        self._inbound_by_addr = RateTable(2 * inbound_burst, 2 * inbound_rate)
        self._links: dict[bytes, _Link] = {}
        self._heads: dict[bytes, Head] = {}
        self._forked: set[bytes] = set()
        self._known_proofs: set[bytes] = set()
        self._recent: OrderedDict[tuple[bytes, int], Item] = OrderedDict()
        self._recent_max = 4096
        self._explicit: dict[tuple[str, int], float] = {}
        self._dialing: set[tuple[str, int]] = set()
        self._swarm_checked: dict[bytes, float] = {}
        self._announced: set[bytes] = set()
        self._swarm_backoff: dict[bytes, float] = {}
        self._peek_events: dict[bytes, trio.Event] = {}
        self._nursery: trio.Nursery | None = None
        self._wakeup = trio.Event()
        self._swarm_due = trio.Event()
        self._refresh_lock = trio.Lock()
        self._stats: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()
        self._bytes_in_closed = 0
        self._bytes_out_closed = 0
        self._frames_in_closed = 0
        self._frames_out_closed = 0

    # ------------------------------------------------------------------ lifecycle

    async def run(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, accept, dial and replicate until cancelled.

        Calls ``task_status.started((host, port))`` once the listener is up.
        """
        try:
            listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        except OSError as exc:
            shown = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
            raise cannot_listen("TCP port for peer links", shown, exc) from None
        self.port = listeners[0].socket.getsockname()[1]
        try:
            await self._refresh_interest()
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._accept_loop, listeners)
                nursery.start_soon(self._dial_loop)
                if self.dht is not None:
                    nursery.start_soon(self._swarm_loop)
                task_status.started((self.host, self.port))
        finally:
            self._nursery = None
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()

    async def _accept_loop(self, listeners: list[trio.SocketListener]) -> None:
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept_one_listener, listener, nursery)

    async def _accept_one_listener(
        self, listener: trio.SocketListener, nursery: trio.Nursery
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                self._stats["accept_errors"] += 1
                log.warning("accept failed: %s", exc)
                await trio.sleep(0.1)
                continue
            nursery.start_soon(self._serve_stream, stream, "inbound", None)

    # ------------------------------------------------------------------ public API

    async def connect(self, host: str, port: int) -> bool:
        """Dial ``host:port`` now and keep redialling it with backoff if it drops.

        Returns:
            True once the link is up (hello done), False if the first attempt
            failed; either way the address is retried in the background.
        """
        self._explicit.setdefault((host, port), 0.0)
        if self._nursery is None:
            return False
        return await self._dial(host, port)

    def notify_local(self, entry: Entry, payload: bytes | None) -> None:
        """A new own entry was stored: push it, publish the head, deliver mentions.

        Non-blocking: pushes are queued on each link's outbox; the DHT work
        and the deliveries run as tasks in the service nursery.
        """
        if entry.kind == "delete":
            # Its target's payload is gone from the store; so from the cache.
            self._forget_cached()
        self._remember(entry.author, entry.seq, (entry.to_bytes(), payload))
        self._local_changed(entry.author, (entry.seq, entry.id))
        if self._nursery is None:
            # Not running (starting or stopping): the entry is in the store
            # and reaches peers at the next sync; only the head record and
            # mention deliveries of this entry are skipped. Said, not silent.
            self._stats["notify_while_stopped"] += 1
            log.info(
                "replication not running: entry %s syncs on the next link", entry.id.hex()[:12]
            )
            return
        if self.dht is not None and entry.author == self.identity:
            self._nursery.start_soon(self._put_head, entry.to_bytes())
        targets = self._targets_of(entry, payload)
        if targets:
            self._nursery.start_soon(self._deliver, entry, payload, targets)

    def payloads_purged(self, author: bytes | None = None) -> None:
        """The store dropped payloads (a block; all authors if None): forget
        cached copies, so they are never served again."""
        self._forget_cached(author)

    def interest_changed(self) -> None:
        """Follows (or policy) changed: re-read interest and tell peers soon."""
        self._wakeup.set()

    async def refresh(self) -> None:
        """Re-read interest from the store now and update every link (tests, node)."""
        await self._refresh_interest()

    async def peek(self, author: bytes, limit: int = 50) -> int:
        """Read the latest ``limit`` entries of a feed we do not follow.

        Asks connected peers that want the feed (or, with a DHT, its swarm) and
        stores what arrives with interest ``peek``.

        Returns:
            How many of the feed's entries the store holds afterwards, at most
            ``limit`` counted from its newest.
        """
        await self.store.set_interest(author, "peek")
        links = [lk for lk in self._open_links() if lk.session.peer_wants(author)]
        if not links and self.dht is not None and self._nursery is not None:
            with trio.move_on_after(self.peek_timeout):
                try:
                    found = await self.dht.get_peers(author)
                except (P2PSocialError, OSError) as exc:  # the DHT is best effort here
                    self._stats["dht_errors"] += 1
                    log.debug("get_peers for a peek failed: %s", exc)
                    found = []
                except Exception:
                    self._stats["internal_errors"] += 1
                    log.exception("bug in the swarm lookup of a peek")
                    found = []
                for _node_id, host, port in found[:4]:
                    await self._dial(host, port)
            links = [lk for lk in self._open_links() if lk.session.peer_wants(author)]
        if not links:
            links = self._open_links()
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

    def peers(self) -> list[dict[str, Any]]:
        """Connected peers: node id (hex), host, port, direction, feeds shared."""
        out = []
        for link in self._links.values():
            feeds = link.session.peer_feeds()
            out.append(
                {
                    "node_id": link.peer.node_id.hex(),
                    "host": link.host,
                    "port": link.peer.listen_port,
                    "direction": link.direction,
                    "feeds": sum(1 for a in feeds if a in self._heads),
                }
            )
        return out

    def statistics(self) -> dict[str, Any]:
        """Traffic, entries and drops; counters only grow."""
        links = list(self._links.values())
        return {
            "peers": len(links),
            "feeds": len(self._heads),
            "frames_in": self._frames_in_closed + sum(lk.stream.frames_in for lk in links),
            "frames_out": self._frames_out_closed + sum(lk.stream.frames_out for lk in links),
            "bytes_in": self._bytes_in_closed + sum(lk.stream.bytes_in for lk in links),
            "bytes_out": self._bytes_out_closed + sum(lk.stream.bytes_out for lk in links),
            "entries_received": self._stats["entries_received"],
            "entries_stored": self._stats["entries_stored"],
            "entries_duplicate": self._stats["entries_duplicate"],
            "entries_rejected": dict(self._rejected),
            "entries_served": self._stats["entries_served"],
            "inbound_refused": self._stats["inbound_refused"],
            "peers_refused": dict(self._refused),
            "links_dropped": dict(self._dropped),
            "links_opened": self._stats["links_opened"],
            "forks_detected": self._stats["forks_detected"],
            "dials_failed": self._stats["dials_failed"],
            "links_evicted": self._stats["links_evicted"],
            "inbound_rate_limited": self._stats["inbound_rate_limited"],
            "internal_errors": self._stats["internal_errors"],
            "keepalives_sent": self._stats["keepalives_sent"],
            "handshaking": sum(self._handshaking.values()),
        }
