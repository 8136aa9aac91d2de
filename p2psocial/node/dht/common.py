"""What every part of the DHT service shares: its tunables, its error, its
stores and its logger."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from ...errors import NodeError
from ...protocol.dht import RecordStore, SwarmStore, TokenIssuer, ValueStore

__all__ = ["Addr", "DHTConfig", "DHTError", "Stores", "log"]

#: Every module of the package logs under the name the service had when it was
#: one module, so that log filters written for it keep working.
log = logging.getLogger("p2psocial.node.dht")

Addr = tuple[str, int]


class DHTError(NodeError):
    """A DHT operation could not complete (timeout, no contacts, not running)."""

    reason = "dht"


@dataclass(slots=True)
class DHTConfig:
    """Tunables of a :class:`DHTNode`; the defaults suit a real network.

    Times are seconds of the trio clock.
    """

    k: int = 20
    alpha: int = 3
    #: First attempt's timeout; each retry waits ``rpc_backoff`` times longer.
    #: Six attempts with a gentle backoff: 5 s before a silent contact is
    #: declared dead, and at 10 % loss each way (19 % per round trip) a live
    #: one is lost once in 20,000 requests.
    rpc_timeout: float = 0.5
    rpc_attempts: int = 6
    rpc_backoff: float = 1.2
    #: Once round trips to a contact (or any contact) are measured, its first
    #: attempt waits srtt + 4 rttvar instead, within these bounds: on loopback
    #: about 30 ms, so a dead contact is known within 0.3 s, not 5 s.
    rpc_timeout_min: float = 0.03
    rpc_timeout_max: float = 2.0
    #: The first retransmission waits at least this long, however short the
    #: first attempt's timeout: a lookup goes past a silent contact after
    #: that timeout anyway, and a resend only helps against loss. Resending
    #: at 30 ms made a busy node (or a busy peer) send most requests twice,
    #: which loaded both further: more than half of the calls of a
    #: 200-node bootstrap in one process were resent.
    rpc_retransmit_min: float = 0.25
    #: A call is not declared timed out before this many seconds, however
    #: short its attempts (a stall of our own must not evict live contacts).
    rpc_verdict_min: float = 3.0
    #: A contact whose call timed out is skipped by lookups for this long
    #: (unless it is heard from again): lookups never wait on a known-dead
    #: contact while others remain.
    dead_ttl: float = 120.0
    #: A contact silent past its first attempt's timeout is skipped by the
    #: lookups that start meanwhile, until it is heard from again or for this
    #: long: the lookups running at once after a wave of departures need not
    #: each wait on the same dead contact for the verdict.
    silent_ttl: float = 10.0
    #: Ask proven contacts for our observed address (spec/dht.md 4.4). Off for
    #: simulated networks, where every node shares one address.
    observe_addresses: bool = True
    #: Lookups admit at most the table's per-/16 limit of candidates from one
    #: address group (spec/dht.md §8). Off only as a measurement baseline.
    lookup_diversity: bool = True
    #: Disjoint paths of node lookups: joins, bucket refreshes, plain values
    #: (S/Kademlia; spec/dht.md §8). 1, a plain lookup: they need no more.
    lookup_paths: int = 1
    #: Disjoint paths of record and peer lookups (gets, and the walks before
    #: put_record and announce; spec/dht.md §8): with informative admission,
    #: what keeps records reachable past eclipse nodes spread over the space
    #: (bench/simulate.py), at about this many times the queries.
    record_paths: int = 3
    #: A record or peers get over several paths runs path 0 alone until
    #: ``get_hedge_setbacks`` of its queries went slow or failed, it ends
    #: without the value, or this many times the nearest seed's patience
    #: passed; then every path runs (spec/dht.md §8). None starts every path
    #: at once.
    get_hedge: float | None = 4.0
    #: Setbacks of path 0 that start a get's other paths (see get_hedge):
    #: under churn one dead contact is common and path 0 routes around it;
    #: three mean the path is in trouble (bench/dht.py churn).
    get_hedge_setbacks: int = 3
    #: A lookup's responder not yet in the table is added only if its answer
    #: named a contact the lookup had not heard of (spec/dht.md §8). Off only
    #: as a measurement baseline.
    informative_admission: bool = True
    #: Attempts after which a lookup goes past a silent contact (SLOW).
    lookup_patience: int = 1
    #: A record or peers get walks until this many closest nodes answered
    #: (puts go to the k closest, so these hold the latest version), keeping
    #: the highest seq seen on the way.
    get_k: int = 5
    #: A peers get returns the peers found so far after this long: behind a
    #: NAT, many contacts handed out by others cannot answer, and a walk that
    #: waits for each of them could outlast its caller's patience.
    get_peers_time: float = 5.0
    hello_queue: int = 256
    hello_workers: int = 2
    #: Contacts that answered us are proven in the background (hello) only
    #: while fewer than this many are proven (enough for observe and
    #: dial-back rounds); beyond that, a contact is proven when first asked a
    #: record RPC, by the proof in its reply (spec/dht.md 4.1). Proving every
    #: contact learnt of made bootstrap grow with the square of the network.
    eager_proofs: int = 16
    ping_queue: int = 64
    #: Per-address request rate limit (token bucket).
    rate_per_s: float = 200.0
    rate_burst: float = 400.0
    rate_table_size: int = 4096
    maintenance_interval: float = 60.0
    #: How long the k closest nodes found for one of our own record slots are
    #: reused for the next put of that slot (0 disables it).
    closest_cache_ttl: float = 300.0
    refresh_interval: float = 3600.0
    republish_interval: float = 3600.0
    announce_interval: float = 900.0
    #: An announce that no node accepted (say, made before the node joined)
    #: is retried after this many seconds, doubling up to announce_interval.
    announce_retry: float = 1.0
    token_rotation: float = 300.0
    contact_save_interval: float = 300.0
    #: A contact that failed hello is not asked again for this long.
    not_ours_ttl: float = 600.0
    max_proven: int = 8192


@dataclass(slots=True)
class Stores:
    """What this node holds for the network: the sans-IO stores of
    ``protocol.dht``, served by the request handler and read and written by
    the clients and by maintenance."""

    token_rotation: float
    records: RecordStore = field(default_factory=RecordStore)
    swarms: SwarmStore = field(default_factory=SwarmStore)
    values: ValueStore = field(default_factory=ValueStore)
    tokens: TokenIssuer = field(init=False)

    def __post_init__(self) -> None:
        self.new_tokens(0.0)

    def new_tokens(self, now: float) -> None:
        """Start a fresh announce-token issuer with a random secret at ``now``."""
        self.tokens = TokenIssuer(os.urandom(32), now, rotation_s=self.token_rotation)
