"""Contacts: the routing table, liveness, and key proving.

Any contact may sit in the routing table and serve node lookups and plain
values, including nodes that speak only the ``kademlia`` package's four RPCs.
Our record RPCs go only to contacts that proved their node key (node id =
SHA-256(key)[:20]), by ``hello`` or by a proof carried in a record reply.
Nodes that answer ping but not hello ("not ours": stock nodes) are remembered
for a while and left out of the record seeds we hand out.

The table answers and never acts (STYLE.md §4): when it asks for the oldest
contact of a full bucket to be pinged, the ping worker here does it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

import trio

from ...protocol.dht import Contact, RoutingTable
from ...protocol.dht.routing import AddResult
from ...protocol.dht.wire import NONCE_SIZE, parse_hello_reply, parse_ping_reply, verify_hello
from ...protocol.errors import DecodeError, ProtocolError
from ..scores import PeerScores
from .common import Addr, DHTConfig, DHTError
from .engine import Caller
from .workqueue import WorkQueue

log = logging.getLogger("p2psocial.node.dht")

__all__ = ["Contacts"]


class Contacts:
    """The contacts of one node: who is in the table, who proved their key.

    Args:
        node_id: our node id.
        config: tunables (k, queue sizes, hello workers, not_ours_ttl, max_proven).
        caller: sends requests (ping and hello).
    """

    def __init__(self, node_id: bytes, config: DHTConfig, caller: Caller) -> None:
        self.node_id = node_id
        self.table = RoutingTable(node_id, k=config.k)
        self._config = config
        self._caller = caller
        self._proven: OrderedDict[bytes, Addr] = OrderedDict()
        self._not_ours: dict[Addr, float] = {}
        #: Contacts whose calls timed out, until when lookups skip them.
        self._dead: OrderedDict[bytes, float] = OrderedDict()
        self._hellos = WorkQueue(
            self._prove_queued, workers=config.hello_workers, queue=config.hello_queue
        )
        self._pings = WorkQueue(self._ping_old, workers=1, queue=config.ping_queue)
        self._pinging: set[bytes] = set()
        self._hello_inflight: dict[bytes, trio.Event] = {}
        #: Hellos queued or running (counted here: a hello handed straight
        #: to a waiting worker is in no buffer yet).
        self._hellos_pending = 0
        self._stats: Counter[str] = Counter()
        #: Contacts that broke the protocol, graylisted at the threshold (spec/dht.md §9).
        self.scores = PeerScores()
        #: Set when the node (re)joins: bootstrap finished, or the table went
        #: from empty to non-empty. Own announces and records made before
        #: that reached no one, or not the nodes closest to their keys.
        self.joined = trio.Event()

    def start(self, nursery: trio.Nursery) -> None:
        """Run hellos and pings in ``nursery`` (the node's) from now on, until :meth:`stop`."""
        self._hellos.start(nursery)
        self._pings.start(nursery)

    def stop(self) -> None:
        """Start no more hellos or pings (the node's nursery is closing)."""
        self._hellos.stop()
        self._pings.stop()

    # -- the table -----------------------------------------------------------------

    def penalize(self, contact: Contact, reason: str, now: float) -> None:
        """``contact`` broke the protocol (``reason`` is a ``protocol_*``
        reason, spec/dht.md §9): score it, evict it, and graylist it at the
        threshold (its requests dropped, lookups past it, not re-added)."""
        self._stats[f"penalized_{reason}"] += 1
        self.failed(contact)
        until = self.scores.penalize(contact.node_id, contact.host, reason, now)
        if until:
            self._stats["graylisted"] += 1
            log.warning(
                "DHT contact %s at %s graylisted for %.0f s (%s)",
                contact.node_id.hex()[:12],
                contact.host,
                until - now,
                reason,
            )

    def graylisted(self, node_id: bytes, host: str, now: float) -> bool:
        """Whether this node, or its public address, is graylisted now."""
        return self.scores.graylisted(node_id, host, now)

    def saw(self, contact: Contact, now: float, *, prove: bool = True, admit: bool = True) -> None:
        """A contact was seen alive: tell the table, and act on its answer.

        Keys are proven once per contact, and only for contacts we use: a
        record RPC to an unproven contact carries a nonce and its reply the
        proof (:meth:`proving_call`). Only while fewer than ``eager_proofs``
        contacts are proven, contacts that answered us (not those that merely
        sent us a request, ``prove=False``) are proven in the background, so
        that observe and dial-back rounds have proven contacts to ask.

        With ``admit`` False (a lookup's answer that named nobody new,
        spec/dht.md §8) a contact not in the table is not added; one in it is
        refreshed as usual.
        """
        if self.scores.graylisted(contact.node_id, contact.host, now):
            self._stats["contacts_graylisted"] += 1
            return
        self._dead.pop(contact.node_id, None)
        if not admit and self.table.get(contact.node_id) is None:
            self._stats["contacts_not_admitted_uninformative"] += 1
            return
        was_empty = not len(self.table)
        outcome = self.table.add(contact, now)
        if was_empty and outcome.result is AddResult.ADDED:
            self.joined.set()
        if outcome.result is AddResult.LIMITED:
            # Over an IP-diversity limit (spec/dht.md 7.1): not added, not pinged.
            self._stats["contacts_limited"] += 1
        elif (
            outcome.result is AddResult.ADDED
            and prove
            and len(self._proven) + self.hello_backlog() < self._config.eager_proofs
        ):
            if contact.node_id not in self._proven and contact.addr not in self._not_ours:
                try:
                    self._hellos.put_nowait(contact)
                    self._hellos_pending += 1
                except trio.WouldBlock:
                    self._stats["hello_queue_full"] += 1
        elif outcome.result is AddResult.PING and outcome.ping is not None:
            old = outcome.ping
            if old.node_id not in self._pinging:
                try:
                    self._pings.put_nowait(old)
                    self._pinging.add(old.node_id)
                except trio.WouldBlock:
                    self._stats["ping_queue_full"] += 1

    def failed(self, contact: Contact, now: float | None = None) -> None:
        """``contact`` went unanswered (or lied): evict it from the table.

        With ``now`` (a call timed out) it is also known dead until
        ``dead_ttl`` later, or until it is heard from (:meth:`saw`).
        """
        if self.table.remove(contact.node_id):
            self._stats["contacts_evicted"] += 1
        if now is not None:
            self._mark_dead(contact, now)

    def _mark_dead(self, contact: Contact, now: float) -> None:
        """Lookups skip ``contact`` until ``dead_ttl`` from ``now``, or until it is heard from."""
        self._dead[contact.node_id] = now + self._config.dead_ttl
        self._dead.move_to_end(contact.node_id)
        while len(self._dead) > self._config.max_proven:
            self._dead.popitem(last=False)

    def known_dead(self, contact: Contact, now: float) -> bool:
        """Whether a call to ``contact`` timed out within ``dead_ttl`` and it was not heard since."""
        until = self._dead.get(contact.node_id)
        if until is None:
            return False
        if until <= now:
            del self._dead[contact.node_id]
            return False
        return True

    def take_joined(self) -> bool:
        """Whether the node (re)joined since the last call; clears the signal."""
        if not self.joined.is_set():
            return False
        self.joined = trio.Event()
        return True

    async def ping(self, addr: Addr) -> bytes:
        """Ping ``addr``; returns its node id (and adds it to the table).

        Raises:
            DHTError: no answer. DecodeError: a malformed answer.
        """
        node_id = parse_ping_reply(await self._caller.call(addr, "ping", [self.node_id]))
        if node_id != self.node_id:
            self.saw(Contact(node_id, addr[0], addr[1]), trio.current_time())
        return node_id

    async def _ping_old(self, old: Contact) -> None:
        """Ping the oldest contact of a full bucket; evict it if it fails."""
        try:
            await self.ping(old.addr)
        except DHTError:
            self.failed(old, trio.current_time())
        except ProtocolError:
            self.failed(old)
        finally:
            self._pinging.discard(old.node_id)

    # -- stock nodes -----------------------------------------------------------------

    def _useful(self, c: Contact) -> bool:
        """Whether to hand ``c`` out in record replies (not known to be stock)."""
        return (c.host, c.port) not in self._not_ours

    def useful_filter(self) -> Callable[[Contact], bool] | None:
        """The filter for contacts fit for record RPCs, or None when all are."""
        # No filter at all in the common case of a network without stock nodes.
        return self._useful if self._not_ours else None

    def record_seeds(self, key: bytes) -> list[Contact]:
        """The closest contacts to ``key`` to start a record or peers lookup from."""
        return self.table.closest(key, accept=self.useful_filter())

    def speaks_ours(self, addr: Addr) -> None:
        """``addr`` sent us one of our own RPCs: it is not a stock node after all
        (an overloaded node of ours that missed a hello was taken for one)."""
        self._not_ours.pop(addr, None)

    def expire(self, now: float) -> None:
        """Forget "not ours" verdicts that are due for a second chance."""
        for addr in [a for a, t in self._not_ours.items() if t <= now]:
            del self._not_ours[addr]

    # -- key proving -------------------------------------------------------------------

    def is_proven(self, contact: Contact) -> bool:
        """Whether ``contact`` proved its node key at its current address."""
        return self._proven.get(contact.node_id) == contact.addr

    async def _prove_queued(self, contact: Contact) -> None:
        """Prove a contact in the background (queued by :meth:`saw` or :meth:`proving_call`)."""
        try:
            with contextlib.suppress(DHTError, ProtocolError):
                await self.ensure_proven(contact)
        finally:
            self._hellos_pending -= 1

    async def ensure_proven(self, contact: Contact) -> None:
        """Run ``hello`` with ``contact`` unless it already proved its key there.

        Concurrent callers for one contact share a single hello.

        Raises:
            DHTError: ``not_ours`` (answers ping but not hello: a stock node)
                or ``timeout`` (answers nothing).
            ProtocolError: a wrong key or signature.
        """
        if self.is_proven(contact):
            return
        until = self._not_ours.get(contact.addr)
        if until is not None:
            if until > trio.current_time():
                raise DHTError("contact does not speak hello", reason="not_ours")
            del self._not_ours[contact.addr]
        running = self._hello_inflight.get(contact.node_id)
        if running is not None:
            await running.wait()
            if self.is_proven(contact):
                return
            if contact.addr in self._not_ours:
                raise DHTError("contact does not speak hello", reason="not_ours")
            raise DHTError("hello failed", reason="timeout")
        done = self._hello_inflight[contact.node_id] = trio.Event()
        try:
            await self._hello(contact)
        finally:
            del self._hello_inflight[contact.node_id]
            done.set()

    async def _hello(self, contact: Contact) -> None:
        nonce = os.urandom(NONCE_SIZE)
        # Silence to hello means a stock node (rpcudp ignores unknown methods)
        # or a dead one. A ping, started once the first hello attempt went
        # unanswered, tells them apart by the time the hello gives up.
        alive = False

        async def probe() -> None:
            nonlocal alive
            await trio.sleep(self._config.rpc_timeout)
            with contextlib.suppress(DHTError, ProtocolError):
                await self.ping(contact.addr)
                alive = True

        value: Any = None
        failed = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe)
            try:
                value = await self._caller.call(contact.addr, "hello", [self.node_id, nonce])
            except DHTError:
                failed = True
            else:
                nursery.cancel_scope.cancel()
        if failed:
            if not alive:
                self.failed(contact, trio.current_time())
                raise DHTError(f"hello to {contact} timed out", reason="timeout")
            self._not_ours[contact.addr] = trio.current_time() + self._config.not_ours_ttl
            if len(self._not_ours) > 4 * self._config.max_proven:
                self._not_ours.pop(next(iter(self._not_ours)))
            self._stats["not_ours"] += 1
            raise DHTError("contact does not speak hello", reason="not_ours")
        public_key, signature = parse_hello_reply(value)
        self._accept_proof(contact, nonce, public_key, signature)

    async def proving_call(
        self, c: Contact, method: str, args: list[Any]
    ) -> tuple[Any, bytes | None]:
        """Call one of our record RPCs; to a contact not yet proven, add a
        nonce so that its reply carries the key proof (no separate hello).

        Returns:
            (reply value, the nonce sent or None); pass both to :meth:`check_proof`.

        Raises:
            DHTError: ``not_ours`` (a known stock node) or ``no_answer``.
        """
        if self.is_proven(c):
            return await self._caller.call(c.addr, method, args), None
        until = self._not_ours.get(c.addr)
        if until is not None and until > trio.current_time():
            raise DHTError("contact does not speak our RPCs", reason="not_ours")
        nonce = os.urandom(NONCE_SIZE)
        try:
            return await self._caller.call(c.addr, method, [*args, nonce]), nonce
        except DHTError as exc:
            # A stock node (it ignores our methods) or a dead one: the hello
            # worker tells them apart in the background, and evicts the dead.
            # Meanwhile lookups go past it (neither answers a record call); a
            # stock node's answer to the worker's ping ends that (saw()).
            if exc.reason == "timeout":
                self._mark_dead(c, trio.current_time())
            with contextlib.suppress(trio.WouldBlock):
                self._hellos.put_nowait(c)
                self._hellos_pending += 1
            raise DHTError(f"{method} to {c} went unanswered", reason="no_answer") from None

    def check_proof(
        self, c: Contact, nonce: bytes | None, proof: tuple[bytes, bytes] | None
    ) -> None:
        """Accept a reply's key proof, or raise ProtocolError if it was due and is bad."""
        if nonce is None:
            return
        if proof is None:
            raise DecodeError("reply lacks the key proof asked for", reason="no_proof")
        self._accept_proof(c, nonce, proof[0], proof[1])

    def _accept_proof(self, c: Contact, nonce: bytes, public_key: bytes, signature: bytes) -> None:
        try:
            verify_hello(c.node_id, nonce, self.node_id, public_key, signature)
        except ProtocolError:
            self._stats["hello_bad"] += 1
            self.penalize(c, "protocol_bad_proof", trio.current_time())
            raise
        self._proven[c.node_id] = c.addr
        self._proven.move_to_end(c.node_id)
        # It answered: no longer skipped as dead (a slow answer to a record
        # call may have marked it so).
        self._dead.pop(c.node_id, None)
        while len(self._proven) > self._config.max_proven:
            self._proven.popitem(last=False)
        self._stats["hello_proven"] += 1

    # -- introspection -------------------------------------------------------------------

    @property
    def proven_count(self) -> int:
        """Contacts whose key proof we hold."""
        return len(self._proven)

    def hello_backlog(self) -> int:
        """Hellos queued or running."""
        return self._hellos_pending

    def statistics(self) -> dict[str, int]:
        """Counters: evictions, hellos proven and bad, stock nodes seen, queue overflows."""
        return dict(self._stats)
