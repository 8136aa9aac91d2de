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
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ..protocol.entries import Entry, decode_entry_untrusted, decode_payload_untrusted
from ..protocol.errors import LocalUsageError, P2PSocialError, ProtocolError
from ..protocol.feeds import decode_fork_proof_untrusted
from ..protocol.identity import SigningKey, node_id_from_public_key
from ..protocol.sync import (
    Action,
    Close,
    Head,
    Ingest,
    PeekDone,
    Send,
    Serve,
    StoreForkProof,
    SyncLimits,
    SyncSession,
)
from ..protocol.wire import (
    Entries,
    Item,
    Message,
    Push,
    decode_message_untrusted,
    encode_message,
)
from .links import LinkClosed, PeerIdentity, TCPFramedStream, handshake

__all__ = ["ReplicationStore", "Replicator"]

log = logging.getLogger(__name__)

#: Rejection reasons that are not the sending peer's fault: a feed frozen by
#: a fork, an entry from an author's future (our clock may lag), local policy.
_BENIGN_REJECTIONS = frozenset({"fork", "forked", "from_future", "blocked", "deleted"})
#: Chain rejections an honest peer causes when a feed has forked.
_CHAIN_REJECTIONS = frozenset({"prev_mismatch", "seq_gap", "chain", "no_prev"})
#: Link ends after which no bye is sent (the peer left, or it is a duplicate).
_QUIET_ENDS = frozenset({"eof", "broken", "bye", "duplicate_link", "closed", "shutdown"})


