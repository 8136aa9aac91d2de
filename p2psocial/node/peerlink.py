"""Peer links of the replication service: outbox, link record and link tasks.

One link is one authenticated TCP connection to one remote node, running a
:class:`~p2psocial.protocol.sync.SyncSession`. This module holds what a link
is made of (:class:`_Outbox`, :class:`_Link`) and :class:`_LinkPool`, the
layer of :class:`~p2psocial.node.replication.Replicator` that handshakes,
admits and runs links: a reader task that feeds the machine and a writer task
that drains the outbox, serving feed ranges from the recent cache or the
store. What a received batch does to the store is the ingest layer's
business (:mod:`p2psocial.node.ingest`); this layer only calls its hooks.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from ..protocol.errors import P2PSocialError, ProtocolError
from ..protocol.identity import SigningKey
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
    Bye,
    Clock,
    Entries,
    Item,
    Message,
    Push,
    decode_message_untrusted,
    encode_message,
)
from .links import LinkClosed, PeerIdentity, TCPFramedStream, handshake

if TYPE_CHECKING:
    from .replication import ReplicationStore

#: Records keep the service's logger name from before the split into modules,
#: so logging configuration aimed at the replication service still applies.
log = logging.getLogger("p2psocial.node.replication")

#: Link ends after which no bye is sent (the peer left, or it is a duplicate).
_QUIET_ENDS = frozenset({"eof", "broken", "bye", "duplicate_link", "closed", "shutdown"})


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
    #: Last time a frame arrived / was sent (trio clock).
    last_in: float = 0.0
    last_out: float = 0.0
    #: Entries this peer handed us for storing (a measure of its use to us).
    items_in: int = 0
    #: Set once the peer's first message arrived, or the link ended.
    answered: trio.Event = field(default_factory=trio.Event)

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
        self.answered.set()
        self.cancel.cancel()

    def shares(self, wanted: dict[bytes, Head]) -> int:
        """How many feeds we want does the peer want too (what we sync over it)."""
        return sum(1 for a in self.session.peer_feeds() if a in wanted)


def address_group(host: str) -> str | None:
    """The network a host belongs to for per-network limits: its /24 (IPv4)
    or /48 (IPv6). None for loopback and for anything that is not an IP: the
    owner's own machine runs as many nodes as it likes."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.is_loopback:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class _LinkPool:
    """The link layer of the replicator: the pool of links and their tasks.

    State is created by ``Replicator.__init__``; the annotations below name
    the part of it this layer reads and writes.
    """

    store: ReplicationStore
    node_key: SigningKey
    node_id: bytes
    port: int
    max_peers: int
    limits: SyncLimits
    batch_size: int
    handshake_timeout: float
    #: A link on which nothing arrives for this long is dropped (idle_timeout).
    idle_timeout: float
    #: A link on which we sent nothing for this long gets an empty clock.
    keepalive_interval: float
    #: An inbound link younger than this is never evicted for a newcomer.
    eviction_grace: float
    #: Links from one IP address, and from one /24 (IPv4) or /48 (IPv6).
    max_per_address: int
    max_per_network: int
    #: Connections still in the handshake: in all, and from one IP address.
    max_handshaking: int
    max_handshaking_per_address: int
    max_handshaking_per_network: int
    _handshaking: Counter[str]
    _links: dict[bytes, _Link]
    _heads: dict[bytes, Head]
    _recent: OrderedDict[tuple[bytes, int], Item]
    _recent_max: int
    _peek_events: dict[bytes, trio.Event]
    _stats: Counter[str]
    _dropped: Counter[str]
    _refused: Counter[str]
    _bytes_in_closed: int
    _bytes_out_closed: int
    _frames_in_closed: int
    _frames_out_closed: int

    def _open_links(self) -> list[_Link]:
        return [lk for lk in self._links.values() if lk.is_open()]

    def _forget_cached(self, author: bytes | None = None) -> None:
        """Drop cached items (all, or one author's) after payloads were purged
        from the store: the cache must never serve what the store no longer
        holds (a blocked author's or a deleted post's payload)."""
        if author is None:
            self._recent.clear()
            return
        for key in [k for k in self._recent if k[0] == author]:
            del self._recent[key]

    def _remember(self, author: bytes, seq: int, item: Item) -> None:
        self._recent[(author, seq)] = item
        if len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)

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
        # Connections that have not proven a key yet cost memory and a timer
        # each: bound them, in all and per address, before reading a byte.
        group = address_group(host)
        if direction == "inbound" and (
            sum(self._handshaking.values()) >= self.max_handshaking
            or self._handshaking[host] >= self.max_handshaking_per_address
            or (
                group is not None
                and sum(n for h, n in self._handshaking.items() if address_group(h) == group)
                >= self.max_handshaking_per_network
            )
        ):
            self._refused["too_many_handshakes"] += 1
            task_status.started(False)
            await framed.aclose()
            return
        self._handshaking[host] += 1
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
            finally:
                self._handshaking[host] -= 1
                if self._handshaking[host] <= 0:
                    del self._handshaking[host]
            refusal = self._admit(peer, direction, host)
            if refusal is not None:
                self._refused[refusal] += 1
                task_status.started(False)
                # Say why, so a dialler knows it was refused (and need not
                # count this as a link); best effort and brief.
                with trio.move_on_after(1.0), contextlib.suppress(LinkClosed):
                    await framed.send_frame(encode_message(Bye(refusal)))
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
            link.last_in = link.last_out = link.started
            link.perform_local(session.start())
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._run_link, link)
                # Up means the peer answered with a message of its own, not
                # merely finished the hello: a peer that refuses us says bye.
                with trio.move_on_after(self.handshake_timeout):
                    await link.answered.wait()
                task_status.started(link.reason is None)
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

    def _admit(self, peer: PeerIdentity, direction: str, host: str) -> str | None:
        """Why a link just authenticated may not join the pool, or None.

        May evict a link to make room: when the pool is full, the least
        useful inbound link past its grace period that shares no wanted feed
        makes way, so idle links cannot keep an honest newcomer out.
        """
        if peer.key == self.node_key.public_key:
            return "self"
        old = self._links.get(peer.node_id)
        if old is not None:
            # Both sides keep the link dialled by the lower node id, so a
            # simultaneous dial leaves exactly one link, not zero.
            dialer = self.node_id if direction == "outbound" else peer.node_id
            if dialer >= old.dialer_id:
                return "duplicate_link"
            return None
        # Links being dropped (evicted, say) leave the dict a moment later.
        live = [lk for lk in self._links.values() if lk.reason is None]
        if direction == "inbound":
            group = address_group(host)
            if group is not None:
                if sum(1 for lk in live if lk.host == host) >= self.max_per_address:
                    return "address_limit"
                if sum(1 for lk in live if address_group(lk.host) == group) >= self.max_per_network:
                    return "network_limit"
        inbound = [lk for lk in live if lk.direction == "inbound"]
        if direction == "outbound":
            # A link we chose gets a place: inbound links, which anyone can
            # open and fill with claimed interest, must not eclipse us.
            if len(live) < self.max_peers:
                return None
            victim = self._outbound_victim()
            if victim is None:
                return "pool_full"
        elif len(live) >= self.max_peers or len(inbound) >= self._max_inbound():
            victim = self._eviction_candidate()
            if victim is None:
                return "pool_full"
        else:
            return None
        self._stats["links_evicted"] += 1
        victim.drop("evicted")
        return None

    def _max_inbound(self) -> int:
        """Inbound links at most: a quarter of the pool stays for our own dials."""
        return max(1, self.max_peers - max(1, self.max_peers // 4))

    def _inbound_past_grace(self) -> list[_Link]:
        now = trio.current_time()
        return [
            lk
            for lk in self._links.values()
            if lk.direction == "inbound"
            and lk.reason is None
            and now - lk.started >= self.eviction_grace
        ]

    @staticmethod
    def _least_useful(links: list[_Link]) -> _Link | None:
        """Fewest entries received, then longest silent."""
        return min(links, key=lambda lk: (lk.items_in, lk.last_in), default=None)

    def _outbound_victim(self) -> _Link | None:
        """The inbound link to drop for a dial of ours when the pool is full:
        the least useful past its grace period, whatever it claims to want."""
        return self._least_useful(self._inbound_past_grace())

    def _pool_has_room(self) -> bool:
        """Whether a dial of ours could get a link (with room, or by evicting)."""
        live = sum(1 for lk in self._links.values() if lk.reason is None)
        return live < self.max_peers or self._outbound_victim() is not None

    def _eviction_candidate(self) -> _Link | None:
        """The inbound link an inbound newcomer may replace: past its grace
        period, sharing no feed we want, and the least useful of those."""
        return self._least_useful(
            [lk for lk in self._inbound_past_grace() if lk.shares(self._heads) == 0]
        )

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
            with trio.move_on_after(self.idle_timeout) as idle:
                body = await link.stream.receive_frame()
            if idle.cancelled_caught:
                # The peer keeps a live link busy at least with keepalives.
                raise _Dropped("idle_timeout")
            link.last_in = trio.current_time()
            msg = decode_message_untrusted(body, self.limits.wire)
            actions = link.session.receive(msg, link.last_in)
            if not isinstance(msg, Bye):
                link.answered.set()
            for act in actions:
                if isinstance(act, (Send, Serve)):
                    link.outbox.add(act)
                elif isinstance(act, Ingest):
                    link.items_in += len(act.items)
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
                wait = link.last_out + self.keepalive_interval - trio.current_time()
                with trio.move_on_after(max(0.0, wait)) as quiet:
                    await out.kick.receive()
                if quiet.cancelled_caught:
                    # Nothing to say for a while: an empty clock (a delta with
                    # no changes) tells the peer we are alive (spec/sync.md 7).
                    await link.stream.send_frame(encode_message(Clock(())))
                    link.last_out = trio.current_time()
                    self._stats["keepalives_sent"] += 1
                continue
            link.last_out = trio.current_time()
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

    # ------------------------------------------------------------------ hooks

    async def _ingest(self, link: _Link, act: Ingest) -> None:
        """Store a batch the machine accepted (implemented by the ingest layer)."""
        raise NotImplementedError

    async def _on_fork_proof(self, link: _Link, proof: bytes) -> None:
        """Handle a fork proof from a peer (implemented by the ingest layer)."""
        raise NotImplementedError
