"""A seeded, deterministic simulation of the DHT at scale, on the real cores.

Every node is the real :class:`~p2psocial.protocol.dht.RoutingTable`, and
every lookup the real :class:`~p2psocial.protocol.dht.Lookup` iterator. What
is simulated is the network around them, in virtual time:

- a round trip is drawn per query from a log-normal distribution (median
  ``rtt_median``), a datagram is lost with probability ``loss`` each way,
  and an offline node never answers; the asker's retries give up after
  ``verdict`` seconds, and a query goes slow (frees its slot, and a get stops
  counting it) after ``patience``, as the real node does (spec/dht.md §8-9);
- churn takes nodes offline and brings them back with the same id (their
  table and the records they hold survive, as a restarted daemon's do);
- adversaries: *sybils* (ordinary nodes, all in one /16), *eclipse* nodes
  (they answer every lookup with the adversaries closest to the target
  only, and never with a record) and *droppers* (they accept a put and keep
  nothing).

Lookups are independent of each other given the network's state, so each
runs as its own small discrete-event loop (a heap of answer and failure
times) between churn steps. Nothing reads a clock, a socket or global
randomness: one ``random.Random(seed)`` drives everything, so the same seed
gives the same figures.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ..protocol.dht import Contact, DisjointLookup, Finished, Query, RoutingTable
from ..protocol.dht.diversity import Groups
from ..protocol.dht.routing import AddResult

__all__ = ["LookupResult", "NetModel", "SimDHT", "SimNode", "sim_groups"]


def sim_groups(host: str) -> Groups:
    """Address groups of a simulated host ``"a.b.c.d"``: its /24 and its /16.

    Simulated addresses never reach a socket; they only feed the routing
    table's diversity limits (spec/dht.md §7.1) as real IPv4 ones would.
    """
    a, b, c, _ = host.split(".")
    return (f"{a}.{b}.{c}", f"{a}.{b}")


@dataclass(slots=True)
class NetModel:
    """The simulated network's behaviour (times in seconds)."""

    rtt_median: float = 0.08
    rtt_sigma: float = 0.5
    loss: float = 0.01
    patience: float = 0.25
    verdict: float = 1.5
    attempts: int = 6
    k: int = 20
    alpha: int = 3
    get_k: int = 5
    #: the routing table's IP-diversity limits (spec/dht.md §7.1); off is the
    #: measurement baseline
    diversity: bool = True
    #: lookups' per-group admission limit (spec/dht.md §8)
    lookup_diversity: bool = True
    #: disjoint paths per lookup (1: a plain lookup; spec/dht.md §8): the
    #: walks before a put (and find_node), record gets, and joins (None: as
    #: ``paths``); the defaults are the real node's (record_paths 3, lookup_paths 1)
    paths: int = 3
    get_paths: int = 3
    join_paths: int | None = 1
    #: a get runs path 0 alone until a setback or this many times ``patience``
    #: (DHTConfig.get_hedge; None: every path at once)
    get_hedge: float | None = 4.0
    #: setbacks of path 0 that start the other paths (DHTConfig.get_hedge_setbacks)
    get_hedge_setbacks: int = 3
    #: a lookup's responder is added to the asker's table only after an
    #: informative answer (spec/dht.md §8); off is the measurement baseline
    informative_only: bool = True


@dataclass(slots=True, eq=False)
class SimNode:
    """One simulated node: its id, address, routing table and records held."""

    contact: Contact
    table: RoutingTable
    kind: str = "honest"  # or "sybil", "eclipse", "dropper"
    online: bool = True
    records: dict[bytes, int] = field(default_factory=dict)

    @property
    def node_id(self) -> bytes:
        return self.contact.node_id


@dataclass(slots=True)
class LookupResult:
    """What one simulated lookup found, and what it cost."""

    closest: list[Contact]
    values: list[int]
    queries: int
    hops: int
    seconds: float


