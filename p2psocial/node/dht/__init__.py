"""The DHT service: the sans-IO Kademlia of ``protocol.dht`` driven over one UDP socket.

Shape (STYLE.md §10-12): :meth:`DHTNode.run` binds the socket and starts the
parts' tasks in its nursery; the parts talk through small typed interfaces
(:class:`~.engine.Handler` for requests in, :class:`~.engine.Caller` for
calls out) rather than one shared ``self``.

* :mod:`.udp`: the :class:`DatagramSocket` interface and the UDP socket behind it.
* :mod:`.engine`: the datagram engine. Its receive loop never raises on bad
  input; it drops and counts, matches responses to pending calls by message
  id *and* source address, rate-limits requests per address and hands them to
  the request workers on a bounded queue. Calls retry under cancel scopes
  with a growing timeout.
* :mod:`.handler`: answers requests from the stores and the routing table.
* :mod:`.contacts`: the routing table, liveness pings and key proving. Contacts
  that speak only the ``kademlia`` package's four RPCs are fine for node
  lookups and plain values; our record RPCs go only to contacts that proved
  their node key with ``hello`` (node id = SHA-256(key)[:20]).
* :mod:`.lookups`: the pure :class:`~p2psocial.protocol.dht.Lookup` run with α
  requests in flight.
* :mod:`.plain`: the ``kademlia`` package's API (bootstrap, find_node, set, get).
* :mod:`.records` and :mod:`.swarms`: heads, profiles, announces and peers.
* :mod:`.maintenance`: refresh, republish, re-announce, placement after
  joining, contact saving.
* :mod:`.service`: :class:`DHTNode`, which composes them.
* :mod:`.workqueue`: bounded queues whose workers start only when work comes.
* :mod:`.memnet`: a seeded lossy in-memory network, for tests and simulations.
"""

from .common import DHTConfig, DHTError
from .plain import plain_key_digest
from .service import DHTNode
from .udp import DatagramSocket, open_udp_socket

__all__ = [
    "DHTConfig",
    "DHTError",
    "DHTNode",
    "DatagramSocket",
    "open_udp_socket",
    "plain_key_digest",
]
