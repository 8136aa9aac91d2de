"""The swarms client: announce that this node holds a feed, and find the
nodes that announced one.

An announce needs a token from each of the k closest nodes (handed out by
their get_peers answers), so it walks first. Announces that no node accepted
are kept for retry with backoff; :mod:`.maintenance` runs the retries.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import trio

from ...protocol.dht import Contact, Finished, swarm_key
from ...protocol.dht.wire import parse_get_peers_reply, parse_peer_relays, parse_status_reply
from ...protocol.errors import LocalUsageError, ProtocolError
from .common import DHTConfig, DHTError, Stores
from .contacts import Contacts
from .engine import Caller
from .lookups import LookupRunner

__all__ = ["Peer", "SwarmClient"]

#: An announced holder of a feed: (node id, host, TCP port).
Peer = tuple[bytes, str, int]
#: A relay (node id, host, TCP link port), spec/sync.md §11.
Relay = tuple[bytes, str, int]

#: Relays remembered for swarm members found (the newest first to stay).
MAX_RELAY_HINTS = 1024


class SwarmClient:
    """Announces and peer lookups, and our own announces to keep placed.

    Args:
        config: tunables (get_k, announce_retry, announce_interval).
        caller: sends requests; its address is the host we announce.
        contacts: proofs and record seeds.
        lookups: runs the iterative lookups.
        stores: our own swarm listings live in ``stores.swarms``.
    """

    def __init__(
        self,
        config: DHTConfig,
        caller: Caller,
        contacts: Contacts,
        lookups: LookupRunner,
        stores: Stores,
    ) -> None:
        self._config = config
        self._caller = caller
        self._contacts = contacts
        self._lookups = lookups
        self._stores = stores
        self._own: dict[bytes, int] = {}
        # Own announces that no node accepted: author -> (retry at, backoff).
        self._unplaced: dict[bytes, tuple[float, float]] = {}
        self._stats: Counter[str] = Counter()
        #: The relay our announces name (spec/sync.md §11.6), if any.
        self.relay: Relay | None = None
        #: Our link port -> the external port a router mapping gives it
        #: (spec/portmap.md): announces name the external one.
        self.port_map: dict[int, int] = {}
        #: Member node id -> the relay its announce named, from recent lookups.
        self._hints: dict[bytes, Relay] = {}

    async def _lookup(
        self, key: bytes, k: int | None = None, peers: dict[bytes, Peer] | None = None
    ) -> tuple[Finished, dict[bytes, bytes], dict[bytes, Peer]]:
        """Walk to ``key``; ``peers`` (filled as answers come) gets the members found."""
        tokens: dict[bytes, bytes] = {}
        peers = {} if peers is None else peers
        contacts = self._contacts
        me = contacts.node_id

        async def ask(c: Contact) -> tuple[list[Contact], bool, Any]:
            value, nonce = await contacts.proving_call(c, "get_peers", [me, key])
            got, token, nodes, proof = parse_get_peers_reply(value)
            contacts.check_proof(c, nonce, proof)
            if token:
                tokens[c.node_id] = token
            for p in got:
                peers.setdefault(p[0], p)
                self._hints.pop(p[0], None)  # listed without a relay: dialled directly
            relayed = parse_peer_relays(value)
            for nid, (host, port, relay) in relayed.items():
                peers.setdefault(nid, (nid, host, port))
                self._hint(nid, relay)
            return nodes, bool(got or relayed), None

        paths = self._config.record_paths
        lookup = self._lookups.new(key, contacts.record_seeds(key), None, k, paths=paths)
        return await self._lookups.iterate(lookup, ask), tokens, peers

    async def announce(self, author: bytes, peer_port: int) -> int:
        """Announce ``author``'s feed on ``peer_port`` to the k closest nodes and
        keep it announced (the contract is :meth:`DHTNode.announce`'s); returns
        how many accepted it."""
        if not 0 < peer_port < 65536:
            raise LocalUsageError("peer_port must be 1..65535")
        key = swarm_key(author)
        self._own[author] = peer_port
        me = self._contacts.node_id
        host = self._caller.address[0]
        if host not in ("0.0.0.0", "::"):
            # Listed in our own swarm store too, for when we are among the
            # closest to the key; a wildcard bind has no address to list.
            self._stores.swarms.announce(key, me, host, peer_port, trio.current_time(), self.relay)
        result, tokens, _ = await self._lookup(key)
        accepted = 0

        async def one(c: Contact) -> None:
            nonlocal accepted
            try:
                port = self.port_map.get(peer_port, peer_port)
                args: list[Any] = [me, key, port, tokens[c.node_id]]
                if self.relay is not None:
                    args.append(list(self.relay))
                ok, reason = parse_status_reply(await self._caller.call(c.addr, "announce", args))
            except (DHTError, ProtocolError):
                return
            if ok:
                accepted += 1
            else:
                self._stats[f"announce_refused_{reason}"] += 1

        async with trio.open_nursery() as nursery:
            for c in result.closest:
                if c.node_id in tokens:
                    nursery.start_soon(one, c)
        if accepted:
            self._unplaced.pop(author, None)
        elif author in self._own:
            # Nobody holds it: a node that is not listed cannot be found, so
            # try again soon rather than at the next announce_interval.
            self._stats["announces_unplaced"] += 1
            _, backoff = self._unplaced.get(author, (0.0, self._config.announce_retry / 2))
            backoff = min(self._config.announce_interval, backoff * 2)
            self._unplaced[author] = (trio.current_time() + backoff, backoff)
        return accepted

    async def get_peers(self, author: bytes) -> list[Peer]:
        """Nodes that announced ``author``'s feed: (node id, host, TCP port), not us."""
        key = swarm_key(author)
        peers: dict[bytes, Peer] = {}
        with trio.move_on_after(self._config.get_peers_time):
            await self._lookup(key, self._config.get_k, peers)
        for p in self._stores.swarms.peers(key, trio.current_time()):
            peers.setdefault(p[0], p)
            relay = self._stores.swarms.relay_of(key, p[0], p[1])
            if relay is not None:
                self._hint(p[0], relay)
        peers.pop(self._contacts.node_id, None)
        return list(peers.values())

    def _hint(self, node_id: bytes, relay: Relay) -> None:
        self._hints.pop(node_id, None)
        self._hints[node_id] = relay
        while len(self._hints) > MAX_RELAY_HINTS:
            del self._hints[next(iter(self._hints))]

    def relay_hint(self, node_id: bytes) -> Relay | None:
        """The relay the newest announce of ``node_id`` we saw named, if any."""
        return self._hints.get(node_id)

    # -- keeping announces placed ------------------------------------------------------

    def own_authors(self) -> list[bytes]:
        """The authors we announce."""
        return list(self._own)

    def next_retry(self) -> float:
        """When the earliest unplaced announce is due again (inf: none is)."""
        return min((t for t, _ in self._unplaced.values()), default=math.inf)

    def due_retries(self, now: float) -> list[bytes]:
        """Authors whose unplaced announce is due at ``now``."""
        return [a for a, (t, _) in self._unplaced.items() if t <= now]

    async def reannounce(self, author: bytes) -> None:
        """Announce ``author`` again on its port (or forget its retry if we no
        longer announce it)."""
        port = self._own.get(author)
        if port is None:
            self._unplaced.pop(author, None)
            return
        await self.announce(author, port)

    async def reannounce_all(self) -> None:
        """Announce every author we announce again."""
        for author, port in list(self._own.items()):
            await self.announce(author, port)

    def statistics(self) -> dict[str, int]:
        """Counters: announces refused by reason, announces no node accepted."""
        return dict(self._stats)
