"""The plain Kademlia API, wire-compatible with the ``kademlia`` package:
joining, node lookups, and plain values under SHA-1 keys.

These work with any contact, stock or ours; nothing here needs a key proof.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections import Counter
from typing import Any

import trio

from ...protocol.dht import Contact, RecordRejected
from ...protocol.dht.wire import MAX_VALUE_REPLY, parse_find_value_reply, parse_node_list
from ...protocol.errors import LocalUsageError, ProtocolError
from ..activity import LimitedLog
from .common import Addr, DHTError, Stores, log
from .contacts import Contacts
from .engine import Caller
from .lookups import LookupRunner

__all__ = ["PlainKademlia", "plain_key_digest"]

#: The far-bucket lookups after joining walk to this many closest nodes, not
#: k: their point is the contacts met on the way, which fill the two far
#: buckets, and the last rounds of an exact walk to 20 added little to them.
FAR_LOOKUP_K = 8


def plain_key_digest(key: Any) -> bytes:
    """The 160-bit key of a plain value, exactly as the ``kademlia`` package
    computes it: SHA-1 of the bytes, or of ``str(key)`` in UTF-8."""
    if not isinstance(key, bytes):
        key = str(key).encode("utf8")
    return hashlib.sha1(key).digest()


class PlainKademlia:
    """Bootstrap, find_node and plain values (``set`` / ``get``).

    Args:
        caller: sends requests.
        contacts: the routing table and liveness.
        lookups: runs the iterative lookups.
        stores: our own copy of plain values lives in ``stores.values``.
    """

    def __init__(
        self, caller: Caller, contacts: Contacts, lookups: LookupRunner, stores: Stores
    ) -> None:
        self._caller = caller
        self._contacts = contacts
        self._lookups = lookups
        self._stores = stores
        self._own_values: dict[bytes, Any] = {}
        self._stats: Counter[str] = Counter()
        self._events = LimitedLog(log)

    async def bootstrap(self, addrs: list[Addr]) -> int:
        """Join through ``addrs`` (see :meth:`DHTNode.bootstrap`); returns the table size."""
        contacts = self._contacts

        async def one(addr: Addr) -> None:
            try:
                await contacts.ping(await self._resolve(addr[0], int(addr[1])))
            except (DHTError, ProtocolError, OSError) as exc:
                self._stats["bootstrap_failures"] += 1
                self._events.info(
                    ("bootstrap", addr),
                    trio.current_time(),
                    "bootstrap %s:%s failed: %s",
                    addr[0],
                    addr[1],
                    exc,
                )

        async with trio.open_nursery() as nursery:
            for addr in addrs:
                nursery.start_soon(one, addr)
        if len(contacts.table):
            await self.find_node(contacts.node_id)
            # Then fill the buckets farther away (the paper's "refresh every
            # bucket further than the closest neighbour"): a node that only
            # looked itself up knows only its neighbourhood, and lookups for
            # keys in the other half would stall among its neighbours.
            async with trio.open_nursery() as nursery:
                for target in self._far_targets():
                    nursery.start_soon(self.find_node, target, FAR_LOOKUP_K)
            # Whatever we announced or published while joining went to the
            # few contacts we knew then; place it again among the closest.
            contacts.joined.set()
        return len(contacts.table)

    def _far_targets(self) -> list[bytes]:
        """Random ids at distance about 2**159 and 2**158 from us, for filling
        the table after joining (the two ranges hold three quarters of the
        network; nearer ones fill from the self-lookup and from traffic)."""
        own = int.from_bytes(self._contacts.node_id, "big")
        out = []
        for bit in range(2):
            noise = int.from_bytes(os.urandom(20), "big") >> (bit + 1)
            out.append((own ^ (1 << (159 - bit)) ^ noise).to_bytes(20, "big"))
        return out

    async def _resolve(self, host: str, port: int) -> Addr:
        """An IP address for ``host`` (responses are matched by source address,
        so contacts are always kept as IP literals)."""
        try:
            ipaddress.ip_address(host)
            return (host, port)
        except ValueError:
            pass
        family = trio.socket.AF_INET6 if ":" in self._caller.address[0] else trio.socket.AF_INET
        infos = await trio.socket.getaddrinfo(
            host, port, family=family, type=trio.socket.SOCK_DGRAM
        )
        if not infos:
            raise DHTError(f"cannot resolve {host}", reason="resolve")
        sockaddr = infos[0][4]
        return (str(sockaddr[0]), int(sockaddr[1]))

    async def find_node(self, target: bytes, k: int | None = None) -> list[Contact]:
        """The k nodes closest to ``target`` that answered, nearest first
        (``k``: how many, default the config's)."""
        me = self._contacts.node_id

        async def ask(c: Contact) -> tuple[list[Contact], bool, Any]:
            value = await self._caller.call(c.addr, "find_node", [me, target])
            return parse_node_list(value), False, None

        seeds = self._contacts.table.closest(target)
        lookup = self._lookups.new(target, seeds, None, k)
        return (await self._lookups.iterate(lookup, ask)).closest

    async def set(self, key: Any, value: Any) -> int:
        """Store a plain value under SHA-1 of ``key`` (see :meth:`DHTNode.set`)."""
        dkey = plain_key_digest(key)
        now = trio.current_time()
        try:
            self._stores.values.put(dkey, value, now)
        except RecordRejected as exc:
            raise LocalUsageError(exc.message, reason=exc.reason) from None
        self._own_values[dkey] = value
        return await self._store(dkey, value)

    async def _store(self, dkey: bytes, value: Any) -> int:
        nodes = await self.find_node(dkey)
        stored = 0

        async def one(c: Contact) -> None:
            nonlocal stored
            try:
                reply = await self._caller.call(
                    c.addr, "store", [self._contacts.node_id, dkey, value]
                )
                if reply is True:
                    stored += 1
            except DHTError as exc:
                if exc.reason == "timeout":
                    self._contacts.failed(c, trio.current_time())

        async with trio.open_nursery() as nursery:
            for c in nodes:
                nursery.start_soon(one, c)
        return stored

    async def republish(self) -> None:
        """Store every value set through this node again at the k closest."""
        for dkey, value in list(self._own_values.items()):
            await self._store(dkey, value)

    async def get(self, key: Any) -> Any:
        """Find a plain value stored by any node (ours or stock); None if absent."""
        dkey = plain_key_digest(key)
        local = self._stores.values.get(dkey, trio.current_time())
        if local is not None:
            return local
        me = self._contacts.node_id

        async def ask(c: Contact) -> tuple[list[Contact], bool, Any]:
            # A stock holder answers with the whole value, which may be up to
            # 8 KiB (spec/dht.md §3): the one reply allowed past 1,280 bytes.
            reply = await self._caller.call(
                c.addr, "find_value", [me, dkey], max_reply=MAX_VALUE_REPLY
            )
            found, value, nodes = parse_find_value_reply(reply)
            return nodes, found, value

        seeds = self._contacts.table.closest(dkey)
        result = await self._lookups.iterate(self._lookups.new(dkey, seeds, 1), ask)
        return result.values[0][1] if result.values else None

    def statistics(self) -> dict[str, int]:
        """Counters: bootstrap addresses that failed."""
        return dict(self._stats)