class SimDHT:
    """A population of simulated nodes and the operations run on them.

    Args:
        seed: the one source of randomness.
        model: the network's behaviour.
    """

    def __init__(self, seed: int, model: NetModel | None = None) -> None:
        self.rng = random.Random(seed)
        self.model = model or NetModel()
        self.nodes: dict[bytes, SimNode] = {}
        self._groups: Callable[[str], Groups] | None = sim_groups if self.model.diversity else None
        #: the eclipse nodes' ids as integers, sorted, with their contacts
        #: (their answers are the k of them closest to a target)
        self._eclipse: list[int] = []
        self._eclipse_contacts: dict[int, Contact] = {}

    # -- population -------------------------------------------------------------------

    def _host(self, block: tuple[int, int] | None) -> str:
        r = self.rng
        if block is None:
            # Honest nodes: spread over the whole space, as home users are.
            return (
                f"{r.randrange(1, 224)}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"
            )
        return f"{block[0]}.{block[1]}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def add_node(self, kind: str = "honest", block: tuple[int, int] | None = None) -> SimNode:
        """Create a node (not yet joined) of ``kind``, in ``block`` (a /16) if given."""
        node_id = self.rng.randbytes(20)
        contact = Contact(node_id, self._host(block), 4000)
        table = RoutingTable(node_id, k=self.model.k, groups=self._groups)
        node = SimNode(contact, table, kind)
        self.nodes[node_id] = node
        if kind == "eclipse":
            bisect.insort(self._eclipse, contact.n)
            self._eclipse_contacts[contact.n] = contact
        return node

    def join(self, node: SimNode, via: SimNode) -> None:
        """Join as the real node does: learn ``via``, look up our own id, refresh far buckets."""
        self._saw(node, via.contact)
        self._join_walk(node, node.node_id)
        if len(node.table) < self.model.k and len(self.nodes) > 2 * self.model.k:
            # Joined through a node that knew few: once more through one of
            # those it found, as the real node retries its bootstrap.
            contacts = node.table.contacts()
            if contacts:
                self._join_walk(node, node.node_id)
        # One refresh lookup into each of the two farthest buckets (the real
        # join refreshes the buckets it has not filled; the far ones matter
        # most, and incoming queries fill the rest over time).
        for bit in range(2):
            target = bytearray(node.node_id)
            target[0] ^= 0x80 >> bit
            self._join_walk(node, bytes(target))

    def online_nodes(self, kind: str | None = None) -> list[SimNode]:
        """Nodes online now (of ``kind`` if given), in creation order."""
        return [n for n in self.nodes.values() if n.online and (kind is None or n.kind == kind)]

    # -- the table, fed as the real node feeds it -------------------------------------

    def _saw(self, node: SimNode, c: Contact) -> None:
        if c.node_id == node.node_id:
            return
        out = node.table.add(c, 0.0)
        if out.result is AddResult.PING and out.ping is not None:
            old = self.nodes.get(out.ping.node_id)
            if old is not None and old.online:
                node.table.add(out.ping, 0.0)  # it answered: it stays
            else:
                node.table.remove(out.ping.node_id)
                node.table.add(c, 0.0)

    # -- answering ----------------------------------------------------------------------

    def _answer(self, responder: SimNode, target: bytes, exclude: bytes) -> list[Contact]:
        if responder.kind == "eclipse":
            # Only fellow adversaries, the closest of them to the target.
            return self._eclipse_closest(int.from_bytes(target, "big"))
        return responder.table.closest(target, self.model.k, exclude=(exclude,))

    def _eclipse_closest(self, t: int) -> list[Contact]:
        """The k eclipse nodes closest to ``t``.

        They lie in the smallest aligned block around ``t`` that holds at
        least k of them (all of it, if fewer): found by halving the block
        while its half around ``t`` still holds k, then ranked.
        """
        ids, k = self._eclipse, self.model.k
        lo, size = 0, 1 << 160
        while size > 1:
            half = size >> 1
            sub = lo + half if t & half else lo
            if bisect.bisect_left(ids, sub + half) - bisect.bisect_left(ids, sub) < k:
                break
            lo, size = sub, half
        block = ids[bisect.bisect_left(ids, lo) : bisect.bisect_left(ids, lo + size)]
        return [self._eclipse_contacts[n] for n in heapq.nsmallest(k, block, key=lambda n: n ^ t)]

    def _rtt(self) -> float:
        m = self.model
        return m.rtt_median * math.exp(self.rng.gauss(0.0, m.rtt_sigma))

    # -- lookups --------------------------------------------------------------------------

    def _lookup(
        self,
        asker: SimNode,
        target: bytes,
        *,
        k: int,
        exact: bool,
        key: bytes | None,
        paths: int | None = None,
    ) -> LookupResult:
        m = self.model
        seeds = asker.table.closest(target, m.k)
        lookup = DisjointLookup(
            asker.node_id,
            target,
            seeds,
            paths=m.paths if paths is None else paths,
            k=k,
            alpha=m.alpha,
            timeout=m.verdict + 1.0,
            slow_after=m.patience,
            await_slow=exact,
            first_with_value=not exact,
            hedge_after=None if exact or m.get_hedge is None else m.get_hedge * m.patience,
            hedge_setbacks=m.get_hedge_setbacks,
            groups=self._groups if self.model.lookup_diversity else None,
        )
        depth = {c.node_id: 1 for c in seeds}
        events: list[tuple[float, int, bytes, bool]] = []
        seq = 0
        now = 0.0
        while True:
            action = lookup.next(now)
            if isinstance(action, Finished):
                break
            if isinstance(action, Query):
                c = action.contact
                peer = self.nodes.get(c.node_id)
                ok = peer is not None and peer.online
                at = now + m.verdict
                if ok:
                    # The caller's retries: each lost round trip costs one
                    # attempt's timeout; all of them lost is a silence.
                    rtt, wait = self._rtt(), m.patience
                    for _ in range(m.attempts):
                        if self.rng.random() >= m.loss and self.rng.random() >= m.loss:
                            at = min(at, now + rtt)
                            break
                        rtt += wait
                        wait *= 1.2
                    else:
                        ok = False
                heapq.heappush(events, (at, seq, c.node_id, ok))
                seq += 1
                continue
            if not events or events[0][0] > action.until:
                # Nothing arrives before the lookup's own timer: let it fire
                # (a query goes slow, or past its deadline).
                now = max(now, action.until)
                continue
            at, _, nid, ok = heapq.heappop(events)
            now = max(now, at)
            if not ok:
                lookup.on_failure(nid)
                asker.table.remove(nid)
                continue
            peer = self.nodes[nid]
            self._saw(peer, asker.contact)
            nodes = self._answer(peer, target, asker.node_id)
            for c in nodes:
                depth.setdefault(c.node_id, depth[nid] + 1)
            held = None
            if key is not None and peer.kind != "eclipse":
                held = peer.records.get(key)
            informative = lookup.on_response(nid, nodes, value=held, has_value=held is not None)
            if informative or not m.informative_only or asker.table.get(nid) is not None:
                # A responder new to us earns a table slot only by naming a
                # contact the lookup had not heard of (spec/dht.md §8).
                self._saw(asker, peer.contact)
        hops = depth.get(action.closest[0].node_id, 0) if action.closest else 0
        values = [v for _, v in action.values]
        return LookupResult(action.closest, values, lookup.queries, hops, now)

    def _join_walk(self, node: SimNode, target: bytes) -> LookupResult:
        m = self.model
        paths = m.paths if m.join_paths is None else m.join_paths
        return self._lookup(node, target, k=m.k, exact=True, key=None, paths=paths)

    def find_node(self, asker: SimNode, target: bytes) -> LookupResult:
        """An exact walk to the k closest (the lookup before a store)."""
        return self._lookup(asker, target, k=self.model.k, exact=True, key=None)

    def put(self, asker: SimNode, key: bytes, seq: int) -> int:
        """Store ``key`` at version ``seq`` at the k closest; returns how many keep it."""
        res = self.find_node(asker, key)
        kept = 0
        for c in res.closest:
            node = self.nodes[c.node_id]
            if node.kind in ("dropper", "eclipse"):
                continue
            if node.records.get(key, 0) < seq:
                node.records[key] = seq
            kept += 1
        return kept

    def get(self, asker: SimNode, key: bytes) -> tuple[int | None, LookupResult]:
        """A record get (walks until get_k answered, and on a miss to the k
        closest); the highest version seen, or None."""
        mine = asker.records.get(key)
        paths = self.model.get_paths
        res = self._lookup(asker, key, k=self.model.get_k, exact=False, key=key, paths=paths)
        if not res.values and mine is None:
            # A miss walks again to the k closest, as the real node does.
            res = self._lookup(asker, key, k=self.model.k, exact=True, key=key, paths=paths)
        found = [*res.values, *([mine] if mine is not None else [])]
        return (max(found) if found else None), res

    # -- measurements -----------------------------------------------------------------------

    def table_share(self, victim: SimNode, kind: str) -> float:
        """The fraction of ``victim``'s table held by nodes of ``kind``."""
        contacts = victim.table.contacts()
        if not contacts:
            return 0.0
        held = sum(1 for c in contacts if (x := self.nodes.get(c.node_id)) and x.kind == kind)
        return held / len(contacts)
