"""Finding peers: :class:`SwarmDiscovery` dials, announces and looks up.

It keeps the links told of the wanted feeds (re-read from the store every
``refresh_interval``, or at once when asked), redials explicit peers with
backoff, announces each wanted feed in the DHT and dials its swarm (a feed
with no linked holder is looked up again soon, with backoff), publishes our
head, and pushes posts to the swarms of the identities they mention or
reply to.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import msgpack
import trio

from ...protocol.entries import Entry, decode_entry_untrusted, decode_payload_untrusted
from ...protocol.errors import P2PSocialError, ProtocolError
from ...protocol.sync import Send
from ...protocol.wire import Push
from ..relay.client import RelayAddress
from .heads import Heads
from .link import Link, LinkSet, head_moved
from .store import ReplicationStore

__all__ = ["Dialler", "SwarmDHT", "SwarmDiscovery"]

#: Records keep the service's logger name from before the split into modules,
#: so logging configuration aimed at the replication service still applies.
log = logging.getLogger("p2psocial.node.replication")

#: Seconds between two puts of our head record: a burst of posts costs one
#: put (two signature checks and a lookup) per interval, not one per post.
HEAD_PUT_INTERVAL = 0.1
#: Most swarm lookups (a feed's announce and get_peers, and beside that its head
#: record once 2 holders are linked, spec/sync.md §6) started per second.
#: Each costs a few ms of the event loop that also serves the local API, so a
#: node following thousands of feeds spreads its lookups out rather than
#: running them in bursts (1,000 feeds cost ~20% of a core unspread).
MAX_LOOKUPS_PER_S = 10.0
#: The longest wait between two island rounds of one feed (spec/sync.md §6):
#: rounds that bring nothing are spaced swarm_interval, twice that, ... up to this.
MAX_ISLAND_SPACING = 3600.0


class SwarmDHT(Protocol):
    """What discovery needs from the DHT (``p2psocial.node.dht.DHTNode``)."""

    node_id: bytes

    async def announce(self, author: bytes, peer_port: int) -> Any: ...
    async def get_peers(self, author: bytes) -> list[tuple[bytes, str, int]]: ...
    async def put_head(self, entry_bytes: bytes) -> Any: ...
    async def get_head(self, author: bytes) -> bytes | None: ...
    def relay_hint(self, node_id: bytes) -> tuple[bytes, str, int] | None: ...


class Dialler(LinkSet, Protocol):
    """What discovery needs from the link pool: the links, and a way to add one."""

    node_id: bytes
    port: int

    @property
    def links(self) -> Mapping[bytes, Link]:
        """Every link in the pool, by remote node id."""
        ...

    def has_room(self) -> bool:
        """Whether a dial of ours could get a link."""
        ...

    def dialing(self, host: str, port: int) -> bool:
        """Whether a dial to host:port is under way."""
        ...

    async def dial(self, host: str, port: int, node_id: bytes | None = None) -> bool:
        """Open a link (to node ``node_id`` only, if given); True once it is up."""
        ...

    async def dial_relayed(self, relay: RelayAddress, node_id: bytes) -> bool:
        """Open a link to node ``node_id`` through ``relay``; True once it is up."""
        ...


class SwarmDiscovery:
    """Interest, explicit peers and DHT swarms.

    Args:
        dht: the DHT for swarms and heads, or None (explicit peers only).
        pool: the link pool to dial into.
        heads: the wanted feeds.
        store: where reply targets are resolved to their authors.
        identity: the user identity hosted here.
        refresh_interval: seconds between interest refreshes and redials.
        swarm_interval: seconds between lookups of one feed's swarm.
        max_lookups_per_s: swarm lookups started per second, at most.
    """

    def __init__(
        self,
        dht: SwarmDHT | None,
        pool: Dialler,
        heads: Heads,
        store: ReplicationStore,
        *,
        identity: bytes,
        refresh_interval: float = 2.0,
        swarm_interval: float = 30.0,
        max_lookups_per_s: float = MAX_LOOKUPS_PER_S,
    ) -> None:
        self.dht, self.pool, self.heads, self.store = dht, pool, heads, store
        self.identity = identity
        self.refresh_interval = refresh_interval
        self.swarm_interval = swarm_interval
        self.max_lookups_per_s = max_lookups_per_s
        #: Explicit peers (``connect``): address -> when to redial it next.
        self._explicit: dict[tuple[str, int], float] = {}
        self._backoff: dict[tuple[str, int], float] = {}
        self._swarm_checked: dict[bytes, float] = {}
        self._announced: set[bytes] = set()
        self._announcing: set[bytes] = set()
        self._swarm_backoff: dict[bytes, float] = {}
        #: Feeds whose head record was ahead of our head at their last lookup:
        #: author -> (our seq then, island rounds since it last moved, when the
        #: next round may be), spec/sync.md §6 "Islands".
        self._islands: dict[bytes, tuple[int, int, float]] = {}
        self._nursery: trio.Nursery | None = None
        # Our newest head not yet put in the DHT, and whether a put runs: a
        # burst of posts puts only the latest head (one task, not one a post).
        self._head_wanted: bytes | None = None
        self._head_seq = 0  # the newest head put or waiting
        self._head_putting = False
        self._wakeup = trio.Event()
        self._swarm_due = trio.Event()
        self._stats: Counter[str] = Counter()
        # The daemon runs its DHT and its links under one node key, so the
        # node id a swarm lists is the id the link must prove, and a dial
        # pins it (spec/sync.md §10.5). A DHT under another key (an embedder's
        # choice, or a test harness) lists ids we cannot hold links to.
        self._pin_ids = dht is not None and dht.node_id == pool.node_id

    def _expect(self, node_id: bytes) -> bytes | None:
        """The node id a dial to a swarm member must meet, if we can tell."""
        return node_id if self._pin_ids else None

    async def dial_member(self, node_id: bytes, host: str, port: int) -> bool:
        """Dial a swarm member: through the relay its announce named, else directly
        (spec/sync.md §11.7)."""
        relay = self.dht.relay_hint(node_id) if self.dht is not None else None
        if relay is not None and self._pin_ids:
            return await self.pool.dial_relayed(RelayAddress(*relay), node_id)
        return await self.pool.dial(host, port, self._expect(node_id))

    @property
    def running(self) -> bool:
        """Whether ``run`` is up (tasks can be started)."""
        return self._nursery is not None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Refresh, redial and look up swarms until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._dial_loop)
                if self.dht is not None:
                    nursery.start_soon(self._swarm_loop)
                task_status.started()
        finally:
            self._nursery = None

    # ------------------------------------------------------------------ interest

    async def refresh(self) -> None:
        """Re-read interest from the store and tell every link what changed."""
        change = await self.heads.refresh()
        for author, head in change.moved:
            self.pool.broadcast(head_moved(author, head))
        if change.changed:
            now = trio.current_time()
            self.pool.broadcast(lambda s: s.set_interest(self.heads, now))
            for author in self.heads:
                self._swarm_checked.setdefault(author, -math.inf)
            # A newly wanted feed is looked up now, not at the next tick: a user
            # who follows someone sees their posts without a second's delay.
            self._swarm_due.set()

    def interest_changed(self) -> None:
        """Refresh soon (follows or policy changed)."""
        self._wakeup.set()

    # ------------------------------------------------------------------ dialing

    async def connect(self, host: str, port: int) -> bool:
        """Dial ``host:port`` now and keep redialling it with backoff if it drops."""
        self._explicit.setdefault((host, port), 0.0)
        if self._nursery is None:
            return False
        return await self.pool.dial(host, port)

    async def _dial_loop(self) -> None:
        while True:
            with trio.move_on_after(self.refresh_interval):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            await self.refresh()
            now = trio.current_time()
            connected = {(lk.host, lk.peer.listen_port) for lk in self.pool.links.values()}
            for addr, next_try in list(self._explicit.items()):
                if addr in connected or self.pool.dialing(*addr) or now < next_try:
                    continue
                assert self._nursery is not None
                self._nursery.start_soon(self._redial, addr)

    async def _redial(self, addr: tuple[str, int]) -> None:
        ok = await self.pool.dial(*addr)
        if ok:
            self._backoff.pop(addr, None)
            return
        delay = min(30.0, self._backoff.get(addr, 0.5) * 2)
        self._backoff[addr] = delay
        self._explicit[addr] = trio.current_time() + delay

    async def _get_peers(
        self, author: bytes, failed: str, bug: str
    ) -> list[tuple[bytes, str, int]]:
        """The DHT's holders of a feed; [] when the lookup fails (counted, logged)."""
        assert self.dht is not None
        try:
            return await self.dht.get_peers(author)
        except (P2PSocialError, OSError) as exc:  # the DHT is best effort here
            self._stats["dht_errors"] += 1
            log.debug(failed, exc)
        except Exception:
            self._stats["internal_errors"] += 1
            log.exception(bug)
        return []

    async def dial_holders(self, author: bytes, count: int = 4) -> None:
        """Link to up to ``count`` members of a feed's swarm (for a peek); the caller bounds the time."""
        if self.dht is None or self._nursery is None:
            return
        found = await self._get_peers(
            author, "get_peers for a peek failed: %s", "bug in the swarm lookup of a peek"
        )
        for node_id, host, port in found[:count]:
            await self.dial_member(node_id, host, port)

    async def _swarm_loop(self) -> None:
        """Announce wanted feeds and dial their swarms (DHT).

        Lookups are paced by a token bucket (``max_lookups_per_s``, a burst of
        one second's worth), the longest-unchecked feeds first, so a newly
        followed feed is not queued behind a thousand retries. Lookups run
        even while the routing table is empty: this node's own DHT store
        holds what its contacts announced to it.
        """
        assert self.dht is not None
        rate = self.max_lookups_per_s
        tokens, filled = rate, trio.current_time()
        while True:
            with trio.move_on_after(min(self.refresh_interval, 1.0)):
                await self._swarm_due.wait()
            self._swarm_due = trio.Event()
            now = trio.current_time()
            tokens, filled = min(rate, tokens + (now - filled) * rate), now
            due = [
                a
                for a in list(self.heads)
                if now - self._swarm_checked.get(a, -math.inf) >= self.swarm_interval
            ]
            if not due:
                continue
            due.sort(key=lambda a: self._swarm_checked.get(a, -math.inf))
            batch = due[: int(tokens)]
            tokens -= len(batch)
            self._stats["swarm_lookups_deferred"] += len(due) - len(batch)
            for author in batch:
                await self._swarm_lookup(author)

    async def _swarm_lookup(self, author: bytes) -> None:
        """Announce one wanted feed (once) and dial up to two of its holders.

        With two or more holders linked already, it asks the DHT for the
        feed's head record: when that is ahead of our head and no linked
        holder's clock is, the holders we have cannot bring it (they and we
        form an island of the swarm, cut off from where the feed grows), and
        two more holders are dialled (spec/sync.md §6, "Islands").
        """
        assert self.dht is not None
        now = trio.current_time()
        self._swarm_checked[author] = now
        self._stats["swarm_lookups"] += 1
        have = 0
        if author not in self._announced and author not in self._announcing:
            # Beside the lookup, not before it: an announce walks the DHT too,
            # and behind a NAT (unreachable contacts) it can take its full 10 s.
            assert self._nursery is not None
            self._announcing.add(author)
            self._nursery.start_soon(self._announce, author)
        with self._best_effort(f"the swarm lookup for {author.hex()[:12]}"):
            with trio.move_on_after(10):
                # The head record is read beside get_peers, not after it: the
                # loop runs lookups one by one, and a second walk in series
                # would double a round's time.
                check = author != self.identity and self._holders_linked(author) >= 2
                found, record = await self._peers_and_head(author, check=check)
                have, want = self._holders_linked(author), 2
                if check and have >= want and self._stranded(author, record, now):
                    self._stats["swarm_islands"] += 1
                    want = have + 2
                for node_id, host, port in found:
                    if have >= want or not self.pool.has_room():
                        break
                    if node_id == self.pool.node_id or node_id in self.pool.links:
                        continue
                    if await self.dial_member(node_id, host, port):
                        have += 1
        # Failed or found no one: look again soon, with backoff.
        self._schedule_swarm_retry(author, now, linked=have > 0)

    def _holders_linked(self, author: bytes) -> int:
        return sum(1 for lk in self.pool.links.values() if lk.session.peer_wants(author))

    async def _peers_and_head(
        self, author: bytes, *, check: bool
    ) -> tuple[list[tuple[bytes, str, int]], bytes | None]:
        """get_peers of ``author``, and with ``check`` its head record at the
        same time. A failed get_peers raises as it would alone; a failed head
        read counts as a DHT error and reads as no record."""
        assert self.dht is not None
        dht = self.dht
        record: list[bytes | None] = [None]

        async def read_head() -> None:
            with self._best_effort(f"the head read for {author.hex()[:12]}"):
                record[0] = await dht.get_head(author)

        if not check or self.heads.is_forked(author):
            return await dht.get_peers(author), None
        failed: Exception | None = None
        found: list[tuple[bytes, str, int]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_head)
            try:
                found = await dht.get_peers(author)
            except Exception as exc:  # raised below, not wrapped in the nursery's group
                failed = exc
                nursery.cancel_scope.cancel()
        if failed is not None:
            raise failed
        return found, record[0]

    def _stranded(self, author: bytes, raw: bytes | None, now: float) -> bool:
        """Whether to dial two more holders of ``author``: its head record
        ``raw`` (from the DHT) is ahead of ours, no linked peer can bring it, and an island round is
        due (spec/sync.md §6, "Islands"). ``now`` is when the lookup began
        (rounds are timed from lookup starts, which the swarm loop spaces).

        A linked peer whose clock is above our head is given until the next
        lookup to bring the entry; if our head has not moved by then, its claim
        counts for nothing (a peer could claim a head it never serves). Rounds
        while our head stands still are spaced ``swarm_interval``, twice that,
        ... up to :data:`MAX_ISLAND_SPACING`, so a head that nobody can serve
        (its author went offline after the put, or signed a seq it never
        publishes) costs two dials now and then, not two at every lookup.
        """
        if self.heads.is_forked(author):
            return False  # frozen here: no holder can bring it past the fork
        # ``raw`` is the DHT's head record: a valid entry signed by ``author``
        # (DHTNode.get_head validates every record it takes), or None.
        ours = self.heads.get(author)
        if raw is None or ours is None or decode_entry_untrusted(raw).seq <= ours[0]:
            self._islands.pop(author, None)
            return False
        prev = self._islands.get(author)
        if prev is None or prev[0] != ours[0]:
            # Newly ahead, or our head moved since: a fresh start.
            self._islands[author] = (ours[0], 0, now)
            if len(self._islands) > len(self.heads):  # drop feeds no longer wanted
                self._islands = {a: v for a, v in self._islands.items() if a in self.heads}
            if any(lk.session.peer_head(author) > ours[0] for lk in self.pool.links.values()):
                return False
        _, rounds, due = self._islands[author]
        if now < due:
            return False
        spacing = min(MAX_ISLAND_SPACING, self.swarm_interval * 2 ** min(rounds, 16))
        self._islands[author] = (ours[0], rounds + 1, now + spacing)
        return True

    async def _announce(self, author: bytes) -> None:
        """Announce that we hold a wanted feed (once; the DHT keeps it placed)."""
        assert self.dht is not None
        try:
            with self._best_effort(f"the announce for {author.hex()[:12]}"):
                with trio.move_on_after(10):
                    await self.dht.announce(author, self.pool.port)
                    self._announced.add(author)
        finally:
            self._announcing.discard(author)

    @contextlib.contextmanager
    def _best_effort(self, what: str) -> Iterator[None]:
        """Count and log what ends a DHT task: the network's doing, or a bug
        (which ends this task only, loudly: README, failures)."""
        try:
            yield
        except (P2PSocialError, OSError) as exc:
            self._stats["dht_errors"] += 1
            log.debug("%s failed: %s", what, exc)
        except Exception:
            self._stats["internal_errors"] += 1
            log.exception("bug in %s", what)

    def _schedule_swarm_retry(self, author: bytes, now: float, *, linked: bool) -> None:
        """A wanted feed with no linked holder is looked up again soon (1 s,
        doubling up to ``swarm_interval``), not only at the next interval: its
        holders may not have been listed yet when we first looked."""
        if linked or author == self.identity:
            self._swarm_backoff.pop(author, None)
            return
        backoff = min(self.swarm_interval, self._swarm_backoff.get(author, 0.5) * 2)
        self._swarm_backoff[author] = backoff
        self._swarm_checked[author] = now - self.swarm_interval + backoff

    # ------------------------------------------------------------------ own entries

    def publish(self, entry: Entry, payload: bytes | None) -> bool:
        """A new own entry: publish our head and deliver its mentions, as tasks.

        Returns:
            False if not running (nothing was started).
        """
        if self._nursery is None:
            return False
        if self.dht is not None and entry.author == self.identity:
            if entry.seq <= self._head_seq or self._head_wanted is not None:
                # Overtaken, or overtaking one not yet put: one of the two is
                # never put on its own.
                self._stats["head_puts_coalesced"] += 1
            if entry.seq > self._head_seq:
                self._head_seq, self._head_wanted = entry.seq, entry.to_bytes()
            if self._head_wanted is not None and not self._head_putting:
                self._head_putting = True
                self._nursery.start_soon(self._put_heads)
        targets = self._targets_of(entry, payload)
        if targets:
            self._nursery.start_soon(self._deliver, entry, payload, targets)
        return True

    async def _put_heads(self) -> None:
        """Put the newest wanted head until none is left, at most one put per
        :data:`HEAD_PUT_INTERVAL`: heads that a later one overtook meanwhile are
        never put (counted as ``head_puts_coalesced``)."""
        try:
            while self._head_wanted is not None:
                entry_bytes, self._head_wanted = self._head_wanted, None
                self._stats["head_puts"] += 1
                await self._put_head(entry_bytes)
                await trio.sleep(HEAD_PUT_INTERVAL)
        finally:
            self._head_putting = False

    async def _put_head(self, entry_bytes: bytes) -> None:
        assert self.dht is not None
        try:
            with trio.move_on_after(10):
                await self.dht.put_head(entry_bytes)
        except (P2PSocialError, OSError) as exc:  # the DHT is best effort here
            self._stats["dht_errors"] += 1
            log.debug("put_head failed: %s", exc)
        except Exception:
            self._stats["internal_errors"] += 1
            log.exception("bug in publishing our head")

    def _targets_of(self, entry: Entry, payload: bytes | None) -> set[bytes]:
        if entry.kind != "post" or payload is None:
            return set()
        if entry.author == self.identity:
            # This node's own post, its payload encoded and checked by
            # create_entry a moment ago: decoding it is all that is needed
            # (the strict decode costs more than the rest of this per post).
            value = msgpack.unpackb(payload, raw=False)
        else:
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
        # A link whose peer has not sent its first clock yet does not say
        # what the peer wants: wait for it (briefly), or a mention posted
        # right after a link came up would be sent nowhere.
        with trio.move_on_after(5):
            for link in self.pool.open_links():
                await link.answered.wait()
        for author in authors:
            sent: set[bytes] = set()
            for link in self.pool.open_links():
                sess = link.session
                # A peer catching ``author`` up (its own feed, say) keeps it
                # out of its clock meanwhile, but has asked for it.
                wants = sess.peer_wants(author) or sess.peer_asked(author)
                if wants and not sess.peer_wants(entry.author):
                    link.perform_local([Send(push)])
                    sent.add(link.peer.node_id)
            if self.dht is None:
                continue
            with trio.move_on_after(10):
                found = await self._get_peers(
                    author, "get_peers failed: %s", "bug in delivering a mention"
                )
                for node_id, host, port in found[:8]:
                    if node_id in sent or node_id == self.pool.node_id:
                        continue
                    if await self.dial_member(node_id, host, port):
                        for link in self.pool.open_links():
                            if link.peer.node_id == node_id or (
                                link.host == host and link.peer.listen_port == port
                            ):
                                link.perform_local([Send(push)])
                                self._stats["mentions_delivered"] += 1
                                break

    def statistics(self) -> dict[str, Any]:
        """Lookup failures (network and bugs), mentions delivered, head puts,
        the swarm lookups made and deferred by the rate cap, and the lookups
        that found this node in an island of the swarm (``swarm_islands``)."""
        return {
            "swarm_lookups": self._stats["swarm_lookups"],
            "swarm_islands": self._stats["swarm_islands"],
            "swarm_lookups_deferred": self._stats["swarm_lookups_deferred"],
            "explicit_peers": len(self._explicit),
            "dht_errors": self._stats["dht_errors"],
            "internal_errors": self._stats["internal_errors"],
            "mentions_delivered": self._stats["mentions_delivered"],
            "head_puts": self._stats["head_puts"],
            "head_puts_coalesced": self._stats["head_puts_coalesced"],
        }