class ReplicationStore(Protocol):
    """The store methods replication uses (``p2psocial.storage.AsyncStore``)."""

    async def ingest(
        self, items: list[tuple[bytes, bytes | None]], *, now_ms: int
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


class _Dropped(Exception):
    """Ends a link on purpose; ``reason`` goes to statistics."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _Range:
    from_seq: int
    to_seq: int | None
    limit: int | None = None
    live: bool = False


class _Outbox:
    """What the writer task must send: control messages, then feed ranges.

    Ranges of one feed coalesce (``from`` is the lowest asked, ``to`` the
    highest), so repeated pushes while a peer is slow cost nothing extra.
    One-shot serves (peeks, wants of feeds outside the shared set) queue
    separately; the want rate limit bounds them.
    """

    def __init__(self, max_control: int) -> None:
        self.control: deque[Message] = deque()
        self.ranges: OrderedDict[bytes, _Range] = OrderedDict()
        self.oneshots: deque[tuple[bytes, _Range]] = deque()
        self.max_control = max_control
        self._kick_send, self.kick = trio.open_memory_channel[None](1)

    def _wake(self) -> None:
        with contextlib.suppress(trio.WouldBlock):  # already woken
            self._kick_send.send_nowait(None)

    def add(self, action: Send | Serve) -> None:
        if isinstance(action, Send):
            if len(self.control) >= self.max_control:
                raise _Dropped("outbox_overflow")
            self.control.append(action.message)
        elif action.to_seq is None or action.limit is not None:
            if len(self.oneshots) >= self.max_control:
                raise _Dropped("outbox_overflow")
            self.oneshots.append(
                (action.author, _Range(action.from_seq, action.to_seq, action.limit))
            )
        else:
            r = self.ranges.get(action.author)
            if r is None:
                self.ranges[action.author] = _Range(
                    action.from_seq, action.to_seq, None, action.live
                )
            else:
                r.from_seq = min(r.from_seq, action.from_seq)
                r.to_seq = max(r.to_seq or 0, action.to_seq)
                r.live = r.live and action.live and r.from_seq == r.to_seq
        self._wake()

    def empty(self) -> bool:
        return not (self.control or self.ranges or self.oneshots)


@dataclass(eq=False)
class _Link:
    peer: PeerIdentity
    host: str
    direction: str
    stream: TCPFramedStream
    session: SyncSession
    outbox: _Outbox
    dialer_id: bytes
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)
    reason: str | None = None
    started: float = 0.0

    def is_open(self) -> bool:
        return self.reason is None and self.session.state == "open"

    def perform_local(self, actions: list[Action]) -> None:
        """Queue actions that came from a local event (never Ingest)."""
        try:
            for act in actions:
                if isinstance(act, (Send, Serve)):
                    self.outbox.add(act)
        except _Dropped as exc:
            self.drop(exc.reason)

    def drop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.cancel.cancel()


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
        limits: SyncLimits | None = None,
        batch_size: int = 500,
        refresh_interval: float = 2.0,
        handshake_timeout: float = 10.0,
        swarm_interval: float = 30.0,
        peek_timeout: float = 5.0,
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
        self.limits = limits or SyncLimits()
        self.batch_size = max(1, min(batch_size, self.limits.wire.max_batch))
        self.refresh_interval = refresh_interval
        self.handshake_timeout = handshake_timeout
        self.swarm_interval = swarm_interval
        self.peek_timeout = peek_timeout
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
        self._peek_events: dict[bytes, trio.Event] = {}
        self._nursery: trio.Nursery | None = None
        self._wakeup = trio.Event()
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
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
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
        self._remember(entry.author, entry.seq, (entry.to_bytes(), payload))
        self._local_changed(entry.author, (entry.seq, entry.id))
        if self._nursery is None:
            return
        if self.dht is not None and entry.author == self.identity:
            self._nursery.start_soon(self._put_head, entry.to_bytes())
        targets = self._targets_of(entry, payload)
        if targets:
            self._nursery.start_soon(self._deliver, entry, payload, targets)

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
                except Exception as exc:  # the DHT is best effort here
                    self._stats["dht_errors"] += 1
                    log.debug("get_peers for a peek failed: %s", exc)
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
        }

    # ------------------------------------------------------------------ interest

    async def _wanted(self) -> set[bytes]:
        follows = set(await self.store.following(self.identity))
        wanted = {self.identity} | follows
        if self.hops >= 2:
            for f in list(follows):
                wanted.update(await self.store.following(f))
        for author, reasons in (await self.store.interests()).items():
            if reasons - {"peek", "inbound"}:
                wanted.add(author)
        blocked = await self.store.blocked()
        wanted -= blocked - {self.identity}
        return wanted

    async def _refresh_interest(self) -> None:
        async with self._refresh_lock:
            wanted = await self._wanted()
            changed = False
            for author in wanted - set(self._heads):
                if author in self._forked:
                    continue
                if await self.store.feed_status(author) == "forked":
                    self._forked.add(author)
                    continue
                head = await self.store.head(author)
                self._heads[author] = (head[0], head[1]) if head else (0, None)
                changed = True
            for author in set(self._heads) - wanted:
                del self._heads[author]
                changed = True
            # Entries may reach the store by other paths (imports, the API):
            # pick up any head that moved without us.
            seqs = await self.store.heads(list(self._heads))
            for author, seq in seqs.items():
                cur = self._heads.get(author)
                if cur is not None and seq > cur[0] and author not in self._forked:
                    head = await self.store.head(author)
                    if head is not None:
                        self._local_changed(author, (head[0], head[1]))
            if changed:
                for link in self._open_links():
                    link.perform_local(link.session.set_interest(self._heads))
                self._wakeup_swarms()

    def _wakeup_swarms(self) -> None:
        for author in self._heads:
            self._swarm_checked.setdefault(author, -math.inf)

    def _local_changed(self, author: bytes, head: Head) -> None:
        cur = self._heads.get(author)
        if cur is None or head[0] <= cur[0]:
            return
        self._heads[author] = head
        for link in self._open_links():
            link.perform_local(link.session.local_update(author, head))

    def _open_links(self) -> list[_Link]:
        return [lk for lk in self._links.values() if lk.is_open()]

    def _remember(self, author: bytes, seq: int, item: Item) -> None:
        self._recent[(author, seq)] = item
        if len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)

    # ------------------------------------------------------------------ dialing

    async def _dial_loop(self) -> None:
        backoff: dict[tuple[str, int], float] = {}
        while True:
            with trio.move_on_after(self.refresh_interval):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            await self._refresh_interest()
            now = trio.current_time()
            connected = {(lk.host, lk.peer.listen_port) for lk in self._links.values()}
            for addr, next_try in list(self._explicit.items()):
                if addr in connected or addr in self._dialing or now < next_try:
                    continue
                assert self._nursery is not None
                self._nursery.start_soon(self._redial, addr, backoff)

    async def _redial(self, addr: tuple[str, int], backoff: dict[tuple[str, int], float]) -> None:
        ok = await self._dial(*addr)
        if ok:
            backoff.pop(addr, None)
            return
        delay = min(30.0, backoff.get(addr, 0.5) * 2)
        backoff[addr] = delay
        self._explicit[addr] = trio.current_time() + delay

    async def _dial(self, host: str, port: int) -> bool:
        """Open a link to host:port; True once it is up (or already was)."""
        for link in self._links.values():
            if link.host == host and link.peer.listen_port == port:
                return True
        if (host, port) in self._dialing or self._nursery is None:
            return False
        if len(self._links) >= self.max_peers:
            self._refused["pool_full"] += 1
            return False
        self._dialing.add((host, port))
        try:
            try:
                with trio.fail_after(self.handshake_timeout):
                    stream = await trio.open_tcp_stream(host, port)
            except (OSError, trio.TooSlowError):
                self._stats["dials_failed"] += 1
                return False
            return bool(await self._nursery.start(self._serve_stream, stream, "outbound", host))
        finally:
            self._dialing.discard((host, port))

    async def _swarm_loop(self) -> None:
        """Announce wanted feeds and dial their swarms (DHT)."""
        while True:
            await trio.sleep(min(self.refresh_interval, 1.0))
            now = trio.current_time()
            due = [
                a
                for a in list(self._heads)
                if now - self._swarm_checked.get(a, -math.inf) >= self.swarm_interval
            ]
            for author in due:
                self._swarm_checked[author] = now
                try:
                    if author not in self._announced:
                        with trio.move_on_after(10):
                            await self.dht.announce(author, self.port)
                            self._announced.add(author)
                    with trio.move_on_after(10):
                        found = await self.dht.get_peers(author)
                        have = sum(
                            1 for lk in self._links.values() if lk.session.peer_wants(author)
                        )
                        for node_id, host, port in found:
                            if have >= 2 or len(self._links) >= self.max_peers:
                                break
                            if node_id == self.node_id or node_id in self._links:
                                continue
                            if await self._dial(host, port):
                                have += 1
                except (ProtocolError, OSError) as exc:
                    self._stats["dht_errors"] += 1
                    log.debug("swarm lookup for %s failed: %s", author.hex()[:12], exc)
                except Exception as exc:  # DHTError and friends; never crash the service
                    self._stats["dht_errors"] += 1
                    log.debug("swarm lookup for %s failed: %s", author.hex()[:12], exc)

    async def _put_head(self, entry_bytes: bytes) -> None:
        try:
            with trio.move_on_after(10):
                await self.dht.put_head(entry_bytes)
        except Exception as exc:  # the DHT is best effort here
            self._stats["dht_errors"] += 1
            log.debug("put_head failed: %s", exc)

    # ------------------------------------------------------------------ mentions

    def _targets_of(self, entry: Entry, payload: bytes | None) -> set[bytes]:
        if entry.kind != "post" or payload is None:
            return set()
        try:
            value = decode_payload_untrusted(entry, payload)
        except ProtocolError:
            return set()
        targets = set(value.get("mentions", []))
        reply = value.get("reply")
        if reply is not None:
            targets.add(reply["parent"])  # resolved to an author in _deliver
            targets.add(reply["root"])
        targets.discard(self.identity)
        return targets

    async def _deliver(self, entry: Entry, payload: bytes | None, targets: set[bytes]) -> None:
        """Push a post to the swarms of the identities it mentions or replies to."""
        authors: set[bytes] = set()
        for t in targets:
            raw = await self.store.get_raw(t)  # a reply target is an entry id
            if raw is not None:
                try:
                    authors.add(decode_entry_untrusted(raw[0]).author)
                except ProtocolError:
                    continue
            elif len(t) == 32:
                authors.add(t)
        authors.discard(self.identity)
        item = (entry.to_bytes(), payload)
        push = Push(entry.author, entry.seq, item)
        for author in authors:
            sent: set[bytes] = set()
            for link in self._open_links():
                if link.session.peer_wants(author) and not link.session.peer_wants(entry.author):
                    link.perform_local([Send(push)])
                    sent.add(link.peer.node_id)
            if self.dht is None:
                continue
            with trio.move_on_after(10):
                try:
                    found = await self.dht.get_peers(author)
                except Exception as exc:
                    self._stats["dht_errors"] += 1
                    log.debug("get_peers failed: %s", exc)
                    continue
                for node_id, host, port in found[:8]:
                    if node_id in sent or node_id == self.node_id:
                        continue
                    if await self._dial(host, port):
                        for link in self._open_links():
                            if link.host == host and link.peer.listen_port == port:
                                link.perform_local([Send(push)])
                                self._stats["mentions_delivered"] += 1

    async def _accept_inbound(self, author: bytes, item: Item) -> bool:
        """Policy for an unsolicited entry: a post that mentions or replies to us."""
        entry_bytes, payload = item
        if payload is None:
            return False
        try:
            entry = decode_entry_untrusted(entry_bytes)
            if entry.author != author or entry.kind != "post":
                return False
            value = decode_payload_untrusted(entry, payload)
        except ProtocolError:
            return False
        if author in await self.store.blocked():
            return False
        if self.identity in value.get("mentions", []):
            return True
        reply = value.get("reply")
        if reply is not None:
            for target in (reply["parent"], reply["root"]):
                raw = await self.store.get_raw(target)
                if raw is None:
                    continue
                try:
                    if decode_entry_untrusted(raw[0]).author == self.identity:
                        return True
                except ProtocolError:
                    continue
        return False

    # ------------------------------------------------------------------ links

    async def _serve_stream(
        self,
        stream: trio.SocketStream,
        direction: str,
        host: str | None,
        *,
        task_status: trio.TaskStatus[bool] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Handshake, register and run one link; never raises on peer behaviour."""
        framed = TCPFramedStream(stream, self.limits.wire)
        if host is None:
            try:
                host = stream.socket.getpeername()[0]
            except OSError:
                host = "?"
        assert host is not None
        link: _Link | None = None
        try:
            try:
                with trio.fail_after(self.handshake_timeout):
                    peer = await handshake(
                        framed, self.node_key, self.port, limits=self.limits.wire
                    )
            except (ProtocolError, LinkClosed, trio.TooSlowError) as exc:
                reason = getattr(exc, "reason", None) or "timeout"
                self._refused[f"handshake_{reason}"] += 1
                task_status.started(False)
                return
            refusal = self._admit(peer, direction)
            if refusal is not None:
                self._refused[refusal] += 1
                task_status.started(False)
                return
            dialer = self.node_id if direction == "outbound" else peer.node_id
            session = SyncSession(self._heads, limits=self.limits)
            link = _Link(
                peer=peer,
                host=host,
                direction=direction,
                stream=framed,
                session=session,
                outbox=_Outbox(max_control=4 * self.limits.wire.max_clock),
                dialer_id=dialer,
                started=trio.current_time(),
            )
            old = self._links.get(peer.node_id)
            if old is not None:
                old.drop("duplicate_link")
            self._links[peer.node_id] = link
            self._stats["links_opened"] += 1
            link.perform_local(session.start())
            task_status.started(True)
            await self._run_link(link)
        finally:
            if link is not None:
                if self._links.get(link.peer.node_id) is link:
                    del self._links[link.peer.node_id]
                self._dropped[link.reason or "closed"] += 1
                self._bytes_in_closed += framed.bytes_in
                self._bytes_out_closed += framed.bytes_out
                self._frames_in_closed += framed.frames_in
                self._frames_out_closed += framed.frames_out
            await framed.aclose()

    def _admit(self, peer: PeerIdentity, direction: str) -> str | None:
        if peer.key == self.node_key.public_key:
            return "self"
        old = self._links.get(peer.node_id)
        if old is not None:
            # Both sides keep the link dialled by the lower node id, so a
            # simultaneous dial leaves exactly one link, not zero.
            dialer = self.node_id if direction == "outbound" else peer.node_id
            if dialer >= old.dialer_id:
                return "duplicate_link"
        elif len(self._links) >= self.max_peers:
            return "pool_full"
        return None

    async def _run_link(self, link: _Link) -> None:
        with link.cancel:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._guard, link, self._reader)
                nursery.start_soon(self._guard, link, self._writer)
        if link.reason not in _QUIET_ENDS and link.session.state == "open":
            # Tell the peer why, best effort and briefly.
            bye = link.session.close(link.reason or "closed")
            with trio.move_on_after(0.2) as scope:
                scope.shield = True
                for act in bye:
                    if isinstance(act, Send):
                        try:
                            await link.stream.send_frame(encode_message(act.message))
                        except LinkClosed:
                            break

    async def _guard(self, link: _Link, fn: Callable[[_Link], Awaitable[None]]) -> None:
        """Run a link task; turn every way it can end into a drop reason."""
        try:
            await fn(link)
        except _Dropped as exc:
            link.drop(exc.reason)
        except ProtocolError as exc:
            link.drop(f"protocol_{exc.reason}")
        except LinkClosed as exc:
            link.drop(exc.reason)
        except P2PSocialError as exc:  # storage trouble: not the peer's fault
            log.warning("link to %s ended: %s", link.peer.node_id.hex()[:12], exc)
            link.drop(f"local_{exc.reason}")
        except Exception:
            log.exception("bug in a replication link task")
            link.drop("internal_error")
        else:
            link.drop("closed")

    async def _reader(self, link: _Link) -> None:
        while True:
            body = await link.stream.receive_frame()
            msg = decode_message_untrusted(body, self.limits.wire)
            actions = link.session.receive(msg, trio.current_time())
            for act in actions:
                if isinstance(act, (Send, Serve)):
                    link.outbox.add(act)
                elif isinstance(act, Ingest):
                    await self._ingest(link, act)
                elif isinstance(act, StoreForkProof):
                    await self._on_fork_proof(link, act.proof)
                elif isinstance(act, PeekDone):
                    ev = self._peek_events.get(act.author)
                    if ev is not None:
                        ev.set()
                elif isinstance(act, Close):
                    link.drop("bye")
                    return

    async def _writer(self, link: _Link) -> None:
        out = link.outbox
        while True:
            if out.empty():
                await out.kick.receive()
                continue
            if out.control:
                await link.stream.send_frame(encode_message(out.control.popleft()))
                continue
            if out.oneshots:
                author, rng = out.oneshots.popleft()
                await self._send_oneshot(link, author, rng)
                continue
            author, rng = out.ranges.popitem(last=False)
            rest = await self._send_range_batch(link, author, rng)
            if rest is not None:
                # Round robin: other feeds get a turn before this one continues.
                cur = out.ranges.pop(author, None)
                if cur is not None:
                    rest.from_seq = min(rest.from_seq, cur.from_seq)
                    rest.to_seq = max(rest.to_seq or 0, cur.to_seq or 0)
                    rest.live = False
                out.ranges[author] = rest

    async def _read(self, author: bytes, from_seq: int, count: int) -> list[Item]:
        """Entries from_seq .. from_seq+count-1, from the recent cache or the store."""
        items: list[Item] = []
        seq = from_seq
        while len(items) < count:
            item = self._recent.get((author, seq))
            if item is None:
                break
            items.append(item)
            seq += 1
        if len(items) < count:
            items.extend(await self.store.entries_after(author, seq - 1, count - len(items)))
        return items

    def _cut(self, items: list[Item]) -> list[Item]:
        """Keep a batch under the frame limit (payloads can be 16 KiB each)."""
        budget = self.limits.wire.max_frame - 4096
        total = 0
        for i, (entry, payload) in enumerate(items):
            total += len(entry) + (len(payload) if payload else 0) + 16
            if total > budget:
                return items[: max(1, i)]
        return items

    async def _send_range_batch(self, link: _Link, author: bytes, rng: _Range) -> _Range | None:
        assert rng.to_seq is not None
        head = self._heads.get(author, (rng.to_seq, None))[0]
        count = min(self.batch_size, rng.to_seq - rng.from_seq + 1)
        if count <= 0:
            # A want beyond our head: say so, so the asker's want completes.
            await link.stream.send_frame(encode_message(Entries(author, rng.from_seq, head, ())))
            return None
        if rng.live and count == 1:
            items = await self._read(author, rng.from_seq, 1)
            if items:
                await link.stream.send_frame(encode_message(Push(author, rng.from_seq, items[0])))
                self._stats["entries_served"] += 1
            return None
        items = self._cut(await self._read(author, rng.from_seq, count))
        top = rng.from_seq + len(items) - 1
        batch = Entries(author, rng.from_seq, max(head, top), tuple(items))
        await link.stream.send_frame(encode_message(batch))
        self._stats["entries_served"] += len(items)
        if not items:
            return None
        nxt = rng.from_seq + len(items)
        if nxt > rng.to_seq:
            return None
        return _Range(nxt, rng.to_seq)

    async def _send_oneshot(self, link: _Link, author: bytes, rng: _Range) -> None:
        head_t = await self.store.head(author)
        head = head_t[0] if head_t else 0
        limit = rng.limit or self.batch_size
        first = rng.from_seq
        if first == 0:
            first = max(1, head - limit + 1)
        last = head if rng.to_seq is None else min(head, rng.to_seq)
        last = min(last, first + limit - 1)
        sent_any = False
        while first <= last:
            items = self._cut(
                await self._read(author, first, min(self.batch_size, last - first + 1))
            )
            if not items:
                break
            batch = Entries(author, first, max(head, first + len(items) - 1), tuple(items))
            await link.stream.send_frame(encode_message(batch))
            self._stats["entries_served"] += len(items)
            sent_any = True
            first += len(items)
        if not sent_any:
            await link.stream.send_frame(
                encode_message(Entries(author, 0 if head == 0 else first, head, ()))
            )

    # ------------------------------------------------------------------ ingest

    async def _ingest(self, link: _Link, act: Ingest) -> None:
        author = act.author
        if act.origin == "inbound" and not await self._accept_inbound(author, act.items[0]):
            self._stats["inbound_refused"] += 1
            return
        self._stats["entries_received"] += len(act.items)
        outcomes = await self.store.ingest(list(act.items), now_ms=int(time.time() * 1000))
        stored: list[tuple[int, Item]] = []
        fork = any(o.status == "rejected" and o.reason == "fork" for o in outcomes)
        if fork:
            await self._fork_detected(author)
        frozen = fork or author in self._forked
        for i, (item, out) in enumerate(zip(act.items, outcomes, strict=True)):
            if out.status == "rejected":
                self._rejected[out.reason or "unknown"] += 1
                if out.reason in _BENIGN_REJECTIONS:
                    continue
                if frozen and out.reason in _CHAIN_REJECTIONS:
                    # Entries above a fork point do not link to what we hold:
                    # the peer relays the other history, which is not a lie.
                    continue
                raise _Dropped(f"invalid_entry_{out.reason}")
            if out.author != author or out.seq != act.start + i:
                # Valid entry, but not what the batch claimed: a lying peer.
                raise _Dropped("mislabeled_entry")
            if out.status == "stored":
                self._stats["entries_stored"] += 1
                stored.append((out.seq, item))
            else:
                self._stats["entries_duplicate"] += 1
        if stored:
            for seq, item in stored[-64:]:
                self._remember(author, seq, item)
            if act.origin == "peek":
                await self.store.set_interest(author, "peek")
            elif act.origin == "inbound":
                await self.store.set_interest(author, "inbound")
            if author in self._heads:
                head = await self.store.head(author)
                if head is not None:
                    self._local_changed(author, (head[0], head[1]))
            if self.on_stored is not None:
                entries = []
                for _seq, (raw, _payload) in stored:
                    try:
                        entries.append(decode_entry_untrusted(raw))
                    except ProtocolError:  # pragma: no cover - the store just accepted it
                        continue
                try:
                    self.on_stored(entries)
                except Exception:  # a callback bug must not drop the peer
                    log.exception("on_stored callback failed")

    async def _fork_detected(self, author: bytes) -> None:
        proofs = await self.store.fork_proofs(author)
        new = [p for p in proofs if p not in self._known_proofs]
        if not new:
            return
        self._stats["forks_detected"] += 1
        log.warning("feed %s forked: frozen, %d proof(s)", author.hex()[:12], len(new))
        self._known_proofs.update(new)
        self._freeze(author)
        for link in self._open_links():
            for proof in new:
                link.perform_local(link.session.send_fork_proof(author, proof))

    def _freeze(self, author: bytes) -> None:
        # The feed stays in the clocks (the store refuses anything above the
        # fork, as "forked", which is not the relaying peer's fault).
        self._forked.add(author)

    async def _on_fork_proof(self, link: _Link, proof: bytes) -> None:
        if proof in self._known_proofs:
            return
        try:
            fp = decode_fork_proof_untrusted(proof)
        except ProtocolError as exc:
            raise _Dropped(f"bad_fork_proof_{exc.reason}") from None
        self._known_proofs.add(proof)
        if fp.author not in self._heads:
            return
        # Ingesting both halves makes the store record the proof and freeze.
        outcomes = await self.store.ingest(
            [(fp.first.to_bytes(), None), (fp.second.to_bytes(), None)],
            now_ms=int(time.time() * 1000),
        )
        del outcomes
        if await self.store.feed_status(fp.author) == "forked":
            self._stats["forks_detected"] += 1
            self._freeze(fp.author)
            for other in self._open_links():
                if other is not link:
                    other.perform_local(other.session.send_fork_proof(fp.author, proof))
