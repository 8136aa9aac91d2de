"""Simulations of the protocol cores at scale (``bench/simulate.py``): the DHT
(:mod:`.dht`) and post propagation over gossip links (:mod:`.gossip`).

Pure like :mod:`p2psocial.protocol`: virtual time, one seeded generator, no
sockets, clocks or threads. The node never imports it.
"""

from .dht import LookupResult, NetModel, SimDHT, SimNode, sim_groups
from .gossip import GossipModel, GossipSim

__all__ = [
    "GossipModel",
    "GossipSim",
    "LookupResult",
    "NetModel",
    "SimDHT",
    "SimNode",
    "sim_groups",
]
