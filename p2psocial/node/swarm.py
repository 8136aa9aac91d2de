"""Interest, dialling and DHT swarms of the replication service.

:class:`_Swarm` is the layer of :class:`~p2psocial.node.replication.Replicator`
that decides which feeds are wanted (own feed, follows, ``hops = 2`` adds
follows of follows, minus blocks), tells every link when that set or a head
changes, redials explicit peers with backoff, announces wanted feeds in the
DHT and dials their swarms, publishes our head, and pushes posts to the
swarms of the identities they mention or reply to.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import trio

from ..protocol.entries import Entry, decode_entry_untrusted, decode_payload_untrusted
from ..protocol.errors import P2PSocialError, ProtocolError
from ..protocol.sync import Head, Send
from ..protocol.wire import Push
from .peerlink import _LinkPool

#: Records keep the service's logger name from before the split into modules,
#: so logging configuration aimed at the replication service still applies.
log = logging.getLogger("p2psocial.node.replication")


class _Swarm(_LinkPool):
    """Interest and peer discovery on top of the link pool.

    State is created by ``Replicator.__init__``; the annotations below name
    the part of it this layer adds to the link layer's.
    """

    identity: bytes
    dht: Any
    hops: int
    refresh_interval: float
    swarm_interval: float
    _forked: set[bytes]
    _explicit: dict[tuple[str, int], float]
    _dialing: set[tuple[str, int]]
    _swarm_checked: dict[bytes, float]
    _announced: set[bytes]
    _swarm_backoff: dict[bytes, float]
    _nursery: trio.Nursery | None
    _wakeup: trio.Event
    _swarm_due: trio.Event
    _refresh_lock: trio.Lock

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
        # A newly wanted feed is looked up now, not at the next tick: a user
        # who follows someone sees their posts without a second's delay.
        self._swarm_due.set()

    def _local_changed(self, author: bytes, head: Head) -> None:
        cur = self._heads.get(author)
        if cur is None or head[0] <= cur[0]:
            return
        self._heads[author] = head
        for link in self._open_links():
            link.perform_local(link.session.local_update(author, head))

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
        if not self._pool_has_room():
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
            except Exception:
                # A bug (or an address the resolver chokes on) ends this dial
                # only; it must never reach the service's nursery.
                self._stats["dials_failed"] += 1
                self._stats["internal_errors"] += 1
                log.exception("dialling %s:%s failed", host, port)
                return False
            return bool(await self._nursery.start(self._serve_stream, stream, "outbound", host))
        finally:
            self._dialing.discard((host, port))

    async def _swarm_loop(self) -> None:
        """Announce wanted feeds and dial their swarms (DHT)."""
        while True:
            with trio.move_on_after(min(self.refresh_interval, 1.0)):
                await self._swarm_due.wait()
            self._swarm_due = trio.Event()
            now = trio.current_time()
            due = [
                a
                for a in list(self._heads)
                if now - self._swarm_checked.get(a, -math.inf) >= self.swarm_interval
            ]
            for author in due:
                self._swarm_checked[author] = now
                have = 0
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
                            if have >= 2 or not self._pool_has_room():
                                break
                            if node_id == self.node_id or node_id in self._links:
                                continue
                            if await self._dial(host, port):
                                have += 1
                except (P2PSocialError, OSError) as exc:  # the network's doing
                    self._stats["dht_errors"] += 1
                    log.debug("swarm lookup for %s failed: %s", author.hex()[:12], exc)
                except Exception:
                    # A bug: it ends this lookup only, loudly (README, failures).
                    self._stats["internal_errors"] += 1
                    log.exception("bug in the swarm lookup for %s", author.hex()[:12])
                # Failed or found no one: look again soon, with backoff.
                self._schedule_swarm_retry(author, now, linked=have > 0)

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

    async def _put_head(self, entry_bytes: bytes) -> None:
        try:
            with trio.move_on_after(10):
                await self.dht.put_head(entry_bytes)
        except (P2PSocialError, OSError) as exc:  # the DHT is best effort here
            self._stats["dht_errors"] += 1
            log.debug("put_head failed: %s", exc)
        except Exception:
            self._stats["internal_errors"] += 1
            log.exception("bug in publishing our head")

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
                except (P2PSocialError, OSError) as exc:
                    self._stats["dht_errors"] += 1
                    log.debug("get_peers failed: %s", exc)
                    continue
                except Exception:
                    self._stats["internal_errors"] += 1
                    log.exception("bug in delivering a mention")
                    continue
                for node_id, host, port in found[:8]:
                    if node_id in sent or node_id == self.node_id:
                        continue
                    if await self._dial(host, port):
                        for link in self._open_links():
                            if link.host == host and link.peer.listen_port == port:
                                link.perform_local([Send(push)])
                                self._stats["mentions_delivered"] += 1
