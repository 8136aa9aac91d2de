"""The :class:`DHTNode` facade: composes the parts of the DHT service and
keeps the one public face that the node, replication and tests use."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import trio

from ...protocol.dht import Contact, RecordStore, RoutingTable, SwarmStore, TokenIssuer, ValueStore
from ...protocol.errors import LocalUsageError
from ...protocol.identity import SigningKey, node_id_from_public_key
from .common import Addr, DHTConfig, Stores
from .contacts import Contacts
from .dialback import DialBack, DialBackResponder
from .engine import DatagramEngine
from .handler import RequestHandler
from .lookups import LookupRunner
from .maintenance import ContactStore, Maintenance
from .observed import ObservedAddresses
from .plain import PlainKademlia
from .records import RecordClient
from .swarms import Peer, SwarmClient
from .udp import SocketFactory, open_udp_socket

__all__ = ["DHTNode"]


class DHTNode:
    """A Kademlia node that speaks the ``kademlia`` package's wire protocol.

    Args:
        key: the node key; node id = SHA-256(public key)[:20].
        host: address to bind (an IP address).
        port: UDP port; 0 picks an ephemeral one.
        contact_store: None, or an object with ``async save_dht_contacts(list of
            (node_id, host, port))`` and ``async load_dht_contacts()``; the
            routing table is reloaded from it on start and saved periodically.
        config: tunables.
        socket_factory: ``async (host, port) -> DatagramSocket``; tests inject
            an in-memory network here.
        wall_clock: seconds since the epoch (record timestamps only).
    """

    def __init__(
        self,
        key: SigningKey,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        contact_store: ContactStore | None = None,
        config: DHTConfig | None = None,
        socket_factory: SocketFactory | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.node_id = node_id_from_public_key(key.public_key)
        self.host = host
        self.port = port
        self.config = cfg = config or DHTConfig()

        def now_ms() -> int:
            return int(wall_clock() * 1000)

        self._stores = Stores(cfg.token_rotation)
        self._engine = DatagramEngine(cfg, host, port, socket_factory or open_udp_socket)
        self._contacts = Contacts(self.node_id, cfg, self._engine)
        self._lookups = LookupRunner(
            cfg,
            self._contacts,
            rto=self._engine.rtt.patience,
            is_silent=self._engine.is_silent,
            mark_silent=self._engine.mark_silent,
        )
        self._dial_back_responder = DialBackResponder(self._engine.send, self._stores, key)
        self._handler = RequestHandler(
            key, self._stores, self._contacts, now_ms, self._dial_back_responder
        )
        self._plain = PlainKademlia(self._engine, self._contacts, self._lookups, self._stores)
        self._records = RecordClient(
            cfg, self._engine, self._contacts, self._lookups, self._stores, now_ms
        )
        self._swarms = SwarmClient(cfg, self._engine, self._contacts, self._lookups, self._stores)
        self._observed = ObservedAddresses(self._engine, self._contacts)
        self._dial_back = DialBack(self._engine, self._contacts)
        self._maintenance = Maintenance(
            cfg,
            self._stores,
            self._contacts,
            self._plain,
            self._records,
            self._swarms,
            contact_store,
        )

    # -- state -----------------------------------------------------------------

    @property
    def contact_store(self) -> ContactStore | None:
        """Where the routing table is saved between runs, or None."""
        return self._maintenance.contact_store

    @property
    def table(self) -> RoutingTable:
        """The routing table."""
        return self._contacts.table

    @property
    def records(self) -> RecordStore:
        """Signed records held for the network (and our own)."""
        return self._stores.records

    @property
    def swarms(self) -> SwarmStore:
        """Swarm announcements held for the network."""
        return self._stores.swarms

    @property
    def values(self) -> ValueStore:
        """Plain values held for the network (and our own)."""
        return self._stores.values

    @property
    def tokens(self) -> TokenIssuer:
        """The announce-token issuer."""
        return self._stores.tokens

    @property
    def address(self) -> Addr:
        """The bound (host, port). Raises DHTError before :meth:`run` started."""
        return self._engine.address

    # -- lifecycle -------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Addr] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind the socket and serve until cancelled.

        Calls ``task_status.started((host, port))`` once the socket is bound
        and the saved contacts (if any) are loaded.

        Raises:
            NodeError: the socket cannot be bound (``cannot_listen``).
        """
        addr = await self._engine.bind()
        self._stores.new_tokens(trio.current_time())
        # Every part runs its tasks in this one nursery: a nursery per part
        # cost more memory than all the node's contacts (bench/dht.py).
        try:
            async with trio.open_nursery() as nursery:
                self._engine.start(nursery, self._handler)
                self._contacts.start(nursery)
                self._records.start(nursery)
                self._dial_back_responder.start(nursery)
                await self._maintenance.load_contacts()
                self._maintenance.start(nursery)
                if self.config.observe_addresses:
                    await nursery.start(self._observed.run)
                    await nursery.start(self._dial_back.run)
                task_status.started(addr)
                await trio.sleep_forever()
        finally:
            self._records.stop()
            self._dial_back_responder.stop()
            self._contacts.stop()
            if self.contact_store is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self._maintenance.save_contacts()
            self._engine.close()

    # -- the kademlia package's API --------------------------------------------

    async def ping(self, addr: Addr) -> bytes:
        """Ping ``addr``; returns its node id (and adds it to the table).

        Raises:
            DHTError: no answer. DecodeError: a malformed answer.
        """
        return await self._contacts.ping(addr)

    async def bootstrap(self, addrs: list[Addr]) -> int:
        """Join the network through the given (host, port) addresses.

        Host names are resolved once, here; unreachable or unresolvable
        entries are counted (``bootstrap_failures``) and skipped. Pings each,
        then looks up our own id and two far ids to fill the table.

        Returns:
            The number of contacts in the routing table afterwards.
        """
        return await self._plain.bootstrap(addrs)

    async def find_node(self, target: bytes) -> list[Contact]:
        """The k nodes closest to ``target`` that answered, nearest first."""
        return await self._plain.find_node(target)

    async def set(self, key: Any, value: Any) -> int:
        """Store a plain value as the ``kademlia`` package's ``Server.set`` does.

        The key is hashed with SHA-1 as the package does, so either side finds
        what the other stored. Values are int, float, bool, str or bytes.

        Returns:
            How many nodes accepted it (0 means it is stored nowhere else).

        Raises:
            LocalUsageError: a value of another type, or too large.
        """
        return await self._plain.set(key, value)

    async def get(self, key: Any) -> Any:
        """Find a plain value stored by any node (ours or stock); None if absent."""
        return await self._plain.get(key)

    # -- records and swarms ------------------------------------------------------

    async def put_head(self, entry_bytes: bytes) -> int:
        """Publish ``entry_bytes`` as its author's feed head.

        Returns:
            How many of the k closest nodes hold it now (0 = only us).

        Raises:
            LocalUsageError: the entry is invalid, or older than the head we hold.
        """
        return await self._records.put_head(entry_bytes)

    async def get_head(self, author: bytes) -> bytes | None:
        """The entry bytes of the highest-seq valid head found for ``author``, or None."""
        return await self._records.get_head(author)

    async def put_profile(self, entry_bytes: bytes, payload: bytes) -> int:
        """Publish a ``profile`` entry and its payload (≤ 384 bytes) as a profile record.

        Returns:
            How many of the k closest nodes hold it now.

        Raises:
            LocalUsageError: invalid entry or payload, wrong kind, too large.
        """
        return await self._records.put_profile(entry_bytes, payload)

    async def get_profile(self, author: bytes) -> tuple[bytes, bytes] | None:
        """(entry bytes, payload) of the latest profile record found, or None."""
        return await self._records.get_profile(author)

    async def announce(self, author: bytes, peer_port: int) -> int:
        """Announce that this node holds ``author``'s feed, reachable on TCP ``peer_port``.

        The announcement is re-sent every ``announce_interval`` until the node stops.

        Returns:
            How many of the k closest nodes accepted it.

        Raises:
            LocalUsageError: ``peer_port`` is not a port number.
        """
        return await self._swarms.announce(author, peer_port)

    async def get_peers(self, author: bytes) -> list[Peer]:
        """Nodes that announced ``author``'s feed: (node id, host, TCP port), not us."""
        return await self._swarms.get_peers(author)

    def relay_hint(self, node_id: bytes) -> tuple[bytes, str, int] | None:
        """The relay (node id, host, TCP port) that ``node_id``'s newest announce
        we saw named (spec/sync.md §11.6), or None: dial it directly."""
        return self._swarms.relay_hint(node_id)

    @property
    def relay(self) -> tuple[bytes, str, int] | None:
        """The relay our own announces name, if any."""
        return self._swarms.relay

    async def set_relay(self, relay: tuple[bytes, str, int] | None) -> None:
        """Name ``relay`` (node id, host, TCP port) in our announces from now on,
        and announce every swarm we are in again if it changed; None: none."""
        if relay == self._swarms.relay:
            return
        self._swarms.relay = relay
        await self._swarms.reannounce_all()

    async def meet(self, node_id: bytes, addr: Addr) -> None:
        """Prove that ``node_id`` holds its key at ``addr`` (``hello``, spec/dht.md
        4.1), then add it to the routing table.

        For contacts heard of outside the DHT (LAN announcements): the claim is
        believed only once the proof verifies. A table that was empty then
        joins through the contact (a lookup of our own id).

        Raises:
            DHTError: no answer, or not one of ours (``not_ours``).
            ProtocolError: a wrong key or signature.
        """
        contact = Contact(node_id, addr[0], addr[1])
        was_empty = not len(self.table)
        await self._contacts.ensure_proven(contact)
        self._contacts.saw(contact, trio.current_time())
        if was_empty and len(self.table):
            await self._plain.find_node(self.node_id)

    # -- introspection -------------------------------------------------------------

    def is_proven(self, contact: Contact) -> bool:
        """Whether ``contact`` proved its node key at its current address."""
        return self._contacts.is_proven(contact)

    def reachability(self) -> dict[str, Any]:
        """What peers see of our address: ``reachability``, ``nat_mapping``,
        ``observed_addrs``, ``observed_ips``, ``observers`` (spec/dht.md 4.4);
        and whether they can dial us back: ``reachable`` (yes/no/unknown),
        ``dialback_ok``, ``dialback_failed`` (4.5)."""
        return {**self._observed.summary(), **self._dial_back.summary()}

    async def observe_round(self) -> int:
        """Ask a round of proven contacts for our observed address now; returns answers."""
        return await self._observed.round()

    def enable_dial_back(self, peer_port: int) -> None:
        """Ask proven contacts, now and then, to dial TCP ``peer_port`` back
        at our observed address (spec/dht.md 4.5).

        Raises:
            LocalUsageError: ``peer_port`` is not 1..65535.
        """
        if type(peer_port) is not int or not 0 < peer_port < 65536:
            raise LocalUsageError(f"peer_port must be 1..65535, not {peer_port!r}")
        self._dial_back.enable(peer_port)

    def set_mapped_port(self, peer_port: int, external_port: int | None) -> bool:
        """A port mapping at the router (spec/portmap.md) now gives TCP
        ``peer_port`` the external ``external_port`` (None: no mapping any
        more): announces name that port, and dial-back learns its verdict
        again for it. Returns True when announces must be sent again."""
        before = self._swarms.port_map.get(peer_port, peer_port)
        if external_port is None or external_port == peer_port:
            self._swarms.port_map.pop(peer_port, None)
        else:
            self._swarms.port_map[peer_port] = external_port
        after = self._swarms.port_map.get(peer_port, peer_port)
        if self._dial_back.port is not None:
            self._dial_back.recheck(after)
        return before != after

    async def reannounce_all(self) -> None:
        """Announce every swarm we are in again (our announced port changed)."""
        await self._swarms.reannounce_all()

    async def dial_back_round(self) -> int:
        """Ask a round of proven contacts to dial us back now (after
        :meth:`enable_dial_back`); returns how many dialled, well or not."""
        return await self._dial_back.round()

    def routing_table_contacts(self) -> list[tuple[bytes, str, int]]:
        """Every contact in the routing table, as (node_id, host, port), for persistence."""
        return [(c.node_id, c.host, c.port) for c in self.table.contacts()]

    def statistics(self) -> dict[str, Any]:
        """Counters and gauges: datagrams dropped by reason, RPCs in/out, table size, stores."""
        counters: Counter[str] = Counter()
        for part in (
            self._engine,
            self._handler,
            self._contacts,
            self._lookups,
            self._plain,
            self._records,
            self._swarms,
            self._maintenance,
            self._observed,
            self._dial_back,
            self._dial_back_responder,
        ):
            counters.update(part.statistics())
        return {
            "node_id": self.node_id.hex(),
            "contacts": len(self.table),
            "buckets": len(self.table.buckets),
            "proven": self._contacts.proven_count,
            "records": len(self._stores.records),
            "swarm_peers": len(self._stores.swarms),
            "values": len(self._stores.values),
            "pending_rpcs": self._engine.pending_calls,
            "hello_backlog": self._contacts.hello_backlog(),
            "dropped": self._engine.dropped(),
            "peer_scores": self._contacts.scores.statistics(trio.current_time()),
            **dict(counters),
        }
